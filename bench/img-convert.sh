#!/bin/bash
# plinth-img convert vs qemu-img convert, side by side, on a 2 GiB image that is half
# data (incompressible) and half holes, alternating 32 MiB extents. Warm page cache:
# one untimed run first, then RUNS timed runs each; prints the median and the ratio.
#   bench/img-convert.sh [RUNS]     (PLINTH_IMG, DIR override the binary and the scratch dir)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
PI=${PLINTH_IMG:-$top/build/plinth-img}
RUNS=${1:-5}
D=${DIR:-$(mktemp -d /tmp/plinth-img-bench.XXXXXX)}
trap 'rm -rf "$D"' EXIT

truncate -s 2G "$D/src.raw"
for i in $(seq 0 2 63); do
	dd if=/dev/urandom of="$D/src.raw" bs=1M count=32 seek=$((i * 32)) conv=notrunc status=none
done
qemu-img convert -f raw -O qcow2 "$D/src.raw" "$D/src.qcow2"
qemu-img convert -f raw -O vmdk "$D/src.raw" "$D/src.vmdk"
qemu-img convert -f raw -O vhdx "$D/src.raw" "$D/src.vhdx"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # runs the command RUNS times after one warm-up, prints the median seconds
	local out=$1; shift
	rm -f "$out"; "$@" >/dev/null 2>&1
	for r in $(seq "$RUNS"); do
		rm -f "$out"
		s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
		echo "$e - $s" | bc
	done | median
}
printf '%-12s %-10s %9s %9s %7s\n' case mode plinth-s qemu-s ratio
for c in "raw qcow2 src.raw" "qcow2 vhdx src.qcow2" "vmdk vpc src.vmdk" "vhdx raw src.vhdx"; do
	set -- $c
	for mode in writeback unsafe; do
		p=$(timeit "$D/out.$2" "$PI" convert -t $mode -f "$1" -O "$2" "$D/$3" "$D/out.$2")
		q=$(timeit "$D/out.$2" qemu-img convert -t $mode -f "$1" -O "$2" "$D/$3" "$D/out.$2")
		printf '%-12s %-10s %9.3f %9.3f %7.2f\n' "$1->$2" "$mode" "$p" "$q" "$(echo "$q / $p" | bc -l)"
	done
done
echo "# 2 GiB virtual, 1 GiB data; ratio = qemu time / plinth time (> 1: plinth faster); median of $RUNS runs; $(nproc) cores"
echo "# writeback: the output is fdatasync'ed before exit (plinth's default); unsafe: never synced (qemu-img convert's default)"
echo "# commands: plinth-img convert -t MODE -f SRC -O DST in out; qemu-img convert -t MODE -f SRC -O DST in out"
