#!/bin/sh
# Probing: a file that carries the magic of a format plinth-img does not read is never
# taken for raw; info names what it looks like, and -f raw still reads the bytes.
. "$(dirname "$0")/lib"

qemu-img create -q -f qed "$T/a.qed" 4M
python3 - "$T" <<'PY'
import sys, struct
t = sys.argv[1]
def put(name, head=b"", tail=b"", size=65536, at=0):
    d = bytearray(size)
    d[at:at + len(head)] = head
    if tail:
        d[size - 512:size - 512 + len(tail)] = tail
    open(t + "/" + name, "wb").write(d)
put("a.cloop", b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n")
# A LUKS1 header's start (magic, version), as cryptsetup writes it: qemu-img's own luks
# create times its key derivation and fails on a loaded machine ("Unable to get accurate
# CPU usage"), and the probe reads only the magic.
put("a.luks", b"LUKS\xba\xbe\x00\x01aes\0")
put("a.bochs", b"Bochs Virtual HD Image\0")
put("a.cow", struct.pack(">II", 0x4f4f4f4d, 3))
put("a.dmg", tail=b"koly" + struct.pack(">II", 4, 512))
put("a.tar", b"ustar\x0000", at=257)
PY
gzip -c "$T/a.qed" > "$T/a.gz"
python3 -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.compress(open(sys.argv[1], "rb").read()))' "$T/a.qed" "$T/a.xz"
for f in qed:QED luks:LUKS cloop:cloop bochs:Bochs cow:User-Mode dmg:DMG gz:gzip xz:xz tar:tar; do
	ext=${f%%:*} word=${f#*:}
	check "probe: .$ext is not taken for raw; the error names it ($word)" sh -c "! $PI info $T/a.$ext >/dev/null 2>$T/err &&
		grep -q 'looks like.*$word' $T/err && [ \$(wc -l < $T/err) = 1 ]"
	check "probe: .$ext with -f raw reads the bytes" sh -c "$PI info -f raw $T/a.$ext | grep -q 'file format: raw'"
done
head -c 1M /dev/urandom > "$T/plain"
check "probe: data without a known magic is still raw for read-only commands" sh -c "$PI info $T/plain | grep -q 'file format: raw'"

finish
