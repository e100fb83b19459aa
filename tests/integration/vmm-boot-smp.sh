# plinth boots the standard guest with 1 and 4 vCPUs (2: vmm-pci.sh); the guest sees every CPU
# (ACPI MADT) and the memory it was given, and powering off exits 0.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for spec in 1:256 4:768; do
	cpus=${spec%:*} mem=${spec#*:}
	timeout 150 "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
		--cpus "$cpus" --memory "${mem}M" \
		--cmdline "$(guest_cmdline 'echo cpus=$(grep -c ^processor /proc/cpuinfo); grep MemTotal /proc/meminfo')" \
		</dev/null >"$out" 2>&1
	rc=$?
	[ $rc = 0 ] || { tail -n 30 "$out"; fail "$cpus vCPUs: plinth exited $rc, not 0 after poweroff"; }
	expect_in "$out" '^plinth-guest: init started' "$cpus vCPUs: the guest's init did not start"
	expect_in "$out" "^cpus=$cpus[[:space:]]*\$" "$cpus vCPUs: the guest did not see $cpus CPUs"
	# MemTotal is RAM minus what the kernel keeps: between 75% and 100% of --memory.
	kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB.*/\1/p' "$out" | head -n 1)
	[ -n "$kb" ] && [ "$kb" -le $((mem * 1024)) ] && [ "$kb" -ge $((mem * 1024 * 3 / 4)) ] ||
		fail "$cpus vCPUs: the guest saw MemTotal ${kb:-none} kB for --memory ${mem}M"
	expect_in "$out" '^plinth-guest: exit status 0' "$cpus vCPUs: the command did not finish"
	expect_in "$out" 'reboot: Power down' "$cpus vCPUs: the guest did not power off through ACPI"
	echo "ok: $cpus vCPUs, MemTotal $kb kB"
done
