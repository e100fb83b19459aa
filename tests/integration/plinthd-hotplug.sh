# A disk attached to a running VM through plinthd (jailed, as root: the image reaches
# the VMM as a link in its jail with an ACL entry for its uid): `plinth vm disk-add`
# hot-plugs a pool image, the guest sees /dev/vdb and its write lands in the pool's
# file; the inventory keeps the disk's id and the slot the VMM chose, so a restart
# builds the same layout; the refusals (an id in use, an unknown image or disk, a bad
# id) are one line each; `disk-remove` returns once the guest ejected it, and the disk
# is gone from the guest, the VMM, the inventory and the jail.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(sock_dir)
state=$dir/state
pdpid=
trap '[ -n "$pdpid" ] && kill -9 $pdpid 2>/dev/null; pkill -9 -f -- "--api-socket $state/" 2>/dev/null; rm -rf "$dir"' EXIT
P() { "$BUILD/plinth" "$1" --state-dir "$state" "${@:2}"; }
"$BUILD/plinthd" --state-dir "$state" -v >>"$dir/plinthd.log" 2>&1 &
pdpid=$!
for _ in $(seq 100); do
	[ -S "$state/plinthd.sock" ] && P vm list >/dev/null 2>&1 && break
	sleep 0.1
done
P vm list >/dev/null 2>&1 || { cat "$dir/plinthd.log"; fail "plinthd did not come up"; }
field() { P vm info "$1" --json | python3 -c "import sys, json; print(json.load(sys.stdin).get('$2', ''))"; }
wait_console() { # REGEX [COUNT] [SECONDS]
	local end=$((SECONDS + ${3:-180}))
	while [ $SECONDS -lt $end ]; do
		[ "$(P vm console hp | tr -d '\r' | grep -c -E -- "$1")" -ge "${2:-1}" ] && return 0
		sleep 0.5
	done
	P vm info hp
	P vm console hp | tail -n 20
	fail "no /$1/ (x${2:-1}) on hp's console"
}
vmm_devices() { # the VMM's own view: "kind id addr path" per device
	"$BUILD/plinth" ctl --api-socket "$state/vms/$(field hp uuid)/api.sock" info | python3 -c '
import sys, json
for d in json.load(sys.stdin)["config"]["devices"]:
    print(d["kind"], d["id"], d["addr"], d.get("path", ""))'
}

P image create os --size 16M --format raw >/dev/null || fail "image create os"
P image create data --size 32M --format raw >/dev/null || fail "image create data"
P image create spare --size 1M --format raw >/dev/null || fail "image create spare"
# The guest: each time a /dev/vdb appears, its size and a write read back; then
# whether it went away when asked.
cmd='echo ready; n=0; while :; do
	i=0; while [ ! -b /dev/vdb ]; do sleep 0.1; done
	n=$((n+1)); echo "vdb $n size $(cat /sys/block/vdb/size)"
	printf "plinthd-hotplug-$n" | dd of=/dev/vdb bs=512 seek=8 conv=sync,fsync 2>/dev/null
	echo "vdb $n back $(dd if=/dev/vdb bs=512 skip=8 count=1 2>/dev/null | head -c 17)"
	while [ -e /sys/block/vdb ]; do sleep 0.1; done
	echo "vdb $n gone"
	done'
P vm create hp --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256 \
	--cmdline "$(guest_cmdline "$cmd")" --disk image=os >/dev/null || fail "define hp"
P vm start hp >/dev/null || fail "start hp"
wait_console '^ready'

t0=$(date +%s%3N)
P vm disk-add hp data image=data,format=raw >"$dir/add" 2>&1 || { cat "$dir/add"; fail "disk-add"; }
grep -q '^devices: *disk0 slot 1, data slot 2$' "$dir/add" || { cat "$dir/add"; fail "disk-add: the inventory has no data at slot 2"; }
wait_console '^vdb 1 back plinthd-hotplug-1'
echo "# disk-add to the guest's read-back: $(($(date +%s%3N) - t0)) ms"
P vm console hp | tr -d '\r' | grep -q '^vdb 1 size 65536$' || fail "the guest's vdb is not 32 MiB"
dd if="$state/images/data" bs=512 skip=8 count=1 2>/dev/null | grep -q -a '^plinthd-hotplug-1' ||
	fail "the guest's write is not in the pool's image"
vmm_devices >"$dir/devs"
grep -q '^disk data 2 /disk-data$' "$dir/devs" || { cat "$dir/devs"; fail "the VMM does not have data at slot 2 in its jail"; }

refused_line "an id in use" "has a device with id data already" P vm disk-add hp data image=os
refused_line "an unknown image" "no image named 'nope'" P vm disk-add hp more image=nope
refused_line "an unknown disk" "has no disk with id nope" P vm disk-remove hp nope
refused_line "a bad id" "not a device id" P vm disk-add hp a.b image=data
refused_line "a bad disk spec" "unknown item" P vm disk-add hp x size=1

# A restart builds the same layout from the inventory (the image by its own path).
P vm kill hp >/dev/null || fail "kill hp"
P vm start hp >/dev/null || fail "start hp again"
wait_console '^vdb 1 back plinthd-hotplug-1' 2
vmm_devices >"$dir/devs"
grep -q "^disk data 2 $state/images/data\$" "$dir/devs" || { cat "$dir/devs"; fail "after the restart the VMM does not have data at slot 2"; }

# Removed: returns once the guest ejected it; gone everywhere.
P vm disk-add hp data2 image=spare,format=raw,readonly >/dev/null 2>&1 || fail "a second hot disk"
t0=$(date +%s%3N)
P vm disk-remove hp data >"$dir/rm" 2>&1 || { cat "$dir/rm"; fail "disk-remove"; }
echo "# disk-remove (the guest's eject included): $(($(date +%s%3N) - t0)) ms"
wait_console '^vdb 1 gone' 1 30
grep -q '^devices: *disk0 slot 1, data2 slot 3$' "$dir/rm" || { cat "$dir/rm"; fail "disk-remove: the inventory still has data"; }
vmm_devices | grep -q ' data ' && fail "the VMM still has data"
P vm disk-remove hp data2 >/dev/null 2>&1 || fail "disk-remove data2 (added in the jail)"
[ -z "$(ls "$state/vms/$(field hp uuid)/jail" | grep '^disk-')" ] || fail "a link is left in the jail"
for img in data spare; do
	python3 -c 'import os, sys; sys.exit("system.posix_acl_access" in os.listxattr(sys.argv[1]))' \
		"$state/images/$img" || fail "the jail's ACL entry is left on image $img"
done
P vm info hp | grep -q '^devices: *disk0 slot 1$' || fail "hp's devices: $(P vm info hp | grep devices)"
P vm kill hp >/dev/null
P vm delete hp >/dev/null || fail "delete hp"
P image delete data >/dev/null || fail "delete data"
P image delete os >/dev/null || fail "delete os"
P image delete spare >/dev/null || fail "delete spare"
kill -TERM $pdpid
wait $pdpid || fail "plinthd exited $? on SIGTERM"
pdpid=
echo "plinthd-hotplug: ok"
