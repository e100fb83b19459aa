# Seccomp on by default: the standard guest boots on 2 vCPUs with a disk, the rng
# and hvc0, uses them, and powers off (exit 0) with no "forbidden syscall" line;
# while it runs every thread of plinth is filtered (Seccomp: 2) and has the
# number of filters of its kind (main: 2, main then main-run once start-up is over;
# vCPU, console, device I/O: 3, their own stacked on main's two). --seccomp=off still
# boots, with no filter anywhere.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
pid=
out=$dir/console
truncate -s 16M "$dir/disk.img"
: >"$out"
: >"$dir/hvc"
# On a failure while plinth runs: how it ended, and its last words.
died() {
	local rc=0
	kill -0 $pid 2>/dev/null && { kill $pid; wait $pid; rc=$?; } || { wait $pid; rc=$?; }
	pid=
	tail -n 15 "$out" | sed 's/\r$//'
	fail "$* (plinth exit status $rc)"
}
# The devices are used first (each I/O thread installs its filter at DRIVER_OK), then the
# guest waits while the test looks at plinth's threads (slow to fork in the emulated host).
guest='
	echo "bytes $(head -c 512 /dev/hwrng | wc -c)"
	printf sandbox-pattern | dd of=/dev/vda bs=512 seek=8 conv=sync,fsync 2>/dev/null
	echo "disk $(dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 15)"
	echo hvc-hello > /dev/hvc0
	echo "guest done"
	sleep 12
	'
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--memory 256M --cpus 2 --cmdline "$(guest_cmdline "$guest")" \
	--disk "path=$dir/disk.img,format=raw" --rng --console "virtio,path=$dir/hvc" \
	</dev/null >"$out" 2>&1 &
pid=$!
# While the guest sleeps: look at every thread (main, 2 vCPUs, 3 device workers).
for _ in $(seq 900); do
	grep -q '^guest done' "$out" && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
threads=0
# One awk over every thread's status: "NAME SECCOMP FILTERS" (forks are slow here; no
# process substitution: the emulated host has no /dev/fd).
report=$(awk 'FNR == 1 && NR > 1 { print n, s, f } FNR == 1 { n = s = "?"; f = "-" }
	/^Name:/ { n = $2 } /^Seccomp:/ { s = $2 } /^Seccomp_filters:/ { f = $2 }
	END { if (NR) print n, s, f }' /proc/$pid/task/*/status 2>/dev/null)
while read -r name sc nf; do
	[ -n "$name" ] || continue
	echo "# thread $name: Seccomp $sc, filters $nf"
	[ "$sc" = 2 ] || died "thread $name of plinth is not filtered (Seccomp: $sc)"
	[ "$nf" = - ] || [ "$name" = plinth ] || [ "$nf" = 3 ] ||
		died "thread $name has $nf filters, not its own on top of main's two"
	[ "$name" != plinth ] || [ "$nf" = - ] || [ "$nf" = 2 ] ||
		died "main has $nf filters, not main and main-run"
	threads=$((threads + 1))
done <<<"$report"
kill -0 $pid 2>/dev/null || died "plinth ended while its threads were checked"
[ $threads -ge 6 ] || died "plinth has $threads threads, expected main, 2 vCPUs and 3 device threads"
wait $pid
rc=$?
pid=
sed -i 's/\r$//' "$out"
[ $rc = 0 ] || { tail -n 30 "$out"; fail "plinth exited $rc with seccomp on"; }
grep -q 'forbidden syscall' "$out" && { grep seccomp "$out"; fail "a forbidden syscall"; }
expect_in "$out" '^plinth-guest: exit status 0' "the guest command did not finish"
expect_in "$out" '^bytes 512$' "no bytes from virtio-rng"
expect_in "$out" '^disk sandbox-pattern$' "the disk did not read back"
expect_in "$dir/hvc" 'hvc-hello' "hvc0 output did not reach the host"

# --seccomp=off: boots, and no thread is filtered.
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--memory 256M --cmdline "$(guest_cmdline 'echo off-start; sleep 8; echo off-done')" --rng --seccomp=off \
	</dev/null >"$out" 2>&1 &
pid=$!
for _ in $(seq 600); do
	grep -q '^off-start' "$out" && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
st=$(cat /proc/$pid/task/*/status 2>/dev/null | grep '^Seccomp:')
[ -n "$st" ] || fail "--seccomp=off: plinth is gone before its threads were seen"
grep -qv '0$' <<<"$st" && fail "--seccomp=off: a thread is filtered"
wait $pid
rc=$?
pid=
[ $rc = 0 ] || { tail -n 30 "$out"; fail "plinth --seccomp=off exited $rc"; }
expect_in "$out" 'off-done' "--seccomp=off: the guest command did not run"
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --seccomp=maybe >"$out" 2>&1
[ $? = 2 ] || fail "--seccomp=maybe should be a usage error"
expect_in "$out" "--seccomp: expected 'on' or 'off'" "--seccomp=maybe: no clear line"
echo "ok: seccomp on ($threads threads filtered), off, bad value"
