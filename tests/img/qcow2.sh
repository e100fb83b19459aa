#!/bin/sh
# raw and qcow2 against qemu-img: read what qemu writes, write what qemu reads.
. "$(dirname "$0")/lib"

qemu-img create -f qcow2 "$T/q.qcow2" 32M >/dev/null
fill "$T/q.qcow2" qcow2
qemu-img convert -O raw "$T/q.qcow2" "$T/ref.raw"

check "qcow2: info reads qemu's image" sh -c "$PI info $T/q.qcow2 | grep -q 'virtual size: 32 MiB (33554432 bytes)'"
check "qcow2: info json" sh -c "$PI info --output=json $T/q.qcow2 | grep -q '\"cluster-size\": 65536'"
check "qcow2 -> raw identical" sh -c "$PI convert -O raw $T/q.qcow2 $T/a.raw && cmp $T/a.raw $T/ref.raw"
check "raw -> qcow2 passes qemu-img check" sh -c "$PI convert -f raw -O qcow2 $T/ref.raw $T/b.qcow2 && qemu-img check -q $T/b.qcow2"
check "raw -> qcow2 identical (qemu-img compare)" qemu-img compare -q -f raw -F qcow2 "$T/ref.raw" "$T/b.qcow2"
check "raw -> qcow2 sparse (< 2 MiB allocated)" test "$(stat -c %s "$T/b.qcow2")" -lt 2097152
check "plinth-img compare same" "$PI" compare "$T/q.qcow2" "$T/b.qcow2"
qemu-io -c 'write -P 0x77 3M 512' "$T/b.qcow2" >/dev/null
check_rc "plinth-img compare differ exits 1" 1 "$PI" compare "$T/q.qcow2" "$T/b.qcow2"
check "compare reports the offset" sh -c "$PI compare $T/q.qcow2 $T/b.qcow2 | grep -q 'offset 3145728'"

for cs in 512 4k 2M; do
	check "qcow2 cluster_size=$cs round trip" sh -c "$PI convert -O qcow2 -o cluster_size=$cs $T/q.qcow2 $T/cs.qcow2 &&
		qemu-img check -q $T/cs.qcow2 && qemu-img compare -q $T/cs.qcow2 $T/ref.raw &&
		qemu-img info $T/cs.qcow2 | grep -qi 'cluster_size: $(echo $cs | sed 's/k/*1024/;s/M/*1048576/' | bc)'"
done

# compressed clusters: reading qemu's, and qemu reading ours
qemu-img convert -c -O qcow2 "$T/q.qcow2" "$T/cz.qcow2"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$T/q.qcow2" "$T/cs.qcow2"
check "reads qemu's zlib-compressed clusters" "$PI" compare "$T/cz.qcow2" "$T/ref.raw"
check "reads qemu's zstd-compressed clusters" "$PI" compare "$T/cs.qcow2" "$T/ref.raw"
check "convert -c (zlib) passes check and compare" sh -c "$PI convert -c -O qcow2 $T/ref.raw $T/pz.qcow2 &&
	qemu-img check -q $T/pz.qcow2 && qemu-img compare -q $T/pz.qcow2 $T/ref.raw &&
	qemu-img check $T/pz.qcow2 | grep -q '100.00% compressed'"
check "convert -c zstd passes check and compare" sh -c "$PI convert -c -O qcow2 -o compression_type=zstd $T/ref.raw $T/ps.qcow2 &&
	qemu-img check -q $T/ps.qcow2 && qemu-img compare -q $T/ps.qcow2 $T/ref.raw &&
	qemu-img info $T/ps.qcow2 | grep -q 'compression type: zstd'"

# v2 (compat=0.10) read, and refused for writing
qemu-img convert -O qcow2 -o compat=0.10 "$T/q.qcow2" "$T/v2.qcow2"
check "reads qcow2 v2" "$PI" compare "$T/v2.qcow2" "$T/ref.raw"
check_fail "v2 refused for writing" "$PI" resize "$T/v2.qcow2" 64M

# backing files
qemu-img create -f qcow2 -b q.qcow2 -F qcow2 "$T/ov.qcow2" >/dev/null
qio "$T/ov.qcow2" qcow2 'write -P 0xcd 512 4k' 'write -P 0xee 31M 1M' 'write -z 0 512'
qemu-img convert -O raw "$T/ov.qcow2" "$T/ov.raw"
check "reads through qemu's backing chain" "$PI" compare --allow-backing "$T/ov.qcow2" "$T/ov.raw"
check "create -b: qemu reads our overlay" sh -c "$PI create -f qcow2 -b q.qcow2 -F qcow2 $T/po.qcow2 &&
	qemu-img compare -q $T/po.qcow2 $T/ref.raw && qemu-img info $T/po.qcow2 | grep -q 'backing file: q.qcow2'"
check "create -b size defaults to backing size" sh -c "$PI info $T/po.qcow2 | grep -q '(33554432 bytes)'"
check "qcow2 snapshots listed by info" sh -c "qemu-img snapshot -c snap1 $T/v2.qcow2 && $PI info $T/v2.qcow2 | grep -q snap1 &&
	$PI info --output=json $T/v2.qcow2 | grep -q '\"name\": \"snap1\"'"

# resize and commit
check "resize grows (qemu sees the size)" sh -c "$PI resize $T/b.qcow2 3G && qemu-img check -q $T/b.qcow2 &&
	qemu-img info $T/b.qcow2 | grep -q '(3221225472 bytes)'"
cp "$T/q.qcow2" "$T/base.qcow2"
qemu-img create -f qcow2 -b base.qcow2 -F qcow2 "$T/top.qcow2" >/dev/null
qio "$T/top.qcow2" qcow2 'write -P 0x99 2M 128k' 'write -z 0 64k'
qemu-img convert -O raw "$T/top.qcow2" "$T/top.raw"
check "commit merges the overlay into its base" sh -c "$PI commit --allow-backing $T/top.qcow2 && qemu-img check -q $T/base.qcow2 &&
	qemu-img compare -q -f qcow2 -F raw $T/base.qcow2 $T/top.raw"

# check exit codes: clean 0, leaks 3, corrupt 2
check_rc "check clean exits 0" 0 "$PI" check "$T/q.qcow2"
cp "$T/q.qcow2" "$T/leak.qcow2"
# bump the refcount of cluster 0 (refcount block is at the offset in the table)
rb=$(python3 -c "
import struct,sys
f=open('$T/leak.qcow2','r+b'); h=f.read(104)
rt=struct.unpack('>Q',h[48:56])[0]; f.seek(rt); rb=struct.unpack('>Q',f.read(8))[0]
f.seek(0,2); end=f.tell(); f.truncate(end+65536)
f.seek(rb+2*(end>>16)); f.write(struct.pack('>H',1)); print(rb)")
check_rc "check with a leaked cluster exits 3" 3 "$PI" check "$T/leak.qcow2"
check_rc "qemu agrees it is a leak" 3 qemu-img check "$T/leak.qcow2"
check "check -r leaks repairs it" sh -c "$PI check -r leaks $T/leak.qcow2; qemu-img check -q $T/leak.qcow2 && $PI check $T/leak.qcow2"
cp "$T/q.qcow2" "$T/bad.qcow2"
python3 -c "
import struct
f=open('$T/bad.qcow2','r+b'); h=f.read(104)
rt=struct.unpack('>Q',h[48:56])[0]; f.seek(rt); rb=struct.unpack('>Q',f.read(8))[0]
l1=struct.unpack('>Q',h[40:48])[0]; f.seek(l1); l2=struct.unpack('>Q',f.read(8))[0]&0x00fffffffffffe00
f.seek(l2); d=struct.unpack('>Q',f.read(8))[0]&0x00fffffffffffe00
f.seek(rb+2*(d>>16)); f.write(struct.pack('>H',0))"
check_rc "check with a zero refcount on used data exits 2" 2 "$PI" check "$T/bad.qcow2"
check_rc "check --output=json exits 2 too" 2 "$PI" check --output=json "$T/bad.qcow2"

# a dirty image (lazy refcounts, crashed): read-only fine, writes refused until check -r all
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$T/lz.qcow2" 16M
qio "$T/lz.qcow2" qcow2 'write -P 1 0 1M'
python3 -c "
import struct
f = open('$T/lz.qcow2', 'r+b'); f.seek(72); v = struct.unpack('>Q', f.read(8))[0]
f.seek(72); f.write(struct.pack('>Q', v | 1))                      # dirty bit
h = open('$T/lz.qcow2', 'rb').read(104); rt = struct.unpack('>Q', h[48:56])[0]
f.seek(rt); rb = struct.unpack('>Q', f.read(8))[0]
f.seek(rb + 2 * 5); f.write(bytes(20))                              # refcounts not yet written"
check "dirty qcow2: info shows the flag" sh -c "$PI info $T/lz.qcow2 | grep -q 'dirty flag: yes'"
check_fail "dirty qcow2: writable open refused" "$PI" resize "$T/lz.qcow2" 32M
check_rc "dirty qcow2: check finds the missing refcounts (exit 2)" 2 "$PI" check "$T/lz.qcow2"
check "dirty qcow2: check -r all repairs and clears the flag" sh -c "$PI check -r all $T/lz.qcow2 >/dev/null 2>&1;
	qemu-img check -q $T/lz.qcow2 && ! $PI info $T/lz.qcow2 | grep -q dirty && $PI resize $T/lz.qcow2 32M"

finish
