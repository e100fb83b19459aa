#!/bin/sh
# convert -c and streamOptimized output, compressed by several threads in batches of
# 8 MiB: an image over several batches with compressible and random data, written zeros,
# holes and a tail shorter than a cluster converts identically for qemu-img, checks
# clean, is compressed, and is byte for byte the same with one CPU as with all of them;
# a source that fails half-way leaves no output and prints one line.
. "$(dirname "$0")/lib"

# 40 MiB + 3.5 KiB: text-like data (0-12 MiB), random data across the 16 MiB batch
# boundary (14-18 MiB), written zeros (20-22 MiB), a pattern (25 MiB), the tail.
size=$((40 * 1048576 + 3584))
qemu-img create -f raw "$T/src.raw" "$size" >/dev/null
python3 - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(5)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(2, 9))) for _ in range(500)]
text = b" ".join(r.choice(words) for _ in range(2 << 20))[:12 << 20]
with open(sys.argv[1], "r+b") as f:
    f.write(text)
    f.seek(14 << 20)
    f.write(r.randbytes(4 << 20))
PY
qio "$T/src.raw" raw 'write -z 20M 2M' 'write -P 0x5a 25M 1M' "write -P 0x77 $((size - 8192)) 8192"
qemu-img convert -f raw -O qcow2 "$T/src.raw" "$T/src.qcow2"

for out in qcow2:"" qcow2:compression_type=zstd qcow2:cluster_size=4096 \
	vmdk:subformat=streamOptimized; do
	f=${out%%:*}; o=${out#*:}
	what="convert -c raw -> $f${o:+ ($o)}"
	rm -f "$T/out.$f"
	if "$PI" convert -c -f raw -O "$f" ${o:+-o "$o"} "$T/src.raw" "$T/out.$f" 2>"$T/err" &&
		qemu-img compare -q -f raw -F "$f" "$T/src.raw" "$T/out.$f" 2>>"$T/err"; then
		ok "$what: identical for qemu-img"
	else
		notok "$what: identical for qemu-img"
		sed 's/^/#   /' "$T/err" | head -5
	fi
	check "$what: qemu-img check is clean" qemu-img check -f "$f" "$T/out.$f"
	# 19 MiB of data, 12 MiB of it text that compresses to well under half
	used=$(disk_usage "$T/out.$f")
	if [ "$used" -lt $((14 << 20)) ]; then
		ok "$what: compressed ($used bytes for 19 MiB of data)"
	else
		notok "$what: compressed ($used bytes for 19 MiB of data)"
	fi
	[ "$f" = qcow2 ] || continue # a VMDK's descriptor carries a random CID
	rm -f "$T/one.$f"
	check "$what: one CPU writes the same bytes as all of them" sh -c "
		taskset -c 0 $PI convert -c -f raw -O $f ${o:+-o $o} $T/src.raw $T/one.$f &&
		cmp $T/out.$f $T/one.$f"
done
check "convert -c qcow2 -> qcow2 -t unsafe: identical for qemu-img" sh -c "
	$PI convert -c -t unsafe -f qcow2 -O qcow2 $T/src.qcow2 $T/u.qcow2 &&
	qemu-img compare -q $T/src.raw $T/u.qcow2"
check_fail "convert -c to a format that does not compress fails" \
	"$PI" convert -c -f raw -O vhdx "$T/src.raw" "$T/nc.vhdx"
check "convert -c to a format that does not compress leaves no output" test ! -e "$T/nc.vhdx"

# A qcow2 whose L2 entry for 30 MiB points beyond the end of the file: batches before it
# were written; one line, no output left behind.
cp "$T/src.qcow2" "$T/bad.qcow2"
qcow2_bad_l2 "$T/bad.qcow2" $((25 << 20))
for b in qcow2 vmdk; do
	opt=; [ "$b" = vmdk ] && opt="-o subformat=streamOptimized"
	check_rc "convert -c of a qcow2 corrupt at 25 MiB -> $b: exactly one line" 0 \
		sh -c "[ \$($PI convert -c -f qcow2 -O $b $opt $T/bad.qcow2 $T/bad-out.$b 2>&1 | wc -l) = 1 ]"
	check "convert -c of a corrupt qcow2 -> $b leaves no output" test ! -e "$T/bad-out.$b"
done
finish
