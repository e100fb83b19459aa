#!/usr/bin/env python3
# Writes the seed corpora of the virtio fuzz targets (tests/fuzz/corpus/<target>/):
# well-formed requests in the layout of virtio_harness.h, from which the fuzzer
# mutates. Run from tests/fuzz/.
import os
import struct

NEXT, WRITE, IND = 1, 2, 4


def mem(size=0x5000):
    return bytearray(size)


def desc(m, base, i, addr, ln, flags, nxt):
    struct.pack_into('<QIHH', m, base + 16 * i, addr, ln, flags, nxt)


def avail(m, abase, heads):
    struct.pack_into('<HH', m, abase, 0, len(heads))
    for k, h in enumerate(heads):
        struct.pack_into('<H', m, abase + 4 + 2 * k, h)


def queue(qi):
    b = 0x100 + 0xc00 * qi
    return b, b + 0x500, b + 0x800


def write(name, fn, data):
    d = os.path.join('corpus', name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fn), 'wb') as f:
        f.write(bytes(data))


# virtq: a chain, an indirect table, a buffer straddling the slots; and a loop
m = mem()
m[0], m[1] = 4, 3
d, a, u = 0x100, 0x600, 0x900
desc(m, d, 0, 0x2000, 16, NEXT, 1)
desc(m, d, 1, 0x3000, 512, WRITE, 0)
desc(m, d, 2, 0x4000, 48, IND, 0)
for k in range(3):
    desc(m, 0x4000, k, 0x3000 + 64 * k, 64, (NEXT if k < 2 else 0) | (WRITE if k else 0), k + 1)
desc(m, d, 3, 0xfff0, 0x40, WRITE, 0)
avail(m, a, [0, 2, 3])
write('virtq', 'chains', m)
m2 = bytearray(m)
desc(m2, d, 1, 0x3000, 512, WRITE | NEXT, 0)
write('virtq', 'loop', m2)


def blkreq(typ, sector, dlen, dwrite, extra=b''):
    m = mem()
    m[0], m[1] = 4, 3
    d, a, u = queue(0)
    struct.pack_into('<IIQ', m, 0x2000, typ, 0, sector)
    m[0x3000:0x3000 + len(extra)] = extra
    desc(m, d, 0, 0x2000, 16, NEXT, 1)
    desc(m, d, 1, 0x3000, dlen, NEXT | (WRITE if dwrite else 0), 2)
    desc(m, d, 2, 0x4000, 1, WRITE, 0)
    avail(m, a, [0])
    return m


write('virtio-blk', 'read', blkreq(0, 3, 1024, True))
write('virtio-blk', 'write', blkreq(1, 5, 512, False, b'\xaa' * 512))
write('virtio-blk', 'flush', blkreq(4, 0, 0, False))
write('virtio-blk', 'getid', blkreq(8, 0, 20, True))
write('virtio-blk', 'discard', blkreq(11, 0, 16, False, struct.pack('<QII', 8, 8, 0)))
write('virtio-blk', 'zeroes', blkreq(13, 0, 32, False,
                                     struct.pack('<QII', 8, 8, 1) + struct.pack('<QII', 100, 1, 0)))
m = blkreq(0, 3, 1024, True)
d, a, u = queue(0)
for k, (ad, ln, fl) in enumerate([(0x2000, 16, NEXT), (0x3000, 512, NEXT | WRITE), (0x4000, 1, WRITE)]):
    desc(m, 0x4800, k, ad, ln, fl, k + 1)
desc(m, d, 0, 0x4800, 48, IND, 0)
write('virtio-blk', 'indirect', m)

# net: two receive buffers, one frame to send, one frame arriving (input tail at 0x2000)
m = mem(0x2000 + 80)
m[0], m[1], m[2] = 4, 3, 1
d0, a0, u0 = queue(0)
d1, a1, u1 = queue(1)
desc(m, d0, 0, 0x1800, 1024, WRITE, 0)
desc(m, d0, 1, 0x1c00, 1024, WRITE, 0)
avail(m, a0, [0, 1])
desc(m, d1, 0, 0x1a00, 12 + 60, 0, 0)
avail(m, a1, [0])
m[0x2000:0x2000 + 80] = bytes(12) + bytes(range(68))
write('virtio-net', 'rx-tx', m)
m2 = bytearray(m)
m2[2] = 0
write('virtio-net', 'rx-tx-nomrg', m2)

# console: a receive buffer and some output
m = mem()
m[0], m[1] = 3, 1
d0, a0, u0 = queue(0)
d1, a1, u1 = queue(1)
desc(m, d0, 0, 0x3000, 64, WRITE, 0)
avail(m, a0, [0])
m[0x3100:0x3102] = b'hi'
desc(m, d1, 0, 0x3100, 2, 0, 0)
avail(m, a1, [0])
write('virtio-console', 'io', m)

# balloon: a PFN on inflateq, two free blocks on the reporting queue (one across the slots)
m = mem(0x11000)
m[0], m[1] = 3, 1
d0, a0, u0 = queue(0)
d2, a2, u2 = queue(2)
struct.pack_into('<I', m, 0x3000, 4)
desc(m, d0, 0, 0x3000, 4, 0, 0)
avail(m, a0, [0])
desc(m, d2, 0, 0x4000, 0x2000, WRITE, 1)
desc(m, d2, 1, 0xf000, 0x2000, WRITE, 0)
avail(m, a2, [0])
write('virtio-balloon', 'report', m)

# pci: register accesses of a driver bringing virtio-rng up and kicking it
ops = []


def op(kind, bar, ln, off, val):
    ops.append(struct.pack('<BBBBII', kind, bar, ln, 0, off, val))


def w(off, val, ln):
    op(1, 0, {1: 0, 2: 1, 4: 2, 8: 3}[ln], off, val)


w(0x14, 1, 1)
w(0x14, 3, 1)
w(0x08, 0, 4)
w(0x0c, 0x30000000, 4)
w(0x08, 1, 4)
w(0x0c, 1, 4)
w(0x14, 0xb, 1)
op(3, 0, 1, 0x02, 0xc000)
for v in range(2):
    op(1, 1, 2, 16 * v, 0xfee00000)
    op(1, 1, 2, 16 * v + 8, 0x40 + v)
    op(1, 1, 2, 16 * v + 12, 0)
op(3, 0, 1, 0x02, 0x8000)
for off, val, ln in [(0x16, 0, 2), (0x18, 16, 2), (0x1a, 1, 2), (0x20, 0x100, 4),
                     (0x28, 0x600, 4), (0x30, 0x900, 4), (0x1c, 1, 2), (0x14, 0xf, 1),
                     (0x3000, 0, 2)]:
    w(off, val, ln)
op(0, 0, 0, 0x1000, 0)
op(0, 0, 2, 0x14, 0)
write('virtio-pci', 'bringup', b''.join(ops))

# vsock: a REQUEST to port 1 (something listens there), data, a credit request, a
# shutdown; then a receive buffer for the answers.
m = mem()
m[0], m[1] = 3, 1
d0, a0, u0 = queue(0)
d1, a1, u1 = queue(1)
for k in range(4):
    desc(m, d0, k, 0x3000 + 0x100 * k, 0x100, WRITE, 0)
avail(m, a0, [0, 1, 2, 3])
pkts = [(1, 0, b''), (5, 0, b'hello'), (7, 0, b''), (4, 3, b''), (1, 0, b'')]
heads = []
for k, (op, flags, payload) in enumerate(pkts):
    at = 0x4000 + 0x100 * k
    dport = 1 if k < 4 else 9
    struct.pack_into('<QQIIIHHIII', m, at, 3, 2, 1000 + (k == 4), dport, len(payload), 1, op,
                     flags, 65536, 0)
    m[at + 44:at + 44 + len(payload)] = payload
    desc(m, d1, k, at, 44 + len(payload), 0, 0)
    heads.append(k)
avail(m, a1, heads)
write('virtio-vsock', 'session', m)

# gpu: the driver's first frame as a command stream at 0x2000 (create a 16 x 16
# resource, back it with 0x3000.., show it, transfer, flush, display info, cursor,
# detach, unref), and on the control queue a GET_DISPLAY_INFO with its answer buffer.
m = mem(0x4000)
m[0], m[1] = 3, 0


def gpu_hdr(t):
    return struct.pack('<IIQIB3x', t, 1, 7, 0, 0)


cmds = [
    (0x7e, gpu_hdr(0x0104) + struct.pack('<IIII', 1, 2, 16, 16)),
    (0x7e, gpu_hdr(0x0106) + struct.pack('<II', 1, 2) + struct.pack('<QII', 0x3000, 512, 0)
     + struct.pack('<QII', 0x3200, 512, 0)),
    (0x7e, gpu_hdr(0x0103) + struct.pack('<IIIIII', 0, 0, 16, 16, 0, 1)),
    (0x7e, gpu_hdr(0x0105) + struct.pack('<IIIIQII', 0, 0, 16, 16, 0, 1, 0)),
    (0x7e, gpu_hdr(0x0104) + struct.pack('<IIIIII', 2, 2, 4, 4, 1, 0)),
    (0xfe, gpu_hdr(0x0100)),
    (0x01, gpu_hdr(0x0300) + struct.pack('<IIIIIIII', 0, 3, 4, 0, 1, 0, 0, 0)),
    (0x01, gpu_hdr(0x0301) + struct.pack('<IIIIIIII', 0, 9, 9, 0, 0, 0, 0, 0)),
    (0x7e, gpu_hdr(0x0107) + struct.pack('<II', 1, 0)),
    (0x7e, gpu_hdr(0x0102) + struct.pack('<II', 1, 0)),
]
at = 0x2000
for kind, c in cmds:
    struct.pack_into('<BH', m, at, kind, len(c))
    m[at + 3:at + 3 + len(c)] = c
    at += 3 + len(c)
d0, a0, u0 = queue(0)
m[0x1c00:0x1c00 + 24] = gpu_hdr(0x0100)
desc(m, d0, 0, 0x1c00, 24, NEXT, 1)
desc(m, d0, 1, 0x1d00, 408, WRITE, 0)
avail(m, a0, [0])
write('virtio-gpu', 'first-frame', m)
