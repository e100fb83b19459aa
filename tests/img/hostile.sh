#!/bin/sh
# Hostile files: one clear line, non-zero exit, bounded time; read-only images never written.
. "$(dirname "$0")/lib"

# backing-chain loops (qemu-img spins on these)
qemu-img create -f qcow2 "$T/a.qcow2" 16M >/dev/null
qemu-img create -f qcow2 -b a.qcow2 -F qcow2 "$T/b.qcow2" >/dev/null
qemu-img rebase -u -f qcow2 -b b.qcow2 -F qcow2 "$T/a.qcow2"
check_fail "qcow2 backing loop a->b->a: convert refuses" "$PI" convert --allow-backing -O raw "$T/a.qcow2" "$T/out.raw"
check_fail "qcow2 backing loop: compare refuses" "$PI" compare --allow-backing "$T/b.qcow2" "$T/a.qcow2"
qemu-img create -f qcow2 "$T/self.qcow2" 16M >/dev/null
qemu-img rebase -u -f qcow2 -b self.qcow2 -F qcow2 "$T/self.qcow2"
check_fail "qcow2 backing itself: refused" "$PI" convert --allow-backing -O raw "$T/self.qcow2" "$T/out.raw"
check "qcow2 backing loop: info still works (no chain walk)" "$PI" info "$T/a.qcow2"

# truncated and garbage files of every format
for f in qcow2 vpc vhdx vmdk; do
	qemu-img create -f $f "$T/t.$f" 16M >/dev/null
	head -c 100 "$T/t.$f" > "$T/trunc.$f"
	check_fail "$f truncated to 100 bytes: refused" "$PI" convert -f $f -O raw "$T/trunc.$f" "$T/out.raw"
done
head -c 1M /dev/urandom > "$T/noise.img"
check_fail "writable open of a headerless file without -f raw: refused" "$PI" resize "$T/noise.img" 2M
check "... but with -f raw it works" "$PI" resize -f raw "$T/noise.img" 2M
check_fail "unknown format name: refused" "$PI" convert -f nosuch -O raw "$T/noise.img" "$T/out.raw"

# bad checksums
qemu-img create -f vhdx "$T/c.vhdx" 16M >/dev/null
printf '\377' | dd of="$T/c.vhdx" bs=1 seek=$((64 * 1024 + 4)) conv=notrunc 2>/dev/null
printf '\377' | dd of="$T/c.vhdx" bs=1 seek=$((128 * 1024 + 4)) conv=notrunc 2>/dev/null
check_fail "vhdx with both header checksums bad: refused" "$PI" info "$T/c.vhdx"
qemu-img create -f vpc -o subformat=fixed "$T/c.vhd" 16M >/dev/null
sz=$(stat -c %s "$T/c.vhd")
printf '\000\000\000\000' | dd of="$T/c.vhd" bs=1 seek=$((sz - 512 + 64)) conv=notrunc 2>/dev/null
check_fail "fixed vhd with a bad footer checksum: refused as vpc" "$PI" info -f vpc "$T/c.vhd"

# absurd sizes and offsets
qemu-img create -f qcow2 "$T/s.qcow2" 16M >/dev/null
printf '\177\377\377\377\377\377\376\000' | dd of="$T/s.qcow2" bs=1 seek=24 conv=notrunc 2>/dev/null
check_fail "qcow2 with an 8 EiB virtual size: refused" "$PI" info "$T/s.qcow2"
qemu-img create -f vmdk "$T/s.vmdk" 16M >/dev/null
printf '\000\000\000\000\000\000\000\001' | dd of="$T/s.vmdk" bs=1 seek=56 conv=notrunc 2>/dev/null
check_fail "vmdk grain directory offset overflowing *512: refused" "$PI" info "$T/s.vmdk"

# read-only commands never modify their input
for fm in qcow2 vpc vhdx vmdk; do
	qemu-img create -f $fm "$T/ro.$fm" 16M >/dev/null
	qio "$T/ro.$fm" $fm 'write -P 0x99 0 1M'
	before=$(md5sum < "$T/ro.$fm")
	"$PI" info "$T/ro.$fm" >/dev/null 2>&1
	"$PI" info --output=json "$T/ro.$fm" >/dev/null 2>&1
	"$PI" check "$T/ro.$fm" >/dev/null 2>&1
	"$PI" compare "$T/ro.$fm" "$T/ro.$fm" >/dev/null 2>&1
	"$PI" convert -O raw "$T/ro.$fm" "$T/ro-out.raw" >/dev/null 2>&1
	after=$(md5sum < "$T/ro.$fm")
	if [ -n "$before" ] && [ "$before" = "$after" ]; then ok "$fm: read-only commands leave the file untouched"; else notok "$fm: read-only commands leave the file untouched"; fi
done

# a small fuzz-corpus sweep: every seed, flipped, must fail or succeed cleanly in bounded time
if [ -d "$ROOT/tests/fuzz/corpus" ]; then
	bad=0
	for seed in "$ROOT"/tests/fuzz/corpus/img-*/*; do
		[ -f "$seed" ] || continue
		for i in 1 2 3; do
			python3 -c "
import sys, random, struct
rec = open(sys.argv[1], 'rb').read(); d = bytearray()
for i in range(0, len(rec) - 515, 516):   # seeds are {u32 page, 512 bytes} records
    p = struct.unpack_from('<I', rec, i)[0] % (1 << 20) * 512   # as the fuzz harness
    d[len(d):] = bytes(max(0, p + 512 - len(d))); d[p:p + 512] = rec[i + 4:i + 516]
r = random.Random($i)
for _ in range(8):
    if d: d[r.randrange(len(d))] ^= 1 << r.randrange(8)
open(sys.argv[2], 'wb').write(d)" "$seed" "$T/mut.img"
			timeout 20 "$PI" convert -O raw "$T/mut.img" "$T/mut.raw" >/dev/null 2>&1
			rc=$?
			[ $rc -ge 124 ] && { bad=$((bad + 1)); echo "# $seed ($i): rc $rc"; }
		done
	done
	if [ $bad = 0 ]; then ok "mutated corpus seeds: no crash, no hang"; else notok "mutated corpus seeds: no crash, no hang ($bad)"; fi
fi
finish
