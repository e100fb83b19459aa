# The serial console is interactive on a terminal: typed input reaches the guest's shell
# through the 8250 receive path, and Ctrl-A x quits plinth with status 0.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
command -v script >/dev/null || fail "script (util-linux) is needed for a pseudo-terminal"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# wait_for REGEX SECONDS: until the console shows REGEX.
wait_for() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -q -E "$1" "$out" && return 0
		sleep 0.1
	done
	return 1
}

{
	wait_for '^plinth-guest: ready' 150 || exit 0
	sleep 1
	printf 'echo in-$((6*7))\r'
	wait_for 'in-42' 30
	printf '\001x'
	sleep 2
} | timeout 200 script -q -e -f -c "$BUILD/plinth run --kernel $GUEST/vmlinuz --initrd $GUEST/initramfs.cpio.gz --memory 256M --cmdline 'console=ttyS0 quiet'" /dev/null >"$out" 2>&1
rc=$?
expect_in "$out" '^plinth-guest: ready' "the guest's shell did not start"
expect_in "$out" 'in-42' "typed input did not reach the guest's shell"
[ $rc = 0 ] || { tail -n 20 "$out"; fail "Ctrl-A x: exit $rc, not 0"; }
echo "ok: console input and Ctrl-A x"
