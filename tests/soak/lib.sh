# Helpers for plinth-verify runs (sourced by tests/integration/blk-verify*.sh and
# tests/soak/run-inside): images of each kind, a guest that runs the verifier on them, and
# the host-side checks. They run where /dev/kvm is usable (inside scripts/hostvm here).
# Needs tests/integration/lib.sh first (BUILD, GUEST, fail, guest_cmdline, sock_dir).
VERIFY=${VERIFY:-$GUEST/tools/plinth-verify}

# glibc's allocator set to give memory back at every chance: fixed thresholds, and any free
# of 64 KiB or more that reaches the top of a thread's arena trims it. Its housekeeping then
# runs on the I/O threads, under the filters, in every run rather than only when a write
# pattern happens to cross the default (moving) thresholds: the first trim of a thread's
# arena is where glibc reads /proc/sys/vm/overcommit_memory (issue #24, docs/sandbox.md).
# plinth runs with GLIBC_TUNABLES=$MALLOC_TRIM_EVERY in blk-verify and the soak.
MALLOC_TRIM_EVERY=glibc.malloc.trim_threshold=65536:glibc.malloc.top_pad=0:glibc.malloc.mmap_threshold=4194304

# The kinds of disk a run can use: plinth's formats, and qcow2 over a backing file or
# holding compressed clusters (both prefilled with the verifier's generation-0 records).
VERIFY_KINDS="raw qcow2 qcow2-backing qcow2-compressed vhd vhdx vmdk"

# plinth's format= for KIND; qemu-img's -f for plinth's format.
kind_format() { case $1 in qcow2-*) echo qcow2 ;; *) echo "$1" ;; esac; }
qemu_fmt() { [ "$1" = vhd ] && echo vpc || echo "$1"; }

# make_image KIND PATH SIZE: a fresh image, created by qemu-img (the peer implementation).
make_image() {
	local kind=$1 path=$2 size=$3
	case $kind in
	qcow2-backing)
		truncate -s "$size" "$path.base.raw"
		"$VERIFY" --fill --dev "$path.base.raw" >/dev/null || fail "cannot fill $path.base.raw"
		qemu-img convert -q -f raw -O qcow2 "$path.base.raw" "$path.base.qcow2"
		rm -f "$path.base.raw"
		qemu-img create -q -f qcow2 -b "$path.base.qcow2" -F qcow2 "$path" ;;
	qcow2-compressed)
		# 64 KiB clusters of generation-0 records, compressed: the guest's writes land on them.
		truncate -s "$size" "$path.fill.raw"
		"$VERIFY" --fill --dev "$path.fill.raw" >/dev/null || fail "cannot fill $path.fill.raw"
		qemu-img convert -q -c -f raw -O qcow2 "$path.fill.raw" "$path"
		rm -f "$path.fill.raw" ;;
	*)
		qemu-img create -q -f "$(qemu_fmt "$kind")" "$path" "$size" ;;
	esac || fail "cannot create a $kind image at $path"
}

# model_size SIZE: bytes the model disk needs for a data disk of SIZE bytes (two slots).
model_size() { echo $(( (4096 + $1 / 512 * 4 + 4095) / 4096 * 4096 * 2 + 65536 )); }

# The guest's name of the Nth (0-based) virtio disk.
vd() { printf '/dev/vd%b' "\\x$(printf %x $((97 + $1)))"; }

# verify_cmd I LABEL ARGS...: guest shell that runs plinth-verify ARGS on disk pair I
# (data vd(2I), model vd(2I+1)) and prints the device's size and the exit status.
verify_cmd() {
	local i=$1 label=$2 data model
	shift 2
	data=$(vd $((2 * i)))
	model=$(vd $((2 * i + 1)))
	echo "echo \"VERIFY-SIZE $label \$(blockdev --getsize64 $data)\"; plinth-verify --dev $data --model $model $*; echo \"VERIFY-EXIT $label \$?\";"
}

# host_check KIND IMAGE MODEL SIZE [--crash]: qemu-img check (formats that have one) and
# plinth-img check, then qemu-img converts IMAGE to raw (an independent reader) and the
# verifier checks every sector of it against MODEL. Prints one line; fails the test.
host_check() {
	local kind=$1 img=$2 model=$3 size=$4 crash=${5:-} fmt qf out
	fmt=$(kind_format "$kind")
	qf=$(qemu_fmt "$fmt")
	case $fmt in
	qcow2|vhdx|vmdk)
		# After a crash, leaked clusters (exit 3) are allowed: nothing lost, nothing corrupt.
		qemu-img check -q -f "$qf" "$img"
		case $?${crash:+c} in 0|0c|3c) ;; *) fail "$kind: qemu-img check finds $img damaged" ;; esac ;;
	esac
	if [ "$fmt" != raw ]; then
		"$BUILD/plinth-img" check "$img" >/dev/null 2>&1
		case $? in 0|3) ;; *) fail "$kind: plinth-img check finds $img damaged" ;; esac
	fi
	qemu-img convert -q -f "$qf" -O raw "$img" "$img.back.raw" || fail "$kind: qemu-img cannot read $img"
	truncate -s "$size" "$img.back.raw" # what the guest saw (qemu's VHD size may round)
	out=$("$VERIFY" --check $crash --dev "$img.back.raw" --model "$model" 2>&1)
	rm -f "$img.back.raw"
	echo "$out" | grep -q '^PLINTH-VERIFY result=ok ' ||
		{ echo "$out" | head -n 12; fail "$kind: the host's read of $img disagrees with the guest's model"; }
	echo "$kind: host-side $(echo "$out" | tail -n 1 | sed 's/^PLINTH-VERIFY //')"
}

# guest_reset_check CONSOLE: fails if the guest crashed to a reset (a triple fault) or its
# init ran twice. Under --no-reboot the VMM then exits 0, and a verifier started again on
# disks the first run wrote reports their records as writes its model never made.
guest_reset_check() {
	local crash
	crash=$(grep -m 1 -E "triple fault|Kernel panic" "$1")
	[ -n "$crash" ] && fail "the guest crashed: $crash"
	[ "$(grep -c '^plinth-guest: init started' "$1")" -le 1 ] || fail "the guest's init ran more than once (a reset)"
	return 0
}

# verify_results CONSOLE LABEL...: each LABEL's run ended ok in the guest; print their lines.
verify_results() {
	local out=$1 l
	shift
	guest_reset_check "$out"
	for l in "$@"; do
		grep -q "^VERIFY-EXIT $l 0" "$out" || {
			grep -E "PLINTH-VERIFY|VERIFY-|seccomp|Kernel panic|BUG|Oops" "$out" | head -n 30
			fail "$l: the guest's verifier did not pass"
		}
	done
	grep '^PLINTH-VERIFY result=' "$out"
}

# stall_watch_cmd CPUS: guest shell, run in the background on the last vCPU, that waits for
# the kernel's RCU stall report and then prints what the guest can see of a stuck CPU:
# /proc/interrupts (whose counts stopped), sysrq l (each CPU's backtrace, by NMI: a vCPU
# that never enters the guest gives none) and w (blocked tasks), /proc/interrupts again.
stall_watch_cmd() {
	echo "taskset $((1 << ($1 - 1))) sh -c 'while sleep 5; do dmesg | grep -q detected.stalls || continue; echo STALL-WATCH; cat /proc/interrupts; echo 8 >/proc/sys/kernel/printk; echo l >/proc/sysrq-trigger; sleep 3; echo w >/proc/sysrq-trigger; sleep 5; cat /proc/interrupts; break; done' & "
}

# hang_dump PID SOCK FILE: what a hung plinth (PID, API socket SOCK) is doing, appended to
# FILE, twice 10 s apart: the API's exit counters, and per thread its name, state, wchan,
# kernel stack, system call, context switches and CPU time (what moved between the two
# samples says which thread is stuck where); then every thread's backtrace (gdb, where
# installed) and 3 s of the host kernel's kvm trace events (which vCPU still enters the
# guest, and at which guest RIP it exits).
hang_dump() {
	local pid=$1 sock=$2 f=$3 n t tr=/sys/kernel/tracing
	for n in 1 2; do
		{
			echo "## hang_dump sample $n at $(date -u +%T)"
			"$BUILD/plinth" ctl --api-socket "$sock" --timeout 5 info 2>&1
			for t in /proc/"$pid"/task/*; do
				echo "== thread $(basename "$t") $(cat "$t/comm") wchan=$(cat "$t/wchan")"
				grep -E '^(State|voluntary_ctxt|nonvoluntary_ctxt)' "$t/status"
				echo "syscall: $(cat "$t/syscall")"
				awk '{ print "utime", $14, "stime", $15, "last cpu", $39 }' "$t/stat"
				cat "$t/stack"
			done
		} >>"$f" 2>&1
		[ $n = 1 ] && sleep 10
	done
	command -v gdb >/dev/null &&
		timeout 60 gdb -batch -p "$pid" -ex 'thread apply all bt' >>"$f" 2>&1
	[ -d $tr/events ] || mount -t tracefs nodev $tr 2>/dev/null
	if [ -w $tr/events/kvm/enable ]; then
		echo >$tr/trace
		echo 1 >$tr/events/kvm/enable
		sleep 3
		echo 0 >$tr/events/kvm/enable
		{ echo "## kvm trace events, 3 s"; head -c 4000000 $tr/trace; } >>"$f"
		echo >$tr/trace
	fi
}
