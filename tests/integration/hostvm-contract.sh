# The emulated host's contract as seen from inside: real KVM with SVM, this machine's
# files at the same paths, /tmp writable, the QEMU and the KVM hold that hostvm chose.
# asan-pass: no (it checks the emulated host, not plinth)
. tests/integration/lib.sh
grep -q -w svm /proc/cpuinfo || fail "no svm flag in /proc/cpuinfo"
[ -d /sys/module/kvm_amd ] || fail "kvm_amd is not loaded"
[ -c /dev/kvm ] || fail "/dev/kvm is not a character device"
[ -x "$BUILD/../scripts/hostvm" ] || [ -x scripts/hostvm ] || fail "repository not visible at its path"
f=$(mktemp /tmp/hostvm-contract.XXXXXX) || fail "/tmp not writable"
echo ok > "$f" && [ "$(cat "$f")" = ok ] || fail "cannot write /tmp"
rm -f "$f"
# The emulated host is the QEMU hostvm chose (the machine type carries QEMU's version), and by
# default the one scripts/deps unpacked from bookworm-backports.
want=$(sed -n 's/.*hostvm\.qemu=\([0-9.]*\).*/\1/p' /proc/cmdline)
[ -n "$want" ] || fail "hostvm.qemu= is missing from the emulated host's command line"
got=$(cat /sys/class/dmi/id/product_version 2>/dev/null)
[ "$got" = "pc-q35-$want" ] || fail "the emulated machine is '$got', hostvm started QEMU $want"
if [ -z "${HOSTVM_QEMU:-}" ]; then
	new=$("${PLINTH_QEMU_NEW:-/opt/plinth/qemu}/usr/bin/qemu-system-x86_64" --version |
		sed -n 's/.*version \([0-9]*\.[0-9]*\).*/\1/p')
	[ "$want" = "$new" ] || fail "by default the emulated host should run QEMU $new, not $want"
fi
# Unless HOSTVM_KVM_HOLD=0: one idle KVM vCPU is held for the emulated host's whole life,
# so KVM's static keys never flip under load (ARCHITECTURE.md, "The test bed").
if [ "${HOSTVM_KVM_HOLD:-1}" = 1 ]; then
	grep -q 'hostvm.kvmhold=1' /proc/cmdline || fail "hostvm did not ask for the KVM hold"
	held=0
	for c in /proc/[0-9]*/comm; do
		[ "$(cat "$c" 2>/dev/null)" = hostvm-kvm-hold ] || continue
		for fd in "${c%/comm}"/fd/*; do
			[ "$(readlink "$fd")" = anon_inode:kvm-vcpu:0 ] && held=1
		done
	done
	[ $held = 1 ] || fail "no hostvm-kvm-hold process holds an idle KVM vCPU"
fi
