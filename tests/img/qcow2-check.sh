#!/bin/sh
# qcow2 check, repair and info on images with internal snapshots and persistent bitmaps,
# against qemu-img: the same verdict on every image, repairs that keep qemu's view, one
# line naming each fault; failed converts leave nothing behind.
. "$(dirname "$0")/lib"

# corrupt.py KIND FILE: the faults below, written where qemu-img put each structure.
cat >"$T/corrupt.py" <<'PY'
import struct, sys
def rd(f, off, fmt):
    f.seek(off); return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
def wr(f, off, fmt, v):
    f.seek(off); f.write(struct.pack(fmt, v))
def bitmap_dir(f):
    off = rd(f, 100, '>I')
    while rd(f, off, '>I') != 0x23852875:
        off += 8 + (rd(f, off + 4, '>I') + 7) // 8 * 8
    return rd(f, off + 24, '>Q')
kind, path = sys.argv[1], sys.argv[2]
f = open(path, 'r+b')
cs = 1 << rd(f, 20, '>I')
if kind in ('snap-l1-unaligned', 'snap-l1-beyond'):
    so = rd(f, 64, '>Q')
    wr(f, so, '>Q', rd(f, so, '>Q') + 512 if kind == 'snap-l1-unaligned' else 1 << 40)
elif kind == 'snap-extra':
    wr(f, rd(f, 64, '>Q') + 36, '>I', 2000)
elif kind == 'snap-count':
    wr(f, 60, '>I', 70000)
elif kind == 'rt-header':
    wr(f, 48, '>Q', 0)
elif kind == 'unknown-autoclear':
    wr(f, 88, '>Q', rd(f, 88, '>Q') | (1 << 5))
elif kind == 'bitmap-entry':
    t = rd(f, bitmap_dir(f), '>Q')
    wr(f, t, '>Q', rd(f, t, '>Q') | 2)
elif kind == 'data-beyond':
    l2 = rd(f, rd(f, 40, '>Q'), '>Q') & 0x00fffffffffffe00
    wr(f, l2 + 8, '>Q', (1 << 63) | (1 << 40))
elif kind == 'copied':
    l1 = rd(f, 40, '>Q'); l2 = rd(f, l1, '>Q') & 0x00fffffffffffe00
    wr(f, l2, '>Q', rd(f, l2, '>Q') & ~(1 << 63))
elif kind == 'leak':
    rb = rd(f, rd(f, 48, '>Q'), '>Q')
    f.seek(0, 2); n = (f.tell() + cs - 1) // cs
    f.truncate((n + 1) * cs); wr(f, rb + 2 * n, '>H', 1)
PY
corrupt() { python3 "$T/corrupt.py" "$@"; }
# bitmaps as qemu-img sees them (name, granularity, flags), one line
qbitmaps() { qemu-img info --output=json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['format-specific']['data'].get('bitmaps'))"; }

# Images qemu-img made: 0, 1, 2 and 5 internal snapshots (data written between them),
# persistent bitmaps with data, and bitmaps beside snapshots.
for n in 0 1 2 5; do
	qemu-img create -q -f qcow2 "$T/s$n.qcow2" 32M
	qio "$T/s$n.qcow2" qcow2 'write -P 1 0 1M'
	i=1
	while [ $i -le $n ]; do
		qemu-img snapshot -c "snap$i" "$T/s$n.qcow2"
		qio "$T/s$n.qcow2" qcow2 "write -P $((i + 1)) ${i}M 64k" "write -z $((i + 8))M 64k"
		i=$((i + 1))
	done
done
qemu-img create -q -f qcow2 "$T/bm.qcow2" 32M
qemu-img bitmap --add "$T/bm.qcow2" bm1
qemu-img bitmap --add -g 512k "$T/bm.qcow2" bm2
qio "$T/bm.qcow2" qcow2 'write -P 9 0 3M' 'write -P 8 20M 64k'
cp "$T/s2.qcow2" "$T/sbm.qcow2"
qemu-img bitmap --add "$T/sbm.qcow2" inc0
qio "$T/sbm.qcow2" qcow2 'write -P 7 4M 1M'
IMAGES="s0 s1 s2 s5 bm sbm"

for i in $IMAGES; do
	f="$T/$i.qcow2"
	qemu-img check -q "$f" >/dev/null 2>&1; q=$?
	check_rc "check $i: the verdict of qemu-img ($q)" "$q" "$PI" check "$f"
	check "check $i --output=json: no corruptions, no leaks" sh -c "$PI check --output=json $f | grep -q '\"check-errors\": 0' &&
		! $PI check --output=json $f | grep -q -e corruptions -e leaks"
	cp "$f" "$T/r.qcow2"
	before=$(qbitmaps "$f")
	check "check -r all on $i: the file is unchanged, qemu still finds it clean" sh -c "$PI check -r all $T/r.qcow2 &&
		cmp $f $T/r.qcow2 && qemu-img check -q $T/r.qcow2"
	check "check -r all on $i: qemu's view of the bitmaps is unchanged" test "$(qbitmaps "$T/r.qcow2")" = "$before"
done
check "bitmaps exist where expected (qemu)" sh -c "qemu-img info $T/bm.qcow2 | grep -q 'name: bm2' && qemu-img info $T/sbm.qcow2 | grep -q 'name: inc0'"

# A leak beside bitmaps: found, named, repaired without touching the bitmaps.
cp "$T/bm.qcow2" "$T/leak.qcow2"
corrupt leak "$T/leak.qcow2"
check_rc "bitmaps + leak: qemu says leaks (3)" 3 qemu-img check "$T/leak.qcow2"
check_rc "bitmaps + leak: plinth-img says leaks (3)" 3 "$PI" check "$T/leak.qcow2"
check "bitmaps + leak: the leaked cluster is named" sh -c "$PI check $T/leak.qcow2 2>&1 | grep -q 'Leaked cluster [0-9]* at 0x[0-9a-f]* refcount=1 reference=0'"
check "check -r leaks: qemu finds it clean and the bitmaps as before" sh -c "$PI check -r leaks $T/leak.qcow2 >/dev/null &&
	qemu-img check -q $T/leak.qcow2 && [ \"\$(qemu-img info $T/leak.qcow2 | grep -c -e in-use -e auto)\" = 2 ] &&
	! qemu-img info $T/leak.qcow2 | grep -q in-use"
check "check -r leaks: bitmaps still as qemu saw them" test "$(qbitmaps "$T/leak.qcow2")" = "$(qbitmaps "$T/bm.qcow2")"

# Corrupt images: the verdict, and one line naming the structure and its offset.
fault() { # NAME IMAGE KIND WANT-RC PATTERN
	cp "$T/$2.qcow2" "$T/f.qcow2"
	corrupt "$3" "$T/f.qcow2"
	"$PI" check "$T/f.qcow2" >/dev/null 2>"$T/err"; rc=$?
	if [ "$rc" = "$4" ] && grep -q -- "$5" "$T/err"; then ok "$1"
	else notok "$1 (rc=$rc, want $4, a line matching '$5')"; sed 's/^/#   /' "$T/err" | head -5; fi
}
fault "snapshot L1 table not aligned: exit 2 (as qemu), named" s2 snap-l1-unaligned 2 \
	"ERROR snapshot 0 ('snap1'): L1 table at 0x[0-9a-f]*200 (1 entries) is not aligned to a cluster"
fault "snapshot L1 table beyond the file: exit 2 (as qemu), named" s5 snap-l1-beyond 2 \
	"ERROR snapshot 0 ('snap1'): L1 table at 0x10000000000 (1 entries) lies outside the file"
fault "bitmap table entry with reserved bits: exit 2, named" bm bitmap-entry 2 \
	"ERROR bitmap 'bm1': table entry 0 at 0x[0-9a-f]* is invalid"
fault "data cluster beyond the file: exit 2 (as qemu), named" s0 data-beyond 2 \
	"ERROR active L2 entry at 0x40008: data cluster 0x10000000000 lies beyond the end of the file"
fault "COPIED flag missing on a data cluster: exit 2 (as qemu), named" s0 copied 2 \
	"ERROR OFLAG_COPIED data cluster: L2 entry at 0x40000=0x50000 refcount=1"
check "COPIED flag: check -r all fixes it, qemu agrees" sh -c "$PI check -r all $T/f.qcow2 >/dev/null &&
	qemu-img check -q $T/f.qcow2 && $PI check $T/f.qcow2 >/dev/null"
cp "$T/s2.qcow2" "$T/f.qcow2"; corrupt snap-l1-beyond "$T/f.qcow2"
check_rc "qemu agrees: snapshot L1 beyond the file is an error" 2 qemu-img check "$T/f.qcow2"
cp "$T/f.qcow2" "$T/f0.qcow2"
check "a table that cannot be walked: -r leaks frees nothing and says why" sh -c "$PI check -r leaks $T/f.qcow2 2>&1 |
	grep -q 'leaked clusters are not freed: a table above could not be walked' && cmp $T/f.qcow2 $T/f0.qcow2"
# Snapshot table limits are QEMU's: more than 1 KiB of extra data, more than 65536 entries.
cp "$T/s2.qcow2" "$T/f.qcow2"; corrupt snap-extra "$T/f.qcow2"
check_fail "snapshot entry with 2000 bytes of extra data: refused" "$PI" info "$T/f.qcow2"
check "... with a line naming the entry" sh -c "$PI info $T/f.qcow2 2>&1 | grep -q 'snapshot table entry 0 at 0x[0-9a-f]* has more than 1 KiB of extra data'"
check_fail "qemu refuses it too" qemu-img info "$T/f.qcow2"
cp "$T/s2.qcow2" "$T/f.qcow2"; corrupt snap-count "$T/f.qcow2"
check_fail "70000 snapshots: refused" "$PI" check "$T/f.qcow2"
check_fail "qemu refuses it too" qemu-img check "$T/f.qcow2"
# A long snapshot name (qemu accepts up to 65535 bytes): read, listed, clean.
cp "$T/s0.qcow2" "$T/long.qcow2"
qemu-img snapshot -c "$(printf 'n%.0s' $(seq 1 600))" "$T/long.qcow2"
check "snapshot with a 600-byte name: info and a clean check" sh -c "$PI info $T/long.qcow2 | grep -q nnnnnnnnnn && $PI check $T/long.qcow2"
cp "$T/s0.qcow2" "$T/f.qcow2"; corrupt rt-header "$T/f.qcow2"
check_fail "refcount table over the header: refused" "$PI" check "$T/f.qcow2"
check "refcount table over the header: the line says so" sh -c "$PI info $T/f.qcow2 2>&1 | grep -q 'refcount table at 0 (1 clusters) overlaps the header'"
cp "$T/bm.qcow2" "$T/f.qcow2"; corrupt unknown-autoclear "$T/f.qcow2"; cp "$T/f.qcow2" "$T/f0.qcow2"
check_fail "unknown autoclear feature: repair refused" "$PI" check -r all "$T/f.qcow2"
check "unknown autoclear feature: the file is untouched" cmp "$T/f.qcow2" "$T/f0.qcow2"

# Writes through plinth are tracked in enabled bitmaps, as qemu tracks them: commit the
# same overlay into the same image with both tools, then compare every bitmap bit by bit.
cat >"$T/bmdump.py" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
rd = lambda o, fmt: struct.unpack_from(fmt, d, o)[0]
cs = 1 << rd(20, '>I'); size = rd(24, '>Q'); off = rd(100, '>I')
while rd(off, '>I') != 0x23852875:
    off += 8 + (rd(off + 4, '>I') + 7) // 8 * 8
n = rd(off + 8, '>I'); do = rd(off + 24, '>Q')
for i in range(n):
    to, ts, fl, ty, gb, nl, ex = struct.unpack_from('>QIIBBHI', d, do)
    data = b''
    for j in range(ts):
        e = rd(to + 8 * j, '>Q'); o = e & 0x00fffffffffffe00
        data += d[o:o + cs] if o else (b'\xff' if e & 1 else b'\0') * cs
    nb = (size + (1 << gb) - 1) >> gb
    print(d[do + 24 + ex:do + 24 + ex + nl].decode(), fl, [b for b in range(nb) if data[b // 8] >> (b % 8) & 1])
    do += (24 + ex + nl + 7) // 8 * 8
PY
qemu-img create -q -f qcow2 "$T/w.qcow2" 32M
qemu-img bitmap --add "$T/w.qcow2" on1
qemu-img bitmap --add -g 128k "$T/w.qcow2" on2
qemu-img bitmap --add --disable "$T/w.qcow2" off1
qio "$T/w.qcow2" qcow2 'write -P 1 0 1M'
cp "$T/w.qcow2" "$T/wq.qcow2"
qemu-img create -q -f qcow2 -b w.qcow2 -F qcow2 "$T/t.qcow2"
qemu-img create -q -f qcow2 -b wq.qcow2 -F qcow2 "$T/tq.qcow2"
for t in t tq; do
	qio "$T/$t.qcow2" qcow2 'write -P 5 5M 4k' 'write -P 6 10M 128k' 'write -z 20M 64k' 'write -P 7 33553920 512'
done
qemu-img commit -q "$T/tq.qcow2"
check "bitmaps: plinth's commit is tracked as qemu's (every bit, the flags), both clean" sh -c "$PI commit --allow-backing $T/t.qcow2 >/dev/null &&
	qemu-img check -q $T/w.qcow2 && $PI check $T/w.qcow2 >/dev/null && qemu-img compare -q $T/w.qcow2 $T/wq.qcow2 &&
	[ \"\$(python3 $T/bmdump.py $T/w.qcow2)\" = \"\$(python3 $T/bmdump.py $T/wq.qcow2)\" ] &&
	python3 $T/bmdump.py $T/w.qcow2 | grep -q '^on1 2 .*, 80, 160, 161, 320, 511]'"
check "bitmaps: qemu sees them valid after plinth wrote" test "$(qbitmaps "$T/w.qcow2")" = \
	"[{'flags': ['auto'], 'name': 'on1', 'granularity': 65536}, {'flags': ['auto'], 'name': 'on2', 'granularity': 131072}, {'flags': [], 'name': 'off1', 'granularity': 65536}]"
before=$(python3 "$T/bmdump.py" "$T/w.qcow2")
check "bitmaps: resize within the bitmap tables (64M), qemu finds them valid and unchanged" sh -c "$PI resize $T/w.qcow2 64M >/dev/null &&
	qemu-img check -q $T/w.qcow2 && [ \"\$(python3 $T/bmdump.py $T/w.qcow2)\" = \"$before\" ] &&
	qemu-img info $T/w.qcow2 | grep -q 'name: on2' && ! qemu-img info $T/w.qcow2 | grep -q in-use"
check_fail "bitmaps: a resize that would need larger bitmap tables is refused" "$PI" resize "$T/w.qcow2" 40G
check "bitmaps: ... and leaves the image as it was" sh -c "qemu-img check -q $T/w.qcow2 && qemu-img info $T/w.qcow2 | grep -q '(67108864 bytes)'"

# info --output=json: qemu-img's fields (snapshots, bitmaps, full backing name).
cat >"$T/same.py" <<'PY'
import json, subprocess, sys
img, pi = sys.argv[1], sys.argv[2]
q = json.loads(subprocess.check_output(['qemu-img', 'info', '--output=json', img]))
p = json.loads(subprocess.check_output([pi, 'info', '--output=json', img]))
keys = ['virtual-size', 'cluster-size', 'format', 'backing-filename', 'full-backing-filename',
        'backing-filename-format', 'dirty-flag']
bad = [k for k in keys if q.get(k) != p.get(k)]
snap = lambda j: [(s['id'], s['name'], s['vm-state-size'], s['date-sec']) for s in j.get('snapshots', [])]
if snap(q) != snap(p): bad.append('snapshots')
data = lambda j: j.get('format-specific', {}).get('data', {})
for k in ('bitmaps', 'compat', 'refcount-bits', 'extended-l2', 'lazy-refcounts', 'corrupt'):
    if data(q).get(k) != data(p).get(k): bad.append(k)
if bad: sys.exit('differ: %s' % bad)
PY
qemu-img create -q -f qcow2 -b s5.qcow2 -F qcow2 "$T/ov.qcow2"
for i in $IMAGES ov; do
	check "info --output=json $i: qemu-img's fields and values" python3 "$T/same.py" "$T/$i.qcow2" "$PI"
done
check "info lists bitmaps" sh -c "$PI info $T/bm.qcow2 | grep -A4 bitmaps: | grep -q 'name: bm1'"

# A failed convert: one line, and no output left behind (also a VMDK's extent file).
cp "$T/s0.qcow2" "$T/bad.qcow2"; corrupt data-beyond "$T/bad.qcow2"
for o in raw:out.raw qcow2:out.qcow2 vmdk:out.vmdk; do
	f=${o%%:*}; opts=""; [ "$f" = vmdk ] && opts="-o subformat=monolithicFlat"
	"$PI" convert -O "$f" $opts "$T/bad.qcow2" "$T/${o#*:}" >/dev/null 2>"$T/err"; rc=$?
	if [ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && ! ls "$T"/out* >/dev/null 2>&1; then
		ok "failed convert -O $f: one line, no output left"
	else
		notok "failed convert -O $f: one line, no output left (rc=$rc)"; sed 's/^/#   /' "$T/err"; ls "$T" | sed 's/^/#   /'
	fi
done
touch "$T/keep-me.raw"
"$PI" convert -O raw "$T/bad.qcow2" "$T/keep.raw" 2>/dev/null
check "failed convert: other files of the same stem are kept" test -e "$T/keep-me.raw"
finish
