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

# ---- files named by the image (backing files, parents, extents) ----------------------
# By default nothing but the image itself is opened; --allow-backing opens files inside
# the image's directory only (or --backing-dir DIRs), never through a symbolic link, never
# a FIFO or device (block devices only with --allow-blockdev), never a headerless file
# guessed as raw, and only the parent the child was made from.
# leaks FILE: true if FILE holds a line of /etc/passwd (the data must never get out)
leaks() { [ -f "$1" ] && grep -aq '^root:' "$1"; }
# refused NAME WORDS CMD...: fails, one line on stderr containing WORDS, no /etc/passwd in $T/leak.raw
refused() {
	name=$1; words=$2; shift 2
	rm -f "$T/leak.raw"
	err=$(timeout 20 "$@" 2>&1 >/dev/null); rc=$?
	lines=$(printf '%s\n' "$err" | grep -c .)
	if [ $rc -ne 0 ] && [ $rc -lt 124 ] && [ "$lines" = 1 ] && printf '%s' "$err" | grep -q -- "$words" &&
		! leaks "$T/leak.raw"; then ok "$name"
	else notok "$name (rc=$rc)"; printf '%s\n' "$err" | sed 's/^/#   /' | head -5; fi
}
mkdir -p "$T/h" "$T/out"
H=$T/h
qemu-img create -q -f qcow2 -b /etc/passwd -F raw "$H/passwd.qcow2"
refused "qcow2 backing /etc/passwd: refused by default" "external files are not allowed" \
	"$PI" convert -O raw "$H/passwd.qcow2" "$T/leak.raw"
refused "qcow2 backing /etc/passwd: refused with --allow-backing (outside the directory)" "outside the allowed" \
	"$PI" convert --allow-backing -O raw "$H/passwd.qcow2" "$T/leak.raw"
refused "qcow2 backing ../../etc/passwd: refused (outside)" "outside the allowed" sh -c \
	"qemu-img rebase -u -f qcow2 -b ../../../../../../etc/passwd -F raw $H/passwd.qcow2 &&
	$PI compare --allow-backing -F raw $H/passwd.qcow2 /etc/passwd"
ln -s /etc/passwd "$H/link.raw"
qemu-img create -q -f qcow2 -b link.raw -F raw "$H/link.qcow2"
refused "qcow2 backing through a symlink to /etc/passwd: refused" "symbolic link" \
	"$PI" convert --allow-backing -O raw "$H/link.qcow2" "$T/leak.raw"
ln -s /etc "$H/etcdir"
qemu-img create -q -f qcow2 -b etcdir/passwd -F raw "$H/dirlink.qcow2"
refused "qcow2 backing through a symlinked directory: refused" "symbolic link" \
	"$PI" convert --allow-backing -O raw "$H/dirlink.qcow2" "$T/leak.raw"
head -c 1M /dev/urandom > "$H/headerless.bin"
qemu-img create -q -f qcow2 -b headerless.bin -F raw "$H/guess.qcow2"
# drop the recorded format: the backing-format extension becomes an unknown one (ignored)
python3 - "$H/guess.qcow2" <<'PY'
import sys
p = sys.argv[1]; d = bytearray(open(p, "rb").read())
i = d.index(bytes.fromhex("e2792aca"), 72); d[i:i + 4] = bytes.fromhex("7e570000")
open(p, "wb").write(d)
PY
refused "qcow2 backing with no recorded format and no header: not guessed as raw" "refusing to read it as raw" \
	"$PI" convert --allow-backing -O raw "$H/guess.qcow2" "$T/leak.raw"
mkfifo "$H/fifo"
qemu-img create -q -u -f qcow2 -b fifo -F raw "$H/fifo.qcow2" 1M
refused "qcow2 backing a FIFO: refused, no hang" "not a regular file" \
	"$PI" convert --allow-backing -O raw "$H/fifo.qcow2" "$T/leak.raw"
if mknod "$H/blk" b 7 7 2>/dev/null; then
	qemu-img create -q -u -f qcow2 -b blk -F raw "$H/blk.qcow2" 1M
	refused "qcow2 backing a block device: refused without --allow-blockdev" "block device" \
		"$PI" info --allow-backing --backing-chain "$H/blk.qcow2"
	check "qcow2 backing a block device: opened with --allow-blockdev" \
		"$PI" info --allow-backing --allow-blockdev --backing-chain "$H/blk.qcow2"
else
	echo "# skip: block-device backing (mknod needs root)"
fi
# a legitimate chain in another directory: refused unless that directory is named
qemu-img create -q -f qcow2 "$T/out/base.qcow2" 4M
qio "$T/out/base.qcow2" qcow2 'write -P 0x5c 0 64k'
qemu-img create -q -f qcow2 -b ../out/base.qcow2 -F qcow2 "$H/over.qcow2"
refused "qcow2 backing in another directory: refused" "outside the allowed" \
	"$PI" convert --allow-backing -O raw "$H/over.qcow2" "$T/leak.raw"
check "qcow2 backing in another directory: opened with --backing-dir" \
	"$PI" compare --backing-dir "$T/out" "$H/over.qcow2" "$T/out/base.qcow2"
check "info --backing-chain: prints the chain it opens" sh -c \
	"$PI info --backing-chain --backing-dir=$T/out $H/over.qcow2 > $T/chain.txt &&
	grep -q '^image: $H/over.qcow2' $T/chain.txt && grep -q '^image: $T/out/base.qcow2' $T/chain.txt &&
	grep -q 'opened as $T/out/base.qcow2' $T/chain.txt"
check "info --backing-chain: on refusal, the chain so far, the file it wanted and why" sh -c \
	"! $PI info --backing-chain --allow-backing $H/passwd.qcow2 > $T/chain.txt 2> $T/chain.err &&
	grep -q '^image: $H/passwd.qcow2' $T/chain.txt && grep -q 'refused' $T/chain.txt &&
	[ \$(wc -l < $T/chain.err) = 1 ] && grep -q 'refusing backing file .*etc/passwd.*outside the allowed' $T/chain.err"
check "info --backing-chain --output=json: backing-refused" sh -c \
	"! $PI info --backing-chain --output=json $H/passwd.qcow2 > $T/chain.json 2>/dev/null && python3 -c '
import json, sys; c = json.load(open(sys.argv[1])); assert len(c) == 1 and \"not allowed\" in c[0][\"backing-refused\"]' $T/chain.json"

# VMDK: extents and parents outside, through links; a renamed monolithicSparse reads itself
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 4 FLAT "link.raw" 0\n' > "$H/extlink.vmdk"
refused "vmdk extent through a symlink to /etc/passwd: refused" "symbolic link" \
	"$PI" convert --allow-backing -O raw "$H/extlink.vmdk" "$T/leak.raw"
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 4 FLAT "etcdir/passwd" 0\n' > "$H/extdir.vmdk"
refused "vmdk extent through a symlinked directory: refused" "symbolic link" \
	"$PI" convert --allow-backing -O raw "$H/extdir.vmdk" "$T/leak.raw"
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 4 FLAT "/etc/passwd" 0\n' > "$H/extabs.vmdk"
refused "vmdk extent /etc/passwd: refused by default" "not allowed" \
	"$PI" convert -O raw "$H/extabs.vmdk" "$T/leak.raw"
qemu-img create -q -f vmdk "$H/vbase.vmdk" 4M
"$PI" create -f vmdk -b vbase.vmdk "$H/vtop.vmdk"
python3 - "$H/vtop.vmdk" <<'PY'
import sys
p = sys.argv[1]; d = bytearray(open(p, "rb").read())
old = b'parentFileNameHint="vbase.vmdk"'; new = b'parentFileNameHint="/etc/passwd"'
i = d.index(old); d[i:i + len(old)] = new.ljust(len(old))[:len(old)] if len(new) <= len(old) else new
open(p, "wb").write(bytes(d[:len(d)]))
PY
refused "vmdk parentFileNameHint /etc/passwd: refused" "outside the allowed" \
	"$PI" convert --allow-backing -O raw "$H/vtop.vmdk" "$T/leak.raw"
"$PI" create -f vmdk -b vbase.vmdk "$H/vtop2.vmdk"
qio "$H/vbase.vmdk" vmdk 'write -P 0x33 0 64k' # a write gives the base a new CID
refused "vmdk parent changed since the child was made (parentCID): refused" "not the parent" \
	"$PI" convert --allow-backing -O raw "$H/vtop2.vmdk" "$T/leak.raw"
qemu-img create -q -f vmdk "$H/ren-a.vmdk" 4M
qio "$H/ren-a.vmdk" vmdk 'write -P 0x11 0 64k'
qemu-img convert -f vmdk -O raw "$H/ren-a.vmdk" "$T/ren-a.raw"
cp "$H/ren-a.vmdk" "$H/ren-b.vmdk"
qio "$H/ren-b.vmdk" vmdk 'write -P 0x22 0 64k'
qemu-img convert -f vmdk -O raw "$H/ren-b.vmdk" "$T/ren-b.raw"
check "renamed monolithicSparse: reads itself, not the file its descriptor names" \
	"$PI" compare -F raw "$H/ren-b.vmdk" "$T/ren-b.raw"
mv "$H/ren-a.vmdk" "$H/ren-c.vmdk"
check "renamed monolithicSparse: opens with the old name gone" "$PI" compare -F raw "$H/ren-c.vmdk" "$T/ren-a.raw"

# VHD and VHDX: a parent locator naming a file outside the directory; a parent that is
# not the one the child was made from (unique id / parent_linkage GUID)
for f in vpc vhdx; do
	"$PI" create -f $f "$T/out/p.$f" 4M
	"$PI" create -f $f -b ../out/p.$f "$H/c-$f.$f"
	refused "$f parent locator outside the directory: refused" "outside the allowed" \
		"$PI" convert --allow-backing -O raw "$H/c-$f.$f" "$T/leak.raw"
	check "$f parent outside: opened with --backing-dir" \
		"$PI" convert --backing-dir "$T/out" -O raw "$H/c-$f.$f" "$T/ok.raw"
	"$PI" create -f $f "$H/p2.$f" 4M
	"$PI" create -f $f -b p2.$f "$H/c2-$f.$f"
	rm "$H/p2.$f"
	"$PI" create -f $f "$H/p2.$f" 4M # same name, another disk
	refused "$f parent replaced by another disk of the same name: refused" "not the parent" \
		"$PI" convert --allow-backing -O raw "$H/c2-$f.$f" "$T/leak.raw"
done

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
# complement a checksum byte: writing a constant left it valid when the byte already
# held it (the headers' GUIDs are random, so once in 256 runs per header)
invert_byte() { # FILE OFFSET
	python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}
invert_byte "$T/c.vhdx" $((64 * 1024 + 4))
invert_byte "$T/c.vhdx" $((128 * 1024 + 4))
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
