#!/usr/bin/env python3
# sesparse-vmdk.py RAW OUT: write RAW as a seSparse extent (ESXi 6.5+ snapshot deltas; VMware
# does not publish the layout and nothing in Debian writes one; this follows what qemu reads).
# Little-endian u64 fields. Sector 0: constant header (magic 0xcafebabe, version 2.1, capacity,
# grain 8 sectors, grain table 64 sectors, flags 0, then offset/size pairs in sectors from byte
# 80: volatile header, journal header, journal, GD, GTs, free bitmap, backmap, grains). Sector 1:
# volatile header (magic 0xcafecafe, no journal to replay). GD entries 0x10000000_<GT index>;
# GT entries: 0 unallocated, 0x2... zero grain, 0x3... allocated with the grain index split as
# bits 48..59 = index & 0xfff, bits 0..47 = index >> 12. The first all-zero grain of a table
# that has data is written as a zero grain, to cover that kind too.
import struct, sys
data = open(sys.argv[1], "rb").read()
G, GTES = 8 * 512, 4096
sectors = len(data) // 512
ngrains = (len(data) + G - 1) // G
ngts = (ngrains + GTES - 1) // GTES
gd_sec = 2
gd_sectors = (ngts * 8 + 511) // 512
gt_sec = gd_sec + gd_sectors
grains_sec = gt_sec + ngts * 64
gd = [0] * ngts
gts = []
grains = bytearray()
for t in range(ngts):
    gt = [0] * GTES
    used, zero_done = False, False
    for i in range(GTES):
        n = t * GTES + i
        if n >= ngrains:
            break
        g = data[n * G:(n + 1) * G]
        if any(g):
            k = len(grains) // G
            gt[i] = 0x3000000000000000 | ((k & 0xfff) << 48) | (k >> 12)
            grains += g.ljust(G, b"\0")
            used = True
    if used:
        for i in range(GTES):
            if gt[i] == 0 and t * GTES + i < ngrains:
                gt[i] = 0x2000000000000000
                break
        gd[t] = 0x1000000000000000 | len(gts)
        gts.append(gt)
hdr = struct.pack("<QQQQQQ", 0xcafebabe, 0x200000001, sectors, 8, 64, 0) + bytes(32)
hdr += struct.pack("<16Q", 1, 1, 0, 0, 0, 0, gd_sec, gd_sectors, gt_sec, ngts * 64, 0, 0, 0, 0,
                   grains_sec, len(grains) // 512)
vol = struct.pack("<QQQQ", 0xcafecafe, len(gts), 1, 0)
out = hdr.ljust(512, b"\0") + vol.ljust(512, b"\0")
out += struct.pack("<%dQ" % ngts, *gd).ljust(gd_sectors * 512, b"\0")
tables = b"".join(struct.pack("<%dQ" % GTES, *gt) for gt in gts)
out += tables.ljust(ngts * 64 * 512, b"\0")
out += grains
open(sys.argv[2], "wb").write(out)
