# Disk hot-plug on a running guest (ACPI PCI hot-plug, Linux's acpiphp): disk-add makes a
# /dev/vdb the guest writes and reads back (the bytes land in the host file); a snapshot
# records it and a restore whose command line has it brings it back (one without it is
# refused); disk-remove asks the guest to eject it, and once it did the disk is gone from
# the guest and from GET /v1/vm. A NIC comes (the guest pings through it) and goes the
# same way. Bad requests (an id in use, no such disk, a file that is no image, a bad MAC,
# no free slot) each get one line and the guest runs on.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
# /tmp is 9p inside the emulated host: no sockets there; /run is a tmpfs.
dir=$(mktemp -d -p /run 2>/dev/null || mktemp -d)
sock=$dir/api.sock
out=$dir/console
pid=
ns=plinth-hp$$
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; ip netns del $ns 2>/dev/null; rm -rf "$dir"' EXIT
ctl() { "$BUILD/plinth" ctl --api-socket "$sock" "$@"; }
wait_for() { wait_in "$out" "$pid" "$@"; } # REGEX [SECONDS]
# refused ERRFILE REGEX WHAT: the last ctl failed with one line matching REGEX.
refused() {
	grep -q -- "$2" "$1" || { cat "$1"; fail "$3: not refused with '$2'"; }
	[ "$(wc -l <"$1")" -eq 1 ] || { cat "$1"; fail "$3: more than one line"; }
}
alive() { # the guest's counter moves on
	local n
	n=$(last_num "$out" alive)
	wait_for "^alive $((${n:-0} + 2)) " 30
}

# The NIC's tap, in a namespace of its own where plinth runs.
ip netns add $ns || fail "cannot create a network namespace"
ip netns exec $ns ip link set lo up
ip netns exec $ns ip tuntap add vtap0 mode tap || fail "cannot create a tap"
ip netns exec $ns ip addr add 10.77.0.1/24 dev vtap0
ip netns exec $ns ip link set vtap0 up
truncate -s 64M "$dir/a.img"
truncate -s 32M "$dir/b.img"
truncate -s 1M "$dir/ro.img"
echo "no image here" >"$dir/text"
# The guest: a counter with its block devices every second (written to /dev/vdb's
# sector 16 while there is one), beside the disk's steps.
cmd='echo "slots $(ls /sys/bus/pci/slots | wc -l | tr -d " ")"
	(i=0; while :; do i=$((i+1)); echo "alive $i $(ls /sys/block | tr "\n" " ")"
	 [ -b /dev/vdb ] && printf "tick %08d" $i | dd of=/dev/vdb bs=512 seek=16 conv=sync,fsync 2>/dev/null
	 sleep 1; done) &
	(i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 9000 ]; do sleep 0.1; i=$((i+1)); done
	 echo "eth0 $(cat /sys/class/net/eth0/address)"
	 ip link set eth0 up && ip addr add 10.77.0.2/24 dev eth0
	 if ping -c 3 -W 5 10.77.0.1 >/dev/null 2>&1; then echo "guest ping ok"; else echo "guest ping failed"; fi
	 i=0; while [ -e /sys/class/net/eth0 ] && [ $i -lt 9000 ]; do sleep 0.1; i=$((i+1)); done
	 echo "eth0 gone") &
	i=0; while [ ! -b /dev/vdb ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done
	echo "vdb size $(cat /sys/block/vdb/size 2>/dev/null)"
	printf "hotplug-pattern-42" | dd of=/dev/vdb bs=512 seek=8 conv=sync,fsync 2>/dev/null
	echo "vdb back $(dd if=/dev/vdb bs=512 skip=8 count=1 2>/dev/null | head -c 18)"
	i=0; while [ -e /sys/block/vdb ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done
	if [ -e /sys/block/vdb ]; then echo "vdb still there"; else echo "vdb gone"; fi
	wait'
ip netns exec $ns "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256M \
	--disk "path=$dir/a.img,format=raw,id=os" \
	--cmdline "$(guest_cmdline "$cmd")" --api-socket "$sock" </dev/null >"$out" 2>&1 &
pid=$!
FAIL_DUMP_PID=$pid
wait_for '^slots '
# acpiphp registered the DSDT's slots (one per slot but the host bridge's).
expect_in "$out" '^slots 31' "the guest's acpiphp did not register the hot-plug slots"

ctl disk-add --id hot --path "$dir/b.img" --format raw >"$dir/add" 2>"$dir/err" ||
	{ cat "$dir/err"; fail "disk-add failed"; }
wait_for '^vdb back ' 60
expect_in "$out" '^vdb size 65536[[:space:]]*$' "the hot-plugged disk has the wrong size (or none)"
expect_in "$out" '^vdb back hotplug-pattern-42' "the hot-plugged disk did not read back"
[ "$(dd if="$dir/b.img" bs=512 skip=8 count=1 2>/dev/null | head -c 18)" = hotplug-pattern-42 ] ||
	fail "the pattern is not in the host file"
ctl info >"$dir/info" || fail "info failed"
tr -d ' \n' <"$dir/info" | grep -q '"kind":"disk","id":"hot","addr":2' ||
	{ cat "$dir/info"; fail "info: no disk 'hot' in slot 2"; }
# Leased as a started VM's disks are.
grep -q " pid=$pid " "$dir/b.img.lease" 2>/dev/null ||
	{ cat "$dir/b.img.lease"; fail "the hot-plugged disk's lease does not name its VMM"; }

# The snapshot's config has the disk: a restore must have it too, at the same slot.
# Paused first: the guest writes the disk every second, and a restore refuses a disk
# that changed after its snapshot.
ctl pause >/dev/null || fail "pause failed"
ctl snapshot --to "$dir/snap" >/dev/null || fail "snapshot failed"
kill -9 $pid
wait $pid 2>/dev/null
machine=(--kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256M
	--disk "path=$dir/a.img,format=raw,id=os")
"$BUILD/plinth" restore --from "$dir/snap" "${machine[@]}" </dev/null >"$dir/err" 2>&1 &&
	fail "a restore without the hot-plugged disk succeeded"
grep -q 'the saved VM has a --disk with id hot' "$dir/err" || { cat "$dir/err"; fail "restore without the disk: wrong reason"; }
out=$dir/console2
ip netns exec $ns "$BUILD/plinth" restore --from "$dir/snap" "${machine[@]}" \
	--disk "path=$dir/b.img,format=raw,id=hot,addr=2" --api-socket "$sock" </dev/null >"$out" 2>&1 &
pid=$!
FAIL_DUMP_PID=$pid
wait_for '^alive [0-9]+ vda vdb ' 60

# The tick the guest last wrote to the hot disk (sector 16 of b.img).
tick() { dd if="$dir/b.img" bs=512 skip=16 count=1 2>/dev/null | head -c 13 | sed -n 's/^tick 0*//p'; }
# wait_tick N: the guest's tick on the hot disk gets past N.
wait_tick() {
	local end=$((SECONDS + 60)) t
	while [ $SECONDS -lt $end ]; do
		t=$(tick)
		[ "${t:-0}" -gt "$1" ] && return 0
		sleep 0.5
	done
	console_tail "$out"
	fail "the guest's writes to the hot-plugged disk stopped at tick ${t:-none}"
}
wait_tick 0
# wait_sock PATH: a migration's destination is listening.
wait_sock() {
	local end=$((SECONDS + 30))
	while [ $SECONDS -lt $end ] && [ ! -S "$1" ]; do sleep 0.2; done
	[ -S "$1" ] || fail "no migration socket at $1"
}

# A destination without the hot-plugged disk refuses the stream; the source carries on.
ip netns exec $ns "$BUILD/plinth" receive --listen "unix:$dir/mig1.sock" "${machine[@]}" \
	</dev/null >"$dir/bad.out" 2>&1 &
bad=$!
wait_sock "$dir/mig1.sock"
ctl migrate --to "unix:$dir/mig1.sock" >/dev/null || fail "migrate to the destination without the disk refused"
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ] && ! ctl info | grep -q '"status": *"failed"'; do sleep 0.3; done
ctl info >"$dir/info"
grep -q '"status": *"failed"' "$dir/info" ||
	{ cat "$dir/info"; tail -n 5 "$dir/bad.out"; fail "the migration to a destination without the disk did not fail"; }
grep -q '"state": *"running"' "$dir/info" || { cat "$dir/info"; fail "the source is not running after the refused migration"; }
wait $bad && fail "the destination without the hot-plugged disk took the guest"
grep -q 'the saved VM has a --disk with id hot' "$dir/bad.out" ||
	{ tail -n 5 "$dir/bad.out"; fail "the destination without the disk: wrong reason"; }
alive
wait_tick "$(tick)"

# One with it (at its slot) takes the guest, which writes the disk on there.
out=$dir/console3
ip netns exec $ns "$BUILD/plinth" receive --listen "unix:$dir/mig2.sock" "${machine[@]}" \
	--disk "path=$dir/b.img,format=raw,id=hot,addr=2" --api-socket "$dir/dst.sock" \
	</dev/null >"$out" 2>&1 &
dst=$!
wait_sock "$dir/mig2.sock"
ctl migrate --to "unix:$dir/mig2.sock" >/dev/null || fail "migrate refused"
end=$((SECONDS + 120))
while [ $SECONDS -lt $end ] && kill -0 $pid 2>/dev/null; do
	# A failed migration leaves the source running: say why at once, not after 120 s.
	if ctl info >"$dir/info" 2>/dev/null && grep -q '"status": *"failed"' "$dir/info"; then
		cat "$dir/info"
		console_tail "$dir/console2"
		echo "# the destination's output:"
		tail -n 20 "$out"
		fail "the migration to the destination with the disk failed"
	fi
	sleep 0.3
done
kill -0 $pid 2>/dev/null && { ctl info; fail "the source still runs 120 s after the migration began"; }
wait $pid || fail "the source exited $? after migrating"
pid=$dst
FAIL_DUMP_PID=$pid
sock=$dir/dst.sock
wait_for '^alive [0-9]+ vda vdb ' 60
grep -q "init started" "$out" && fail "the destination booted the guest instead of receiving it"
wait_tick "$(tick)"
grep -q " pid=$pid " "$dir/b.img.lease" ||
	{ cat "$dir/b.img.lease"; fail "the hot-plugged disk's lease does not name the destination"; }

# Bad requests: one line each, the guest runs on.
ctl disk-add --id hot --path "$dir/b.img" --format raw >/dev/null 2>"$dir/err" &&
	fail "a second disk with id hot was added"
refused "$dir/err" "id hot exists" "a duplicate id"
ctl disk-add --id os2 --path "$dir/text" >/dev/null 2>"$dir/err" && fail "a text file was added as a disk"
refused "$dir/err" "." "a file that is no image"
ctl disk-add --id gone --path "$dir/nonexistent" --format raw >/dev/null 2>"$dir/err" &&
	fail "a missing file was added as a disk"
refused "$dir/err" "." "a missing file"
ctl disk-remove --id nosuch >/dev/null 2>"$dir/err" && fail "removing an unknown disk succeeded"
refused "$dir/err" "no disk with id nosuch" "an unknown id"

ctl disk-remove --id hot >"$dir/rm" 2>"$dir/err" || { cat "$dir/err"; fail "disk-remove failed"; }
wait_for '^vdb (gone|still there)' 120
expect_in "$out" '^vdb gone' "the guest did not let the disk go"
# The VMM finishes the removal once the guest's _EJ0 arrives.
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ] && ctl info | grep -q '"id": *"hot"'; do sleep 0.3; done
ctl info >"$dir/info"
grep -q '"id": *"hot"' "$dir/info" && { cat "$dir/info"; fail "info: disk hot still there after the eject"; }
grep -q '"removing": *\[\]' "$dir/info" || { cat "$dir/info"; fail "info: a removal still pending"; }
alive

# A NIC: the guest pings the tap's end through it, then lets it go.
ctl net-add --id lan2 --tap vtap0 --mac 01:00:00:00:00:01 >/dev/null 2>"$dir/err" &&
	fail "a multicast MAC was accepted"
refused "$dir/err" "unicast" "a bad MAC"
ctl net-add --id lan --tap vtap0 --mac 52:54:00:12:34:56 >/dev/null 2>"$dir/err" ||
	{ cat "$dir/err"; fail "net-add failed"; }
wait_for '^guest ping (ok|failed)' 90
expect_in "$out" '^eth0 52:54:00:12:34:56' "the guest's NIC has the wrong MAC"
expect_in "$out" '^guest ping ok' "no ping through the hot-plugged NIC"
ctl net-remove --id os >/dev/null 2>"$dir/err" && fail "net-remove removed a disk"
refused "$dir/err" "no net with id os" "net-remove of a disk"
ctl net-remove --id lan >/dev/null 2>"$dir/err" || { cat "$dir/err"; fail "net-remove failed"; }
wait_for '^eth0 gone' 60
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ] && ctl info | grep -q '"id": *"lan"'; do sleep 0.3; done
ctl info | grep -q '"id": *"lan"' && fail "info: NIC lan still there after the eject"
alive

# The same id again (its slot was freed), then read-only disks until no slot is left:
# 24 devices in all; the guest sees each.
ctl disk-add --id hot --path "$dir/b.img" --format raw >/dev/null 2>"$dir/err" ||
	{ cat "$dir/err"; fail "disk-add after the removal failed"; }
n=2
while ctl disk-add --id "ro$n" --path "$dir/ro.img" --format raw --readonly >/dev/null 2>"$dir/err"; do
	n=$((n + 1))
	[ $n -le 40 ] || fail "more than 24 devices were added"
done
refused "$dir/err" "no free PCI slot" "a full machine"
[ $n -eq 24 ] || fail "$((n - 2)) read-only disks fitted, not 22"
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ] && ! tail -n 1 "$out" | grep -q ' vdx '; do sleep 0.5; done
tail -n 1 "$out" | grep -q ' vdx ' || {
	console_tail "$out"
	# Whether the guest's loop stopped (a stuck write or console) or runs without them.
	sleep 3
	echo "last alive line, 3 s later: $(grep -a '^alive ' "$out" | tail -n 1 | cut -c1-60)"
	fail "the guest does not see 24 disks"
}
alive
kill $pid
wait $pid
pid=
