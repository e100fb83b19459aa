# Helpers for integration tests (sourced). They run inside the emulated host.
# GUEST is the standard guest's directory (vmlinuz, initramfs.cpio.gz).
: "${GUEST:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/guest}"
: "${BUILD:=build}"

kvm_why() {
	if [ ! -e /dev/kvm ]; then echo "no /dev/kvm"
	elif [ -d /sys/module/kvm_pvm ] && [ ! -d /sys/module/kvm_amd ] && [ ! -d /sys/module/kvm_intel ]; then
		echo "/dev/kvm is PVM, not hardware virtualization"
	elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo "no permission on /dev/kvm"
	else echo "ok"; fi
}
kvm_usable() { [ "$(kvm_why)" = ok ]; }

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_in FILE REGEX [WHAT]: fail unless FILE has a line matching REGEX.
expect_in() {
	grep -q -E -- "$2" "$1" || { echo "--- $1:"; tail -n 30 "$1"; fail "${3:-expected /$2/ in $1}"; }
}

# Build a kernel command line running CMD in the standard guest.
guest_cmdline() { # CMD [EXTRA]
	local b64
	b64=$(printf '%s' "$1" | base64 -w0)
	echo "console=ttyS0 quiet panic=-1 ${2:-} plinth.run64=$b64"
}
