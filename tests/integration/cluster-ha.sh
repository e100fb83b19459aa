# HA restarts of a real guest (#15): hosts h1 (127.0.0.1) and h2 (127.0.0.2) of one
# cluster (tests/integration/cluster-lib), an HA VM whose disk is on a directory both
# see. Its processes are sampled every 0.2 s throughout: never two plinth serving it.
#   - h1's plinthd frozen (SIGSTOP; the guest runs on): the VM's shim kills it when the
#     watchdog is not fed (5 s), the leader h2 restarts it after 15 s without h1's
#     heartbeat, the guest boots to init on h2; h1 resumed runs nothing of it;
#   - h2 powered off (plinthd, shims and plinth SIGKILLed): h1 restarts it, the guest
#     boots to init on h1.
#   - h1 feeds the emulated host's watchdog (--watchdog /dev/watchdog, softdog with
#     soft_noboot=1: an expiry is logged, not a reboot): set to 5 s, it never expires
#     while h1 is in contact, expires while h1's plinthd is frozen, and h1's clean stop
#     disarms it (no "watchdog did not stop!").
# Prints host loss -> restart issued and -> the guest's init on the other host (ms).
. tests/integration/cluster-lib
[ -c /dev/watchdog ] || fail "no /dev/watchdog in the emulated host (softdog)"
expired() { dmesg | grep -c "softdog: Triggered"; }
HOST_OPTS="--watchdog /dev/watchdog" start_host h1 127.0.0.1
start_host h2 127.0.0.2
wd0=$(expired)
if [ -r /sys/class/watchdog/watchdog0/timeout ]; then
	[ "$(cat /sys/class/watchdog/watchdog0/timeout)" = 5 ] ||
		fail "h1 set the watchdog's timeout to $(cat /sys/class/watchdog/watchdog0/timeout) s, not 5"
fi
truncate -s 4M "$dir/shared/disk.raw"
cmd='j=0; while :; do j=$((j+1)); printf "disk %010d\n" $j | dd of=/dev/vda bs=16 seek=$j conv=notrunc,fsync 2>/dev/null && echo "disk $j"; sleep 0.3; done'
P h1 vm create m --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256 \
	--disk "path=$dir/shared/disk.raw,format=raw" --ha \
	--cmdline "$(guest_cmdline "$cmd")" >/dev/null || fail "vm create"
uuid=$(field m uuid)
P h1 vm start m >/dev/null || fail "vm start on h1"
wait_console h1 "$uuid" 'disk 3[[:space:]]' 180
# Sample the VM's processes in the background: any moment with two is a failure.
(while :; do n=$(copies "$uuid" | wc -l); [ "$n" -gt 1 ] && { date +%s%3N; copies "$uuid"; }; sleep 0.2; done) \
	>"$dir/two" 2>/dev/null &
pids+=($!)
event_ms() { # the latest vm.ha event's time
	P "$1" events --json --limit 1000 | python3 -c '
import json, sys
t = [e["time_ms"] for e in json.load(sys.stdin)["events"] if e["action"] == "vm.ha" and e["object"] == "m"]
print(t[-1] if t else 0)'
}
# failover LOST OTHER: wait until the VM runs on OTHER and its guest reached init there.
failover() {
	local end=$((SECONDS + 90)) t
	while [ $SECONDS -lt $end ]; do
		[ "$(field m host "$2" 2>/dev/null)" = "$2" ] && [ -s "$dir/$2/vms/$uuid/console.log" ] &&
			grep -a -q "init started" "$dir/$2/vms/$uuid/console.log" && break
		sleep 0.1
	done
	t=$(date +%s%3N)
	grep -a -q "init started" "$dir/$2/vms/$uuid/console.log" 2>/dev/null ||
		{ tail -n 30 "$dir/$1.log" "$dir/$2.log"; fail "the VM did not start on $2 within 90 s of losing $1"; }
	echo "$t"
}

[ "$(expired)" = "$wd0" ] || fail "the watchdog expired while h1 was in contact"
# 1. h1's plinthd frozen.
t0=$(date +%s%3N)
kill -STOP "${HPID[h1]}"
t_init=$(failover h1 h2)
issued=$(($(event_ms h2) - t0))
echo "# h1 frozen: restart issued after $issued ms, the guest's init on h2 after $((t_init - t0)) ms"
[ "$issued" -ge 13000 ] && [ "$issued" -le 22000 ] || fail "restart issued after $issued ms, not 13-22 s"
[ "$(expired)" -gt "$wd0" ] || fail "the watchdog did not expire while h1's plinthd was frozen"
kill -CONT "${HPID[h1]}"
wait_console h2 "$uuid" 'disk 3[[:space:]]' 120
sleep 3
[ "$(copies "$uuid" | cut -d' ' -f1 | tr '\n' ' ')" = "h2 " ] || { copies "$uuid"; fail "after h1 resumed: not one copy, on h2"; }
[ "$(field m host) $(field m epoch)" = "h2 2" ] || fail "after h1 resumed the inventory says $(field m host) at epoch $(field m epoch)"
f1="$issued $((t_init - t0))"

# 2. h2 powered off; h1 (in contact for 15 s by then) restarts it.
sleep 12
t0=$(date +%s%3N)
victims="${HPID[h2]}"
for p in "$dir"/h2/vms/*/pid; do victims="$victims $(cat "$p")"; done
kill -9 $victims
t_init=$(failover h2 h1)
issued=$(($(event_ms h1) - t0))
echo "# h2 powered off: restart issued after $issued ms, the guest's init on h1 after $((t_init - t0)) ms"
[ "$issued" -ge 13000 ] && [ "$issued" -le 22000 ] || fail "restart issued after $issued ms, not 13-22 s"
[ "$(field m host) $(field m epoch)" = "h1 3" ] || fail "after h2's loss the inventory says $(field m host) at epoch $(field m epoch)"
[ -s "$dir/two" ] && { cat "$dir/two"; fail "two plinth served the VM at once"; }
wait_console h1 "$uuid" 'disk 3[[:space:]]' 120
kill -TERM "${HPID[h1]}"
wait "${HPID[h1]}" 2>/dev/null
dmesg | grep -q "watchdog did not stop" && fail "h1's clean stop left the watchdog armed"
echo "figures (issued, init; ms): frozen plinthd $f1; host powered off $issued $((t_init - t0))"
echo "ok: an HA guest restarted on the other host after a frozen plinthd and a lost host, never two copies"
