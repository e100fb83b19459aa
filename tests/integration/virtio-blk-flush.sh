# A flush is durable the moment the guest's sync returns: the guest writes a pattern to a
# qcow2 disk (new clusters, so L2 and refcount metadata change too) and a raw disk through
# its page cache, runs `sync /dev/vda /dev/vdb` (fsync of each block device: writeback, then
# a virtio-blk FLUSH; a bare `sync` writes back but sends no flush to a device without a
# filesystem), and says so; the test kills plinth with SIGKILL at once, then checks both images.
. tests/integration/lib.sh
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
out=$dir/console
"$BUILD/plinth-img" create -f qcow2 "$dir/d.qcow2" 64M >/dev/null || fail "cannot create qcow2"
truncate -s 64M "$dir/d.raw"
cmd='for i in 1 2 3 4 5 6 7 8; do printf "flushed-pattern-%s" $i | dd of=/dev/vda bs=64k seek=$((i * 7)) conv=sync 2>/dev/null; done
printf "flushed-raw" | dd of=/dev/vdb bs=4k seek=100 conv=sync 2>/dev/null
sync /dev/vda /dev/vdb && echo SYNCED
sleep 600'
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256M \
	--cmdline "$(guest_cmdline "$cmd")" --disk "path=$dir/d.qcow2,format=qcow2" \
	--disk "path=$dir/d.raw,format=raw" </dev/null >"$out" 2>&1 &
pid=$!
for _ in $(seq 2400); do
	grep -q SYNCED "$out" && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
grep -q SYNCED "$out" || { tail -n 20 "$out"; fail "the guest never reported its sync"; }
kill -9 $pid
wait $pid 2>/dev/null
pid=
"$BUILD/plinth-img" check "$dir/d.qcow2" >/dev/null 2>&1
rc=$?
[ $rc = 0 ] || [ $rc = 3 ] || fail "qcow2 image corrupt after SIGKILL (check exit $rc)"
"$BUILD/plinth-img" convert -f qcow2 -O raw "$dir/d.qcow2" "$dir/back.raw" || fail "cannot read the qcow2 image"
for i in 1 2 3 4 5 6 7 8; do
	got=$(dd if="$dir/back.raw" bs=64k skip=$((i * 7)) count=1 2>/dev/null | head -c 17 | tr -d '\0')
	[ "$got" = "flushed-pattern-$i" ] || fail "qcow2 write $i lost after sync + SIGKILL (got '$got')"
done
[ "$(dd if="$dir/d.raw" bs=4k skip=100 count=1 2>/dev/null | head -c 11)" = flushed-raw ] ||
	fail "raw write lost after sync + SIGKILL"
if command -v qemu-img >/dev/null; then
	qemu-img check -q "$dir/d.qcow2" || fail "qemu-img check finds the qcow2 image corrupt"
fi
echo "ok: 8 qcow2 writes and 1 raw write survived SIGKILL after sync"
