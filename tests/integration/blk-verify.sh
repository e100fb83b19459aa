# Every byte a guest writes comes back, on every format, under the default seccomp filters
# (issues #20 and #24): one 2-vCPU guest runs plinth-verify (4 threads, random offsets and
# lengths from 512 B to 1 MiB across cluster/grain/block boundaries, reads checked as they
# go, flushes, discards, write-zeroes; then every sector read back) on a 64 MiB disk of each
# format the image library writes, made by qemu-img: raw, qcow2, vhd, vhdx, vmdk. Its model
# of acknowledged writes goes to a second raw disk per format. Afterwards qemu-img check is
# clean and qemu-img's read of each image (converted to raw) agrees with that model, sector
# by sector. Meanwhile the control API is polled (the api thread under the filters, at load).
# glibc's allocator trims a thread's arena at every chance (MALLOC_TRIM_EVERY), so its lazy
# read of overcommit_memory happens on the I/O threads in every run (#24: without the
# libc_refuse section the io filter killed plinth there).
# BLK_VERIFY_SECONDS is the write phase per format: 8 s (5 s in the sanitizer pass). About
# 140 s in all in the emulated host.
. tests/integration/lib.sh
. tests/soak/lib.sh
command -v qemu-img >/dev/null || fail "qemu-img is needed (the independent reader)"
[ -x "$VERIFY" ] || fail "no $VERIFY: run make guest"
dir=$(sock_dir)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
secs=${BLK_VERIFY_SECONDS:-$([ -n "${NAME_PREFIX:-}" ] && echo 5 || echo 8)}
size=$((64 << 20))
formats="raw qcow2 vhd vhdx vmdk"
disks=()
cmd=
i=0
for f in $formats; do
	make_image "$f" "$dir/$f.img" $size
	truncate -s "$(model_size $size)" "$dir/$f.model"
	disks+=(--disk "path=$dir/$f.img,format=$f" --disk "path=$dir/$f.model,format=raw")
	cmd+=$(verify_cmd $i "$f" --threads 4 --seconds "$secs" --seed $((RANDOM + 1)))
	i=$((i + 1))
done
out=$dir/console
sock=$dir/api.sock
GLIBC_TUNABLES=$MALLOC_TRIM_EVERY timeout -k 10 420 "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--cpus 2 --memory 256M --no-reboot --api-socket "$sock" --cmdline "$(guest_cmdline "$cmd")" "${disks[@]}" \
	</dev/null >"$out" 2>&1 &
pid=$!
polls=0
while kill -0 $pid 2>/dev/null; do
	"$BUILD/plinth" ctl --api-socket "$sock" info >/dev/null 2>&1 && polls=$((polls + 1))
	sleep 0.5
done
wait $pid
rc=$?
pid=
sed -i 's/\r$//' "$out"
grep -q "seccomp" "$out" && { grep seccomp "$out"; fail "a thread met the seccomp filter"; }
[ $rc = 0 ] || { tail -n 30 "$out"; fail "plinth exited with $rc"; }
verify_results "$out" $formats
[ $polls -gt 0 ] || fail "the control API never answered during the run"
for f in $formats; do
	gsize=$(sed -n "s/^VERIFY-SIZE $f \([0-9]*\)$/\1/p" "$out")
	[ -n "$gsize" ] || fail "$f: the guest did not report the disk's size"
	host_check "$f" "$dir/$f.img" "$dir/$f.model" "$gsize"
done
echo "ok: $formats verified in the guest (2 vCPUs, 4 threads, ${secs}s each) and read back by qemu-img; API answered $polls polls"
