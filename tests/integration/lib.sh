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

# A test may set FAIL_DUMP_PID to the plinth it waits on: a failure then prints, in a few
# lines, what each of that process's threads did over 2 s and which vCPUs entered the guest
# (vcpu_brief), so a CI log that keeps only the failure's neighbourhood still shows a stuck vCPU.
fail() {
	[ -n "${FAIL_DUMP_PID:-}" ] && kill -0 "$FAIL_DUMP_PID" 2>/dev/null && vcpu_brief "$FAIL_DUMP_PID" >&2
	echo "FAIL: $*" >&2
	exit 1
}

# vcpu_brief PID: per thread of PID its name, state, wchan and CPU ticks used in 2 s, then
# (where the kernel's tracefs is writable) the kvm_exit trace events of those 2 s: per vCPU
# and reason, and each vCPU's three most frequent guest RIPs.
vcpu_brief() {
	local pid=$1 t tr=/sys/kernel/tracing ev=/sys/kernel/tracing/events/kvm/kvm_exit/enable exits=""
	declare -A before=()
	[ -d $tr/events ] || mount -t tracefs nodev $tr 2>/dev/null
	[ -w $ev ] && { echo >$tr/trace; echo 1 >$ev; }
	for t in /proc/"$pid"/task/*; do before[$t]=$(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null); done
	sleep 2
	if [ -w $ev ]; then
		echo 0 >$ev
		exits=$(grep -o 'vcpu [0-9]* reason [^ ]* rip 0x[0-9a-f]*' $tr/trace)
		echo >$tr/trace
	fi
	# Alike threads on one line (24 idle blk-io threads would push the console's lines
	# out of the 40 the runner shows of a failed test).
	echo "# plinth $pid's threads over 2 s (count name state wchan ticks):"
	for t in /proc/"$pid"/task/*; do
		echo "$(cat "$t/comm" 2>/dev/null) $(awk '/^State/ { print $2 }' "$t/status" 2>/dev/null)" \
			"$(cat "$t/wchan" 2>/dev/null) $(( $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null || echo 0) - ${before[$t]:-0} ))"
	done | sort | uniq -c | sed 's/^ */#   /'
	[ -n "$exits" ] || { echo "# kvm_exit events in 2 s: none (or no tracefs)"; return 0; }
	echo "# kvm_exit events in 2 s, per vCPU and reason:"
	awk '{ print $1, $2, $4 }' <<<"$exits" | sort | uniq -c | sort -rn | head -n 8 | sed 's/^ */#   /'
	echo "# the most frequent exit RIPs:"
	awk '{ print $1, $2, $4, $6 }' <<<"$exits" | sort | uniq -c | sort -rn | head -n 6 | sed 's/^ */#   /'
}

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

# run_plinth OUT GUEST_CMD [PLINTH OPTIONS...]: boot the standard guest under plinth
# running GUEST_CMD, console to OUT; returns plinth's exit status.
run_plinth() {
	local out=$1 cmd=$2
	shift 2
	local rc=0
	timeout -k 10 240 "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" \
		--initrd "$GUEST/initramfs.cpio.gz" --memory 256M \
		--cmdline "$(guest_cmdline "$cmd")" "$@" </dev/null >"$out" 2>&1 || rc=$?
	sed -i 's/\r$//' "$out" # the serial console ends lines with CR LF
	return $rc
}

# wait_in FILE PID REGEX [SECONDS]: until FILE (a guest's console) shows REGEX. Fails the
# test, showing the console's last lines, if plinth (PID) exits first or after SECONDS (90).
wait_in() {
	local end=$((SECONDS + ${4:-90}))
	while [ $SECONDS -lt $end ]; do
		grep -q -E -- "$3" "$1" && return 0
		kill -0 "$2" 2>/dev/null || { console_tail "$1"; fail "plinth died waiting for /$3/"; }
		sleep 0.3
	done
	console_tail "$1"
	fail "timed out waiting for /$3/ in $1"
}
# console_tail FILE: the guest kernel's complaints anywhere in FILE (the first 8), then its last 20 lines.
console_tail() {
	grep -a -m 8 -E 'rcu: |soft lockup|hard LOCKUP|BUG:|WARNING:|Kernel panic|Oops' "$1" | tr -d '\r' | sed 's/^/console (kernel): /'
	tail -n 20 "$1" | tr -d '\r' | sed 's/^/console: /'
}

# last_num FILE WORD: N of the last "WORD N" in FILE (the counters the tests' guests print;
# WORD may be a pattern of several words: "w [0-9a-f]*").
# Only whole lines count: a guest migrated away mid-line leaves "disk 2" of
# "disk 201" at the source's end, and the rest goes out at the destination.
last_num() {
	{ if [ -n "$(tail -c 1 "$1")" ]; then sed '$d' "$1"; else cat "$1"; fi; } |
		grep -ao "$2 [0-9]*" | tail -n 1 | sed 's/.* //'
}

# refused_line WHAT REGEX CMD...: CMD fails with one line of output matching REGEX
# (kept in the test's $dir/out).
refused_line() {
	local what=$1 re=$2
	shift 2
	"$@" >"$dir/out" 2>&1 && fail "$what was accepted"
	[ "$(wc -l <"$dir/out")" = 1 ] || { cat "$dir/out"; fail "$what: not one line"; }
	grep -q -E -- "$re" "$dir/out" || { cat "$dir/out"; fail "$what: unexpected message"; }
}
# A directory for Unix sockets: not /tmp, which the emulated host shares over 9p
# (no special files there).
sock_dir() {
	mktemp -d /dev/shm/plinth.XXXXXX 2>/dev/null || mktemp -d /run/plinth.XXXXXX 2>/dev/null ||
		mktemp -d
}

# check_disk IMAGE MIN [NOTE]: IMAGE holds the records "disk %010d\n" for J = 1..M at
# offset 16*J (as the migration and snapshot tests' guests write them), M >= MIN,
# and only zeros after record M. Prints M.
check_disk() {
	python3 - "$@" <<'PY'
import sys
img, least = sys.argv[1], int(sys.argv[2])
d = open(img, 'rb').read()
j = 1
while 16 * j + 16 <= len(d) and d[16 * j:16 * j + 16] == b'disk %010d\n' % j:
    j += 1
m = j - 1
bad = next((i for i in range(16 * (m + 1), len(d)) if d[i]), None)
note = ' (' + sys.argv[3] + ')' if len(sys.argv) > 3 else ''
print(f'disk: records 1..{m} in order on the image, the guest last reported {least}{note}')
if m < least:
    # which of the reported records are there: a lone hole is one lost request, a run of
    # them a process whose writes went nowhere
    ok = [16 * k + 16 <= len(d) and d[16 * k:16 * k + 16] == b'disk %010d\n' % k for k in range(1, least + 1)]
    runs, k = [], 0
    while k < least:
        e = k
        while e + 1 < least and ok[e + 1] == ok[k]:
            e += 1
        runs.append(f'{k + 1}-{e + 1} {"there" if ok[k] else "MISSING"}')
        k = e + 1
    print('disk: records ' + ', '.join(runs))
    sys.exit(f'disk: record {m + 1} is missing or wrong: {d[16 * (m + 1):16 * (m + 2)]!r}')
if bad is not None:
    sys.exit(f'disk: data at offset {bad} after the last contiguous record {m}: a write was lost')
PY
}

# migrate_load_cmd [memcheck]: the guest command of the migration tests (migrate-live,
# scripts/hostvm-migrate-compare). vCPU 0 dirties 32 MiB of tmpfs each round and says
# "count I"; with memcheck it also checks that the 4 MiB of random bytes it wrote the round
# before still have their md5 ("MEMBAD I": a page a migration failed to resend) and writes
# new ones, and that 1 MiB it filled with random bytes and then zeros in place is still
# zeros ("MEMBAD zero I": a page that became zero, sent as a zero run, not cleared). On vCPU 1 it writes record J ("disk %010d\n", 16 bytes) at offset 16*J of
# /dev/vda, fsyncs, and only then says "disk J": if vCPU 1 is lost, the disk loop stops.
migrate_load_cmd() {
	local memcheck=
	[ "${1:-}" = memcheck ] &&
		memcheck='[ -z "$s" ] || [ "$(md5sum </dev/shm/v)" = "$s" ] || echo "MEMBAD $i"
[ -z "$s" ] || [ "$(md5sum </dev/shm/z)" = "$zs" ] || echo "MEMBAD zero $i"
head -c 4194304 /dev/urandom >/dev/shm/v; s=$(md5sum </dev/shm/v)
head -c 1048576 /dev/urandom | dd of=/dev/shm/z bs=1M conv=notrunc 2>/dev/null
dd if=/dev/zero of=/dev/shm/z bs=1M count=1 conv=notrunc 2>/dev/null; zs=$(head -c 1048576 /dev/zero | md5sum); '
	echo 'echo "cpus $(cat /sys/devices/system/cpu/online)"; taskset -p 1 $$ >/dev/null
taskset 2 sh -c '"'"'j=0; while :; do j=$((j+1)); printf "disk %010d\n" $j | dd of=/dev/vda bs=16 seek=$j conv=notrunc,fsync 2>/dev/null && echo "disk $j"; sleep 0.3; done'"'"' &
i=0; while :; do i=$((i+1)); dd if=/dev/zero of=/dev/shm/buf bs=1M count=32 conv=notrunc 2>/dev/null
'"$memcheck"'echo "count $i"; sleep 0.2; done'
}
