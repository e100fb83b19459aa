# hvc0 carries a shell: with `--console virtio` (no path) hvc0's host end is plinth's own
# stdin/stdout, while COM1 keeps only its output (both reach stdout). The guest runs a shell
# on /dev/hvc0; commands written to plinth's stdin (a FIFO) run there, their output comes
# back on plinth's stdout (in the same file as the serial console's, neither overwriting
# the other), and the shell's exit status ends the guest. Input is sent once the guest shows
# its shell starting: Linux discards hvc0 input that lands while its driver is still setting
# the port up (see README), which the unit tests cover on the host side instead.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(sock_dir) # a FIFO cannot live on /tmp (9p in the emulated host)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
mkfifo "$dir/in" || fail "mkfifo $dir/in"
out=$dir/out
# Held open read-write by the test, so that neither end's open blocks and plinth never sees
# end of input while the test still has something to say.
exec 3<>"$dir/in"

# wait_for REGEX SECONDS: until the output shows REGEX (false if plinth died first).
wait_for() {
	local end=$((SECONDS + $2))
	while ((SECONDS < end)); do
		grep -qs -E "$1" "$out" && return 0
		kill -0 "$pid" 2>/dev/null || { grep -q -E "$1" "$out"; return; }
		sleep 0.3
	done
	return 1
}

timeout 180 "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--memory 256M --console virtio \
	--cmdline "$(guest_cmdline 'echo "hvc-shell: starting"; exec sh </dev/hvc0 >/dev/hvc0 2>&1')" \
	<"$dir/in" >"$out" 2>&1 &
pid=$!
show() { cat -v "$out" | tail -n 60; }
wait_for 'hvc-shell: starting' 150 || { show; fail "the guest did not start its hvc0 shell"; }
printf 'echo answer-$((6*7))\n' >&3
wait_for 'answer-42' 30 || { show; fail "a command sent to hvc0 did not run"; }
printf 'exit 5\n' >&3
rc=0
wait "$pid" || rc=$?
pid=
exec 3>&-
sed -i 's/\r$//' "$out"
[ $rc = 124 ] && fail "plinth did not exit after the shell did"
expect_in "$out" '^plinth-guest: exit status 5' "the hvc0 shell's exit did not end the guest"
expect_in "$out" '^plinth-guest: ready' "the serial console's output was lost"
[ $rc = 0 ] || { tail -n 20 "$out"; fail "plinth exited $rc"; }
echo "ok: a shell on hvc0 ran commands from plinth's stdin"
