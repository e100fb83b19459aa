#!/bin/sh
# VMDK against qemu-img: monolithicSparse, monolithicFlat, streamOptimized (both layouts).
. "$(dirname "$0")/lib"

for sub in monolithicSparse monolithicFlat streamOptimized twoGbMaxExtentSparse twoGbMaxExtentFlat; do
	qemu-img create -f vmdk -o subformat=$sub "$T/q-$sub.vmdk" 32M >/dev/null
	fill "$T/q-$sub.vmdk" vmdk
	qemu-img convert -O raw "$T/q-$sub.vmdk" "$T/ref-$sub.raw"
	check "vmdk $sub: reads qemu's image" "$PI" compare --allow-backing -F raw "$T/q-$sub.vmdk" "$T/ref-$sub.raw"
	check "vmdk $sub: written by plinth, qemu-img check + compare" sh -c "$PI convert -f raw -O vmdk -o subformat=$sub \
		$T/ref-$sub.raw $T/p-$sub.vmdk && qemu-img check -q $T/p-$sub.vmdk && qemu-img compare -q -F raw $T/p-$sub.vmdk $T/ref-$sub.raw"
	check "vmdk $sub: qemu sees the subformat" sh -c "qemu-img info $T/p-$sub.vmdk | grep -q 'create type: $sub'"
done
check "vmdk monolithicSparse: sparse (< 2 MiB on disk)" test "$(disk_usage "$T/p-monolithicSparse.vmdk")" -lt 2097152
check "vmdk streamOptimized: compressed (< 200 KiB)" test "$(stat -c %s "$T/p-streamOptimized.vmdk")" -lt 204800
check "vmdk streamOptimized: VMware layout (GD at end, footer, end-of-stream marker)" python3 - "$T/p-streamOptimized.vmdk" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
assert struct.unpack_from("<Q", d, 56)[0] == 0xffffffffffffffff
assert d[-512:] == bytes(512)                                  # end-of-stream marker
assert struct.unpack_from("<I", d, len(d) - 1536 + 12)[0] == 3  # footer marker
assert d[-1024:-1020] == b"KDMV"
PY
check "vmdk: convert -c to monolithicSparse writes plain grains" sh -c "$PI convert -c -O vmdk $T/ref-monolithicSparse.raw $T/c.vmdk && qemu-img compare -q -F raw $T/c.vmdk $T/ref-monolithicSparse.raw"
check "vmdk: backing file (parentFileNameHint)" sh -c "cp $T/p-monolithicSparse.vmdk $T/base.vmdk &&
	$PI create -f vmdk -b base.vmdk $T/top.vmdk && qemu-img compare -q $T/top.vmdk $T/base.vmdk &&
	qemu-img info $T/top.vmdk | grep -q 'backing file: base.vmdk'"
check "vmdk: qemu writes into our child, we read it" sh -c "qemu-io -c 'write -P 0x7e 2M 8k' $T/top.vmdk >/dev/null &&
	qemu-img convert -O raw $T/top.vmdk $T/top.raw && $PI compare --allow-backing $T/top.vmdk $T/top.raw"

check "vmdk: our descriptor sets the Disk Data Base keys qemu-img sets (toolsVersion for vSphere...)" sh -c "
	$PI create -f vmdk -o subformat=monolithicFlat $T/keys-p.vmdk 1M && qemu-img create -q -f vmdk -o subformat=monolithicFlat $T/keys-q.vmdk 1M &&
	grep -o '^ddb\.[A-Za-z.]*' $T/keys-p.vmdk | sort > $T/kp && grep -o '^ddb\.[A-Za-z.]*' $T/keys-q.vmdk | sort > $T/kq &&
	[ -s $T/kp ] && cmp $T/kp $T/kq"

# Descriptor hazards qemu-img is known to follow: we refuse them.
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 8 FLAT "/etc/hostname" 0\n' > "$T/abs.vmdk"
check_fail "vmdk: absolute extent path refused" "$PI" info --allow-backing "$T/abs.vmdk"
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 8 FLAT "../../etc/hostname" 0\n' > "$T/dotdot.vmdk"
check_fail "vmdk: .. extent path refused" "$PI" info --allow-backing "$T/dotdot.vmdk"
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n\nRDONLY 64 FLAT "q-monolithicFlat-flat.vmdk" 0\n' > "$T/ro.vmdk"
check "vmdk: a lone RDONLY extent (blank line before it) works" sh -c "$PI info --allow-backing $T/ro.vmdk | grep -q '(32768 bytes)'"

finish
