# Firmware boot's bad input (#17): a missing, truncated or non-firmware code file, a vars
# file of the wrong size or not a variable store, --firmware with --kernel: one clear line
# each, nothing started, and no firmware or vars file written.
. tests/integration/lib.sh
F=/usr/share/OVMF/OVMF_CODE_4M.fd V=/usr/share/OVMF/OVMF_VARS_4M.fd P=$BUILD/plinth
[ -r "$F" ] && [ -r "$V" ] || fail "Debian's ovmf package is not installed (scripts/deps)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_error REGEX ARGS...: plinth run ARGS exits non-zero with one matching line.
expect_error() {
	local re=$1 rc=0
	shift
	"$P" run "$@" </dev/null >"$tmp/eout" 2>"$tmp/eerr" || rc=$?
	[ $rc != 0 ] || fail "'$*' exited 0"
	[ "$(wc -l <"$tmp/eerr")" = 1 ] || { cat "$tmp/eerr"; fail "'$*': not one line"; }
	grep -q -E -- "$re" "$tmp/eerr" || { cat "$tmp/eerr"; fail "'$*': expected /$re/"; }
	[ ! -s "$tmp/eout" ] || fail "'$*' wrote to the console"
}

cp "$V" "$tmp/vars.fd"
head -c 1048576 "$F" >"$tmp/cut.fd"
head -c 3653632 /dev/urandom >"$tmp/junk.fd"
head -c 131072 "$V" >"$tmp/small-vars.fd"
head -c 540672 /dev/zero >"$tmp/zero-vars.fd"
sums() { md5sum "$tmp"/*.fd "$F" "$V"; }
before=$(sums)
expect_error 'cannot open firmware .*No such file' --firmware "$tmp/none.fd"
expect_error 'is truncated' --firmware "$tmp/cut.fd"
expect_error 'not UEFI firmware' --firmware "$tmp/junk.fd"
expect_error 'is not a regular file' --firmware /etc
expect_error 'is 131072 bytes; .* needs a vars file of 540672 bytes' \
	--firmware "$F" --firmware-vars "$tmp/small-vars.fd"
expect_error 'not a UEFI variable store' --firmware "$F" --firmware-vars "$tmp/zero-vars.fd"
expect_error 'cannot open firmware vars .*No such file' --firmware "$F" --firmware-vars "$tmp/none"
expect_error '--firmware boots the firmware, not --kernel' --firmware "$F" --kernel "$GUEST/vmlinuz"
expect_error '--firmware-vars needs --firmware' --kernel "$GUEST/vmlinuz" --firmware-vars "$V"
[ "$(sums)" = "$before" ] || fail "a rejected start changed a firmware or vars file"
"$P" --help | grep -q -- '--firmware PATH' || fail "plinth --help does not describe --firmware"

