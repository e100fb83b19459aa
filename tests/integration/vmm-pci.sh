# The PCI host side (with 2 vCPUs, which the guest must see): a virtio disk and entropy source
# (pinned to slot 9 by addr=) on bus 0 keep the BARs plinth
# assigned (inside the ACPI window), their MSI-X interrupts arrive through KVM irqfd routes
# and doorbells through ioeventfds: the guest reads the disk's first bytes, writes a block
# that lands in the file, and counts interrupts on its PCI-MSI vectors.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
out=$(mktemp) disk=$(mktemp)
trap 'rm -f "$out" "$disk"' EXIT
truncate -s 16M "$disk"
printf 'PLINTH-DISK-MARKER' | dd of="$disk" conv=notrunc status=none

cmd='echo cpus=$(grep -c ^processor /proc/cpuinfo)
head -c 18 /dev/vda; echo
printf plinth-wrote | dd of=/dev/vda bs=512 seek=1 conv=sync,fsync status=none
head -c 16 /dev/hwrng | od -An -tx1 | head -n 1
grep -E "PCI-MSI.*virtio0-req" /proc/interrupts
dmesg | grep -E "pci 0000:00:0[12].0: (BAR|reg)"
echo "pci-devices: $(ls /sys/bus/pci/devices | tr "\n" " ")"'
timeout 200 "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--cpus 2 --memory 256M --disk "path=$disk,format=raw" --rng=id=entropy,addr=9 \
	--cmdline "$(guest_cmdline "$cmd")" </dev/null >"$out" 2>&1
rc=$?
[ $rc = 0 ] || { tail -n 30 "$out"; fail "plinth exited $rc"; }
expect_in "$out" '^cpus=2[[:space:]]*$' "the guest did not see 2 CPUs"
expect_in "$out" '^PLINTH-DISK-MARKER' "the guest did not read the disk"
[ "$(dd if="$disk" bs=512 skip=1 count=1 status=none | head -c 12)" = plinth-wrote ] ||
	fail "the guest's write did not reach the disk file"
# MSI-X vector of the request queue: at least one interrupt on some CPU.
line=$(grep -E 'PCI-MSI.*virtio0-req' "$out" | head -n 1)
[ -n "$line" ] || fail "no PCI-MSI vector for the disk's queue"
total=$(awk '{ s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }' <<<"$line")
[ "$total" -gt 0 ] || fail "no interrupt arrived on the disk's MSI-X vector: $line"
# BARs inside the PCI MMIO window of the DSDT (0xc0000000-0xdfffffff), not reassigned.
grep -q -E 'pci 0000:00:01.0: (BAR 0|reg 0x10).*0xc[0-9a-f]{7}-' "$out" || fail "the disk's BAR 0 is not in the window"
grep -q -i 'assigned' "$out" && fail "Linux reassigned a BAR"
grep -q -E '^( [0-9a-f]{2}){16}' "$out" || fail "no bytes from /dev/hwrng"
# addr=9 pinned the entropy source's slot; the disk took the first free one.
expect_in "$out" '^pci-devices: 0000:00:00.0 0000:00:01.0 0000:00:09.0[[:space:]]*$' \
	"the devices are not in slots 1 and 9 (addr=9)"
echo "ok: virtio-blk + virtio-rng over PCI, $total disk interrupts"
