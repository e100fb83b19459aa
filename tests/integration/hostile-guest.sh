# The hostile guest (docs/hostile-guest.md): tests/guest-tools/hostile.c, appended to the
# standard initramfs, drives every virtio device of plinth like a malicious driver (descriptor
# loops, rings and buffers outside RAM, huge lengths, bad queue sizes, kicks before DRIVER_OK,
# garbage payloads, reset storms, random rounds). plinth must survive, every device must answer
# a reset after every case, and work again with the kernel's drivers afterwards.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
seed=${HOSTILE_SEED:-$(( (RANDOM << 15) | RANDOM ))}
rounds=${HOSTILE_ROUNDS:-50}
tap=hostile$$
# Unix sockets need a local file system: /tmp may be 9p in the emulated host.
tmp=$(mktemp -d /dev/shm/plinth-hostile.XXXXXX 2>/dev/null || mktemp -d)
cleanup() {
	ip link del "$tap" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
echo "# seed $seed ($rounds random rounds): HOSTILE_SEED=$seed replays it"

mkdir -p "$tmp/stage"
gcc -static -O2 -o "$tmp/stage/hostile" tests/guest-tools/hostile.c || fail "cannot build hostile"
(cd "$tmp/stage" && echo hostile | cpio -o -H newc --quiet -R 0:0 | gzip) >"$tmp/extra.cpio.gz" ||
	fail "cannot pack hostile"
cat "$GUEST/initramfs.cpio.gz" "$tmp/extra.cpio.gz" >"$tmp/initrd.gz"
truncate -s 64M "$tmp/disk.img"
: >"$tmp/console.out"
ip tuntap add dev "$tap" mode tap && ip link set "$tap" up || fail "cannot create tap $tap"

cmd="/hostile -s $seed -n $rounds -r; echo hostile-rc=\$?;"
cmd+=" dd if=/dev/vda of=/dev/null bs=4k count=1 && echo blk-alive;"
cmd+=" echo rng-bytes=\$(head -c 16 /dev/hwrng | wc -c)"
timeout 540 "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$tmp/initrd.gz" \
	--cpus 2 --memory 512M --no-reboot \
	--disk "path=$tmp/disk.img,format=raw" --rng --net "tap=$tap" \
	--vsock "cid=3,socket=$tmp/vsock.sock" --console "virtio,path=$tmp/console.out" \
	--cmdline "$(guest_cmdline "$cmd")" </dev/null >"$tmp/serial.log" 2>"$tmp/stderr.log"
rc=$?
last=$(grep -a '^hostile:' "$tmp/serial.log" | tail -n 1)
if [ $rc != 0 ]; then
	tail -n 20 "$tmp/stderr.log"
	fail "plinth exited $rc (seed $seed); the guest's last line: $last"
fi
expect_in "$tmp/serial.log" '^hostile: survived' "a device stopped answering (seed $seed): $last"
expect_in "$tmp/serial.log" '^hostile-rc=0' "hostile failed (seed $seed): $last"
expect_in "$tmp/serial.log" '^blk-alive' "virtio-blk did not work again after the hostile driver"
expect_in "$tmp/serial.log" '^rng-bytes=16' "virtio-rng did not work again after the hostile driver"
if grep -a -q -E 'seccomp|AddressSanitizer|runtime error' "$tmp/stderr.log"; then
	grep -a -E 'seccomp|AddressSanitizer|runtime error' "$tmp/stderr.log" | head -n 5
	fail "plinth reported a sandbox or sanitizer error (seed $seed)"
fi
echo "ok: $(grep -a '^hostile: survived' "$tmp/serial.log"), seed $seed"
