#!/bin/bash
# A host cut off the network (#15, docs/cluster.md rule 1): three plinthd, each in its
# own network namespace with a veth pair on a bridge, and PostgreSQL on the bridge's
# address (TCP), so that a link taken down cuts a host from the database and from its
# peers at once, as a pulled cable does. The VMs are tests/unit/daemon/fake-plinth,
# each appending "HOST PID SEQ MS" to its "disk" (a file every host sees) every 0.1 s.
#   - h1 (the first host started, the leader as a rule) cut: it stops its own HA VMs (isolated: no
#     database, no majority of peers) before the others may start them; another host
#     leads and restarts them after 15 s; each disk's log shows one writer, then the
#     other, never both; the VM without ha keeps running on h1 (nobody restarts it);
#   - h1's link up again: it rejoins, starts nothing of the moved VMs, and its VM
#     without ha is still its own.
#   - h1's watchdog (--watchdog, a FIFO read by this test): fed every second; through
#     the cut it never goes W = 5 s unfed, as its HA VMs were gone in time; its plinthd
#     frozen, nothing feeds it (a real watchdog resets the host); resumed, it feeds
#     again; a clean stop disarms it ('V'). --watchdog's bad uses get one line each.
# Prints cut -> h1's last write, -> restart issued, -> the first write elsewhere (ms).
# About 1 minute. Needs root (network namespaces), as the CI runs.
TN=cluster-partition
net=10.231.$((RANDOM % 200 + 20))
tag=pp$((RANDOM % 9000 + 1000)) # interface and namespace names, short (15 characters)
BR=${tag}br
cleanup_more() {
	local n
	[ -n "${WDR:-}" ] && kill "$WDR" 2>/dev/null
	for n in 1 2 3; do ip netns del "${tag}h$n" 2>/dev/null; done
	ip link del "$BR" 2>/dev/null
}
bridge_up() {
	local n
	ip link add "$BR" type bridge && ip link set "$BR" up && ip addr add "$net.1/24" dev "$BR" ||
		return 1
	for n in 1 2 3; do
		ip netns add "${tag}h$n" && ip link add "${tag}v$n" type veth peer name eth0 netns "${tag}h$n" &&
			ip link set "${tag}v$n" master "$BR" up &&
			ip -n "${tag}h$n" addr add "$net.1$n/24" dev eth0 &&
			ip -n "${tag}h$n" link set eth0 up && ip -n "${tag}h$n" link set lo up || return 1
	done
}
if [ "$(id -u)" != 0 ] || ! bridge_up; then
	echo "not ok - $TN: three network namespaces on a bridge made (needs root and ip(8))"
	cleanup_more
	exit 1
fi
export PG_LISTEN=$net.1/24
. "$(dirname "$0")/cluster-lib"
echo "ok - $TN: three network namespaces on a bridge ($net.0/24)"
export FAKE_PLINTH_COUNT=1
cluster_creds
mkdir -p "$T/shared"
DBTCP="postgresql://plinth@$net.1:$port/postgres"
declare -A NUM=([h1]=1 [h2]=2 [h3]=3)
hostopts() {
	echo "--db $DBTCP --plinth $FAKE --listen tcp:$net.1${NUM[$1]}:$((base + NUM[$1]))" \
		"--tls-cert $T/cert.pem --tls-key $T/key.pem --cluster-key $T/ckey"
}
for h in h1 h2 h3; do NETNS[$h]=${tag}h${NUM[$h]}; done

# --watchdog's bad uses: one line, plinthd does not start.
wd_refused() { # EXPECTED-TEXT plinthd options...
	local want=$1 out
	shift
	out=$("$B/plinthd" --no-jail --state-dir "$T/wdbad" --host-name wdbad "$@" 2>&1)
	[ $? -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && [[ $out == *"$want"* ]] || { echo "# $out"; return 1; }
}
: >"$T/plain-file"
mkfifo "$T/nobody-reads"
check "--watchdog without --db: refused" wd_refused "--watchdog goes with --db" --watchdog "$T/x"
check "--watchdog on a missing path: refused" wd_refused "No such file or directory" \
	--db "$DB" --watchdog "$T/missing"
check "--watchdog on a regular file: refused" wd_refused "not a watchdog device" \
	--db "$DB" --watchdog "$T/plain-file"
check "--watchdog on a FIFO nobody reads: refused" wd_refused "a FIFO nobody reads" \
	--db "$DB" --watchdog "$T/nobody-reads"

# h1's watchdog: a FIFO; each byte read is logged with its time ("MS BYTE", "MS EOF").
mkfifo "$T/wd"
python3 -u -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
with open(sys.argv[2], "w", buffering=1) as out:
    while True:
        b = os.read(fd, 64)
        ms = int(time.time() * 1000)
        if not b:
            out.write("%d EOF\n" % ms)
            break
        for c in b:
            out.write("%d %c\n" % (ms, c))' "$T/wd" "$T/wd.log" &
WDR=$!
sleep 1 # the reader in its open(2): a writer's open then finds it
wd_gap() { # FROM-MS TO-MS: the longest time without a keepalive between them
	awk -v a="$1" -v b="$2" 'BEGIN { t = a } $2 == "k" && $1 >= a && $1 <= b { if ($1 - t > m) m = $1 - t; t = $1 }
		END { if (b - t > m) m = b - t; print m + 0 }' "$T/wd.log"
}
# shellcheck disable=SC2046
start_host h1 $(hostopts h1) --watchdog "$T/wd" && sleep 1.5 && start_host h2 $(hostopts h2) && start_host h3 $(hostopts h3) ||
	{ fail "three plinthd started in their namespaces"; finished=1; exit 1; }
ok "three plinthd started, each in its namespace, on PostgreSQL over TCP"

leader() { # as h2 sees it in the inventory ("" while the lease has lapsed)
	cl h2 host list --json 2>/dev/null | python3 -c 'import json, sys
l = json.load(sys.stdin)["leader"]
print(l["host"] if l["expires_in_ms"] > 0 else "")'
}

make_vm ha1 --ha && make_vm ha2 --ha && make_vm plain1 || fail "h1 started ha1, ha2 and plain1"
sleep 1
check "the VMs write their disks from h1" test "$(hosts_of ha1)$(hosts_of ha2)$(hosts_of plain1)" = "h1 h1 h1 "
t=$(date +%s%3N)
check "h1 feeds its watchdog every second (longest gap of the last 3 s: $(wd_gap $((t - 3000)) "$t") ms)" \
	test "$(wd_gap $((t - 3000)) "$t")" -le 1500
led=$(leader)
echo "# $led leads before the cut"

# h1's cable pulled.
t0=$(date +%s%3N)
ip link set "${tag}v1" down
for _ in $(seq 300); do
	[ "$(vmf ha1 host)" != h1 ] && [ "$(vmf ha2 host)" != h1 ] && [ "$(vmf ha1 state)$(vmf ha2 state)" = runningrunning ] && break
	sleep 0.2
done
sleep 1.5
new1=$(vmf ha1 host) new2=$(vmf ha2 host)
stop1=$(($(last_write_by ha1 h1) - t0)) first1=$(($(first_write_by ha1 "$new1") - t0))
issued=$(cl h2 events --json --limit 1000 | python3 -c '
import json, sys
t = [e["time_ms"] for e in json.load(sys.stdin)["events"] if e["action"] == "vm.ha" and e["object"] == "ha1"]
print(t[-1] if t else 0)')
issued=$((issued - t0))
echo "# h1 cut: its last write to ha1 after $stop1 ms, restart issued after $issued ms, $new1 writing after $first1 ms; ha2 on $new2"
check "h1 cut: its HA VMs run on the others ($new1, $new2)" \
	sh -c "[ '$new1' = h2 -o '$new1' = h3 ] && [ '$new2' = h2 -o '$new2' = h3 ]"
check "h1 cut: it stopped its HA VMs itself within 4-11 s ($stop1 ms)" test "$stop1" -ge 4000 -a "$stop1" -le 11000
check "restarts issued 13-22 s after the cut ($issued ms: a new leader first)" test "$issued" -ge 13000 -a "$issued" -le 22000
check "restarted only after the old copy stopped ($((first1 - stop1)) ms between)" test "$first1" -gt "$stop1"
now=$(leader)
check "h2 or h3 leads after the cut (before it: $led, now: $now)" sh -c "[ '$now' = h2 ] || [ '$now' = h3 ]"
t=$(date +%s%3N)
gap=$(wd_gap "$t0" "$t")
check "h1 cut: its HA VMs were gone before its watchdog's W = 5 s ran out (longest gap $gap ms)" \
	test "$gap" -lt 5000
check "the VM without ha keeps running on h1 (last write $(( $(date +%s%3N) - $(last_write_by plain1 h1) )) ms ago)" \
	test $(($(date +%s%3N) - $(last_write_by plain1 h1))) -lt 2000

# The cable back.
ip link set "${tag}v1" up
sleep 6
check "h1 back: starts nothing of ha1 and ha2; each disk had one writer, then the other ($(writers ha1); $(writers ha2))" \
	sh -c "[ '$(hosts_of ha1)' = 'h1 $new1 ' ] && [ '$(hosts_of ha2)' = 'h1 $new2 ' ]"
check "h1 back: plain1 still its own and running ($(vmf plain1 host) $(vmf plain1 state))" \
	test "$(vmf plain1 host) $(vmf plain1 state)" = "h1 running"

# h1's plinthd frozen with an HA VM (SIGSTOP: as a hung daemon or kernel): nothing
# feeds its watchdog, so a real one resets the host; resumed, it feeds again.
make_vm ha3 --ha || fail "h1 started ha3"
sleep 1
t0=$(date +%s%3N)
kill -STOP "${PID[h1]}"
sleep 8
kill -CONT "${PID[h1]}"
t=$(date +%s%3N)
gap=$(wd_gap "$t0" "$t")
check "h1's plinthd frozen 8 s: its watchdog went unfed for $gap ms (W = 5 s: a reset)" \
	test "$gap" -ge 7000
sleep 3
t=$(date +%s%3N)
check "h1 resumed: it feeds its watchdog again (longest gap of the last 1.5 s: $(wd_gap $((t - 1500)) "$t") ms)" \
	test "$(wd_gap $((t - 1500)) "$t")" -le 1500

# A clean stop disarms it: the magic 'V', then the close.
kill -TERM "${PID[h1]}"
wait "${PID[h1]}" 2>/dev/null
unset "PID[h1]"
wait "$WDR"
check "h1 stopped cleanly: its watchdog disarmed ($(tail -n 2 "$T/wd.log" | cut -d' ' -f2 | tr '\n' ' '))" \
	test "$(tail -n 2 "$T/wd.log" | cut -d' ' -f2 | tr '\n' ' ')" = "V EOF "
finish_with_vms
