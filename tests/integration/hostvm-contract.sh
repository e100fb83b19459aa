# The emulated host's contract as seen from inside: real KVM with SVM, this machine's
# files at the same paths, /tmp writable.
. tests/integration/lib.sh
grep -q -w svm /proc/cpuinfo || fail "no svm flag in /proc/cpuinfo"
[ -d /sys/module/kvm_amd ] || fail "kvm_amd is not loaded"
[ -c /dev/kvm ] || fail "/dev/kvm is not a character device"
[ -x "$BUILD/../scripts/hostvm" ] || [ -x scripts/hostvm ] || fail "repository not visible at its path"
f=$(mktemp /tmp/hostvm-contract.XXXXXX) || fail "/tmp not writable"
echo ok > "$f" && [ "$(cat "$f")" = ok ] || fail "cannot write /tmp"
rm -f "$f"
