#!/bin/bash
# A crash of either plinthd in the middle of a live migration between hosts
# (docs/cluster.md "Live migration between hosts", the recovery table): h1 migrates a
# VM to h2 and stalls for 8 s after it wrote each phase in turn (prepare, transfer,
# confirm, switched: PLINTHD_TEST_MIGRATE_STALL, a test-only hook), and there the
# source's (h1) or the destination's (h2) plinthd is SIGKILLed and started again (5.5 s
# later: its name is taken until then; back before h1's stall ends).
# Each time, once the migration's record is resolved (gone from the inventory):
#   - exactly one copy runs: the VMs are tests/unit/daemon/fake-plinth, which append
#     "HOST PID SEQ MS" to their disk every 0.1 s while they run; over a second the
#     disk has lines of one process only;
#   - the inventory agrees: that process's host is the VM's owner, its pid the VM's,
#     the VM running;
#   - the winner is the table's where it is decided by the phase alone (the source's
#     copy before the transfer, the destination's once the source handed off).
# Then both killed at transfer and at confirm, h1 back first: h1 decides (its VMM never
# started the transfer: its copy wins; it handed off: h2's copy is confirmed, switched).
# Then the source gone for good: h1 killed at transfer and at confirm and left down;
# h2 decides alone after h1's heartbeat is PD_HOST_DOWN_MS old (gives the copy that
# did not run up; takes over the one that runs, owner h2 epoch + 1), and h1, started
# again, keeps to that. About 3 minutes.
TN=cluster-migrate-crash
. "$(dirname "$0")/cluster-lib"
export FAKE_PLINTH_COUNT=1
cluster_creds
# shellcheck disable=SC2046
start_host h1 $(listener_opts 1) && start_host h2 $(listener_opts 2) ||
	{ fail "two plinthd with TLS listeners started"; finished=1; exit 1; }
ok "two plinthd with TLS listeners and one cluster key started"

vmf() { # NAME FIELD: from the inventory (through h2)
	cl h2 vm info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}
sql() { psql -qtA "$DB" -c "$1" 2>/dev/null; }
# Stop plinthd HOST with SIGNAL (its VMs run on) and start it again, with STALL as its
# hook; after a SIGKILL its name is free once its last heartbeat is PD_HOST_DOWN_MS old.
restart() { # HOST SIGNAL [STALL]
	kill "-$2" "${PID[$1]}"
	wait "${PID[$1]}" 2>/dev/null
	[ "$2" = KILL ] && sleep 5.5
	PLINTHD_TEST_MIGRATE_STALL=${3:-} start_host "$1" || fail "plinthd $1 started again"
}
stalled() { # VM PHASE: h1 stalled there (waits up to 15 s)
	for _ in $(seq 150); do
		grep -q "VM $1: test: stalled after writing phase $2" "$T/h1.log" && return 0
		sleep 0.1
	done
	return 1
}
resolved() { # VM: no record left (waits up to 40 s)
	for _ in $(seq 400); do
		[ "$(sql "SELECT count(*) FROM migrations WHERE vm = '$1'")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}
# "HOST PID" of every process that wrote VM's disk in the last second (after a settle).
writers() {
	sleep 1.2
	local now
	now=$(date +%s%3N)
	awk -v t=$((now - 1000)) '$4 >= t {print $1, $2}' "$T/$1.disk" | sort -u
}
one_copy() { # VM WINNER ("" if either): exactly one copy and the inventory agrees
	local w n host pid
	w=$(writers "$1")
	n=$(grep -c . <<<"$w")
	read -r host pid <<<"$w"
	echo "# $1: copies running: $n ($w); inventory: $(vmf "$1" host) pid $(vmf "$1" pid) $(vmf "$1" state) epoch $(vmf "$1" epoch)"
	[ "$n" = 1 ] && [ "$(vmf "$1" host)" = "$host" ] && [ "$(vmf "$1" pid)" = "$pid" ] &&
		[ "$(vmf "$1" state)" = running ] && { [ -z "$2" ] || [ "$2" = "$host" ]; }
}
start_vm() { # VM: defined and started on h1, running
	: >"$T/$1.disk"
	cl h1 vm create "$1" --kernel /bin/true --memory 64 --disk "path=$T/$1.disk,format=raw" \
		>/dev/null || fail "h1 defined $1"
	cl h1 vm start "$1" --wait-seconds 10 >/dev/null || fail "h1 started $1"
	sleep 0.5
}

# VM PHASE: h1 (started again with the hook at PHASE) starts VM and migrates it to h2;
# true once h1 stalled there.
stall_at() {
	restart h1 TERM "$2"
	start_vm "$1"
	cl h1 vm migrate "$1" --to h2 >"$T/$1.out" 2>&1 &
	stalled "$1" "$2" && return 0
	fail "$1: h1 stalled after writing phase $2"
	return 1
}

# PHASE VICTIM WINNER: the migration of a new VM stalls at PHASE; VICTIM's plinthd is
# SIGKILLed there and started again.
crash() {
	local vm=c-$1-$2
	stall_at "$vm" "$1" || return
	restart "$2" KILL
	check "$1, $2 killed: the record resolved" resolved "$vm"
	check "$1, $2 killed: exactly one copy runs${3:+ (on $3)}, the inventory agrees" one_copy "$vm" "$3"
}
crash prepare h1 h1
crash prepare h2 ""
crash transfer h1 h1
crash transfer h2 h2
crash confirm h1 h2
crash confirm h2 h2
crash switched h1 h2
crash switched h2 h2

# Both killed (h1 cannot come back before h2 would see it down: each name is taken for
# PD_HOST_DOWN_MS after its last heartbeat, so above h2 decided alone where h1 was
# killed): h1 comes back first and resolves by its VMM and by asking h2, which is
# back a few seconds later and waits for h1's decision.
both() { # PHASE WINNER
	local vm=b-$1
	stall_at "$vm" "$1" || return
	kill -9 "${PID[h1]}" "${PID[h2]}"
	wait "${PID[h1]}" "${PID[h2]}" 2>/dev/null
	sleep 5.5
	start_host h1 || fail "plinthd h1 started again"
	sleep 2
	start_host h2 || fail "plinthd h2 started again"
	check "$1, both killed: the record resolved" resolved "$vm"
	check "$1, both killed: exactly one copy runs (on $2), the inventory agrees" one_copy "$vm" "$2"
	check "$1, both killed: h1 recovered it from phase $1" \
		grep -q "VM $vm: recovering its migration to h2 (phase $1)" "$T/h1.log"
}
both transfer h1
both confirm h2

# The source gone for good (plinthd down; its VMM outlives it as always).
gone() { # PHASE WINNER
	local vm=g-$1 t0
	stall_at "$vm" "$1" || return
	kill -9 "${PID[h1]}"
	wait "${PID[h1]}" 2>/dev/null
	t0=$(date +%s%3N)
	for _ in $(seq 200); do
		[ "$(sql "SELECT phase FROM migrations WHERE vm = '$vm'")" = "$3" ] && break
		sleep 0.1
	done
	echo "# $vm: h2 decided '$(sql "SELECT phase FROM migrations WHERE vm = '$vm'")' $(($(date +%s%3N) - t0)) ms after h1 was killed"
	check "h1 down at $1: h2 decides alone ($3)" \
		test "$(sql "SELECT phase FROM migrations WHERE vm = '$vm'")" = "$3"
	check "h1 down at $1: exactly one copy runs (on $2), the inventory agrees" one_copy "$vm" "$2"
	start_host h1 || fail "plinthd h1 started again"
	check "h1 back: the record resolved" resolved "$vm"
	check "h1 back: still exactly one copy (on $2), the inventory agrees" one_copy "$vm" "$2"
}
gone transfer h1 aborted
gone confirm h2 switched
check "the take-over is in the event log" \
	sh -c "$B/plinth events --json --state-dir $T/h2 | grep -q 'host h1 down mid-migration: taken over by h2'"

finish_with_vms
