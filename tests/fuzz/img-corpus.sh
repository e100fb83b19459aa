#!/bin/sh
# Regenerate the image fuzz seeds (tests/fuzz/corpus/img-*) from small qemu-img-made
# images, stored as {u32 page index, 512 bytes} records of their non-zero pages.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
pages() { # IMAGE OUT: non-zero 512-byte pages as records
	python3 - "$1" "$2" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
out = bytearray()
for i in range(0, len(d), 512):
    p = d[i:i + 512].ljust(512, b"\0")
    if any(p):
        out += struct.pack("<I", i // 512) + p
open(sys.argv[2], "wb").write(out)
PY
}
mk() { # FMT NAME CREATE-OPTS IO-CMDS...
	fmt=$1 name=$2 opts=$3; shift 3
	qemu-img create -q -f "$fmt" ${opts:+-o "$opts"} "$t/i" 4M
	for c in "$@"; do qemu-io -f "$fmt" -c "$c" "$t/i" >/dev/null; done
	mkdir -p "$top/tests/fuzz/corpus/img-$fmt"
	pages "$t/i" "$top/tests/fuzz/corpus/img-$fmt/$name"
}
mk qcow2 empty cluster_size=512
mk qcow2 data cluster_size=512 'write -P 0xab 0 1k' 'write -z 4k 1k'
qemu-img create -q -f qcow2 -o cluster_size=512 "$t/b" 4M
qemu-img create -q -f qcow2 -o cluster_size=512 -b b -F qcow2 "$t/i" && mkdir -p "$top/tests/fuzz/corpus/img-qcow2" &&
	qemu-io -c 'write -P 1 512 512' "$t/i" >/dev/null && pages "$t/i" "$top/tests/fuzz/corpus/img-qcow2/backing"
qemu-img create -q -f raw "$t/r" 1M && qemu-io -f raw -c 'write -P 0x5a 0 8k' "$t/r" >/dev/null &&
	qemu-img convert -c -O qcow2 -o cluster_size=4096 "$t/r" "$t/c" && pages "$t/c" "$top/tests/fuzz/corpus/img-qcow2/compressed"
qemu-img convert -c -O qcow2 -o cluster_size=4096,compression_type=zstd "$t/r" "$t/z" &&
	pages "$t/z" "$top/tests/fuzz/corpus/img-qcow2/zstd"
# internal snapshots, persistent bitmaps, extended L2 entries (subclusters)
qemu-img create -q -f qcow2 -o cluster_size=512 "$t/s" 4M && qemu-io -c 'write -P 1 0 2k' "$t/s" >/dev/null &&
	qemu-img snapshot -c one "$t/s" && qemu-io -c 'write -P 2 1k 1k' "$t/s" >/dev/null && qemu-img snapshot -c two "$t/s" &&
	pages "$t/s" "$top/tests/fuzz/corpus/img-qcow2/snapshots"
qemu-img create -q -f qcow2 -o cluster_size=4096 "$t/m" 4M && qemu-img bitmap --add "$t/m" b1 &&
	qemu-io -c 'write -P 3 0 8k' "$t/m" >/dev/null && pages "$t/m" "$top/tests/fuzz/corpus/img-qcow2/bitmaps"
mk qcow2 extl2 extended_l2=on,cluster_size=16k 'write -P 0xab 0 512' 'write -z 4k 1k' 'write -P 1 20k 3k'
# qcow2 write fuzzing: the images above followed by operations {op, KiB-1, 0, sector}
ops() { python3 -c "
import struct, sys
ops = [(0, 3, 1), (1, 0, 9), (2, 63, 0), (3, 1, 40), (0, 7, 8), (4, 0, 0), (2, 1, 8), (0, 0, 8)]
sys.stdout.buffer.write(b''.join(struct.pack('<BBHI', o, l, 0, s) for o, l, s in ops))"; }
mkdir -p "$top/tests/fuzz/corpus/img-qcow2-write"
for s in data extl2 bitmaps compressed; do
	{ cat "$top/tests/fuzz/corpus/img-qcow2/$s"; ops; } >"$top/tests/fuzz/corpus/img-qcow2-write/$s"
done
mk vpc empty ""
mk vpc fixed subformat=fixed 'write -P 0xab 0 1k'
mk vpc data "" 'write -P 0xab 0 1k'
mk vhdx empty "block_size=1M"
mk vhdx data "block_size=1M" 'write -P 0xab 0 1k'
mk vmdk sparse "" 'write -P 0xab 0 1k'
mk vmdk stream subformat=streamOptimized 'write -P 0xab 0 64k'
qemu-img create -q -f raw "$t/r" 1M && qemu-io -f raw -c 'write -P 0xab 8k 8k' "$t/r" >/dev/null &&
	python3 "$top/tests/img/mkimg-vmdk.py" "$t/r" "$t/m" && pages "$t/m" "$top/tests/fuzz/corpus/img-vmdk/mkimg"
qemu-io -f raw -c 'write -P 0xcd 600k 4k' "$t/r" >/dev/null &&
	python3 "$top/tests/img/cowd-vmdk.py" "$t/r" "$t/c" 16 && pages "$t/c" "$top/tests/fuzz/corpus/img-vmdk/cowd"
python3 "$top/tests/img/sesparse-vmdk.py" "$t/r" "$t/s" && pages "$t/s" "$top/tests/fuzz/corpus/img-vmdk/sesparse"
mk vdi dynamic "" 'write -P 0xab 0 1k' 'write -P 0xcd 3M 4k'
mk vdi static static=on 'write -P 0xab 0 1k'
mk parallels data cluster_size=64k 'write -P 0xab 0 1k' 'write -P 0xcd 3M 4k'
# Images that name files (issue 23): the harness resolves their names under a policy.
pi=$top/build/plinth-img
hostile_seeds() {
	mkdir -p "$t/h" "$t/out"
	qemu-img create -q -u -f qcow2 -o cluster_size=512 -b /etc/passwd -F raw "$t/h/q" 1M &&
		pages "$t/h/q" "$top/tests/fuzz/corpus/img-qcow2/backing-passwd"
	printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=87654321\ncreateType="monolithicFlat"\nparentFileNameHint="../../etc/passwd"\nRW 8 FLAT "/etc/passwd" 0\nRW 8 FLAT "sub/../../x-flat.vmdk" 0\nRW 8 SPARSE "self.vmdk"\nRW 8 ZERO\n' > "$t/h/d"
	pages "$t/h/d" "$top/tests/fuzz/corpus/img-vmdk/descriptor-names"
	qemu-img create -q -f vmdk "$t/h/other.vmdk" 4M && qemu-img create -q -f vmdk -b other.vmdk -F vmdk "$t/h/r" &&
		pages "$t/h/r" "$top/tests/fuzz/corpus/img-vmdk/renamed-child"
	"$pi" create -f vpc "$t/out/p" 4M && "$pi" create -f vpc -b ../out/p "$t/h/c" &&
		pages "$t/h/c" "$top/tests/fuzz/corpus/img-vpc/child-outside"
	"$pi" create -f vhdx -o block_size=1M "$t/out/px" 4M && "$pi" create -f vhdx -o block_size=1M -b ../out/px "$t/h/cx" &&
		pages "$t/h/cx" "$top/tests/fuzz/corpus/img-vhdx/child-outside"
}
hostile_seeds
ls -l "$top"/tests/fuzz/corpus/img-*
