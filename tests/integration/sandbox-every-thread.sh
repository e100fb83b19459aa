# Every thread of plinth is filtered (Seccomp: 2) in every mode: after run, after a
# guest reset with every device kind (disk, net, console, rng, vsock: the reset
# re-creates the VM, and the tap's set-up needs TUNSETSNDBUF, which killed plinth
# before), after restore (device I/O threads start while the state loads: the
# rng's ran unfiltered before), and after receive (a TLS migration to a host
# name, localhost: the name is resolved by plinth ctl, never by the filtered
# source) and a reset of the received guest.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
# /tmp is 9p inside the emulated host: no sockets there; /run is a tmpfs.
dir=$(mktemp -d -p /run 2>/dev/null || mktemp -d)
ns=plinth-st$$
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; ip netns del $ns 2>/dev/null; rm -rf "$dir"' EXIT
ip netns add $ns || fail "cannot create a network namespace"
ip netns exec $ns ip link set lo up
for t in st0 st1; do
	ip netns exec $ns ip tuntap add $t mode tap || fail "cannot create tap $t"
done
ctl() { "$BUILD/plinth" ctl --api-socket "$1" "${@:2}"; }
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/key"
chmod 600 "$dir/key"
truncate -s 4M "$dir/disk.raw"
: >"$dir/hvc"

# check_threads PID WHAT MIN: every thread of PID has Seccomp 2; at least MIN threads.
check_threads() {
	local report n=0 name sc
	report=$(awk 'FNR == 1 && NR > 1 { print n, s } FNR == 1 { n = s = "?" }
		/^Name:/ { n = $2 } /^Seccomp:/ { s = $2 } END { if (NR) print n, s }' \
		/proc/$1/task/*/status 2>/dev/null)
	while read -r name sc; do
		[ -n "$name" ] || continue
		[ "$sc" = 2 ] || fail "$2: thread $name of plinth is not filtered (Seccomp: $sc)"
		n=$((n + 1))
	done <<<"$report"
	[ $n -ge "$3" ] || fail "$2: $n threads, expected at least $3"
	echo "$2: $n threads, all Seccomp 2: $(echo $(cut -d' ' -f1 <<<"$report" | sort))"
}

# The guest uses every device; on its first boot it marks its disk and reboots
# (a guest reset: plinth re-creates the VM), on later boots it counts.
cmd='if [ "$(dd if=/dev/vda bs=8 count=1 2>/dev/null)" = rebooted ]; then boot=2; else boot=1; fi
ip link set eth0 up
head -c 64 /dev/hwrng >/dev/null && echo "rng ok $boot"
echo "hvc $boot" >/dev/hvc0
echo "ready $boot"
if [ $boot = 1 ]; then sleep 8; printf rebooted | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null; reboot -f; fi
i=0; while :; do i=$((i+1)); echo "count $i"; sleep 1; done'
machine() { # TAP VSOCK: the same machine on every side (the guest's MAC too), its files named here
	echo --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256M \
		--disk "path=$dir/disk.raw,format=raw" --net "tap=$1,mac=52:54:00:12:34:56" \
		--console "virtio,path=$dir/hvc" --rng --vsock "cid=3,socket=$dir/$2"
}
# 5 device I/O threads, a vCPU, main, the API's.
want=8

# run; then a guest reset with every device kind.
ip netns exec $ns "$BUILD/plinth" run $(machine st0 va.sock) --cmdline "$(guest_cmdline "$cmd")" \
	--api-socket "$dir/a.sock" </dev/null >"$dir/a.out" 2>&1 &
a=$!
pids+=($a)
wait_in "$dir/a.out" $a '^ready 1' 120
expect_in "$dir/a.out" '^rng ok 1' "no bytes from virtio-rng"
check_threads $a "run" $want
wait_in "$dir/a.out" $a '^ready 2' 120
grep -q 'forbidden syscall' "$dir/a.out" && fail "a forbidden syscall after the reset"
check_threads $a "run, after a guest reset with disk, net, console, rng, vsock" $want
wait_in "$dir/a.out" $a '^count 2[[:space:]]'
ctl "$dir/a.sock" pause >/dev/null || fail "pause failed"
ctl "$dir/a.sock" snapshot --to "$dir/snap" >/dev/null || fail "snapshot failed"
kill -9 $a
wait $a 2>/dev/null
n=$(last_num "$dir/a.out" count)

# restore: the same machine options; the devices' I/O threads start as the state loads.
ip netns exec $ns "$BUILD/plinth" restore --from "$dir/snap" $(machine st0 vb.sock) \
	--cmdline "$(guest_cmdline "$cmd")" \
	--migrate-psk "$dir/key" --api-socket "$dir/b.sock" </dev/null >"$dir/b.out" 2>&1 &
b=$!
pids+=($b)
wait_in "$dir/b.out" $b "^count $((n + 2))[[:space:]]" 90
check_threads $b "restore" $want

# receive over TCP with TLS, the source told a host name.
ip netns exec $ns "$BUILD/plinth" receive --listen tcp:47311 $(machine st1 vc.sock) \
	--cmdline "$(guest_cmdline "$cmd")" \
	--migrate-psk "$dir/key" --api-socket "$dir/c.sock" </dev/null >"$dir/c.out" 2>&1 &
c=$!
pids+=($c)
sleep 1
ip netns exec $ns "$BUILD/plinth" ctl --api-socket "$dir/b.sock" migrate --to tcp:localhost:47311 \
	>/dev/null || fail "migrate to tcp:localhost refused"
end=$((SECONDS + 120))
while kill -0 $b 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.5; done
kill -0 $b 2>/dev/null &&
	{ ctl "$dir/b.sock" info; tail -n 5 "$dir/c.out"; fail "the source did not finish migrating"; }
wait $b
rc=$?
[ $rc = 0 ] || { tail -n 5 "$dir/b.out"; fail "the source exited $rc (a name killed it before)"; }
n=$(last_num "$dir/b.out" count)
wait_in "$dir/c.out" $c "^count $((n + 2))[[:space:]]" 90
grep -q "init started" "$dir/c.out" && fail "the destination booted the guest instead of receiving it"
check_threads $c "receive" $want
# A reset of the received guest: a fresh VM from the destination's own options.
ctl "$dir/c.sock" reset >/dev/null || fail "reset of the received guest failed"
end=$((SECONDS + 120))
until sed -n '/init started/,$p' "$dir/c.out" | grep -q '^count 2[[:space:]]'; do
	[ $SECONDS -lt $end ] && kill -0 $c 2>/dev/null ||
		{ tail -n 20 "$dir/c.out"; fail "the received guest did not come back after a reset"; }
	sleep 0.5
done
check_threads $c "receive, after a guest reset" $want
grep -q 'forbidden syscall' "$dir"/*.out && fail "a forbidden syscall"
kill -TERM $c
wait $c
echo "ok: every thread filtered after run, reset (all device kinds), restore, receive (TLS, tcp:localhost), reset"
