# plinthd end to end: a template imported into the pool, N linked clones (PLINTHD_VMS,
# default 4; make soak runs 20), one VM on each, all started at once (jailed, seccomp on)
# and plinthd SIGKILLed while they start and started again (every VM comes up exactly
# once), input typed into one's serial console answered by its guest; plinthd
# SIGKILLed while they run and started again (every VM adopted, running exactly once,
# listed with the same pid); one VM's plinth SIGKILLed (crashed within 2 s, then back
# through its on-crash policy); the refusals (second start, delete while running,
# image in use, duplicate name, memory over the host's limit) change nothing; stop
# (ACPI) and kill; each clone's write is in its own overlay and the template is
# unchanged; a VM's disk is at the id and PCI slot the inventory keeps for it.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
N=${PLINTHD_VMS:-4}
dir=$(sock_dir)
state=$dir/state
pdpid=
trap '[ -n "$pdpid" ] && kill -9 $pdpid 2>/dev/null; pkill -9 -f -- "--api-socket $state/" 2>/dev/null; [ -n "${PLINTHD_KEEP:-}" ] && cp -r "$dir" "$PLINTHD_KEEP" 2>/dev/null; rm -rf "$dir"' EXIT
P() { "$BUILD/plinth" "$1" --state-dir "$state" "${@:2}"; }
start_plinthd() {
	"$BUILD/plinthd" --state-dir "$state" -v >>"$dir/plinthd.log" 2>&1 &
	pdpid=$!
	for _ in $(seq 100); do
		[ -S "$state/plinthd.sock" ] && P vm list >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$dir/plinthd.log"
	fail "plinthd did not come up"
}
field() { P vm info "$1" --json | python3 -c "import sys, json; print(json.load(sys.stdin).get('$2', ''))"; }
ms() { date +%s%3N; }
# plinth processes serving VM $1's API socket (exactly one while it runs).
copies() {
	local uuid
	uuid=$(field "$1" uuid)
	pgrep -c -f -- "--api-socket $state/vms/$uuid/api.sock" || true
}
slow=$((15 * N)) # more VMs boot at once: more time for each (the emulated host has 2 CPUs)
wait_state() { # NAME STATE [SECONDS]
	local end=$((SECONDS + ${3:-120} + slow))
	while [ $SECONDS -lt $end ]; do
		[ "$(field "$1" state)" = "$2" ] && return 0
		sleep 0.2
	done
	P vm info "$1"
	P vm console "$1" | tail -n 20
	fail "$1 did not become $2"
}
# The VMM's own view (its API: state, exit counters), twice 2 s apart: a stuck guest
# shows whether its vCPUs still exit (spinning) or not (halted for good).
vmm_info() {
	local sock
	sock=$state/vms/$(field "$1" uuid)/api.sock
	curl -s --max-time 5 --unix-socket "$sock" http://vm/v1/vm; echo
	sleep 2
	curl -s --max-time 5 --unix-socket "$sock" http://vm/v1/vm; echo
}
wait_console() { # NAME REGEX [SECONDS]
	local end=$((SECONDS + ${3:-180} + slow))
	while [ $SECONDS -lt $end ]; do
		P vm console "$1" | tr -d '\r' | grep -q -E -- "$2" && return 0
		sleep 0.5
	done
	P vm info "$1"
	vmm_info "$1"
	P vm console "$1" | tail -n 20
	fail "$1: no /$2/ on its console"
}

start_plinthd
# The template: 16 MiB with a marker at 0, imported (a task) into the pool as qcow2.
truncate -s 16M "$dir/template.raw"
printf 'plinth-template\n' | dd of="$dir/template.raw" conv=notrunc 2>/dev/null
P image import tmpl "$dir/template.raw" --format raw >"$dir/out" || { cat "$dir/out"; fail "import"; }
grep -q 'done, 100%' "$dir/out" || { cat "$dir/out"; fail "import task: $(cat "$dir/out")"; }
sum0=$(sha256sum <"$state/images/tmpl")
t0=$(ms)
for i in $(seq "$N"); do
	P image clone tmpl "c$i" --linked >/dev/null || fail "linked clone c$i"
done
echo "# $N linked clones in $(($(ms) - t0)) ms"
P image info tmpl | grep -q 'template:  yes' || fail "tmpl is not marked a template"

for i in $(seq "$N"); do
	restart=never
	[ "$i" = 1 ] && restart=on-crash
	cmd="printf 'clone-vm$i\n' | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null && echo wrote-vm$i; while read -r l; do echo \"got:\$l\"; done; while :; do sleep 1; done"
	P vm create "vm$i" --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
		--memory 128 --cmdline "$(guest_cmdline "$cmd" "${PLINTHD_GUEST_EXTRA:-}")" --disk "image=c$i" \
		--restart $restart >/dev/null || fail "define vm$i"
done

# Refusals: one line, exit 1, nothing changed.
refused_line "a duplicate name" "already exists" P vm create vm1 --kernel "$GUEST/vmlinuz"
refused_line "an invalid name" "not a valid name" P vm create "bad/name" --kernel "$GUEST/vmlinuz"
refused_line "a missing image" "no image named" P vm create x1 --kernel "$GUEST/vmlinuz" --disk image=nope
refused_line "memory over the limit" "over this host's limit" P vm create x2 --kernel "$GUEST/vmlinuz" --memory 1000000
refused_line "a template as a writable disk" "template" P vm create x3 --kernel "$GUEST/vmlinuz" --disk image=tmpl
refused_line "deleting an image in use" "used by VM" P image delete c1
refused_line "deleting a template" "template of linked clone" P image delete tmpl
[ "$(P vm list --json | python3 -c 'import sys, json; print(len(json.load(sys.stdin)["vms"]))')" = "$N" ] ||
	fail "a refused create changed the inventory"

t0=$(ms)
for i in $(seq "$N"); do
	P vm start "vm$i" --wait-seconds 0 >/dev/null || fail "start vm$i"
done
# plinthd SIGKILLed while they start, then started again: none lost, none twice.
starting=$(P vm list --json | python3 -c 'import sys, json; print(sum(v["state"] == "starting" for v in json.load(sys.stdin)["vms"]))')
kill -9 $pdpid
wait $pdpid 2>/dev/null
pdpid=
echo "# plinthd SIGKILLed with $starting of $N VMs starting"
start_plinthd
for i in $(seq "$N"); do wait_state "vm$i" running; done
for i in $(seq "$N"); do
	[ "$(copies "vm$i")" = 1 ] || fail "vm$i runs $(copies "vm$i") times after plinthd's SIGKILL during the starts"
done
t1=$(ms)
for i in $(seq "$N"); do wait_console "vm$i" "^wrote-vm$i"; done
echo "# $N VMs: running in $((t1 - t0)) ms, all wrote their disks in $(($(ms) - t0)) ms"
# A guest that reset by itself (a panic with panic=-1) was started again by plinthd
# (plinth exits 3): shown, with the console lines that say why.
P events --json | python3 -c '
import sys, json
for e in json.load(sys.stdin)["events"]:
    if "guest reset" in e["message"] or e["action"] == "vm.crashed":
        print("# event:", e["object"], e["action"], e["message"])'
for i in $(seq "$N"); do
	P vm console "vm$i" | tr -d '\r' | grep -E -i 'panic|BUG|Oops|timer|guest reset|triple' | sed "s/^/# vm$i: /"
done
# The serial console both ways: typed input reaches the guest's shell, its answer comes back.
printf 'hello-vm3\n\035' | P vm console vm3 --attach >"$dir/attach" 2>&1 || { cat "$dir/attach"; fail "console --attach"; }
wait_console vm3 "^got:hello-vm3" 60
refused_line "a second start" "already running" P vm start vm2
refused_line "deleting a running VM" "stop it before deleting" P vm delete vm2
for i in $(seq "$N"); do
	[ "$(copies "vm$i")" = 1 ] || fail "vm$i runs $(copies "vm$i") times"
done
pid2=$(field vm2 pid)
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid2/status")
sc=$(awk '/^Seccomp:/ { print $2 }' "/proc/$pid2/status")
echo "# vm2: plinth pid $pid2 uid $uid seccomp $sc"
[ "$uid" -ge 200000 ] || fail "vm2 is not jailed under its own uid (uid $uid)"
# Its disk at the id and PCI slot the inventory keeps, as the VMM itself reports it.
P vm info vm2 | grep -q '^devices: *disk0 slot 1$' || fail "vm2's devices: $(P vm info vm2 | grep devices)"
"$BUILD/plinth" ctl --api-socket "$state/vms/$(field vm2 uuid)/api.sock" info | python3 -c '
import sys, json
d = json.load(sys.stdin)["config"]["devices"]
sys.exit([(x["kind"], x["id"], x["addr"]) for x in d] != [("disk", "disk0", 1)])' ||
	fail "vm2's plinth does not have disk0 at slot 1"
[ "$sc" = 2 ] || fail "vm2 has no seccomp filter"

# plinthd SIGKILLed while the VMs run, then started again: all adopted, none twice.
declare -A before
for i in $(seq "$N"); do before[$i]=$(field "vm$i" pid); done
kill -9 $pdpid
wait $pdpid 2>/dev/null
pdpid=
sleep 1
for i in $(seq "$N"); do
	kill -0 "${before[$i]}" 2>/dev/null || fail "vm$i died with plinthd"
done
start_plinthd
for i in $(seq "$N"); do
	[ "$(field "vm$i" state)" = running ] || fail "vm$i is $(field "vm$i" state) after the restart"
	[ "$(field "vm$i" pid)" = "${before[$i]}" ] || fail "vm$i: pid $(field "vm$i" pid), was ${before[$i]}"
	[ "$(copies "vm$i")" = 1 ] || fail "vm$i runs $(copies "vm$i") times after the restart"
done
P vm list

# One VM's plinth SIGKILLed: crashed within 2 s, then restarted (on-crash).
old=$(field vm1 pid)
since=$(P events --json | python3 -c 'import sys, json; e = json.load(sys.stdin)["events"]; print(e[-1]["id"] if e else 0)')
tk=$(date +%s%3N)
kill -9 "$old"
crash_ms=
for _ in $(seq 50); do
	crash_ms=$(P events --after "$since" --json | python3 -c '
import sys, json
for e in json.load(sys.stdin)["events"]:
    if e["action"] == "vm.crashed" and e["object"] == "vm1":
        print(e["time_ms"]); break')
	[ -n "$crash_ms" ] && break
	sleep 0.1
done
[ -n "$crash_ms" ] || fail "vm1's crash was not noticed"
echo "# vm1 SIGKILLed: crashed recorded after $((crash_ms - tk)) ms"
[ $((crash_ms - tk)) -le 2000 ] || fail "the crash took $((crash_ms - tk)) ms to notice (> 2 s)"
P events --after "$since" | grep vm1 | grep -q 'signal 9' || fail "the crash's reason is not the signal"
wait_state vm1 running 120
[ "$(field vm1 pid)" != "$old" ] || fail "vm1 was not restarted"
end=$((SECONDS + 180 + slow)) # the console log is appended to: the second boot's line
until [ "$(P vm console vm1 | tr -d '\r' | grep -c '^wrote-vm1')" -ge 2 ]; do
	[ $SECONDS -lt $end ] || { P vm console vm1 | tail -n 20; fail "vm1 did not boot again"; }
	sleep 0.5
done
[ "$(copies vm1)" = 1 ] || fail "vm1 runs $(copies vm1) times after its restart"

# Stop: ACPI on vm2 (the guest's acpid powers off), kill on the rest.
t0=$(ms)
P vm stop vm2 --timeout 60 >/dev/null || fail "stop vm2"
echo "# vm2 stopped (ACPI) in $(($(ms) - t0)) ms"
[ "$(field vm2 state)" = stopped ] || fail "vm2 is $(field vm2 state) after stop"
P vm console vm2 | grep -q 'power button' || fail "vm2 did not see the power button"
for i in $(seq "$N"); do
	[ "$i" = 2 ] && continue
	P vm kill "vm$i" >/dev/null || { P vm info "vm$i"; P vm console "vm$i" | tail -n 30; fail "kill vm$i"; }
	[ "$(field "vm$i" state)" = stopped ] || fail "vm$i is $(field "vm$i" state) after kill"
done
for i in $(seq "$N"); do [ "$(copies "vm$i")" = 0 ] || fail "vm$i still runs"; done

# Each clone's write is in its own overlay; the template is unchanged.
[ "$(sha256sum <"$state/images/tmpl")" = "$sum0" ] || fail "the template changed"
for i in $(seq "$N"); do
	"$BUILD/plinth-img" convert --allow-backing -O raw "$state/images/c$i" "$dir/c$i.raw" || fail "convert c$i"
	dd if="$dir/c$i.raw" bs=512 skip=8 count=1 2>/dev/null | grep -q -a "^clone-vm$i" ||
		fail "c$i does not hold vm$i's write"
	head -c 16 "$dir/c$i.raw" | grep -q -a plinth-template || fail "c$i lost the template's data"
	grep -q -a "clone-vm" "$state/images/tmpl" && fail "a clone's write reached the template"
	rm -f "$dir/c$i.raw"
done

# Delete: VMs, then clones, then the template; everything is gone.
for i in $(seq "$N"); do
	P vm delete "vm$i" >/dev/null || fail "delete vm$i"
	P image delete "c$i" >/dev/null || fail "delete c$i"
done
P image delete tmpl >/dev/null || fail "delete tmpl"
[ -z "$(ls "$state/images")" ] || fail "files left in the pool: $(ls "$state/images")"
[ -z "$(ls "$state/vms")" ] || fail "run directories left: $(ls "$state/vms")"
kill -TERM $pdpid
wait $pdpid || fail "plinthd exited $? on SIGTERM"
pdpid=
echo "plinthd-vms: ok"
