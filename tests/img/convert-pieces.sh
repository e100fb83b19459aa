#!/bin/sh
# convert of an image larger than its read-ahead pieces (4 MiB) and split transfers (2 MiB):
# the pairs make bench measures, in both -t modes, identical for qemu-img with holes kept;
# a source that fails half-way leaves no output and prints one line.
. "$(dirname "$0")/lib"

# 48 MiB: random data across piece boundaries (3-16 MiB), an odd run across the 20 MiB
# boundary, written zeros (24-30 MiB), a pattern (30-38 MiB), the last MiB; holes between.
qemu-img create -f raw "$T/src.raw" 48M >/dev/null
head -c 13M /dev/urandom | dd of="$T/src.raw" bs=1M seek=3 conv=notrunc status=none
qio "$T/src.raw" raw 'write -P 0x5a 20971008 3584' 'write -z 24M 6M' 'write -P 0x33 30M 8M' \
	'write -P 0x77 47M 1M'
for f in qcow2 vmdk vhdx vpc; do
	qemu-img convert -f raw -O "$f" "$T/src.raw" "$T/src.$f"
done

for pair in raw:qcow2 qcow2:vhdx vmdk:vpc vhdx:raw raw:vmdk vpc:qcow2; do
	a=${pair%:*}; b=${pair#*:}
	for mode in writeback unsafe; do
		out="$T/out.$b"
		rm -f "$out"
		if "$PI" convert -t "$mode" -f "$a" -O "$b" "$T/src.$a" "$out" 2>"$T/err" &&
			qemu-img compare -q -f "$a" -F "$b" "$T/src.$a" "$out" 2>>"$T/err"; then
			ok "convert -t $mode $a -> $b, 48 MiB in pieces: identical for qemu-img"
		else
			notok "convert -t $mode $a -> $b, 48 MiB in pieces: identical for qemu-img"
			sed 's/^/#   /' "$T/err" | head -5
		fi
		# 22 MiB of data; the 6 MiB of written zeros and the 20 MiB of holes stay unallocated
		used=$(disk_usage "$out")
		if [ "$used" -lt $((30 << 20)) ]; then
			ok "convert -t $mode $a -> $b: zeros and holes stay unallocated ($used bytes)"
		else
			notok "convert -t $mode $a -> $b: zeros and holes stay unallocated ($used bytes)"
		fi
	done
done

# A qcow2 whose L2 entry for 30 MiB points beyond the end of the file: the read-ahead
# fails after several pieces went out; one line, no output left behind.
cp "$T/src.qcow2" "$T/bad.qcow2"
qcow2_bad_l2 "$T/bad.qcow2" $((30 << 20))
for b in raw vhdx; do
	check_fail "convert of a qcow2 corrupt at 30 MiB -> $b fails with one line" \
		"$PI" convert -f qcow2 -O "$b" "$T/bad.qcow2" "$T/bad-out.$b"
	check "convert of a corrupt qcow2 -> $b leaves no output" test ! -e "$T/bad-out.$b"
	check_rc "convert of a corrupt qcow2 -> $b: exactly one line" 0 \
		sh -c "[ \$($PI convert -f qcow2 -O $b $T/bad.qcow2 $T/bad-out.$b 2>&1 | wc -l) = 1 ]"
done
finish
