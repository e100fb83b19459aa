# virtio-blk in a real guest: a pattern written through /dev/vda is in the host file
# after power-off; a read-only disk refuses writes; disks appear in command-line
# order with their sizes and serials; a qcow2 image works through the image library.
. tests/integration/lib.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$dir/console
truncate -s 64M "$dir/a.img"
truncate -s 32M "$dir/b.img"
printf 'read-only-original' | dd of="$dir/b.img" conv=notrunc 2>/dev/null
"$BUILD/plinth-img" create -f qcow2 "$dir/c.qcow2" 16M >/dev/null || fail "cannot create qcow2"

run_plinth "$out" '
	echo "sizes $(cat /sys/block/vda/size) $(cat /sys/block/vdb/size) $(cat /sys/block/vdc/size)"
	echo "ro $(cat /sys/block/vda/ro) $(cat /sys/block/vdb/ro)"
	echo "serial $(cat /sys/block/vda/serial) $(cat /sys/block/vdb/serial)"
	printf "plinth-pattern-%s" 4711 | dd of=/dev/vda bs=512 seek=2048 conv=sync,fsync 2>/dev/null
	echo "vda written $?"
	if printf X | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null; then echo "vdb WRITABLE"; else echo "vdb refused"; fi
	echo "vdb reads $(head -c 18 /dev/vdb)"
	printf "in-qcow2" | dd of=/dev/vdc bs=512 seek=100 conv=sync,fsync 2>/dev/null
	echo "vdc back $(dd if=/dev/vdc bs=512 skip=100 count=1 2>/dev/null | head -c 8)"
	d=$(basename $(readlink /sys/block/vda/device))
	echo $d > /sys/bus/virtio/drivers/virtio_blk/unbind
	echo $d > /sys/bus/virtio/drivers/virtio_blk/bind
	sleep 1
	echo "after reset $(dd if=/dev/vda bs=512 skip=2048 count=1 2>/dev/null | head -c 19)"
	' \
	--disk "path=$dir/a.img,format=raw,serial=first-disk" \
	--disk "path=$dir/b.img,format=raw,readonly=on" \
	--disk "path=$dir/c.qcow2,format=qcow2" || fail "plinth exited $?"
expect_in "$out" '^plinth-guest: exit status 0' "the guest command did not finish"
expect_in "$out" '^sizes 131072 65536 32768$' "disk sizes or order wrong"
expect_in "$out" '^ro 0 1$' "read-only flag not seen by the guest"
expect_in "$out" '^serial first-disk b.img$' "serials wrong"
expect_in "$out" '^vda written 0$' "write to vda failed"
expect_in "$out" '^vdb refused$' "read-only disk accepted a write"
expect_in "$out" '^vdb reads read-only-original$' "read-only disk unreadable"
expect_in "$out" '^vdc back in-qcow2$' "qcow2 disk did not read back"
expect_in "$out" '^after reset plinth-pattern-4711$' "the disk did not come back after a driver reset"
[ "$(dd if="$dir/a.img" bs=512 skip=2048 count=1 2>/dev/null | head -c 19)" = plinth-pattern-4711 ] ||
	fail "the pattern is not in the host file"
[ "$(head -c 18 "$dir/b.img")" = read-only-original ] || fail "the read-only image changed"
"$BUILD/plinth-img" check "$dir/c.qcow2" >/dev/null || fail "qcow2 image inconsistent after the run"
"$BUILD/plinth-img" convert -O raw "$dir/c.qcow2" "$dir/c.raw" || fail "convert"
[ "$(dd if="$dir/c.raw" bs=512 skip=100 count=1 2>/dev/null | head -c 8)" = in-qcow2 ] ||
	fail "qcow2 data not in the image"
# Bad specs: one line, non-zero exit, before the guest runs.
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --disk "path=$dir/a.img,format=qcow9" \
	</dev/null >"$out" 2>&1 && fail "bad format accepted"
expect_in "$out" "unknown format 'qcow9'"
[ "$(wc -l < "$out")" -le 2 ] || fail "more than one line of error"
