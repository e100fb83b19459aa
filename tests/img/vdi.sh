#!/bin/sh
# VirtualBox VDI against qemu-img: dynamic and fixed (qemu's static=on), both directions.
. "$(dirname "$0")/lib"

for sub in dynamic fixed; do
	opt=""; [ $sub = fixed ] && opt="-o static=on"
	qemu-img create -q -f vdi $opt "$T/q-$sub.vdi" 32M
	fill "$T/q-$sub.vdi" vdi
	qemu-img convert -f vdi -O raw "$T/q-$sub.vdi" "$T/ref-$sub.raw"
	check "vdi $sub: probed as vdi" sh -c "$PI info $T/q-$sub.vdi | grep -q 'file format: vdi'"
	check "vdi $sub: qemu's image to raw, byte-identical" sh -c "$PI convert -O raw $T/q-$sub.vdi $T/p-$sub.raw &&
		cmp $T/p-$sub.raw $T/ref-$sub.raw"
	check "vdi $sub: subformat reported" sh -c "$PI info $T/q-$sub.vdi | grep -q 'subformat: $sub'"
	check "vdi $sub: qemu's image checks clean" "$PI" check "$T/q-$sub.vdi"
	psub=$sub
	check "vdi $sub: written by plinth, clean for qemu-img check" sh -c "$PI convert -f raw -O vdi -o subformat=$psub \
		$T/ref-$sub.raw $T/p-$sub.vdi && qemu-img check -q -f vdi $T/p-$sub.vdi"
	check "vdi $sub: qemu converts ours to raw, byte-identical" sh -c "qemu-img convert -f vdi -O raw $T/p-$sub.vdi $T/back-$sub.raw &&
		cmp $T/back-$sub.raw $T/ref-$sub.raw"
	check "vdi $sub: plinth's own check of its image" "$PI" check "$T/p-$sub.vdi"
done
check "vdi dynamic: sparse (only written blocks allocated)" python3 - "$T/p-dynamic.vdi" <<'PY'
import struct, sys
h = open(sys.argv[1], "rb").read(512)
assert struct.unpack_from("<I", h, 64)[0] == 0xbeda107f and struct.unpack_from("<I", h, 76)[0] == 1
blocks, alloc = struct.unpack_from("<II", h, 384)
assert (blocks, alloc) == (32, 4), (blocks, alloc)   # 0-1M, 5M, 7M, 31M; the zero write stays a hole
PY
check "vdi fixed: every block allocated, in order" python3 - "$T/p-fixed.vdi" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
off_blocks, = struct.unpack_from("<I", d, 340)
assert struct.unpack_from("<I", d, 76)[0] == 2
assert list(struct.unpack_from("<32I", d, off_blocks)) == list(range(32))
PY
check "vdi: qemu writes into our image, we read it" sh -c "qemu-io -f vdi -c 'write -P 0x7e 2M 8k' -c 'write -P 0x7f 20M 4k' $T/p-dynamic.vdi >/dev/null &&
	qemu-img convert -f vdi -O raw $T/p-dynamic.vdi $T/w.raw && $PI convert -O raw $T/p-dynamic.vdi $T/w2.raw && cmp $T/w.raw $T/w2.raw &&
	qemu-img check -q -f vdi $T/p-dynamic.vdi"
check "vdi: create then info agree with qemu on the size" sh -c "$PI create -f vdi $T/c.vdi 100M &&
	qemu-img info -f vdi $T/c.vdi | grep -q '(104857600 bytes)' && $PI info $T/c.vdi | grep -q '(104857600 bytes)'"
# A VDI written field by field from VirtualBox's header layout as VirtualBox lays it out (the
# block map at 1 MiB, data at 2 MiB), with what qemu-img never writes: slots out of order, a
# zero block (0xFFFFFFFE) over data, and a header of the 1.1 kind without the LCHS geometry.
python3 - "$T/vbox.vdi" "$T/vbox.raw" <<'PY'
import os, struct, sys
M = 1 << 20
FREE, ZERO = 0xFFFFFFFF, 0xFFFFFFFE
bmap = [2, FREE, 0, ZERO, FREE, 1, FREE, FREE]
h = bytearray(512)
h[0:40] = b"<<< Oracle VM VirtualBox Disk Image >>>\n"
struct.pack_into("<III", h, 64, 0xBEDA107F, 0x00010001, 384)   # signature, 1.1, header w/o LCHS
struct.pack_into("<II", h, 76, 1, 0)                            # normal (dynamic), flags
struct.pack_into("<II", h, 340, M, 2 * M)                       # offBlocks, offData
struct.pack_into("<IIII", h, 348, 0, 0, 0, 512)                 # legacy geometry, sector size
struct.pack_into("<QIIII", h, 368, 8 * M, M, 0, 8, 3)           # size, block, extra, blocks, allocated
h[392:408] = os.urandom(16)
img = bytearray(h) + bytes(M - 512) + struct.pack("<8I", *bmap).ljust(M, b"\0")
raw = bytearray(8 * M)
slots = [None] * 3
for b, e in enumerate(bmap):
    if e < ZERO:
        data = bytes([0x40 + b]) * M
        slots[e] = data
        raw[b * M:(b + 1) * M] = data
for d in slots:
    img += d
img[2 * M + 3 * M:] = b""
open(sys.argv[1], "wb").write(img)
open(sys.argv[2], "wb").write(raw)
PY
check "vdi from the layout (VirtualBox's offsets, slots out of order, a zero block): plinth reads the expected bytes" sh -c "
	$PI convert -O raw $T/vbox.vdi $T/vb-p.raw && cmp $T/vb-p.raw $T/vbox.raw"
check "vdi from the layout: qemu-img reads the same bytes" sh -c "qemu-img convert -f vdi -O raw $T/vbox.vdi $T/vb-q.raw && cmp $T/vb-q.raw $T/vbox.raw"
check "vdi from the layout: check clean" "$PI" check "$T/vbox.vdi"

cp "$T/q-dynamic.vdi" "$T/diff.vdi"
printf '\004' | dd of="$T/diff.vdi" bs=1 seek=76 conv=notrunc 2>/dev/null
check_fail "vdi: differencing image refused with a reason" "$PI" info "$T/diff.vdi"
cp "$T/q-dynamic.vdi" "$T/bad.vdi"
printf '\377\377\377\177' | dd of="$T/bad.vdi" bs=1 seek=384 conv=notrunc 2>/dev/null
check_fail "vdi: a block count past the file refused" "$PI" info "$T/bad.vdi"

finish
