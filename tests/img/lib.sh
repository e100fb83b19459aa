# Shared helpers for the qemu-img oracle tests (sourced, not run).
# Each test prints "ok - name" or "not ok - name"; the script exits non-zero on any failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PI=${PLINTH_IMG:-$ROOT/build/plinth-img}
T=$(mktemp -d /tmp/plinth-img-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
FAILS=0
if [ ! -x "$PI" ]; then
	echo "not ok - plinth-img binary at $PI (build first)"
	exit 1
fi
command -v qemu-img >/dev/null || { echo "not ok - qemu-img is installed"; exit 1; }

ok() { echo "ok - $1"; }
notok() { echo "not ok - $1"; FAILS=$((FAILS + 1)); }
# check NAME CMD...: the command must succeed (output hidden unless it fails)
check() {
	name=$1; shift
	if out=$("$@" 2>&1); then ok "$name"; else notok "$name"; printf '%s\n' "$out" | sed 's/^/#   /' | head -20; fi
}
# check_fail NAME CMD...: the command must fail, with one line on stderr, within 20 s
check_fail() {
	name=$1; shift
	err=$(timeout 20 "$@" 2>&1 >/dev/null); rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -lt 128 ] && [ -n "$err" ]; then ok "$name"
	else notok "$name (rc=$rc)"; printf '%s\n' "$err" | sed 's/^/#   /' | head -5; fi
}
# check_rc NAME EXPECTED CMD...
check_rc() {
	name=$1; want=$2; shift 2
	"$@" >/dev/null 2>&1; rc=$?
	if [ "$rc" = "$want" ]; then ok "$name"; else notok "$name (rc=$rc, want $want)"; fi
}
# qio FILE FMT CMDS...: write a pattern with qemu-io
qio() {
	f=$1; fmt=$2; shift 2
	args=""
	for c in "$@"; do args="$args -c '$c'"; done
	eval qemu-io -f "$fmt" $args "$f" >/dev/null
}
# Standard content: data at the start, a pattern in the middle, zeros written explicitly, data at the end.
fill() {
	qio "$1" "$2" 'write -P 0xab 0 1M' 'write -P 0x11 5M 64k' 'write -P 0x5a 7340544 3584' \
		'write -z 9M 1M' 'write -P 0x22 31M 4k'
}
# allocated bytes on the host
disk_usage() { du -B1 "$1" | cut -f1; }
finish() { [ "$FAILS" -eq 0 ]; exit $?; }
