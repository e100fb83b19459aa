#!/bin/bash
# plinth-img bench: the reads it times return the image's bytes at the offsets it promises
# (checked with --checksum against qemu-img's raw conversion, for every format), and bad
# options are refused with one line.
. "$(dirname "$0")/lib"

# expect FMT RAW JSON MODE ARGS: recompute bench's offsets and FNV-1a 64 over RAW in Python,
# then compare with what plinth-img printed (count, bytes and checksum).
expect() {
	python3 - "$@" <<'PY'
import json, sys
fmt, raw, out, mode = sys.argv[1:5]
args = sys.argv[5:]
j = json.load(open(out))
data = open(raw, "rb").read()
size, bs = len(data), 4096
M = (1 << 64) - 1
def splitmix(state):
    while True:
        state = (state + 0x9e3779b97f4a7c15) & M
        z = state
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
        yield z ^ (z >> 31)
if mode == "random":
    count, seed = int(args[0]), int(args[1])
    g = splitmix(seed)
    offs = [next(g) % (size // bs) * bs for _ in range(count)]
elif mode == "sequential":
    count, step = int(args[0]), int(args[1])
    offs, o = [], 0
    for _ in range(count):
        offs.append(o)
        o = (o + step) % (size - bs)
else:
    offs = [int(x) for x in open(args[0])]
    count = len(offs)
h = 0xcbf29ce484222325
for o in offs:
    for b in data[o:o + bs]:
        h = ((h ^ b) * 0x100000001b3) & M
want = {"count": count, "bytes": count * bs, "checksum": "%016x" % h, "pattern": mode,
        "bufsize": bs}
got = {k: j.get(k) for k in want}
if got != want or not j["seconds"] >= 0 or not j["iops"] >= 0:
    sys.exit("want %s, got %s" % (want, j))
# A test that reads only holes proves little: most offsets must hit data.
nz = sum(1 for o in offs if any(data[o:o + bs]))
if nz < len(offs) // 4:
    sys.exit("only %d of %d reads hit data" % (nz, len(offs)))
PY
}

# Data in most of the image, so reads mostly hit allocated clusters, plus one hole.
python3 -c "
import random
r = random.Random(5)
print(*sorted(set(r.randrange(0, 32 * 256) * 4096 for _ in range(150))), sep='\n')" >"$T/list"
for fmt in raw qcow2 vpc vhdx vmdk; do
	qemu-img create -q -f $fmt "$T/img.$fmt" 32M
	qio "$T/img.$fmt" $fmt 'write -P 0xab 0 12M' 'write -P 0x5c 16M 15M' 'write -P 0x11 31M 64k' \
		'write -P 0x77 33550336 8k'
	qemu-img convert -f $fmt -O raw "$T/img.$fmt" "$T/ref.raw"
	check "bench $fmt: random reads return the image's bytes at the seeded offsets" sh -c "
		$PI bench -f $fmt -c 300 --seed 7 --checksum --output=json $T/img.$fmt >$T/out.json &&
		$(declare -f expect); expect $fmt $T/ref.raw $T/out.json random 300 7"
	check "bench $fmt: sequential with a step wraps modulo (size - bufsize) like qemu-img bench" sh -c "
		$PI bench -f $fmt -c 200 --pattern sequential -S 1M --checksum --output=json $T/img.$fmt >$T/out.json &&
		$(declare -f expect); expect $fmt $T/ref.raw $T/out.json sequential 200 1048576"
	check "bench $fmt: --offsets reads exactly the listed offsets" sh -c "
		$PI bench -f $fmt --offsets $T/list --checksum --output=json $T/img.$fmt >$T/out.json &&
		$(declare -f expect); expect $fmt $T/ref.raw $T/out.json list $T/list"
	check "bench $fmt: the image is unchanged" sh -c "
		qemu-img convert -f $fmt -O raw $T/img.$fmt $T/after.raw && cmp $T/ref.raw $T/after.raw"
done
check "bench: the human output counts reads and bytes" sh -c "
	$PI bench -c 1000 -s 8k $T/img.qcow2 | grep -q '^1000 reads, 8192000 bytes, [0-9]* IOPS'"
check "bench: a different seed reads other offsets" sh -c "
	a=\$($PI bench -c 50 --seed 1 --checksum $T/img.qcow2 | tail -1)
	b=\$($PI bench -c 50 --seed 2 --checksum $T/img.qcow2 | tail -1); [ \"\$a\" != \"\$b\" ]"

printf '0\n4096\n' >"$T/two"
printf '0\nx12\n' >"$T/bad"
printf '0\n33554432\n' >"$T/beyond"
: >"$T/empty"
qemu-img create -q -f qcow2 "$T/tiny.qcow2" 2k
check_fail "bench refuses -c 0" "$PI" bench -c 0 "$T/img.raw"
check_fail "bench refuses a non-numeric count" "$PI" bench -c 10x "$T/img.raw"
check_fail "bench refuses -s 0" "$PI" bench -s 0 "$T/img.raw"
check_fail "bench refuses a buffer over 1G" "$PI" bench -s 2G "$T/img.raw"
check_fail "bench refuses an unknown pattern" "$PI" bench --pattern zigzag "$T/img.raw"
check_fail "bench refuses -S without --pattern sequential" "$PI" bench -S 64k "$T/img.raw"
check_fail "bench refuses -S 0" "$PI" bench --pattern sequential -S 0 "$T/img.raw"
check_fail "bench refuses a bad seed" "$PI" bench --seed -1 "$T/img.raw"
check_fail "bench refuses --output=xml" "$PI" bench --output=xml "$T/img.raw"
check_fail "bench refuses --offsets with --pattern" "$PI" bench --offsets "$T/two" --pattern random "$T/img.raw"
check_fail "bench refuses a non-numeric offset" "$PI" bench --offsets "$T/bad" "$T/img.raw"
check_fail "bench refuses an offset whose read ends beyond the image" "$PI" bench --offsets "$T/beyond" "$T/img.raw"
check_fail "bench refuses an empty offset list" "$PI" bench --offsets "$T/empty" "$T/img.raw"
check_fail "bench refuses a missing offset list" "$PI" bench --offsets "$T/nosuch" "$T/img.raw"
check_fail "bench refuses -c larger than the offset list" "$PI" bench -c 3 --offsets "$T/two" "$T/img.raw"
check_fail "bench refuses an image smaller than one read" "$PI" bench "$T/tiny.qcow2"
check_fail "bench refuses a missing image" "$PI" bench "$T/nosuch.qcow2"
check_fail "bench refuses a wrong -f" "$PI" bench -f vhdx "$T/img.qcow2"
check_fail "bench needs exactly one FILE" "$PI" bench
finish
