#!/bin/sh
# qcow2 with extended L2 entries (subclusters, extended_l2=on) against qemu-img: qemu's
# partial subcluster writes read back byte for byte, ours read back in qemu, both ways.
. "$(dirname "$0")/lib"

qemu-img create -q -f qcow2 "$T/base.qcow2" 4M
qio "$T/base.qcow2" qcow2 'write -P 0x33 0 4M'
# Subclusters of 2 KiB (64 KiB clusters) and 512 bytes (16 KiB clusters), with and without
# a backing file: partial subclusters, zeroed subclusters, a discarded cluster.
for v in "64k:" "16k:" "64k:base" "16k:base"; do
	cs=${v%%:*}; b=${v#*:}; n="x$cs$b"
	if [ -n "$b" ]; then
		qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=$cs -b base.qcow2 -F qcow2 "$T/$n.qcow2"
	else
		qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=$cs "$T/$n.qcow2" 4M
	fi
	qio "$T/$n.qcow2" qcow2 'write -P 0x11 0 512' 'write -P 0x22 70k 3k' 'write -z 200k 8k' \
		'write -P 0x44 1M 64k' 'write -P 0x55 2050k 100' 'write -P 0x66 3M 128k' 'discard 3M 64k' \
		'write -P 0x77 4095k 1k'
	qemu-img convert -O raw "$T/$n.qcow2" "$T/$n.ref"
	check "extended_l2 ($cs${b:+, backing}): qemu's image -> raw identical" sh -c \
		"$PI convert --allow-backing -O raw $T/$n.qcow2 $T/$n.raw && cmp $T/$n.raw $T/$n.ref"
	check "extended_l2 ($cs${b:+, backing}): compare with qemu's raw" "$PI" compare --allow-backing "$T/$n.qcow2" "$T/$n.ref"
	check_rc "extended_l2 ($cs${b:+, backing}): check clean, as qemu" 0 "$PI" check --allow-backing "$T/$n.qcow2"
	check "extended_l2 ($cs${b:+, backing}): raw -> ours -> qemu reads it identical" sh -c \
		"$PI convert --allow-backing -f raw -O qcow2 -o extended_l2=on,cluster_size=$cs $T/$n.ref $T/$n.out &&
		qemu-img check -q $T/$n.out && qemu-img compare -q -f raw -F qcow2 $T/$n.ref $T/$n.out &&
		qemu-img info $T/$n.out | grep -q 'extended l2: true'"
done
check "info says extended-l2" sh -c "$PI info --allow-backing $T/x64k.qcow2 | grep -q 'extended-l2: true'"
check_fail "extended_l2 with 4k clusters: refused at create" "$PI" create -f qcow2 -o extended_l2=on,cluster_size=4k "$T/no.qcow2" 1M

# Our writes of partial subclusters: commit a 16k-cluster overlay (512-byte subclusters)
# into a 64k-cluster one (2 KiB subclusters) over a backing file: qemu reads the result.
qemu-img create -q -f qcow2 -o extended_l2=on -b base.qcow2 -F qcow2 "$T/mid.qcow2"
qio "$T/mid.qcow2" qcow2 'write -P 0x11 0 512' 'write -P 0x22 70k 3k' 'write -z 200k 8k' 'write -P 0x44 1M 64k'
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=16k -b mid.qcow2 -F qcow2 "$T/top.qcow2"
qio "$T/top.qcow2" qcow2 'write -P 0x66 1024 512' 'write -P 0x77 71k 512' 'write -P 0x88 202k 1k' \
	'write -P 0x99 3000k 2560' 'write -z 1030k 512' 'write -P 0xaa 4095k 1k'
qemu-img convert -O raw "$T/top.qcow2" "$T/top.raw"
check "partial subcluster writes (commit): qemu reads what it would have written" sh -c \
	"$PI commit --allow-backing $T/top.qcow2 && qemu-img check -q $T/mid.qcow2 && qemu-img compare -q -F raw $T/mid.qcow2 $T/top.raw"
check "partial subcluster writes: the untouched subclusters still come from the backing file" sh -c \
	"qemu-img map --output=json $T/mid.qcow2 | grep -q '\"depth\": 1'"

# A subcluster both allocated and zero: an error for both tools, named.
cp "$T/x64k.qcow2" "$T/bad.qcow2"
python3 - "$T/bad.qcow2" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
f.seek(40); l1 = struct.unpack('>Q', f.read(8))[0]
f.seek(l1); l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2 + 8); bm = struct.unpack('>Q', f.read(8))[0]
f.seek(l2 + 8); f.write(struct.pack('>Q', bm | ((bm & 0xffffffff) << 32)))
PY
check_rc "subcluster allocated and zero: qemu says corrupt (2)" 2 qemu-img check "$T/bad.qcow2"
check "subcluster allocated and zero: exit 2 and the line names it" sh -c "$PI check --allow-backing $T/bad.qcow2 2>&1 >/dev/null |
	grep -q 'ERROR active L2 entry at 0x40000: subclusters both allocated and zero'; [ \$? = 0 ] && ! $PI check --allow-backing $T/bad.qcow2 >/dev/null 2>&1"
finish
