#!/usr/bin/env python3
# cowd-vmdk.py RAW OUT [GRAIN_SECTORS]: write RAW as an ESX sparse extent ("COWD", the format
# of vmfsSparse snapshot deltas; nothing in Debian writes one). Layout, little-endian: a
# 2048-byte header (magic "COWD", version 1, flags 3, capacity u32 sectors, grain u32 sectors,
# GD sector u32, GD entries u32, next free sector u32, geometry), the GD at sector 4, then
# grain tables of 4096 entries (sector offsets of grains, 0 = not allocated), then the grains
# that hold data.
import struct, sys
data = open(sys.argv[1], "rb").read()
grain = int(sys.argv[3]) if len(sys.argv) > 3 else 1
gtes = 4096
sectors = len(data) // 512
ngrains = (sectors + grain - 1) // grain
ngts = (ngrains + gtes - 1) // gtes
gd_sec = 4
gd_bytes = (ngts * 4 + 511) & ~511
gt_sec0 = gd_sec + gd_bytes // 512
sec = gt_sec0 + ngts * gtes * 4 // 512
gt = [0] * (ngts * gtes)
grains = bytearray()
for n in range(ngrains):
    g = data[n * grain * 512:(n + 1) * grain * 512]
    if any(g):
        gt[n] = sec
        sec += grain
        grains += g.ljust(grain * 512, b"\0")
hdr = struct.pack("<4sIIIIIIIIII", b"COWD", 1, 3, sectors, grain, gd_sec, ngts, sec, 0, 16, 63)
hdr = hdr.ljust(2048, b"\0")
gd = struct.pack("<%dI" % ngts, *[gt_sec0 + i * gtes * 4 // 512 for i in range(ngts)]).ljust(gd_bytes, b"\0")
gts = struct.pack("<%dI" % len(gt), *gt)
open(sys.argv[2], "wb").write(hdr + gd + gts + grains)
