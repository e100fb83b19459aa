#!/bin/sh
# VMDK as other tools write it: FreeBSD mkimg's monolithicSparse, split (2 GB extent) sets as
# qemu-img and VMware Workstation write them, ESXi's vmfs descriptors (version=3, change
# tracking, the Disk Data Base), extent lines with offsets into shared files, version 3
# sparse headers. qemu-img is the oracle where it reads the file.
. "$(dirname "$0")/lib"

# same_raw NAME IMAGE: plinth's and qemu-img's raw conversions are identical (size and bytes)
same_raw() {
	check "$1" sh -c "qemu-img convert -O raw $2 $T/q.raw && $PI convert --allow-backing -O raw $2 $T/p.raw &&
		[ \$(stat -c %s $T/q.raw) = \$(stat -c %s $T/p.raw) ] && qemu-img compare -q -f raw -F raw $T/q.raw $T/p.raw"
	rm -f "$T/q.raw" "$T/p.raw"
}

# patterns FILE FMT QEMU-IO-READS...: every "read -P" matches (qemu-io prints a failure line otherwise)
patterns() {
	f=$1; fmt=$2; shift 2
	args=""
	for c in "$@"; do args="$args -c '$c'"; done
	out=$(eval qemu-io -r -f "$fmt" $args "$f" 2>&1) || return 1
	n=$(printf '%s\n' "$out" | grep -c '^read ')
	[ "$n" = $# ] && ! printf '%s\n' "$out" | grep -qi 'fail'
}

# commit_into NAME IMAGE QEMU-IO-WRITE: qemu-img writes into a qcow2 overlay of IMAGE (next to it),
# plinth-img commits it (IMAGE reopened writable), qemu-img must read IMAGE as the overlay read.
commit_into() {
	d=$(dirname "$2"); b=$(basename "$2")
	check "$1" sh -c "rm -f $d/ov.qcow2 && qemu-img create -q -f qcow2 -b $b -F vmdk $d/ov.qcow2 &&
		qemu-io -c '$3' $d/ov.qcow2 >/dev/null && qemu-img convert -O raw $d/ov.qcow2 $T/expect.raw &&
		$PI commit --allow-backing $d/ov.qcow2 >/dev/null && qemu-img convert -O raw $2 $T/got.raw &&
		qemu-img compare -q -f raw -F raw $T/expect.raw $T/got.raw"
	rm -f "$d/ov.qcow2" "$T/expect.raw" "$T/got.raw"
}

# FreeBSD's mkimg is not in Debian: tests/img/mkimg-vmdk.py writes its monolithicSparse layout.
qemu-img create -q -f raw "$T/src.raw" 3M
qio "$T/src.raw" raw 'write -P 0xab 0 8k' 'write -P 0x11 1M 16k' 'write -P 0x5a 2093056 8k'
python3 "$ROOT/tests/img/mkimg-vmdk.py" "$T/src.raw" "$T/mkimg.vmdk"
check "mkimg monolithicSparse: opens (empty extent name, CID 0)" sh -c "$PI info --allow-backing $T/mkimg.vmdk | grep -q '(3145728 bytes)'"
same_raw "mkimg monolithicSparse: raw conversion identical to qemu-img's" "$T/mkimg.vmdk"
check "mkimg monolithicSparse: the data is the source's" "$PI" compare --allow-backing -F raw "$T/mkimg.vmdk" "$T/src.raw"
check "mkimg monolithicSparse: check clean" "$PI" check --allow-backing "$T/mkimg.vmdk"
mv "$T/mkimg.vmdk" "$T/renamed.vmdk"
check "monolithicSparse renamed: its embedded extent is the file itself" "$PI" compare --allow-backing -F raw "$T/renamed.vmdk" "$T/src.raw"

# Split sets as qemu-img writes them (2 GiB extents), both ways.
for sub in twoGbMaxExtentSparse twoGbMaxExtentFlat; do
	qemu-img create -q -f vmdk -o subformat=$sub "$T/q-$sub.vmdk" 5G
	qio "$T/q-$sub.vmdk" vmdk 'write -P 0xab 0 1M' 'write -P 0x11 2047M 2M' 'write -P 0x22 4095M 1M' 'write -P 0x33 5119M 1M'
	same_raw "vmdk $sub (qemu-img, 3 extents): raw conversion identical" "$T/q-$sub.vmdk"
	check "vmdk $sub: qemu writes into the second extent, we read it" sh -c "qemu-io -f vmdk -c 'write -P 0x44 3000M 64k' $T/q-$sub.vmdk >/dev/null &&
		qemu-img convert -O raw $T/q-$sub.vmdk $T/q.raw && $PI compare --allow-backing -F raw $T/q-$sub.vmdk $T/q.raw"
	commit_into "vmdk $sub: we write across an extent boundary (commit), qemu reads it" "$T/q-$sub.vmdk" 'write -P 0x66 2047M 2M'
	rm -f "$T"/q-$sub*
done
# ... and as plinth-img writes them (Workstation's 4192256-sector extents), read back by qemu-img.
qemu-img create -q -f raw "$T/big.raw" 5G
qio "$T/big.raw" raw 'write -P 0xab 0 1M' 'write -P 0x11 2046M 4M' 'write -P 0x22 4095M 1M' 'write -P 0x33 5119M 1M'
for sub in twoGbMaxExtentSparse twoGbMaxExtentFlat; do
	check "vmdk $sub written by plinth: 3 extents of 4192256 sectors at most, qemu-img check" sh -c "
		$PI convert -O vmdk -o subformat=$sub $T/big.raw $T/p-$sub.vmdk && qemu-img check -q $T/p-$sub.vmdk &&
		[ \$(grep -c '^RW 4192256 ' $T/p-$sub.vmdk) = 2 ] && grep -q '^RW 2101248 ' $T/p-$sub.vmdk &&
		qemu-img info $T/p-$sub.vmdk | grep -q 'create type: $sub'"
	check "vmdk $sub written by plinth: qemu-img's raw conversion is the source" sh -c "qemu-img convert -O raw $T/p-$sub.vmdk $T/back.raw &&
		[ \$(stat -c %s $T/back.raw) = 5368709120 ] && qemu-img compare -q -f raw -F raw $T/back.raw $T/big.raw"
	rm -f "$T"/p-$sub* "$T/back.raw"
done
rm -f "$T/big.raw"

# VMware Workstation's split sparse: extents of 4192256 sectors (2047 MiB) without an embedded
# descriptor, a descriptor with the keys Workstation writes.
for i in 1 2; do
	qemu-img create -q -f vmdk "$T/ws-s00$i.vmdk" $((4192256 * 512))
	python3 -c "import sys; f = open(sys.argv[1], 'r+b'); f.seek(28); f.write(bytes(16))" "$T/ws-s00$i.vmdk"
done
qio "$T/ws-s001.vmdk" vmdk 'write -P 0xa1 0 64k' 'write -P 0xa2 2146369536 64k'
qio "$T/ws-s002.vmdk" vmdk 'write -P 0xb1 0 64k' 'write -P 0xb2 1M 64k'
cat > "$T/ws.vmdk" <<'D'
# Disk DescriptorFile
version=1
encoding="windows-1252"
CID=9f8e7d6c
parentCID=ffffffff
isNativeSnapshot="no"
createType="twoGbMaxExtentSparse"

# Extent description
RW 4192256 SPARSE "ws-s001.vmdk"
RW 4192256 SPARSE "ws-s002.vmdk"
RW 1024 SPARSE "ws-s003.vmdk"

# The Disk Data Base 
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "1044"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "3c0f3b2d5e1a4f6b8c9d0e1f9f8e7d6c"
ddb.uuid = "60 00 C2 91 3a 5b 6c 7d-8e 9f a0 b1 c2 d3 e4 f5"
ddb.virtualHWVersion = "16"
D
qemu-img create -q -f vmdk "$T/ws-s003.vmdk" $((1024 * 512))
python3 -c "import sys; f = open(sys.argv[1], 'r+b'); f.seek(28); f.write(bytes(16))" "$T/ws-s003.vmdk"
check "Workstation split sparse: size is the sum of the extents" sh -c "$PI info --allow-backing $T/ws.vmdk | grep -q '(4293394432 bytes)'"
$PI convert --allow-backing -O raw "$T/ws.vmdk" "$T/ws.raw"
check "Workstation split sparse: data at both sides of the extent boundary" patterns "$T/ws.raw" raw \
	'read -P 0xa2 2146369536 64k' 'read -P 0xb1 2146435072 64k' 'read -P 0 2146500608 983040' 'read -P 0xb2 2147483648 64k'
rm -f "$T/ws.raw"
same_raw "Workstation split sparse: raw conversion identical to qemu-img's" "$T/ws.vmdk"
check "Workstation split sparse: info shows the Disk Data Base keys" sh -c "$PI info --allow-backing --output=json $T/ws.vmdk > $T/ws.json &&
	grep -q '\"adapter-type\": \"lsilogic\"' $T/ws.json && grep -q '\"hardware-version\": \"16\"' $T/ws.json &&
	grep -q '\"uuid\": \"60 00 C2 91 3a 5b 6c 7d-8e 9f a0 b1 c2 d3 e4 f5\"' $T/ws.json && grep -q '\"encoding\": \"windows-1252\"' $T/ws.json"
check "Workstation split sparse: a lone extent opens on its own" sh -c "$PI info --allow-backing $T/ws-s002.vmdk | grep -q '(2146435072 bytes)'"
commit_into "Workstation split sparse: we write across the extent boundary (commit), qemu reads it" "$T/ws.vmdk" 'write -P 0x5e 2146435000 100000'
rm -f "$T"/ws*

# ESXi: a vmfs descriptor, version=3, change tracking, the keys ESXi sets.
qemu-img create -q -f raw "$T/esx-flat.vmdk" 8M
qio "$T/esx-flat.vmdk" raw 'write -P 0xe5 1M 64k' 'write -P 0xe6 7M 1M'
cat > "$T/esx.vmdk" <<'D'
# Disk DescriptorFile
version=3
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
createType="vmfs"

# Extent description
RW 16384 VMFS "esx-flat.vmdk"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.deletable = "true"
ddb.encoding = "UTF-8"
ddb.geometry.cylinders = "1"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "5f3a9e5c1b0e6e4f3ad4f0b2fffffffe"
ddb.thinProvisioned = "1"
ddb.toolsInstallType = "4"
ddb.toolsVersion = "12352"
ddb.uuid = "60 00 C2 9b 69 2f 3a 1c-4f 2e 0e 62 2b 1f 6d 43"
ddb.virtualHWVersion = "13"
changeTrackPath="esx-ctk.vmdk"
D
same_raw "ESXi vmfs descriptor (version=3, changeTrackPath): raw conversion identical" "$T/esx.vmdk"
check "ESXi vmfs descriptor: info shows version 3, thin provisioning, hardware version" sh -c "$PI info --allow-backing $T/esx.vmdk > $T/esx.txt &&
	grep -q 'descriptor-version: 3' $T/esx.txt && grep -q 'thin-provisioned: true' $T/esx.txt && grep -q 'hardware-version: 13' $T/esx.txt"
commit_into "ESXi vmfs descriptor: writable (commit), qemu reads what we wrote" "$T/esx.vmdk" 'write -P 0x77 4M 4k'

# ESX sparse extents (COWD: vmfsSparse snapshot deltas), as tests/img/cowd-vmdk.py writes them from
# the layout, 512-byte and 8 KiB grains; qemu-img reads them through a vmfsSparse descriptor.
qemu-img create -q -f raw "$T/c.raw" 20M
qio "$T/c.raw" raw 'write -P 0xab 512 1k' 'write -P 0x11 9M 64k' 'write -P 0x22 20479k 1k'
for g in 1 16; do
	python3 "$ROOT/tests/img/cowd-vmdk.py" "$T/c.raw" "$T/c$g-delta.vmdk" $g
	printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfsSparse"\n# Extent description (no blank line: qemu would read the extent twice)\nRW 40960 VMFSSPARSE "c%s-delta.vmdk"\n' $g > "$T/c$g.vmdk"
	same_raw "COWD extent (grain $g sectors) through a vmfsSparse descriptor: raw conversion identical" "$T/c$g.vmdk"
	check "COWD extent (grain $g sectors) on its own: probed as vmdk, the source's data" "$PI" compare -F raw "$T/c$g-delta.vmdk" "$T/c.raw"
done
check "COWD extent: check clean" "$PI" check "$T/c16-delta.vmdk"
check_fail "COWD extent: writable open refused (read only)" "$PI" commit "$T/c1.vmdk"

# seSparse extents (ESXi 6.5+ snapshot deltas), as tests/img/sesparse-vmdk.py writes them (more
# than 4096 grains, so both halves of the grain index are used; a zero grain), alone and as the
# delta of a parent named by parentFileNameHint; qemu-img reads them through the descriptor.
qemu-img create -q -f raw "$T/se.raw" 40M
qio "$T/se.raw" raw 'write -P 0xab 512 1k' 'write -P 0x33 20M 17M' 'write -P 0x22 40956k 4k'
python3 "$ROOT/tests/img/sesparse-vmdk.py" "$T/se.raw" "$T/se-sesparse.vmdk"
printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="seSparse"\n# Extent description\nRW 81920 SESPARSE "se-sesparse.vmdk"\n' > "$T/se.vmdk"
same_raw "seSparse extent: raw conversion identical to qemu-img's" "$T/se.vmdk"
check "seSparse extent: the source's data" "$PI" compare --allow-backing -F raw "$T/se.vmdk" "$T/se.raw"
check "seSparse extent on its own: probed as vmdk, the source's data" "$PI" compare -F raw "$T/se-sesparse.vmdk" "$T/se.raw"
check_fail "seSparse extent: writable open refused (read only)" "$PI" commit "$T/se.vmdk"
qemu-img create -q -f vmdk -o subformat=monolithicFlat "$T/base.vmdk" 40M
qio "$T/base.vmdk" vmdk 'write -P 0x77 0 40M'
cid=$(sed -n 's/^CID=//p' "$T/base.vmdk")
printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=%s\ncreateType="seSparse"\nparentFileNameHint="base.vmdk"\n# Extent description\nRW 81920 SESPARSE "se-sesparse.vmdk"\n' "$cid" > "$T/delta.vmdk"
same_raw "seSparse delta over its parent: raw conversion identical to qemu-img's" "$T/delta.vmdk"
$PI convert --allow-backing -O raw "$T/delta.vmdk" "$T/d.raw"
check "seSparse delta: unallocated grains come from the parent, zero grains are zero" patterns "$T/d.raw" raw \
	'read -P 0xab 512 1k' 'read -P 0 4k 4k' 'read -P 0x77 8k 4k' 'read -P 0x33 20M 4k' 'read -P 0x77 19M 1M'
rm -f "$T/d.raw"

# A sparse header of capacity 0 that only carries a descriptor naming other files (qemu reads it so).
python3 - "$T/cap0.vmdk" <<'PY'
import struct, sys
desc = b'# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 40960 FLAT "c.raw" 0\n'
hdr = struct.pack("<IIIQQQQI", 0x564d444b, 1, 3, 0, 128, 1, 4, 512).ljust(512, b"\0")
open(sys.argv[1], "wb").write(hdr + desc.ljust(2048, b"\0"))
PY
same_raw "sparse header of capacity 0 with a descriptor: raw conversion identical" "$T/cap0.vmdk"
check "sparse header of capacity 0 with a descriptor: reads the named file" "$PI" compare --allow-backing -F raw "$T/cap0.vmdk" "$T/c.raw"

# VirtualBox's monolithicSparse: its own Disk Data Base keys in the embedded descriptor.
qemu-img create -q -f vmdk "$T/vb.vmdk" 8M
qio "$T/vb.vmdk" vmdk 'write -P 0x5b 3M 64k'
python3 - "$T/vb.vmdk" <<'PY'
import sys
f = open(sys.argv[1], "r+b")
f.seek(512)
d = f.read(20 * 512).rstrip(b"\0")
d += (b'ddb.uuid.image="9afa1dd0-d966-4279-a762-b7fbb0136308"\n'
      b'ddb.uuid.modification="cd9be63c-4953-44d0-8325-45635a9ca396"\n'
      b'ddb.uuid.parent="00000000-0000-0000-0000-000000000000"\n'
      b'ddb.uuid.parentmodification="00000000-0000-0000-0000-000000000000"\n')
assert len(d) <= 20 * 512
f.seek(512)
f.write(d)
PY
same_raw "VirtualBox monolithicSparse (ddb.uuid.* keys): raw conversion identical" "$T/vb.vmdk"
check "VirtualBox monolithicSparse: info shows the image UUID" sh -c "$PI info $T/vb.vmdk | grep -q 'uuid: 9afa1dd0-d966-4279-a762-b7fbb0136308'"

# Extent lines with offsets: one flat file holding three extents, out of order, at offsets.
qemu-img create -q -f raw "$T/multi.bin" 6M
qio "$T/multi.bin" raw 'write -P 0x10 0 1M' 'write -P 0x20 1M 1M' 'write -P 0x30 2M 2M' 'write -P 0x40 4M 2M'
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 4096 FLAT "multi.bin" 4096\nRW 2048 FLAT "multi.bin" 2048\nRW 2048 FLAT "multi.bin" 0\n' > "$T/multi.vmdk"
check "extent offsets: size is the sum of the lines (4 MiB)" sh -c "$PI info --allow-backing $T/multi.vmdk | grep -q '(4194304 bytes)'"
same_raw "extent offsets into one file: raw conversion identical to qemu-img's" "$T/multi.vmdk"
$PI convert --allow-backing -O raw "$T/multi.vmdk" "$T/m.raw"
check "extent offsets: data from the right place" patterns "$T/m.raw" raw \
	'read -P 0x30 0 2M' 'read -P 0x20 2M 1M' 'read -P 0x10 3M 1M'

commit_into "extent offsets: three extents on one file open writable (one lock); writes land at their offsets" "$T/multi.vmdk" 'write -P 0x99 1000k 2M'
check "extent offsets: the shared file holds the write at the extents' offsets" patterns "$T/multi.bin" raw \
	'read -P 0x10 0 1M' 'read -P 0x99 1M 1000k' 'read -P 0x20 2024k 24k' 'read -P 0x30 2M 1000k' \
	'read -P 0x99 3048k 1048k' 'read -P 0x40 4M 2M'
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 8192 FLAT "multi.bin" 8192\n' > "$T/short.vmdk"
check_fail "extent offsets: an extent past the file's end refused" "$PI" info --allow-backing "$T/short.vmdk"

# Sparse header version 3 (changed-block tracking): read like qemu, writes refused like qemu.
qemu-img create -q -f vmdk "$T/v3.vmdk" 8M
qio "$T/v3.vmdk" vmdk 'write -P 0x33 1M 64k'
printf '\003' | dd of="$T/v3.vmdk" bs=1 seek=4 conv=notrunc status=none
same_raw "sparse header version 3: raw conversion identical" "$T/v3.vmdk"
check_fail "sparse header version 3: writable open refused with a reason" "$PI" resize --allow-backing "$T/v3.vmdk" 16M

finish
