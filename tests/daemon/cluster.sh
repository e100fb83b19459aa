#!/bin/bash
# plinthd hosts on one PostgreSQL, on this machine (no VM is started: membership,
# heartbeats, the leader lease and VM ownership need no KVM). A private PostgreSQL
# from Debian's package (tests/daemon/pg-server); fails, never skips, without it.
#   - three plinthd register, heartbeat and agree on one leader;
#   - a VM belongs to the host that defined it; another host refuses to start it;
#   - placement: spread evens VMs out over the hosts, pack fills the fullest host
#     that fits, a VM no host has room for is refused in one line, a host that is
#     down is never chosen; anti-affinity groups keep their VMs on different hosts
#     (placed, or refused in one line; local placement refuses a second on its host);
#   - the leader stopped cleanly: another leads at once (the lease is let go);
#   - the leader SIGKILLed, three times: another leads within PD_LEASE_MS +
#     PD_HEARTBEAT_MS (4 + 1 s) + 1 s, the term grows, and no two plinthd believe
#     they lead at the same moment (sampled every 0.1 s); the figures are printed;
#   - the dead host is shown down, and up again when it comes back;
#   - PostgreSQL stopped for 8 s: every plinthd keeps running and nobody leads (no
#     lease can be renewed); started again: every host heartbeats, one leads;
#   - a task in progress belongs to its host: another host's restart leaves it
#     running, its own host's restart fails it;
#   - SQLite: one host, leading; its VMs follow a renamed host.
# About 60 s (most of it the takeovers and a wait for "down"). CLUSTER_ROUNDS (3): how
# many times the leader is SIGKILLed (make bench asks for more).
TN=cluster
. "$(dirname "$0")/cluster-lib"
hostinfo() { curl -s --max-time 2 --unix-socket "$T/$1/plinthd.sock" http://plinthd/v1/host; }
# The leader by the inventory, as host $1 sees it ("" if the lease has lapsed).
leader_of() {
	cl "$1" host list --json 2>/dev/null | python3 -c '
import json, sys
l = json.load(sys.stdin)["leader"]
print(l["host"] if l["expires_in_ms"] > 0 else "")'
}
# Milliseconds from $2 (date +%s%3N) to host $1's latest "leads the cluster" event
# (its own wall clock, the same machine's): the takeover, free of polling delays.
led_after() {
	cl "$1" events --json | python3 -c '
import json, sys
t = [e["time_ms"] for e in json.load(sys.stdin)["events"]
     if e["action"] == "cluster.leader" and e["object"] == sys.argv[1]]
print(t[-1] - int(sys.argv[2]) if t else 999999)' "$1" "$2"
}
term_of() { cl "$1" host list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"]["term"])'; }
alive() { local h; for h in "${!PID[@]}"; do kill -0 "${PID[$h]}" 2>/dev/null && echo "$h"; done | sort; }
# How many live plinthd believe they lead right now (each by its own clock).
believers() {
	local h n=0
	for h in $(alive); do
		hostinfo "$h" | grep -q '"leading":true' && n=$((n + 1))
	done
	echo $n
}

# h1 places new VMs on itself (the default), h2 spreads them, h3 packs them.
start_host h1 --db "$DB" && start_host h2 --db "$DB" --placement spread &&
	start_host h3 --db "$DB" --placement pack ||
	{ fail "three plinthd started on PostgreSQL"; finished=1; exit 1; }
ok "three plinthd started on one PostgreSQL"
sleep 1.5
list=$(cl h2 host list)
echo "$list" | sed 's/^/#   /'
check "every host registered and up, with CPUs and memory" \
	test "$(echo "$list" | awk '$1 ~ /^h[123]$/ && $2 == "up" && $4 > 0 && $5 ~ /M$/' | wc -l)" = 3
check "exactly one leader, and it believes it" \
	sh -c "test \"$(echo "$list" | awk '$3 == "yes"' | wc -l)\" = 1 && test $(believers) = 1"
check "the API lists the hosts (GET /v1/hosts)" \
	sh -c "curl -s --unix-socket $T/h3/plinthd.sock http://plinthd/v1/hosts | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert sorted(h[\"name\"] for h in d[\"hosts\"]) == [\"h1\", \"h2\", \"h3\"]
assert [h[\"self\"] for h in d[\"hosts\"]] == [False, False, True]
assert d[\"leader\"][\"term\"] >= 1'"

# Ownership: the defining host owns a VM; the others refuse to run it.
cl h1 vm create own1 --kernel /bin/true --memory 64 >/dev/null
check "a VM belongs to the host that defined it (epoch 1)" \
	sh -c "$B/plinth vm info own1 --json --state-dir $T/h3 | python3 -c '
import json, sys
v = json.load(sys.stdin); assert (v[\"host\"], v[\"epoch\"]) == (\"h1\", 1), v'"
out=$(cl h2 vm start own1 2>&1)
rc=$?
echo "# $out"
check "another host refuses to start it, in one line (exit 1)" \
	test "$rc" = 1 -a "$(grep -c "belongs to host 'h1'" <<<"$out")" = 1 -a "$(wc -l <<<"$out")" = 1
check "h1 did not forget its VM when h2 started (still defined)" \
	sh -c "$B/plinth vm list --state-dir $T/h1 | grep -q '^own1 .*defined'"

# Placement, by the VMs each host owns (own1: 64 MiB, 1 vCPU on h1; 2 CPUs each here,
# so 8 vCPUs a host).
owners() { # the owner of each VM named $1*, one a line
	cl h1 vm list --json | python3 -c '
import json, sys
for v in json.load(sys.stdin)["vms"]:
    if v["name"].startswith(sys.argv[1]): print(v["host"])' "$1"
}
for i in 1 2 3 4 5; do cl h2 vm create sp$i --kernel /bin/true --memory 64 >/dev/null; done
counts=$( (echo h1; owners sp) | sort | uniq -c | awk '{print $1}' | sort -n | tr '\n' ' ')
echo "# spread: VMs per host (with own1): $counts"
check "spread: 5 VMs over 3 hosts, 2 each with own1 (counts $counts)" test "$counts" = "2 2 2 "
for i in 1 2 3; do cl h3 vm create pk$i --kernel /bin/true --memory 64 --cpus 3 >/dev/null; done
pk=$(owners pk | tr '\n' ' ')
echo "# pack: 3-vCPU VMs went to: $pk"
# Every host has 2 vCPUs used: the first fits anywhere (all equally full: the first
# name, h1, 5/8), the second on the fullest that fits (h1, 8/8), the third elsewhere.
check "pack: the fullest host that fits, filled first ($pk)" test "$pk" = "h1 h1 h2 "
out=$(cl h2 vm create big --kernel /bin/true --memory 64 --cpus 7 2>&1)
rc=$?
echo "# $out"
check "no host has room: refused in one line (exit 1), nothing defined" \
	test "$rc" = 1 -a "$(grep -c "no host that is up has room for VM 'big'" <<<"$out")" = 1 \
	-a "$(wc -l <<<"$out")" = 1 -a -z "$(owners big)"

# Anti-affinity: no two VMs of a group on one host, whatever the room (the pack VMs
# go first, so every host has room again).
delete() { # VM...: each deleted through its owner
	local v
	for v; do cl "$(owners "$v")" vm delete "$v" >/dev/null || fail "$v not deleted"; done
}
delete pk1 pk2 pk3
for i in 1 2 3; do
	cl h2 vm create aa$i --kernel /bin/true --memory 64 --anti-affinity web >/dev/null ||
		fail "aa$i not created"
done
aa=$(owners aa | sort | tr '\n' ' ')
check "anti-affinity: 3 VMs of group web on 3 different hosts ($aa)" test "$aa" = "h1 h2 h3 "
out=$(cl h2 vm create aa4 --kernel /bin/true --memory 64 --anti-affinity web 2>&1)
rc=$?
echo "# $out"
check "a 4th VM of the group has no host: refused in one line (exit 1), nothing defined" \
	test "$rc" = 1 -a "$(grep -c "hosts with a VM of its anti-affinity group 'web' left out" \
	<<<"$out")" = 1 -a "$(wc -l <<<"$out")" = 1 -a -z "$(owners aa4)"
check "vm info shows the group" sh -c "$B/plinth vm info aa1 --state-dir $T/h2 |
	grep -q '^anti-affinity: web$'"
cl h1 vm create ab1 --kernel /bin/true --memory 64 --anti-affinity db >/dev/null
out=$(cl h1 vm create ab2 --kernel /bin/true --memory 64 --anti-affinity db 2>&1)
rc=$?
echo "# $out"
check "placement local: a second VM of a group on this host is refused in one line" \
	test "$rc" = 1 -a "$(grep -c "VM 'ab1' of anti-affinity group 'db' is on this host" \
	<<<"$out")" = 1 -a -z "$(owners ab2)"
out=$(cl h2 vm create ab3 --kernel /bin/true --memory 64 --anti-affinity 'no good' 2>&1)
check "a group that is not a name is refused in one line" \
	test "$(grep -c "anti_affinity" <<<"$out")" = 1 -a -z "$(owners ab3)"
delete aa1 aa2 aa3 ab1

# A clean stop lets the lease go: another host leads within a heartbeat period.
L=$(leader_of h2)
term0=$(term_of h2)
t0=$(date +%s%3N)
kill -TERM "${PID[$L]}"
wait "${PID[$L]}" 2>/dev/null
unset "PID[$L]"
other=$(alive | head -n 1)
for _ in $(seq 60); do
	new=$(leader_of "$other")
	[ -n "$new" ] && [ "$new" != "$L" ] && break
	sleep 0.1
done
ms=$(led_after "$new" "$t0")
echo "# leader $L stopped (SIGTERM): $new leads after $ms ms"
check "leader stopped cleanly: another leads within 2 s ($ms ms)" test $ms -le 2000
check "the term grew" test "$(term_of "$other")" -gt "$term0"
start_host "$L" || fail "plinthd $L started again"

# SIGKILL the leader three times; measure the takeover; watch for two believers.
figures=()
two=0
for round in $(seq "${CLUSTER_ROUNDS:-3}"); do
	sleep 1.2
	other=$(alive | head -n 1)
	L=$(leader_of "$other")
	[ -n "$L" ] || { fail "round $round: a leader before the kill"; continue; }
	term0=$(term_of "$other")
	kill -9 "${PID[$L]}"
	t0=$(date +%s%3N)
	wait "${PID[$L]}" 2>/dev/null
	unset "PID[$L]"
	other=$(alive | head -n 1)
	new=""
	while :; do
		new=$(leader_of "$other")
		[ -n "$new" ] && [ "$new" != "$L" ] && break
		[ "$(believers)" -gt 1 ] && two=$((two + 1))
		[ $(($(date +%s%3N) - t0)) -gt 15000 ] && break
		sleep 0.1
	done
	ms=$(led_after "${new:-none}" "$t0")
	figures+=("$ms")
	echo "# round $round: leader $L SIGKILLed; $new leads after $ms ms (term $term0 -> $(term_of "$other"))"
	check "round $round: another host leads within 6 s of the leader's SIGKILL ($ms ms)" \
		sh -c "[ -n '$new' ] && [ '$new' != '$L' ] && [ $ms -le 6000 ]"
	check "round $round: the term grew" test "$(term_of "$other")" -gt "$term0"
	if [ $round = 1 ]; then
		sleep 4.5
		check "the killed host is shown down after 5 s without a heartbeat" \
			sh -c "$B/plinth host list --state-dir $T/$other | grep -q '^$L  *down'"
		p=h2
		[ "$L" = h2 ] && p=h3
		for i in 1 2; do cl "$p" vm create dn$i --kernel /bin/true --memory 64 >/dev/null; done
		check "placement never chooses a host that is down ($L): $(owners dn | tr '\n' ' ')" \
			test -z "$(owners dn | grep -x "$L")" -a "$(owners dn | wc -l)" = 2
	fi
	# A crashed plinthd's name is free once its host is down (5 s without heartbeat).
	for _ in $(seq 40); do
		cl "$other" host list | grep -q "^$L  *down" && break
		sleep 0.2
	done
	start_host "$L" || fail "plinthd $L started again"
	[ $round = 1 ] && check "the host that came back is up again" \
		sh -c "$B/plinth host list --state-dir $T/$L | grep -q '^$L  *up'"
done
check "never two plinthd believing they lead at once (sampled during takeovers)" test $two = 0
[ "${#figures[@]}" -ge 1 ] || fail "at least one takeover measured"
echo "# leader takeover after SIGKILL (ms): ${figures[*]}"

# The database goes away for 8 s and comes back.
"$top/tests/daemon/pg-server" stop "$PG"
sleep 8
check "database down: every plinthd still runs" test "$(alive | wc -l)" = 3
check "database down: nobody believes it leads (no lease renewed for 4 s)" test "$(believers)" = 0
check "database down: the API says so in one line" \
	sh -c "$B/plinth host list --state-dir $T/h1 2>&1 | grep -c 'inventory error' | grep -qx 1"
t0=$(date +%s%3N)
"$top/tests/daemon/pg-server" start "$PG" >/dev/null || fail "PostgreSQL started again"
back=""
for _ in $(seq 100); do
	back=$(cl h1 host list 2>/dev/null | awk '$2 == "up"' | wc -l)
	[ "$back" = 3 ] && [ -n "$(leader_of h1)" ] && [ "$(believers)" = 1 ] && break
	sleep 0.2
done
ms=$(($(date +%s%3N) - t0))
echo "# database back: $back hosts up and $(leader_of h1) leading $ms ms after its start began"
check "database back: every host heartbeats and one leads within 10 s ($ms ms)" \
	test "$back" = 3 -a -n "$(leader_of h1)" -a "$ms" -le 10000

# A second plinthd under a name in use is refused (it would run that host's VMs too).
mkdir -p "$T/dup"
out=$("$B/plinthd" --no-jail --state-dir "$T/dup" --host-name h3 --db "$DB" 2>&1)
rc=$?
echo "# $out"
check "a second plinthd under a live host's name is refused (exit 1), in one line" \
	test "$rc" = 1 -a "$(grep -c "host name 'h3' is in use" <<<"$out")" = 1 -a "$(wc -l <<<"$out")" = 1
out=$("$B/plinthd" --no-jail --state-dir "$T/dup" --host-name auto --db "$DB" 2>&1)
rc=$?
echo "# $out"
check "the host name 'auto' (the word for any host in migrate --to) is refused in one line" \
	test "$rc" = 1 -a "$(grep -c "host name 'auto' is the word for any host" <<<"$out")" = 1 -a "$(wc -l <<<"$out")" = 1
check "a host stopped cleanly is shown stopped, and its name is free at once" \
	sh -c "kill -TERM ${PID[h3]} && while kill -0 ${PID[h3]} 2>/dev/null; do sleep 0.1; done &&
	$B/plinth host list --state-dir $T/h1 | grep -q '^h3  *stopped'"
unset "PID[h3]"
start_host h3 || fail "plinthd h3 started again at once after a clean stop"

# Tasks belong to their host: h2 "runs" an import (a row as h2 would write it).
psql -q "$DB" -c "INSERT INTO tasks (kind, object, state, created_ms, host) VALUES
	('import', 'img9', 'running', 1, 'h2')" || fail "a task row inserted"
restart() {
	kill -TERM "${PID[$1]}"; wait "${PID[$1]}" 2>/dev/null; unset "PID[$1]"
	start_host "$1" || fail "plinthd $1 started again"
}
task9() { psql -tA "$DB" -c "SELECT state FROM tasks WHERE object = 'img9'"; }
restart h1
check "another host's restart leaves a host's task running" test "$(task9)" = running
restart h2
check "its own host's restart fails it (interrupted)" test "$(task9)" = failed

# SQLite: the same code with one host, which leads; its VMs follow a renamed host.
start_host solo || fail "plinthd on SQLite started"
sleep 1.2
check "SQLite: the one host is up and leads" \
	sh -c "$B/plinth host list --state-dir $T/solo | grep -q '^solo  *up  *yes'"
cl solo vm create s1 --kernel /bin/true --memory 64 >/dev/null
kill -TERM "${PID[solo]}"; wait "${PID[solo]}" 2>/dev/null; unset "PID[solo]"
mv "$T/solo.log" "$T/solo-1.log"
mkdir -p "$T/renamed" && rmdir "$T/renamed"
mv "$T/solo" "$T/renamed"
start_host renamed || fail "plinthd on SQLite started again under another name"
check "SQLite: a renamed host owns its VMs (epoch 2)" \
	sh -c "$B/plinth vm info s1 --json --state-dir $T/renamed | python3 -c '
import json, sys
v = json.load(sys.stdin); assert (v[\"host\"], v[\"epoch\"]) == (\"renamed\", 2), v'"

for h in "${!PID[@]}"; do kill -TERM "${PID[$h]}"; done
wait 2>/dev/null
PID=()
no_sanitizer_reports
finished=1
