#!/bin/sh
# VHDX against qemu-img: dynamic and fixed, block sizes, log replay by qemu of our log.
. "$(dirname "$0")/lib"

for sub in dynamic fixed; do
	qemu-img create -f vhdx -o subformat=$sub "$T/q-$sub.vhdx" 32M >/dev/null
	fill "$T/q-$sub.vhdx" vhdx
	qemu-img convert -O raw "$T/q-$sub.vhdx" "$T/ref-$sub.raw"
	check "vhdx $sub: reads qemu's image" "$PI" compare -F raw "$T/q-$sub.vhdx" "$T/ref-$sub.raw"
	check "vhdx $sub: written by plinth, qemu-img check + compare" sh -c "$PI convert -f raw -O vhdx -o subformat=$sub \
		$T/ref-$sub.raw $T/p-$sub.vhdx && qemu-img check -q $T/p-$sub.vhdx && qemu-img compare -q -F raw $T/p-$sub.vhdx $T/ref-$sub.raw"
done
check "vhdx dynamic: sparse (< 4 MiB on disk beyond metadata)" test "$(disk_usage "$T/p-dynamic.vhdx")" -lt 8388608
for bs in 1M 32M 256M; do
	check "vhdx block_size=$bs: qemu agrees" sh -c "$PI convert -O vhdx -o block_size=$bs $T/ref-dynamic.raw $T/b.vhdx &&
		qemu-img check -q $T/b.vhdx && qemu-img compare -q -F raw $T/b.vhdx $T/ref-dynamic.raw &&
		qemu-img info $T/b.vhdx | grep -q 'cluster_size: $(echo $bs | sed 's/M$//' | awk '{print $1*1048576}')'"
done
check "vhdx: qemu writes into our image, we read it" sh -c "qemu-io -f vhdx -c 'write -P 0x3c 9M 3M' $T/p-dynamic.vhdx >/dev/null &&
	qemu-img convert -O raw $T/p-dynamic.vhdx $T/w.raw && $PI compare -F raw $T/p-dynamic.vhdx $T/w.raw"
check "vhdx: default block size like qemu-img (8M below 1G, 16M above)" sh -c "$PI create -f vhdx $T/d.vhdx 2G &&
	$PI info $T/d.vhdx | grep -q 'cluster_size: 16777216' && qemu-img check -q $T/d.vhdx"
check "vhdx: resize is refused cleanly (unsupported)" sh -c "! $PI resize $T/d.vhdx 3G 2>/dev/null"

finish
