# Snapshot a 2-vCPU guest that runs a counter on vCPU 0 and appends numbered
# records to its virtio disk from vCPU 1, kill the VMM, restore (jailed, paused,
# then resumed through the API) and see both go on from where they were, with no new
# boot, and the image hold every record in order. Then a damaged snapshot, one
# from another format version, one whose disk moved on since (the restored guest
# wrote it) and one restored onto another machine (--cpus) are refused with a
# clear message.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
# /tmp is 9p inside the emulated host: no sockets there; /run is a tmpfs.
dir=$(mktemp -d -p /run 2>/dev/null || mktemp -d)
sock=$dir/api.sock
out=$dir/console
: >"$out"
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
ctl() { "$BUILD/plinth" ctl --api-socket "$sock" "$@"; }
wait_for() { wait_in "$out" "$pid" "$@"; } # REGEX [SECONDS]
last_count() { last_num "$out" count; }
last_disk() { last_num "$out" disk; }

# vCPU 1 writes record J ("disk %010d\n") at offset 16*J of /dev/vda, fsyncs, then
# says "disk J"; vCPU 0 counts. Losing vCPU 1 or the disk stops the records.
cmd='echo "cpus $(cat /sys/devices/system/cpu/online)"; taskset -p 1 $$ >/dev/null
taskset 2 sh -c '"'"'j=0; while :; do j=$((j+1)); printf "disk %010d\n" $j | dd of=/dev/vda bs=16 seek=$j conv=notrunc,fsync 2>/dev/null && echo "disk $j"; sleep 0.5; done'"'"' &
i=0; while :; do i=$((i+1)); echo "count $i"; sleep 1; done'
truncate -s 4M "$dir/disk.raw"
# restore builds the machine from its own options, the same as run's.
machine=(--kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256M --cpus 2
	--disk "path=$dir/disk.raw,format=raw")
"$BUILD/plinth" run "${machine[@]}" \
	--cmdline "$(guest_cmdline "$cmd")" --api-socket "$sock" </dev/null >"$out" 2>&1 &
pid=$!
wait_for 'count 4[[:space:]]'
wait_for 'disk 4[[:space:]]'
expect_in "$out" 'cpus 0-1' "the guest does not see 2 CPUs"
# Paused from the snapshot on: the disk stays as the snapshot recorded it.
ctl pause >/dev/null || fail "pause failed"
n=$(last_count) # the counter the snapshot holds is at least this
ctl snapshot --to "$dir/snap" >/dev/null || fail "snapshot failed"
ctl snapshot --to "$dir/snap" 2>/dev/null && fail "a second snapshot over the first succeeded"
[ -f "$dir/snap/state" ] && [ -f "$dir/snap/memory" ] || fail "no state or memory file"
kill -9 $pid
wait $pid 2>/dev/null
pid=
echo "snapshot at count $n: state $(stat -c %s "$dir/snap/state") bytes, memory $(du -k "$dir/snap/memory" | cut -f1) KiB on disk"

# Restore paused, jailed: nothing runs until resume; the snapshot is read as 65534 in
# its own root, under the filters.
out=$dir/console2
mkdir "$dir/jail"
t0=$(date +%s.%N)
"$BUILD/plinth" restore --from "$dir/snap" "${machine[@]}" --api-socket "$sock" --paused \
	--jail "$dir/jail" --uid 65534 --gid 65534 </dev/null >"$out" 2>&1 &
pid=$!
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ] && ! ctl info >/dev/null 2>&1; do sleep 0.2; done
ctl info | grep -q '"state": *"paused"' || { ctl info; cat "$out"; fail "restore --paused: not paused"; }
ctl info | grep -q '"restored": *true' || fail "info: not marked restored"
awk '$1 == "Uid:" && $2 == 65534 { u = 1 } $1 == "Seccomp:" && $2 == 2 { s = 1 } END { exit !(u && s) }' \
	/proc/$pid/status || { grep -E 'Uid|Seccomp' /proc/$pid/status; fail "the restore is not jailed and filtered"; }
ctl info | grep -q '"cpus": *2' || fail "info: not 2 vCPUs after restore"
sleep 2
grep -q 'count' "$out" && { cat "$out"; fail "the guest ran while paused after restore"; }
ctl resume >/dev/null || fail "resume after restore failed"
t1=$(date +%s.%N)
wait_for 'count [0-9]+[[:space:]]' 60
t2=$(date +%s.%N)
first=$(grep -o 'count [0-9]*' "$out" | head -n 1 | cut -d' ' -f2)
[ "$first" -ge "$n" ] || { cat "$out"; fail "the counter went back ($n -> $first)"; }
wait_for "count $((first + 2))[[:space:]]" 30
wait_for 'disk [0-9]+[[:space:]]' 30
dfirst=$(grep -o 'disk [0-9]*' "$out" | head -n 1 | cut -d' ' -f2)
wait_for "disk $((dfirst + 2))[[:space:]]" 30
grep -q 'init started' "$out" && fail "the restored guest booted again"
awk -v a="$t1" -v b="$t2" 'BEGIN { printf "restore: resume to next count %.2f s\n", b - a }'
m=$(last_disk)
kill -TERM $pid
wait $pid 2>/dev/null
pid=
check_disk "$dir/disk.raw" "$m" "first after restore: $dfirst" || fail "the disk lost writes across the restore"

# A damaged state file: one byte flipped in the middle.
cp -r "$dir/snap" "$dir/bad"
size=$(stat -c %s "$dir/bad/state")
printf '\xff' | dd of="$dir/bad/state" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
"$BUILD/plinth" restore --from "$dir/bad" "${machine[@]}" </dev/null >"$dir/err" 2>&1 && fail "a damaged snapshot was restored"
expect_in "$dir/err" 'checksum|crc|damaged|corrupt' "damaged snapshot: no clear message"
echo "damaged: $(tail -n 1 "$dir/err")"

# Another format version (header crc fixed up so only the version differs).
cp "$dir/snap/state" "$dir/bad/state"
python3 - "$dir/bad/state" <<'PY'
import struct, sys, zlib
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[8:12] = struct.pack('<I', 2)
b[20:24] = struct.pack('<I', zlib.crc32(bytes(b[0:20])))
open(p, 'wb').write(b)
PY
"$BUILD/plinth" restore --from "$dir/bad" "${machine[@]}" </dev/null >"$dir/err" 2>&1 && fail "a version-2 snapshot was restored"
expect_in "$dir/err" 'version 2' "other version: no clear message"
echo "other version: $(tail -n 1 "$dir/err")"
# The restored guest wrote the disk: the snapshot no longer matches it.
"$BUILD/plinth" restore --from "$dir/snap" "${machine[@]}" </dev/null >"$dir/err" 2>&1 &&
	fail "a snapshot was restored onto a disk that moved on"
expect_in "$dir/err" '--disk disk0 is not the image the snapshot was taken with, or it changed since' \
	"moved-on disk: no clear line"
echo "moved-on disk: $(grep 'disk0' "$dir/err")"
# Another machine than the snapshot's: refused, naming the option.
"$BUILD/plinth" restore --from "$dir/snap" "${machine[@]}" --cpus 1 </dev/null >"$dir/err" 2>&1 &&
	fail "a 2-vCPU snapshot was restored onto 1 vCPU"
expect_in "$dir/err" 'the saved VM has 2 vCPUs, this one 1 \(--cpus\)' "--cpus mismatch: no clear line"
# Devices are matched by id and PCI slot: another id or another slot is refused in one
# line, before anything is loaded.
refused_one_line() { # WHAT REGEX MACHINE-OPTION...
	local what=$1 re=$2
	shift 2
	"$BUILD/plinth" restore --from "$dir/snap" "$@" </dev/null >"$dir/err" 2>&1 &&
		fail "a snapshot was restored with $what"
	expect_in "$dir/err" "$re" "$what: no clear line"
	[ "$(wc -l <"$dir/err")" -eq 1 ] || { cat "$dir/err"; fail "$what: not one line"; }
	echo "$what: $(cat "$dir/err")"
}
refused_one_line "another disk id" \
	'the saved VM has a --disk with id disk0, this one has no device with that id \(id=\)' \
	"${machine[@]/%format=raw/format=raw,id=data}"
refused_one_line "another PCI slot" \
	'device disk0 is in PCI slot 1 in the saved VM, slot 7 in this one \(addr=\)' \
	"${machine[@]/%format=raw/format=raw,addr=7}"
echo "ok: 2-vCPU snapshot at $n, kill, restore paused, resume: counter went on at $first, disk records at $dfirst..$m, damaged, other-version, moved-on disk, other machine, other device id and other PCI slot refused"
