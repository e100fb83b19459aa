#!/bin/bash
# Live migration and restore, plinth beside QEMU, same kernel, initrd and memory:
#  - migration over loopback TCP of a 512 MiB guest, idle and dirtying 32 MiB of
#    tmpfs in a loop: total time and downtime as each VMM reports them (plinth:
#    its "migration completed" line; QEMU: query-migrate's total-time/downtime),
#    both with a 300 ms downtime target;
#  - plinth restore of a snapshot of a 128 MiB and a 2 GiB guest: start of
#    `plinth restore --paused` to the API answering (state loaded, RAM mapped).
# Runs where KVM is usable (inside scripts/hostvm on the project's machines):
#   scripts/hostvm --memory 6G -- bench/vmm-migrate.sh
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. tests/integration/lib.sh
kvm_usable || { echo "bench: no usable KVM: $(kvm_why)" >&2; exit 1; }
: "${BUILD:=build}"
K=$GUEST/vmlinuz I=$GUEST/initramfs.cpio.gz
dir=$(mktemp -d -p /run 2>/dev/null || mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; rm -rf "$dir"' EXIT
idle='i=0; while :; do i=$((i+1)); echo "count $i"; sleep 1; done'
dirty='i=0; while :; do i=$((i+1)); dd if=/dev/zero of=/dev/shm/buf bs=1M count=32 conv=notrunc 2>/dev/null; echo "count $i"; done'

wait_line() { # FILE REGEX SECONDS
	local end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do grep -q -E "$2" "$1" && return 0; sleep 0.3; done
	return 1
}

plinth_migrate() { # NAME CMD
	local a b
	# TCP migrations are TLS 1.3 with the cluster's key; both sides build the same machine.
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/key"
	chmod 600 "$dir/key"
	"$BUILD/plinth" run --kernel "$K" --initrd "$I" --memory 512M --cmdline "$(guest_cmdline "$2")" \
		--migrate-psk "$dir/key" --api-socket "$dir/a.sock" </dev/null >"$dir/a.out" 2>"$dir/a.err" &
	a=$!; pids+=($a)
	wait_line "$dir/a.out" 'count 3' 120 || { echo "$1: plinth guest did not start"; return; }
	"$BUILD/plinth" receive --listen tcp:127.0.0.1:47200 --kernel "$K" --initrd "$I" --memory 512M \
		--migrate-psk "$dir/key" </dev/null >"$dir/b.out" 2>&1 &
	b=$!; pids+=($b)
	sleep 1
	"$BUILD/plinth" ctl --api-socket "$dir/a.sock" migrate --to tcp:127.0.0.1:47200 >/dev/null
	wait $a
	echo "plinth $1: $(grep -o 'total.*' "$dir/a.err" || "$BUILD/plinth" ctl --api-socket "$dir/a.sock" info 2>&1 | tail -n 3)"
	kill -9 $b 2>/dev/null; wait $b 2>/dev/null
}

qmp() { # SOCK JSON...: run commands, print the last reply
	python3 - "$@" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rw')
f.readline()
def cmd(c):
    f.write(json.dumps(c) + '\n'); f.flush()
    while True:
        r = json.loads(f.readline())
        if 'return' in r or 'error' in r: return r
cmd({'execute': 'qmp_capabilities'})
r = None
for a in sys.argv[2:]:
    r = cmd(json.loads(a))
if sys.argv[2:] and json.loads(sys.argv[-1])['execute'] == 'migrate':
    while True:
        r = cmd({'execute': 'query-migrate'})
        if r['return'].get('status') in ('completed', 'failed', 'cancelled'): break
        time.sleep(0.1)
print(json.dumps(r))
PY
}

qemu_migrate() { # NAME CMD
	local a b q=(qemu-system-x86_64 -accel kvm -cpu host -M pc -m 512 -nodefaults -no-user-config
		-nographic -kernel "$K" -initrd "$I" -append "$(guest_cmdline "$2")")
	"${q[@]}" -serial "file:$dir/qa.out" -qmp "unix:$dir/qa.qmp,server=on,wait=off" </dev/null >/dev/null 2>&1 &
	a=$!; pids+=($a)
	wait_line "$dir/qa.out" 'count 3' 120 || { echo "$1: QEMU guest did not start"; return; }
	"${q[@]}" -serial "file:$dir/qb.out" -incoming tcp:127.0.0.1:47201 </dev/null >/dev/null 2>&1 &
	b=$!; pids+=($b)
	sleep 2
	r=$(qmp "$dir/qa.qmp" '{"execute":"migrate-set-parameters","arguments":{"downtime-limit":300}}' \
		'{"execute":"migrate","arguments":{"uri":"tcp:127.0.0.1:47201"}}')
	echo "qemu $1: $(echo "$r" | python3 -c 'import json,sys; r=json.load(sys.stdin)["return"]; print("total %s ms, downtime %s ms, %s bytes, status %s" % (r.get("total-time"), r.get("downtime"), r.get("ram",{}).get("transferred"), r.get("status")))')"
	kill -9 $a $b 2>/dev/null; wait $a $b 2>/dev/null
	rm -f "$dir"/q*
}

restore_time() { # MEMORY
	local a r t0 t1
	rm -rf "$dir/snap"
	"$BUILD/plinth" run --kernel "$K" --initrd "$I" --memory "$1" --cmdline "$(guest_cmdline "$idle")" \
		--api-socket "$dir/r.sock" </dev/null >"$dir/r.out" 2>&1 &
	a=$!; pids+=($a)
	wait_line "$dir/r.out" 'count 3' 120 || { echo "restore $1: guest did not start"; return; }
	"$BUILD/plinth" ctl --api-socket "$dir/r.sock" snapshot --to "$dir/snap" >/dev/null
	kill -9 $a; wait $a 2>/dev/null
	t0=${EPOCHREALTIME/./}
	"$BUILD/plinth" restore --from "$dir/snap" --kernel "$K" --initrd "$I" --memory "$1" \
		--api-socket "$dir/r2.sock" --paused </dev/null >"$dir/r2.out" 2>&1 &
	r=$!; pids+=($r)
	until "$BUILD/plinth" ctl --api-socket "$dir/r2.sock" info >/dev/null 2>&1; do sleep 0.01; done
	t1=${EPOCHREALTIME/./}
	echo "restore $1: $(( (t1 - t0) / 1000 )) ms to a restored, paused VM answering its API (memory file $(du -m "$dir/snap/memory" | cut -f1) MiB on disk)"
	kill -9 $r; wait $r 2>/dev/null
	# Baseline: a fresh VM of the same size, start to its API answering.
	t0=${EPOCHREALTIME/./}
	"$BUILD/plinth" run --kernel "$K" --initrd "$I" --memory "$1" --cmdline "$(guest_cmdline "$idle")" \
		--api-socket "$dir/r3.sock" </dev/null >/dev/null 2>&1 &
	r=$!; pids+=($r)
	until "$BUILD/plinth" ctl --api-socket "$dir/r3.sock" info >/dev/null 2>&1; do sleep 0.01; done
	t1=${EPOCHREALTIME/./}
	echo "fresh run $1: $(( (t1 - t0) / 1000 )) ms to the API answering (baseline)"
	kill -9 $r; wait $r 2>/dev/null
}

plinth_migrate idle "$idle"
qemu_migrate idle "$idle"
plinth_migrate dirtying "$dirty"
qemu_migrate dirtying "$dirty"
restore_time 128M
restore_time 2G
