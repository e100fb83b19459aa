# Reboot and panic: under --no-reboot a guest reboot (ACPI reset register) and a
# panic with panic=-1 both exit 0 with the reason on the console; without it a
# reboot restarts the guest, and SIGTERM then stops plinth with 128+15.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
run() { # CMD [OPTIONS...]
	local cmd=$1
	shift
	timeout 150 "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
		--memory 256M --cmdline "$(guest_cmdline "$cmd")" "$@" </dev/null >"$out" 2>&1
}

run 'reboot -f' --no-reboot
rc=$?
[ $rc = 0 ] || { tail -n 20 "$out"; fail "reboot with --no-reboot: exit $rc, not 0"; }
expect_in "$out" 'reboot: Restarting system' "reboot: the guest did not reboot"

run 'echo c > /proc/sysrq-trigger' --no-reboot
rc=$?
[ $rc = 0 ] || { tail -n 20 "$out"; fail "panic with --no-reboot: exit $rc, not 0"; }
expect_in "$out" 'Kernel panic - not syncing' "panic: no panic text on the console"

# Without --no-reboot the guest comes back: wait for its second init, then stop plinth.
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--memory 256M --cmdline "$(guest_cmdline 'reboot -f')" </dev/null >"$out" 2>&1 &
pid=$!
for _ in $(seq 1500); do
	[ "$(grep -c '^plinth-guest: init started' "$out")" -ge 2 ] && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
n=$(grep -c '^plinth-guest: init started' "$out")
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
[ "$n" -ge 2 ] || { tail -n 20 "$out"; fail "reboot: the guest did not start again ($n boots)"; }
[ $rc = 143 ] || fail "SIGTERM: exit $rc, not 143"
echo "ok: reboot, panic, restart ($n boots), SIGTERM"
