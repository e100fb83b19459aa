# The hostile guest (docs/hostile-guest.md): tests/guest-tools/hostile.c, appended to the
# standard initramfs, drives every virtio device of plinth like a malicious driver (descriptor
# loops, rings and buffers outside RAM, huge lengths, bad queue sizes, kicks before DRIVER_OK,
# garbage payloads, reset storms, random rounds). plinth must survive, every device must answer
# a reset after every case, and work again with the kernel's drivers afterwards. All under
# seccomp (the default) and, as root, in the jail; HOSTILE_ASAN=build-asan adds an ASan run.
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
# Seccomp is on (the default); as root, the jail too: hostile inputs are when the sandbox matters.
jail=()
if [ "$(id -u)" = 0 ]; then
	mkdir "$tmp/jail"
	jail=(--jail "$tmp/jail" --uid 65534 --gid 65534)
fi

hostile_run() { # PLINTH WHAT
	local plinth=$1 what=$2 rc last
	rm -f "$tmp/vsock.sock"
	: >"$tmp/console.out"
	timeout 540 "$plinth" run --kernel "$GUEST/vmlinuz" --initrd "$tmp/initrd.gz" \
		--cpus 2 --memory 512M --no-reboot \
		--disk "path=$tmp/disk.img,format=raw" --rng --net "tap=$tap" \
		--vsock "cid=3,socket=$tmp/vsock.sock" --console "virtio,path=$tmp/console.out" \
		"${jail[@]}" --cmdline "$(guest_cmdline "$cmd")" </dev/null >"$tmp/serial.log" \
		2>"$tmp/stderr.log"
	rc=$?
	last=$(grep -a '^hostile:' "$tmp/serial.log" | tail -n 1)
	if [ $rc != 0 ]; then
		tail -n 20 "$tmp/stderr.log"
		fail "$what: plinth exited $rc (seed $seed); the guest's last line: $last"
	fi
	expect_in "$tmp/serial.log" '^hostile: survived' "$what: a device stopped answering (seed $seed): $last"
	expect_in "$tmp/serial.log" '^hostile-rc=0' "$what: hostile failed (seed $seed): $last"
	expect_in "$tmp/serial.log" '^blk-alive' "$what: virtio-blk did not work again after the hostile driver"
	expect_in "$tmp/serial.log" '^rng-bytes=16' "$what: virtio-rng did not work again after the hostile driver"
	if grep -a -q -E 'seccomp|AddressSanitizer|runtime error' "$tmp/stderr.log"; then
		grep -a -E 'seccomp|AddressSanitizer|runtime error' "$tmp/stderr.log" | head -n 5
		fail "$what: plinth reported a sandbox or sanitizer error (seed $seed)"
	fi
	echo "ok: $what: $(grep -a '^hostile: survived' "$tmp/serial.log"), seed $seed"
}

hostile_run "$BUILD/plinth" "seccomp${jail:+ + jail}"
# HOSTILE_ASAN=build-asan: again with the ASan+UBSan build (a bounds bug that doesn't crash
# still shows). LeakSanitizer's exit check is refused by the main thread's filter: off.
if [ -n "${HOSTILE_ASAN:-}" ]; then
	[ -x "$HOSTILE_ASAN/plinth" ] || fail "HOSTILE_ASAN=$HOSTILE_ASAN: no plinth there"
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		hostile_run "$HOSTILE_ASAN/plinth" "ASan+UBSan, seccomp${jail:+ + jail}"
fi
