#!/bin/bash
# Maintenance mode (docs/cluster.md "Maintenance mode"): three plinthd on a private
# PostgreSQL with TLS listeners and one cluster key; the VMs are
# tests/unit/daemon/fake-plinth (it counts and hands its count over as plinth hands
# over a guest). What is tested:
#   - `plinth host evacuate h1` asked of another host: h1 goes into maintenance and its
#     task moves every VM it owns, one by one, to hosts with room: running VMs live
#     (each counts on from where it was), a stopped VM by a change of owner; progress
#     in the task; a VM that fits nowhere (more vCPUs than any other host has free)
#     leaves the task failed with one line naming it, after the others moved;
#   - while h1 is in maintenance: `plinth host list` says so, a VM defined through h2
#     (placement spread) or h1 itself (placement local) goes elsewhere, `migrate
#     --to h1` is refused in one line, `migrate --to auto` avoids it;
#   - `plinth host activate h1`: new VMs and migrations go to h1 again;
#   - a cancelled evacuation stops before its next VM: the task says cancelled and
#     what was left stays on its host.
# About 30 s.
TN=cluster-evacuate
. "$(dirname "$0")/cluster-lib"
export FAKE_PLINTH_COUNT=1
cluster_creds
# shellcheck disable=SC2046
start_host h1 $(listener_opts 1) && start_host h2 $(listener_opts 2) &&
	start_host h3 $(listener_opts 3) --placement spread ||
	{ fail "three plinthd with TLS listeners started"; finished=1; exit 1; }
ok "three plinthd with TLS listeners and one cluster key started"

vmf() { # NAME FIELD: from the inventory (through h2)
	cl h2 vm info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}
last_count() { grep -o '^count [0-9]*$' "$1" 2>/dev/null | tail -n 1 | cut -d' ' -f2; }
owned_by() { # HOST: the names of the VMs it owns, sorted, on one line
	cl h2 vm list --json | python3 -c '
import json, sys
print(" ".join(sorted(v["name"] for v in json.load(sys.stdin)["vms"] if v["host"] == sys.argv[1])))' "$1"
}
host_mode() { # HOST: its MODE column in `plinth host list`
	cl h2 host list | awk -v h="$1" '$1 == h {print $7}'
}
mem=$(cl h1 host list --json | python3 -c 'import json,sys; print([h for h in json.load(sys.stdin)["hosts"] if h["name"] == "h1"][0]["memory_mib"])')
n=3
for i in $(seq $n); do
	cl h1 vm create "s$i" --kernel /bin/true --memory 64 >/dev/null || fail "h1 defined s$i"
	cl h1 vm start "s$i" --wait-seconds 10 >/dev/null || fail "h1 started s$i"
done
big=$((mem * 6 / 10))
cl h1 vm create big --kernel /bin/true --memory $big >/dev/null || fail "h1 defined big"
cl h1 vm start big --wait-seconds 10 >/dev/null || fail "h1 started big"
cl h1 vm create idle --kernel /bin/true --memory 64 >/dev/null || fail "h1 defined idle"
check "h1 owns $n running stand-in VMs, big ($big MiB) and a stopped one" \
	test "$(owned_by h1)" = "big idle $(seq -f 's%g' -s ' ' $n)"
# Placement counts memory against MemTotal (the host list's memory_mib). h2 and h3 each
# get a stopped VM of half of it, so big (60%) fits on h1 alone. (h2 places locally,
# h3 spreads: the least loaded host is h3 by then.)
cl h2 vm create pin2 --kernel /bin/true --memory $((mem / 2)) >/dev/null &&
	cl h3 vm create pin3 --kernel /bin/true --memory $((mem / 2)) >/dev/null ||
	fail "pin2 and pin3 defined"
check "pin2 on h2 and pin3 on h3" test "$(vmf pin2 host) $(vmf pin3 host)" = "h2 h3"
sleep 1
declare -A before
for i in $(seq $n); do before[s$i]=$(last_count "$T/h1/vms/$(vmf "s$i" uuid)/console.log"); done

t0=$(date +%s%3N)
out=$(cl h3 host evacuate h1 2>&1)
rc=$?
ms=$(($(date +%s%3N) - t0))
echo "# h3: plinth host evacuate h1: $out ($ms ms for $n running VMs, one stopped, one that fits nowhere)"
check "the evacuation (asked of h3, carried out by h1) fails in one line (exit 1)" \
	test "$rc" = 1 -a "$(wc -l <<<"$out")" = 1
check "... naming the VM that fits nowhere, the others moved" \
	test "$(grep -c "evacuate h1: failed, 5 of 5 VMs done: 4 of 5 VMs moved; VM 'big' cannot go anywhere: no other host that is up has room for VM 'big' ($big MiB, 1 vCPUs; placement spread; hosts in maintenance or without its CPU features left out)" <<<"$out")" = 1
check "h1 keeps only big" test "$(owned_by h1)" = "big"
check "big still runs on h1" test "$(vmf big state) $(vmf big host)" = "running h1"
for i in $(seq $n); do
	h=$(vmf "s$i" host)
	log=$T/$h/vms/$(vmf "s$i" uuid)/console.log
	got=$(grep -o 'received at count [0-9]*' "$log" 2>/dev/null | grep -o '[0-9]*$')
	check "s$i runs on $h (not h1) and counted on from where it was (${before[s$i]} <= $got)" \
		sh -c "[ '$h' != h1 ] && [ '$(vmf "s$i" state)' = running ] && [ -n '$got' ] && [ '$got' -ge '${before[s$i]}' ]"
done
check "idle (stopped) moved to another host, stopped" \
	sh -c "[ '$(vmf idle host)' != h1 ] && [ '$(vmf idle state)' = defined ]"
check "no host got more memory than it has (capacity respected)" sh -c "
	for h in h2 h3; do
		$B/plinth vm list --json --state-dir $T/h2 | python3 -c '
import json, sys
print(sum(v[\"memory_mib\"] for v in json.load(sys.stdin)[\"vms\"] if v[\"host\"] == sys.argv[1]))' \$h |
			{ read -r m; [ \"\$m\" -le $mem ]; } || exit 1
	done"
check "host list: h1 in maintenance, h2 active" test "$(host_mode h1) $(host_mode h2)" = "maintenance active"
check "the event log has the evacuation's outcome" \
	sh -c "$B/plinth events --json --state-dir $T/h2 | grep -q '4 of 5 VMs moved in [0-9]* ms: 4 of 5 VMs moved; VM .big. cannot go anywhere'"

# In maintenance: nothing new goes to h1.
for i in 1 2; do cl h3 vm create "n$i" --kernel /bin/true --memory 64 >/dev/null || fail "h2 defined n$i"; done
cl h1 vm create nl --kernel /bin/true --memory 64 >/dev/null || fail "h1 defined nl"
check "new VMs avoid h1 (spread through h3, local through h1)" \
	sh -c "[ '$(vmf n1 host)' != h1 ] && [ '$(vmf n2 host)' != h1 ] && [ '$(vmf nl host)' != h1 ]"
s1=$(vmf s1 host)
out=$(cl h2 vm migrate s1 --to h1 2>&1); echo "# $out"
check "migrate --to h1 refused in one line" test "$(grep -c "host 'h1' is in maintenance" <<<"$out")" = 1
out=$(cl h2 vm migrate s1 --to auto 2>&1); rc=$?; echo "# $out"
check "migrate --to auto moves s1 to the other host in service" \
	sh -c "[ $rc = 0 ] && [ '$(vmf s1 host)' != h1 ] && [ '$(vmf s1 host)' != '$s1' ]"

# Activated: h1 takes VMs again.
out=$(cl h3 host activate h1 2>&1)
check "plinth host activate h1 (asked of h3)" test $? = 0
check "host list: h1 active" test "$(host_mode h1)" = active
cl h1 vm create back --kernel /bin/true --memory 64 >/dev/null || fail "h1 defined back"
check "a VM defined through h1 (placement local) lands on h1 again" test "$(vmf back host)" = h1
out=$(cl h2 vm migrate s1 --to h1 2>&1); rc=$?; echo "# $out"
check "migrate --to h1 accepted again" test "$rc $(vmf s1 host)" = "0 h1"

# Cancel: h1's second evacuation stops before its next VM.
for i in 1 2 3 4 5 6; do
	cl h1 vm create "c$i" --kernel /bin/true --memory 64 >/dev/null || fail "h1 defined c$i"
	cl h1 vm start "c$i" --wait-seconds 10 >/dev/null || fail "h1 started c$i"
done
id=$(cl h2 host evacuate h1 --wait-seconds 0 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sleep 0.1
cl h1 task cancel "$id" >/dev/null
tl=$(cl h1 task wait "$id" --wait-seconds 60 2>&1); echo "# $tl"
check "a cancelled evacuation ends cancelled, saying how far it went" \
	test "$(grep -c "evacuate h1: cancelled, .*cancelled after [0-9]* of 9 VMs moved" <<<"$tl")" = 1
k=$(grep -o 'cancelled after [0-9]*' <<<"$tl" | grep -o '[0-9]*$')
left=$(owned_by h1)
echo "# left on h1: $left"
check "what was left (9 - $k VMs) stays on h1, c6 running there" \
	sh -c "[ $(wc -w <<<"$left") = $((9 - k)) ] && [ '$(vmf c6 host) $(vmf c6 state)' = 'h1 running' ]"
cl h2 host activate h1 >/dev/null

finish_with_vms
