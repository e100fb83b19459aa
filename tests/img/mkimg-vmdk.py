#!/usr/bin/env python3
# mkimg-vmdk.py RAW OUT: write RAW as FreeBSD mkimg's monolithicSparse VMDK (mkimg is not in
# Debian). The layout, from mkimg's vmdk.c: header version 1, flags NL test + redundant GD,
# 8 KiB grains, 512 GTEs per GT, the descriptor at sector 1 with CID 0 and an EMPTY extent
# file name, then the GD and its GTs, the redundant GD and a copy of the GTs, grains from the
# overhead (grain aligned) on, in disk order, only those holding data; the size rounded up to
# 1 MiB.
import struct, sys
data = open(sys.argv[1], "rb").read()
size = (len(data) + (1 << 20) - 1) & ~((1 << 20) - 1)
grain, ngtes = 16, 512                          # sectors per grain, GTEs per GT
sectors = size // 512
ngrains = sectors // grain
ngts = (ngrains + ngtes - 1) // ngtes
desc = ('# Disk DescriptorFile\nversion=1\nCID=00000000\nparentCID=ffffffff\n'
        'createType="monolithicSparse"\n# Extent description\nRW %d SPARSE ""\n'
        '# The Disk Data Base\n#DDB\nddb.adapterType = "ide"\nddb.geometry.cylinders = "6"\n'
        'ddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\n' % sectors).encode()
desc += bytes(-len(desc) % 512)
sec = 1 + len(desc) // 512
gdsz = (ngts * 4 + 511) & ~511
gd_off = sec; sec += gdsz // 512
gd = [sec + n * (ngtes * 4 // 512) for n in range(ngts)]; sec += ngts * ngtes * 4 // 512
rgd_off = sec; sec += gdsz // 512
rgd = [sec + n * (ngtes * 4 // 512) for n in range(ngts)]; sec += ngts * ngtes * 4 // 512
overhead = (sec + grain - 1) & ~(grain - 1)
gt = [0] * (ngts * ngtes)
cur, grains = overhead, b""
for n in range(ngrains):
    g = data[n * grain * 512:(n + 1) * grain * 512]
    if any(g):
        gt[n] = cur; cur += grain; grains += g
hdr = struct.pack("<IIIQQQQIQQQB", 0x564d444b, 1, 3, sectors, grain, 1, len(desc) // 512, ngtes,
                  rgd_off, gd_off, overhead, 0) + struct.pack(">I", 0x0a200d0a) + struct.pack("<H", 0)
hdr += bytes(512 - len(hdr))
def table(v, pad): b = struct.pack("<%dI" % len(v), *v); return b + bytes(pad - len(b))
gts = table(gt, ngts * ngtes * 4)
img = hdr + desc + table(gd, gdsz) + gts + table(rgd, gdsz) + gts
img += bytes(overhead * 512 - len(img)) + grains
open(sys.argv[2], "wb").write(img)
