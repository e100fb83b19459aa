#!/bin/bash
# Random 4 KiB reads: plinth-img bench against Debian's qemu-io, on the same 2 GiB image
# (half incompressible data, half holes, alternating 32 MiB extents, as in img-convert.sh)
# in raw, qcow2, vhdx, vmdk and vhd, with the identical offset list for both tools.
#   bench/img-randread.sh [RUNS]     (COUNT reads, default 100000; PLINTH_IMG, DIR override
#                                    the binary and the scratch dir)
#
# What is compared, per format (page cache warm: one untimed pass of each command first,
# then RUNS timed passes interleaved A B C D A B C D; median and min-max):
#   wall:  whole process, start to exit, output to /dev/null:
#          plinth-img bench -f FMT --offsets LIST FILE
#          qemu-io -r -f FMT FILE < SCRIPT   (SCRIPT: one "read -q OFF 4096" a line, same
#          offsets). qemu-io parses each line and prints a prompt for it: that per-command
#          cost is part of its figure; its start-up (open, empty script) is measured apart.
#   loop:  plinth-img bench's own timing of the read loop only (open and list excluded).
#   ref:   qemu-img bench -d 1 -s 4096 -S 16k -c COUNT (queue depth 1, strided, no wrap)
#          against plinth-img bench --pattern sequential -S 16k -c COUNT: both tools time
#          only their own read loop.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
PI=${PLINTH_IMG:-$top/build/plinth-img}
RUNS=${1:-5}
COUNT=${COUNT:-100000}
STEP=16384
D=${DIR:-$(mktemp -d /tmp/plinth-img-randread.XXXXXX)}
trap 'rm -rf "$D"' EXIT

truncate -s 2G "$D/img.raw"
for i in $(seq 0 2 63); do
	dd if=/dev/urandom of="$D/img.raw" bs=1M count=32 seek=$((i * 32)) conv=notrunc status=none
done
for f in qcow2 vmdk vhdx vpc; do
	qemu-img convert -f raw -O $f "$D/img.raw" "$D/img.$f"
done
# One offset list for everything: COUNT 4 KiB-aligned offsets, uniform over 2 GiB, seed 1.
python3 -c "
import random, sys
r = random.Random(1)
n = int(sys.argv[1])
with open(sys.argv[2], 'w') as l, open(sys.argv[3], 'w') as s:
    for _ in range(n):
        o = r.randrange(0, (2 << 30) // 4096) * 4096
        l.write('%d\n' % o)
        s.write('read -q %d 4096\n' % o)
" "$COUNT" "$D/offsets" "$D/qemu-io.script"
: >"$D/empty.script"

now() { date +%s.%N; }
wall() { # CMD... < stdin: seconds from start to exit
	local s e
	s=$(now); "$@" >/dev/null; e=$(now)
	echo "$e - $s" | bc
}
stat3() { # median min max of the numbers on stdin
	sort -g | awk '{a[NR]=$1} END {printf "%s %s %s\n", a[int((NR+1)/2)], a[1], a[NR]}'
}
pjson() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
qbench() { # qemu-img bench's own "Run completed in X seconds."
	qemu-img bench -f "$1" -d 1 -s 4096 -S $STEP -c "$COUNT" "$2" | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p'
}

fmt_row() { # name med min max
	printf '%.3f (%.3f-%.3f)' "$1" "$2" "$3"
}
echo "| format | plinth-img wall s | qemu-io wall s | qemu/plinth | plinth IOPS (wall) | qemu-io IOPS (wall) | plinth loop-only IOPS | qemu-io start-up s | qemu-io IOPS excl. start-up | stride: plinth loop s | stride: qemu-img bench s | qemu-img/plinth |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for f in raw qcow2 vhdx vmdk vpc; do
	img=$D/img.$f
	# warm-up, untimed
	"$PI" bench -f $f --offsets "$D/offsets" "$img" >/dev/null
	qemu-io -r -f $f "$img" <"$D/qemu-io.script" >/dev/null
	"$PI" bench -f $f --pattern sequential -S $STEP -c "$COUNT" "$img" >/dev/null
	qbench $f "$img" >/dev/null
	: >"$D/pw"; : >"$D/qw"; : >"$D/pl"; : >"$D/q0"; : >"$D/ps"; : >"$D/qs"
	for r in $(seq "$RUNS"); do
		s=$(now)
		"$PI" bench -f $f --output=json --offsets "$D/offsets" "$img" >"$D/out.json"
		e=$(now)
		echo "$e - $s" | bc >>"$D/pw"
		pjson seconds <"$D/out.json" >>"$D/pl"
		wall qemu-io -r -f $f "$img" <"$D/qemu-io.script" >>"$D/qw"
		wall qemu-io -r -f $f "$img" <"$D/empty.script" >>"$D/q0"
		"$PI" bench -f $f --output=json --pattern sequential -S $STEP -c "$COUNT" "$img" | pjson seconds >>"$D/ps"
		qbench $f "$img" >>"$D/qs"
	done
	read -r pw pw0 pw1 < <(stat3 <"$D/pw")
	read -r qw qw0 qw1 < <(stat3 <"$D/qw")
	read -r pl pl0 pl1 < <(stat3 <"$D/pl")
	read -r q0 q00 q01 < <(stat3 <"$D/q0")
	read -r ps ps0 ps1 < <(stat3 <"$D/ps")
	read -r qs qs0 qs1 < <(stat3 <"$D/qs")
	name=$f; [ $f = vpc ] && name="vhd (vpc)"
	printf '| %s | %s | %s | %.1f | %.0f | %.0f | %.0f | %s | %.0f | %s | %s | %.1f |\n' "$name" \
		"$(fmt_row "$pw" "$pw0" "$pw1")" "$(fmt_row "$qw" "$qw0" "$qw1")" "$(echo "$qw / $pw" | bc -l)" \
		"$(echo "$COUNT / $pw" | bc -l)" "$(echo "$COUNT / $qw" | bc -l)" "$(echo "$COUNT / $pl" | bc -l)" \
		"$(fmt_row "$q0" "$q00" "$q01")" "$(echo "$COUNT / ($qw - $q0)" | bc -l)" "$(fmt_row "$ps" "$ps0" "$ps1")" "$(fmt_row "$qs" "$qs0" "$qs1")" \
		"$(echo "$qs / $ps" | bc -l)"
done
echo
echo "# $COUNT reads of 4096 bytes per pass; 2 GiB virtual, 1 GiB data (32 MiB extents), so about half the reads hit holes"
echo "# median (min-max) of $RUNS passes after one untimed warm-up pass (page cache warm), interleaved; $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(qemu-io --version | head -1)"
