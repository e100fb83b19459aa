# The firmware test disk (scripts/make-fwdisk) is an ordinary UEFI disk: QEMU with Debian's
# OVMF (q35, pflash, empty NVRAM) boots its VMDK streamOptimized export (the ESX format) to
# the ready line and powers off cleanly on the power-off word (scripts/fwdisk-boot).
# FWDISK_FORMATS (e.g. "all", as make soak sets) boots the other formats too.
. tests/integration/lib.sh
: "${FWDISK:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/fwdisk}"
kvm_usable || fail "KVM: $(kvm_why)"
[ -f "$FWDISK/disk-stream.vmdk" ] || fail "no $FWDISK/disk-stream.vmdk (make fwdisk)"
formats=${FWDISK_FORMATS:-stream}
[ "$formats" = all ] && formats="stream raw qcow2 vhd vhdx vmdk"
for f in $formats; do
	case $f in
	stream) args=("$FWDISK/disk-stream.vmdk" vmdk) ;;
	raw) args=("$FWDISK/disk.raw" raw) ;;
	qcow2) args=("$FWDISK/disk.qcow2" qcow2) ;;
	vhd) args=("$FWDISK/disk.vhd" vpc) ;;
	vhdx) args=("$FWDISK/disk.vhdx" vhdx) ;;
	vmdk) args=("$FWDISK/disk.vmdk" vmdk) ;;
	*) fail "unknown format $f in FWDISK_FORMATS" ;;
	esac
	scripts/fwdisk-boot --accel kvm --timeout 150 "${args[@]}" || fail "$f: the disk did not boot and power off"
done
