#!/bin/sh
# Parallels expandable images (read only) against qemu-img, which writes them (32256: the
# 63-sector clusters of old images, not a power of two).
. "$(dirname "$0")/lib"

for cs in 1M 64k 32256; do
	qemu-img create -q -f parallels -o cluster_size=$cs "$T/q.hds" 32M
	fill "$T/q.hds" parallels
	qemu-img convert -f parallels -O raw "$T/q.hds" "$T/ref.raw"
	check "parallels ($cs clusters): probed as parallels" sh -c "$PI info $T/q.hds | grep -q 'file format: parallels'"
	check "parallels ($cs clusters): to raw, byte-identical with qemu-img" sh -c "$PI convert -O raw $T/q.hds $T/p.raw && cmp $T/p.raw $T/ref.raw"
	check "parallels ($cs clusters): to qcow2, qemu-img compares it equal" sh -c "$PI convert -O qcow2 $T/q.hds $T/p.qcow2 &&
		qemu-img compare -q -F raw $T/p.qcow2 $T/ref.raw"
	check "parallels ($cs clusters): check clean" "$PI" check "$T/q.hds"
done
check_fail "parallels: writable open refused (read only)" "$PI" resize "$T/q.hds" 64M
# The older magic: BAT entries in sectors, a 32-bit sector count (junk in the upper half).
python3 - "$T/q.hds" "$T/old.hds" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
cl = struct.unpack_from("<I", d, 28)[0]            # sectors per cluster
n = struct.unpack_from("<I", d, 32)[0]
d[0:16] = b"WithoutFreeSpace"
struct.pack_into("<I", d, 40, 0xdeadbeef)          # upper half of the sector count
for i in range(n):
    e, = struct.unpack_from("<I", d, 64 + 4 * i)
    struct.pack_into("<I", d, 64 + 4 * i, e * cl)
open(sys.argv[2], "wb").write(d)
PY
check "parallels: WithoutFreeSpace image (sector offsets) reads the same" sh -c "$PI convert -O raw $T/old.hds $T/old.raw && cmp $T/old.raw $T/ref.raw"
check "parallels: qemu-img agrees on that image" sh -c "qemu-img convert -f parallels -O raw $T/old.hds $T/qold.raw && cmp $T/qold.raw $T/ref.raw"
cp "$T/q.hds" "$T/v3.hds"
printf '\003' | dd of="$T/v3.hds" bs=1 seek=16 conv=notrunc 2>/dev/null
check "parallels: another version is an error naming the format, not a raw disk" sh -c "! $PI info $T/v3.hds 2>$T/err >/dev/null &&
	grep -q 'unsupported Parallels version 3' $T/err"
cp "$T/q.hds" "$T/dirty.hds"
printf 'Ynot' | dd of="$T/dirty.hds" bs=1 seek=44 conv=notrunc 2>/dev/null
check "parallels: an image left in use (Ynot) reads as it is and info says dirty" sh -c "$PI info $T/dirty.hds | grep -q 'dirty flag: yes' &&
	$PI convert -O raw $T/dirty.hds $T/d.raw && cmp $T/d.raw $T/ref.raw"
cp "$T/old.hds" "$T/bad.hds"
printf '\001\000\000\000' | dd of="$T/bad.hds" bs=1 seek=64 conv=notrunc 2>/dev/null
check_fail "parallels: a BAT entry inside the header refused on read" "$PI" convert -O raw "$T/bad.hds" "$T/bad.raw"
check_rc "parallels: check counts it as corruption (exit 2)" 2 "$PI" check "$T/bad.hds"
cp "$T/q.hds" "$T/dup.hds"
dd if="$T/q.hds" of="$T/dup.hds" bs=1 skip=64 seek=68 count=4 conv=notrunc 2>/dev/null
check_rc "parallels: two BAT entries on one cluster are a corruption (exit 2)" 2 "$PI" check "$T/dup.hds"

finish
