# The test bed itself: QEMU from Debian with -accel kvm boots the standard guest
# to its init, which runs a command and powers off.
# asan-pass: no (it runs QEMU, not plinth)
. tests/integration/lib.sh
out=$(mktemp)
timeout 120 qemu-system-x86_64 -accel kvm -cpu host -M pc -smp 2 -m 512 -nodefaults \
	-no-user-config -display none -serial "file:$out" -no-reboot \
	-kernel "$GUEST/vmlinuz" -initrd "$GUEST/initramfs.cpio.gz" \
	-append "$(guest_cmdline 'echo cpus=$(grep -c ^processor /proc/cpuinfo)')" ||
	fail "qemu exited $?"
expect_in "$out" '^plinth-guest: init started' "the guest's init did not start"
expect_in "$out" '^cpus=2' "the guest did not see 2 CPUs"
expect_in "$out" '^plinth-guest: exit status 0' "the command did not finish"
rm -f "$out"
