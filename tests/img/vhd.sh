#!/bin/sh
# VHD (qemu-img's "vpc") against qemu-img; differencing disks with a hand-built fixture.
. "$(dirname "$0")/lib"

for sub in dynamic fixed; do
	qemu-img create -f vpc -o subformat=$sub "$T/q-$sub.vhd" 32M >/dev/null
	fill "$T/q-$sub.vhd" vpc
	qemu-img convert -f vpc -O raw "$T/q-$sub.vhd" "$T/ref-$sub.raw"
	check "vhd $sub: reads qemu's image" "$PI" compare -f vpc -F raw "$T/q-$sub.vhd" "$T/ref-$sub.raw"
	check "vhd $sub: size agrees with qemu" sh -c "[ \"\$($PI info --output=json $T/q-$sub.vhd | grep virtual-size)\" = \
		\"\$(qemu-img info -f vpc --output=json $T/q-$sub.vhd | grep virtual-size)\" ]"
	check "vhd $sub: written by plinth, identical for qemu" sh -c "$PI convert -f raw -O vpc -o subformat=$sub \
		$T/ref-$sub.raw $T/p-$sub.vhd && qemu-img compare -q -f vpc -F raw $T/p-$sub.vhd $T/ref-$sub.raw"
	check "vhd $sub: qemu sees the same virtual size" sh -c "qemu-img info -f vpc $T/p-$sub.vhd | grep -q '(33562624 bytes)'"
done
check "vhd dynamic: sparse (< 6 MiB on disk)" test "$(disk_usage "$T/p-dynamic.vhd")" -lt 6291456
check "vhd: 1 GiB rounds to CHS like qemu-img" sh -c "$PI create -f vpc $T/g.vhd 1G &&
	qemu-img info -f vpc $T/g.vhd | grep -q '(1073995776 bytes)'"
check "vhd: force_size=on keeps the exact size for qemu" sh -c "$PI create -f vpc -o force_size=on $T/g.vhd 1G &&
	qemu-img info -f vpc $T/g.vhd | grep -q '(1073741824 bytes)' && $PI info $T/g.vhd | grep -q '(1073741824 bytes)'"
check "vhd: qemu's force_size image read with the exact size" sh -c "qemu-img create -q -f vpc -o force_size=on $T/h.vhd 1000M &&
	$PI info $T/h.vhd | grep -q '(1048576000 bytes)'"

for sub in dynamic fixed; do
	check "vhd $sub: resize grows, qemu reads old data and the new size" sh -c "qemu-img create -q -f vpc -o subformat=$sub $T/r.vhd 16M &&
		qemu-io -f vpc -c 'write -P 0x33 15M 1M' $T/r.vhd >/dev/null && $PI resize $T/r.vhd 300M >/dev/null &&
		qemu-img info -f vpc $T/r.vhd | grep -q '(314572800 bytes)' &&
		qemu-io -f vpc -c 'read -P 0x33 15M 1M' -c 'read -P 0 16M 1M' $T/r.vhd | grep -vq 'fail' &&
		qemu-io -f vpc -c 'write -P 0x44 200M 1M' $T/r.vhd >/dev/null && qemu-img convert -f vpc -O raw $T/r.vhd $T/r.raw &&
		$PI compare $T/r.vhd $T/r.raw && $PI check $T/r.vhd"
	rm -f "$T/r.vhd" "$T/r.raw"
done

# Differencing: qemu cannot be the oracle (it reads a child without its parent). Build one by
# hand from two qemu-made dynamic disks: mark the second as a child of the first, clear the
# bitmap bits of some sectors, and compute the expected content independently.
qemu-img create -f vpc -o force_size=on "$T/parent.vhd" 16M >/dev/null
qio "$T/parent.vhd" vpc 'write -P 0x11 0 16M'
qemu-img create -f vpc -o force_size=on "$T/child.vhd" 16M >/dev/null
qio "$T/child.vhd" vpc 'write -P 0xc1 1M 1M' 'write -P 0xc2 5M 64k'
qemu-img convert -f vpc -O raw "$T/parent.vhd" "$T/parent.raw"
qemu-img convert -f vpc -O raw "$T/child.vhd" "$T/child.raw"
python3 - "$T" <<'PY'
import struct, sys
t = sys.argv[1]
def csum(b, skip):
    return (~sum(x for i, x in enumerate(b) if not skip <= i < skip + 4)) & 0xffffffff
parent = open(t + "/parent.vhd", "rb").read()
puid = parent[-512:][68:84]
f = open(t + "/child.vhd", "r+b")
data = bytearray(f.read())
foot = bytearray(data[-512:])
struct.pack_into(">I", foot, 60, 4)                   # differencing
struct.pack_into(">I", foot, 64, 0)
struct.pack_into(">I", foot, 64, csum(foot, 64))
dyn = bytearray(data[512:1536])
bat_off, = struct.unpack_from(">Q", dyn, 16)
n, bs = struct.unpack_from(">II", dyn, 28)
dyn[40:56] = puid
name = "parent.vhd".encode("utf-16-be"); dyn[64:64 + len(name)] = name
loc_off = len(data) - 512                              # locator where the footer was
rel = ".\\parent.vhd".encode("utf-16-le")
struct.pack_into(">4sIIIQ", dyn, 576, b"W2ru", 1, len(rel), 0, loc_off)
struct.pack_into(">I", dyn, 36, 0); struct.pack_into(">I", dyn, 36, csum(dyn, 36))
expect = bytearray(open(t + "/parent.raw", "rb").read())
child = open(t + "/child.raw", "rb").read()
for b in range(n):
    e, = struct.unpack_from(">I", data, bat_off + 4 * b)
    if e == 0xffffffff: continue
    bm = bytearray(512)
    for s in range(bs // 512):
        off = b * bs + s * 512
        # present: every other 4 KiB run of the written data
        if child[off:off + 512] != bytes(512) and (s // 8) % 2 == 0:
            bm[s // 8] |= 0x80 >> (s % 8)
            expect[off:off + 512] = child[off:off + 512]
    data[e * 512:e * 512 + 512] = bm
data[512:1536] = dyn
data[0:512] = foot
sec = bytearray(512); sec[:len(rel)] = rel
data = data[:loc_off] + sec + foot
open(t + "/child.vhd", "wb").write(data)
open(t + "/expect.raw", "wb").write(expect)
PY
check "vhd differencing: reads through the parent (hand-built fixture)" "$PI" compare --allow-backing -F raw "$T/child.vhd" "$T/expect.raw"
check "vhd differencing: info names the parent" sh -c "$PI info $T/child.vhd | grep -q 'backing file: parent.vhd'"
check "vhd differencing: convert flattens it" sh -c "$PI convert --allow-backing -O qcow2 $T/child.vhd $T/flat.qcow2 && qemu-img compare -q $T/flat.qcow2 $T/expect.raw"
check "vhd differencing: commit into the parent" sh -c "cp $T/child.vhd $T/c2.vhd && $PI commit --allow-backing $T/c2.vhd >/dev/null &&
	qemu-img compare -q -f vpc -F raw $T/parent.vhd $T/expect.raw"
check "vhd differencing: create -b, qemu reads the child's header" sh -c "$PI create -f vpc -b parent.vhd $T/new.vhd &&
	$PI compare --allow-backing $T/new.vhd $T/expect.raw && qemu-img info -f vpc $T/new.vhd >/dev/null"
check_fail "vhd differencing: missing parent is an error" sh -c "mv $T/parent.vhd $T/gone.vhd; $PI convert --allow-backing -O raw $T/child.vhd $T/x.raw"
check "vhd differencing: the error names the parent (locator kind) and where it looked" sh -c "! $PI convert --allow-backing -O raw $T/child.vhd $T/x.raw 2>$T/err &&
	grep -q \"names 'parent.vhd' (W2ru locator), 'parent.vhd' (parent Unicode name); looked for $T/parent.vhd\\$\" $T/err && [ \$(wc -l < $T/err) = 1 ]"

finish
