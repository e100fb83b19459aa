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
ls -l "$top"/tests/fuzz/corpus/img-*
