# plinth unpacks the guest's bzImage itself (vmm/arch/x86/kunpack.h) instead of leaving it to
# the kernel's decompressor, and keeps KASLR as that decompressor would: the kernel's text
# lands at a random virtual base, and where it was linked when the command line says nokaslr.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The guest prints where its text is (kallsyms shows root the real addresses).
cmd='echo "text=$(grep " _text$" /proc/kallsyms | cut -d" " -f1)"'
text() { sed -n 's/^text=\([0-9a-f]\{16\}\)$/\1/p' "$1" | head -n 1; }
unpacked='kernel: (gzip|LZ4|zstd) payload unpacked into guest memory in [0-9]+ ms, at 0x[0-9a-f]+'

seen=""
for i in 1 2; do
	run_plinth "$out" "$cmd" -vv || { tail -n 20 "$out"; fail "boot $i: plinth exited $?"; }
	expect_in "$out" "$unpacked, KASLR\$" "boot $i: plinth did not unpack the kernel and randomize it"
	t=$(text "$out")
	[ -n "$t" ] && [ "$t" != 0000000000000000 ] || { tail -n 20 "$out"; fail "boot $i: no _text address from the guest"; }
	echo "ok: boot $i: _text at $t ($(grep -oE 'unpacked into guest memory in [0-9]+ ms' "$out"))"
	seen="$seen $t"
done
# 490 virtual slots: both at the link address would be a 1-in-240,000 chance.
[ "$seen" != " ffffffff81000000 ffffffff81000000" ] || fail "KASLR: _text at the link address on both boots"

rc=0
timeout -k 10 240 "$BUILD/plinth" run -vv --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--memory 256M --cmdline "$(guest_cmdline "$cmd" nokaslr)" </dev/null >"$out" 2>&1 || rc=$?
sed -i 's/\r$//' "$out"
[ $rc = 0 ] || { tail -n 20 "$out"; fail "nokaslr: plinth exited $rc"; }
expect_in "$out" "$unpacked, not randomized\$" "nokaslr: plinth randomized the kernel"
t=$(text "$out")
[ "$t" = ffffffff81000000 ] || fail "nokaslr: _text at ${t:-nothing}, not the link address ffffffff81000000"
echo "ok: nokaslr: _text at $t"
