# A VM configured through the control API alone: `plinth run --api-socket` with no
# machine options waits; bad configs and a start that cannot build the VM are refused
# with one line and nothing starts; then the standard guest, its kernel, initrd,
# command line, memory, vCPUs and one disk all PUT over the API, boots on start and
# sees its disk; the config is fixed once it runs; the guest powers off, plinth exits 0;
# then the same under --jail.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(sock_dir)
sock=$dir/api.sock
out=$dir/console
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
ctl() { "$BUILD/plinth" ctl --api-socket "$sock" "$@"; }
# refused WHAT REGEX CTL-ARGS...: the call fails with a 400 whose one line matches REGEX.
refused() {
	local what=$1 re=$2
	shift 2
	ctl "$@" >/dev/null 2>"$dir/err" && fail "$what was accepted"
	[ "$(wc -l <"$dir/err")" = 1 ] || { cat "$dir/err"; fail "$what: not one line"; }
	grep -q -E -- "$re.*\(HTTP 400\)" "$dir/err" || { cat "$dir/err"; fail "$what: not /$re/ with 400"; }
	echo "refused: $(cat "$dir/err")"
}

truncate -s 32M "$dir/os.img"
printf 'plinth-api-disk' | dd of="$dir/os.img" conv=notrunc 2>/dev/null

# A machine option beside a bare --api-socket is refused: the machine comes from one place.
rc=0
"$BUILD/plinth" run --api-socket "$sock" --cpus 2 </dev/null >"$dir/err" 2>&1 || rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$dir/err")" = 1 ] &&
	grep -q -- '--cpus without --kernel or --firmware' "$dir/err" ||
	{ cat "$dir/err"; fail "--api-socket with --cpus: exit $rc, not one line and 2"; }
[ -e "$sock" ] && fail "a refused command line left a socket"

"$BUILD/plinth" run --api-socket "$sock" </dev/null >"$out" 2>&1 &
pid=$!
end=$((SECONDS + 20))
until [ -S "$sock" ] || [ $SECONDS -ge $end ]; do sleep 0.1; done
[ -S "$sock" ] || { cat "$out"; fail "no API socket"; }
ctl info >"$dir/info" || fail "info failed before boot"
grep -q '"state": *"configuring"' "$dir/info" || { cat "$dir/info"; fail "info: not configuring"; }
grep -q '"config": *null' "$dir/info" || { cat "$dir/info"; fail "info: a config before any PUT"; }
ctl start 2>"$dir/err" && fail "start without a config succeeded"
grep -q 409 "$dir/err" || { cat "$dir/err"; fail "start without a config: not 409"; }

# The guests sleep 15 s after their output: the checks after it run while they are up,
# on a loaded emulated host too (4 s was too short there once).
cmd='echo "disk $(cat /sys/block/vda/size) $(cat /sys/block/vda/serial) $(head -c 15 /dev/vda)"; echo "cpus $(grep -c ^processor /proc/cpuinfo)"; sleep 15'
config() { # KERNEL EXTRA-JSON
	cat <<JSON
{"kernel": "$1", "initrd": "$GUEST/initramfs.cpio.gz",
 "cmdline": "$(guest_cmdline "$cmd")", "memory": "256M", "cpus": 2$2,
 "devices": [{"kind": "disk", "id": "os", "path": "$dir/os.img", "format": "raw",
              "serial": "api-disk"}]}
JSON
}

# Bad configs: refused at the PUT, in one line, and the pending config stays empty.
config "$GUEST/vmlinuz" ', "frobnicate": 1' >"$dir/bad1.json"
refused "an unknown field" "unknown field 'frobnicate'" config --file "$dir/bad1.json"
config "$GUEST/vmlinuz" ', "memory": "1M"' | sed 's/"memory": "256M", //' >"$dir/bad2.json"
refused "1M of memory" "field 'memory' must be a size of at least 32M" config --file "$dir/bad2.json"
ctl info | grep -q '"config": *null' || fail "a refused config was kept"
# A config whose kernel is missing is taken; its start is refused and nothing starts.
config "$dir/no-such-kernel" '' >"$dir/bad3.json"
ctl config --file "$dir/bad3.json" >/dev/null || fail "a complete config was refused"
refused "a start without its kernel" "cannot open kernel .*no-such-kernel" start
kill -0 $pid 2>/dev/null || { cat "$out"; fail "plinth exited after a refused start"; }
ctl info | grep -q '"state": *"configuring"' || fail "not configuring after a refused start"
grep -q 'plinth-guest' "$out" && fail "a guest ran"

# The real config replaces it; start boots it.
config "$GUEST/vmlinuz" '' >"$dir/good.json"
ctl config --file - <"$dir/good.json" >/dev/null || fail "the good config was refused"
ctl info >"$dir/info"
python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["config"]
sys.exit(not (c["cpus"] == 2 and c["memory"] == 256 << 20 and
              [(d["kind"], d["id"], d["addr"]) for d in c["devices"]] == [("disk", "os", 1)]))' \
	"$dir/info" || { cat "$dir/info"; fail "info: not the config PUT"; }
t0=$(date +%s%N)
ctl start >/dev/null || { cat "$out"; fail "start failed"; }
t1=$(date +%s%N)
echo "start answered in $(( (t1 - t0) / 1000000 )) ms"
wait_in "$out" $pid '^cpus ' 120
t2=$(date +%s%N)
echo "start to the guest's command: $(( (t2 - t0) / 1000000 )) ms"
tr -d '\r' <"$out" >"$dir/console.txt"
expect_in "$dir/console.txt" '^disk 65536 api-disk plinth-api-disk$' "the guest did not see its disk"
expect_in "$dir/console.txt" '^cpus 2$' "the guest does not have 2 vCPUs"
echo "guest: $(grep -E '^(disk|cpus) ' "$dir/console.txt" | tr '\n' ' ')"
# Running: the config is fixed, the running VM's routes answer on the same socket.
ctl info | grep -q '"state": *"running"' || fail "info: not running after start"
ctl config --file "$dir/good.json" 2>"$dir/err" && fail "a config was taken while running"
grep -q 'HTTP 409' "$dir/err" || { cat "$dir/err"; fail "config while running: not 409"; }
ctl start 2>"$dir/err" && fail "a second start succeeded"
grep -q 'HTTP 409' "$dir/err" || { cat "$dir/err"; fail "a second start: not 409"; }
wait_in "$out" $pid '^plinth-guest: exit status 0' 60
rc=0
wait $pid || rc=$?
pid=
[ $rc = 0 ] || { tail "$out"; fail "plinth exited $rc"; }
[ -e "$sock" ] && fail "the API socket was left behind"
echo "ok: configured through the API, booted, disk seen, exit 0"

# The same under --jail: the pre-boot server stops before the jail (which needs a single
# thread), the guest boots jailed and filtered, and the jailed VM serves the socket.
[ "$(id -u)" = 0 ] || fail "the jail needs root (the emulated host runs tests as root)"
mkdir -p "$dir/jail"
: >"$out"
"$BUILD/plinth" run --api-socket "$sock" --jail "$dir/jail" --uid 65534 --gid 65534 \
	</dev/null >"$out" 2>&1 &
pid=$!
end=$((SECONDS + 20))
until ctl info >/dev/null 2>&1 || [ $SECONDS -ge $end ]; do sleep 0.1; done
cmd='echo jailed-api; sleep 15'
config "$GUEST/vmlinuz" '' | python3 -c 'import json, sys; c = json.load(sys.stdin)
del c["devices"]; json.dump(c, sys.stdout)' >"$dir/jail.json"
ctl config --file "$dir/jail.json" >/dev/null || { cat "$out"; fail "jail: config refused"; }
ctl start >/dev/null || { cat "$out"; fail "jail: start failed"; }
wait_in "$out" $pid '^jailed-api' 120
uid=$(awk '$1 == "Uid:" { print $2 }' /proc/$pid/status)
seccomp=$(awk '$1 == "Seccomp:" { print $2 }' /proc/$pid/status)
[ "$uid" = 65534 ] && [ "$seccomp" = 2 ] || fail "jail: uid $uid, seccomp $seccomp"
ctl info | grep -q '"state": *"running"' || fail "jail: info: not running"
rc=0
wait $pid || rc=$?
pid=
[ $rc = 0 ] || { tail "$out"; fail "jail: plinth exited $rc"; }
echo "ok: jailed (uid $uid, seccomp $seccomp) through the API"

# Restore and receive through the API: a guest counting on its console is snapshotted;
# a process with only --api-socket takes the machine's config and POST /v1/vm/start
# {"from": DIR}: another machine (1 vCPU) is refused in one line and the process waits,
# the right one carries on counting (no boot); then a third process takes {"listen":
# "unix:..."} and the second migrates to it.
api_vm() { # SOCKET OUT: a plinth with only its API socket, waiting for its config
	"$BUILD/plinth" run --api-socket "$1" </dev/null >"$2" 2>&1 &
	local end=$((SECONDS + 20))
	until "$BUILD/plinth" ctl --api-socket "$1" info >/dev/null 2>&1 || [ $SECONDS -ge $end ]; do
		sleep 0.1
	done
}
cmd='i=0; while [ $i -lt 600 ]; do echo "tick $i"; i=$((i + 1)); sleep 0.2; done'
config "$GUEST/vmlinuz" '' >"$dir/count.json"
last_tick() { tr -d '\r' <"$1" | sed -n 's/^tick \([0-9]*\)$/\1/p' | tail -n 1; }
: >"$out"
api_vm "$sock" "$out"
pid=$!
pids="$pid"
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; rm -rf "$dir"' EXIT
ctl config --file "$dir/count.json" >/dev/null || { cat "$out"; fail "count: config refused"; }
ctl start >/dev/null || { cat "$out"; fail "count: start failed"; }
wait_in "$out" $pid '^tick 5' 120
ctl pause >/dev/null || fail "count: pause failed"
n=$(last_tick "$out")
ctl snapshot --to "$dir/snap" >/dev/null || fail "count: snapshot failed"
kill -9 $pid
wait $pid 2>/dev/null
echo "snapshot of the counting guest at tick $n"

sockb=$dir/b.sock
outb=$dir/console-b
api_vm "$sockb" "$outb"
pidb=$!
pids="$pids $pidb"
sed 's/"cpus": 2/"cpus": 1/' "$dir/count.json" >"$dir/count1.json"
sock=$sockb
ctl config --file "$dir/count1.json" >/dev/null || fail "restore: the 1-vCPU config was refused"
refused "a restore onto another machine" "cannot restore from $dir/snap: .*cpus" start --from "$dir/snap"
kill -0 $pidb 2>/dev/null || { cat "$outb"; fail "restore: plinth exited after a refused start"; }
ctl info | grep -q '"state": *"configuring"' || fail "restore: not configuring after a refused start"
refused "a restore from nowhere" "$dir/nowhere" start --from "$dir/nowhere"
ctl config --file "$dir/count.json" >/dev/null || fail "restore: the config was refused"
ctl start --from "$dir/snap" >/dev/null || { cat "$outb"; fail "restore: start --from failed"; }
wait_in "$outb" $pidb "^tick $((n + 3))[[:space:]]" 60
ctl info | grep -q '"restored": *true' || fail "restore: info does not say restored"
tr -d '\r' <"$outb" | grep -q -E '^tick [0-4]$|init started' && { cat "$outb"; fail "restore: the guest booted again"; }
echo "ok: restored through the API from tick $n to $(last_tick "$outb")"

sockc=$dir/c.sock
outc=$dir/console-c
api_vm "$sockc" "$outc"
pidc=$!
pids="$pids $pidc"
sock=$sockc
ctl config --file "$dir/count.json" >/dev/null || fail "receive: config refused"
refused "a receive at a bad address" "field 'listen' must be tcp:HOST:PORT or unix:PATH" start --listen "udp:x:1"
ctl start --listen "unix:$dir/mig.sock" >/dev/null || { cat "$outc"; fail "receive: start --listen failed"; }
end=$((SECONDS + 20))
until [ -S "$dir/mig.sock" ] || [ $SECONDS -ge $end ]; do sleep 0.1; done
m=$(last_tick "$outb")
sock=$sockb
ctl migrate --to "unix:$dir/mig.sock" >/dev/null || fail "receive: migrate failed"
rc=0
timeout 120 tail --pid=$pidb -f /dev/null || rc=$?
wait $pidb || rc=$?
[ $rc = 0 ] || { tail "$outb"; fail "receive: the source exited $rc"; }
wait_in "$outc" $pidc '^tick [0-9]+' 60
sleep 1
[ "$(last_tick "$outc")" -gt "$m" ] || { cat "$outc"; fail "receive: the guest does not count on from tick $m"; }
tr -d '\r' <"$outc" | grep -q -E '^tick [0-4]$|init started' && { cat "$outc"; fail "receive: the guest booted again"; }
sock=$sockc
ctl info | grep -q '"state": *"running"' || fail "receive: not running on the destination"
kill -9 $pidc
echo "ok: received through the API (source at tick $m, destination at $(last_tick "$outc"))"
