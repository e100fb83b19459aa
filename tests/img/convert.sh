#!/bin/sh
# convert round-trips every format to every other with identical content, holes staying holes.
. "$(dirname "$0")/lib"

FORMATS="raw: qcow2: qcow2:compression_type=zstd vpc:subformat=dynamic vpc:subformat=fixed vhdx:subformat=dynamic
vhdx:subformat=fixed vmdk:subformat=monolithicSparse vmdk:subformat=monolithicFlat vmdk:subformat=streamOptimized"
qemu-img create -f raw "$T/src.raw" 24M >/dev/null
qio "$T/src.raw" raw 'write -P 0xab 0 1M' 'write -P 0x11 5M 64k' 'write -P 0x5a 7340544 3584' 'write -P 0x22 23M 1M'

n=0
for s in $FORMATS; do
	sf=${s%%:*}; so=${s#*:}
	n=$((n + 1))
	src="$T/s$n.$sf"
	"$PI" convert -f raw -O "$sf" ${so:+-o "$so"} "$T/src.raw" "$src" || { notok "convert raw -> $s"; continue; }
	m=0
	for d in $FORMATS; do
		df=${d%%:*}; do=${d#*:}
		m=$((m + 1))
		dst="$T/d$n-$m.$df"
		if "$PI" convert --allow-backing -O "$df" ${do:+-o "$do"} "$src" "$dst" 2>"$T/err" &&
			qemu-img compare -q -f "$sf" -F "$df" "$src" "$dst" 2>>"$T/err"; then
			ok "convert $s -> $d: identical for qemu-img"
		else
			notok "convert $s -> $d: identical for qemu-img"; sed 's/^/#   /' "$T/err" | head -5
		fi
		rm -f "$T/d$n-$m".* "$T/d$n-$m"-flat.*
	done
done
# -c compresses where the format can; -p shows progress
check "convert -c qcow2 -> qcow2 compressed" sh -c "$PI convert -c -O qcow2 $T/s2.qcow2 $T/c.qcow2 &&
	qemu-img check $T/c.qcow2 | grep -q 'compressed clusters' && qemu-img compare -q $T/c.qcow2 $T/src.raw"
check "convert -p prints progress" sh -c "$PI convert -p -O raw $T/s2.qcow2 $T/p.raw | grep -q '100.00/100%'"
# a 2 GiB mostly empty image converts in bounded memory and time, and stays sparse
qemu-img create -f qcow2 "$T/big.qcow2" 2G >/dev/null
qio "$T/big.qcow2" qcow2 'write -P 0x42 1G 1M'
check "convert 2 GiB sparse qcow2 -> vhdx, bounded memory (< 64 MiB RSS)" sh -c "/usr/bin/time -f %M -o $T/rss $PI convert -O vhdx $T/big.qcow2 $T/big.vhdx &&
	[ \$(cat $T/rss) -lt 65536 ] && qemu-img compare -q $T/big.qcow2 $T/big.vhdx && [ \$(du -k $T/big.vhdx | cut -f1) -lt 40000 ]"
finish
