#!/bin/bash
# Crash consistency under SIGKILL (issue #20), per format: img-crash (tests/img/crash.c)
# writes, zeroes, discards and flushes through libplinth-img and is SIGKILLed at a
# random moment, $CRASH_KILLS times, up to $CRASH_CHAIN (10) times in a row on the same
# image (each restart goes on writing it, as a VM restarted on its disk does). After each kill:
#   - the library opens the image again (a VMDK/VHDX/qcow2 left mid-update must open)
#     and every sector holds what the log allows: all writes acknowledged before the
#     last completed flush, old or new data elsewhere, nothing misplaced or damaged;
#   - qemu-img check finds no corruption (leaked clusters are allowed: a crash leaks);
#   - qemu-img convert (an independent reader) reads the same allowed data.
# Then the checker must catch damage: two sectors swapped in a copy are reported.
# CRASH_KILLS (6), CRASH_CHAIN, CRASH_SIZE (32M) and CRASH_FORMATS set the work; make soak
# runs more.
. "$(dirname "$0")/lib"
CR=${IMG_CRASH:-$ROOT/${BUILD:-build}/img/img-crash}
[ -x "$CR" ] || { echo "not ok - img-crash binary at $CR (build first)"; exit 1; }
KILLS=${CRASH_KILLS:-6}
CHAIN=${CRASH_CHAIN:-10}
SIZE=${CRASH_SIZE:-32M}
FORMATS=${CRASH_FORMATS:-raw qcow2 qcow2-backing qcow2-compressed vpc vhdx vmdk vdi}
# On tmpfs a flush is cheap, so the kills land inside writes (cluster and grain
# allocation, VHDX log writes) more often than inside fdatasync.
W=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d -p "$T")
trap 'rm -rf "$T" "$W"' EXIT

# fresh: (re)make the image of $kind in $d (sets img, fmt, base; why on failure) and
# start a new log. Every CHAIN kills the image starts again: the check reads the whole
# log, so one endless chain would make each check slower than the last.
fresh() {
	rm -rf "$d"
	mkdir -p "$d"
	fmt=$kind
	base=0
	img=$d/img.$fmt
	case $kind in
	qcow2-backing)
		fmt=qcow2
		img=$d/top.qcow2
		qemu-img create -q -f qcow2 "$d/base.qcow2" "$SIZE" &&
			"$CR" fill "$d/base.qcow2" "$seed" &&
			qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$img" || why="cannot make the images"
		base=1
		;;
	qcow2-compressed)
		# Every cluster compressed: the writes rewrite compressed clusters.
		fmt=qcow2
		img=$d/img.qcow2
		truncate -s "$SIZE" "$d/base.raw" && "$CR" fill "raw:$d/base.raw" "$seed" &&
			qemu-img convert -q -c -f raw -O qcow2 "$d/base.raw" "$img" || why="cannot make the image"
		base=1
		;;
	vpc) qemu-img create -q -f vpc -o subformat=dynamic "$img" "$SIZE" || why="cannot make the image" ;;
	raw)
		truncate -s "$SIZE" "$img"
		img=raw:$img
		;;
	*) qemu-img create -q -f "$fmt" "$img" "$SIZE" || why="cannot make the image" ;;
	esac
	: >"$d/log"
	next=1
}

# one KIND: KILLS kills, CHAIN at a time on one image; prints one ok/not ok line.
one() {
	local kind=$1 fmt d=$W/crash-$1 img base seed=$RANDOM next=1 k rc ops=0
	local mid_write=0 mid_flush=0 between=0 other=0 why= line qcheck="qemu-img check: no corruption"
	for ((k = 1; k <= KILLS && !${#why}; k++)); do
		if [ $(((k - 1) % CHAIN)) = 0 ]; then
			ops=$((ops + next - 1))
			fresh
			[ -z "$why" ] || break
		fi
		"$CR" write "$img" "$seed" "$next" >>"$d/log" 2>"$d/err" &
		local pid=$!
		# 20-700 ms: the writer opens, then goes through a few hundred operations.
		sleep "0.$(printf '%03d' $((20 + RANDOM % 680)))"
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
		if [ -s "$d/err" ]; then why="kill $k: the writer failed: $(head -n 1 "$d/err")"; break; fi
		# A line the kill cut: its operation never began.
		[ -z "$(tail -c 1 "$d/log")" ] || sed -i '$d' "$d/log"
		line=$(tail -n 1 "$d/log")
		case $line in
		B*flush) mid_flush=$((mid_flush + 1)) ;;
		B*write*) mid_write=$((mid_write + 1)) ;;
		B*) other=$((other + 1)) ;;
		*) between=$((between + 1)) ;;
		esac
		next=$(($(grep -c '^B' "$d/log") + 1))
		if ! "$CR" check "$img" "$seed" "$d/log" $base >"$d/check" 2>&1; then
			why="kill $k: read back through the library: $(head -n 3 "$d/check" | tr '\n' ' ')"
			break
		fi
		rc=0
		# qemu-img has no check for raw, vpc, vdi... (63: not supported).
		qemu-img check -f $fmt "${img#raw:}" >"$d/qcheck" 2>&1 || rc=$?
		if [ $rc = 63 ]; then
			qcheck="qemu-img has no check for $fmt"
		elif [ $rc != 0 ] && [ $rc != 3 ]; then
			why="kill $k: qemu-img check exit $rc: $(grep -v -i leak "$d/qcheck" | head -n 2 | tr '\n' ' ')"
			break
		fi
		rm -f "$d/copy.raw"
		if ! qemu-img convert -f $fmt -O raw "${img#raw:}" "$d/copy.raw" 2>"$d/qerr"; then
			why="kill $k: qemu-img convert: $(head -n 1 "$d/qerr")"
			break
		fi
		if ! "$CR" check "raw:$d/copy.raw" "$seed" "$d/log" $base >"$d/check" 2>&1; then
			why="kill $k: read back through qemu-img: $(head -n 3 "$d/check" | tr '\n' ' ')"
			break
		fi
	done
	if [ -n "$why" ]; then
		notok "crash: $kind: $why"
		return
	fi
	ops=$((ops + next - 1))
	ok "crash: $kind: $KILLS SIGKILLs, $CHAIN at most on one image ($mid_write in a write, $mid_flush in a flush, $other in a zero or discard, $between between operations), $ops operations: every write acknowledged before a completed flush read back, the rest old or new, through the library and through qemu-img; $qcheck"
	# The checker itself: two sectors that hold writes, swapped, must be reported.
	if [ "$kind" = qcow2 ]; then
		python3 - "$d/copy.raw" <<-'EOF' || { notok "crash: a copy with two sectors swapped could not be made"; return; }
		import sys
		f = open(sys.argv[1], "r+b")
		data = f.read()
		secs = [i for i in range(0, len(data), 512) if data[i:i + 7] == b"PLCRASH"]
		if len(secs) < 2:
		    sys.exit(1)
		a, b = secs[0], secs[-1]
		f.seek(a); f.write(data[b:b + 512]); f.seek(b); f.write(data[a:a + 512])
		EOF
		if "$CR" check "raw:$d/copy.raw" "$seed" "$d/log" $base >"$d/check" 2>&1; then
			notok "crash: the checker missed two swapped sectors"
		elif grep -q "holds damage" "$d/check"; then
			ok "crash: the checker reports two swapped sectors as damage"
		else
			notok "crash: the checker failed on two swapped sectors, but not with damage: $(head -n 2 "$d/check")"
		fi
	fi
}

for f in $FORMATS; do
	one "$f"
done
exit $((FAILS > 0))
