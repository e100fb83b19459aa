# Bad input: one clear line on stderr, a non-zero exit, and no guest started.
. tests/integration/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
P=$BUILD/plinth K=$GUEST/vmlinuz I=$GUEST/initramfs.cpio.gz

# expect_error EXPECTED-REGEX COMMAND...: non-zero exit, one stderr line matching.
expect_error() {
	local re=$1 rc lines
	shift
	"$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	lines=$(wc -l <"$tmp/err")
	[ $rc != 0 ] || fail "'$*' exited 0"
	[ "$lines" = 1 ] || { cat "$tmp/err"; fail "'$*' printed $lines lines on stderr, not 1"; }
	grep -q -E -- "$re" "$tmp/err" || { cat "$tmp/err"; fail "'$*': expected /$re/"; }
	[ ! -s "$tmp/out" ] || fail "'$*' wrote to the console"
}

expect_error 'required' "$P" run
expect_error 'cannot open kernel .*No such file' "$P" run --kernel "$tmp/none"
head -c 20000 /dev/urandom >"$tmp/junk"
expect_error 'not a Linux kernel' "$P" run --kernel "$tmp/junk"
expect_error 'ELF file is not an executable' "$P" run --kernel /bin/sh
head -c 4000 "$K" >"$tmp/short"
expect_error 'truncated' "$P" run --kernel "$tmp/short"
expect_error 'cannot open initrd' "$P" run --kernel "$K" --initrd "$tmp/none"
truncate -s 120M "$tmp/big"
expect_error 'initrd too large' "$P" run --kernel "$K" --initrd "$tmp/big" --memory 128M
expect_error 'too small for this kernel' "$P" run --kernel "$K" --memory 32M
expect_error '--cpus must be a number from 1 to 64' "$P" run --kernel "$K" --cpus 0
expect_error '--cpus must be a number from 1 to 64' "$P" run --kernel "$K" --cpus 65
expect_error '--memory must be a size' "$P" run --kernel "$K" --memory lots
expect_error "more than this host's" "$P" run --kernel "$K" --memory 64T
expect_error 'unknown' "$P" run --kernel "$K" --frobnicate
expect_error 'unknown command' "$P" frob
if [ ! -e /dev/kvm ]; then
	expect_error '/dev/kvm does not exist' "$P" run --kernel "$K" --initrd "$I"
fi
# The display's VNC server is a module found beside plinth: a plinth alone, or beside a
# file that is not its module, says so in one line (the VM is not started).
if [ -e /dev/kvm ]; then
	mkdir "$tmp/alone" "$tmp/stale"
	cp "$P" "$tmp/alone/plinth"
	cp "$P" "$tmp/stale/plinth"
	cp "$(ldconfig -p | sed -n 's/.*libz.so.1 (libc6,x86-64) => //p' | head -n 1)" \
		"$tmp/stale/plinth-vnc.so"
	expect_error '^plinth: --display: no VNC server module plinth-vnc.so beside ' \
		"$tmp/alone/plinth" run --kernel "$K" --initrd "$I" --display "vnc=unix:$tmp/v.sock"
	expect_error "^plinth: --display: $tmp/stale/plinth-vnc.so is not this plinth's VNC server" \
		"$tmp/stale/plinth" run --kernel "$K" --initrd "$I" --display "vnc=unix:$tmp/v.sock"
	[ ! -e "$tmp/v.sock" ] || fail "a display that could not start left its socket"
fi
"$P" --help | grep -q -- '--kernel PATH' || fail "plinth --help does not describe --kernel"
"$P" run --help | grep -q -- '--no-reboot' || fail "plinth run --help does not describe --no-reboot"
"$P" --version | grep -q -E '^plinth [0-9]' || fail "plinth --version"
echo "ok: errors"
