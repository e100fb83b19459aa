#!/bin/bash
# Live migration between hosts, the daemons' part (docs/cluster.md): three plinthd on
# a private PostgreSQL with TLS listeners and one cluster key; the VMs are
# tests/unit/daemon/fake-plinth, which counts and hands its count over a TCP stream
# as plinth hands over a guest (tests/integration/cluster-migrate.sh moves a real
# guest between plinthd in the emulated host). What is tested here is plinthd's:
#   - `plinth vm migrate NAME --to HOST` asked of a third host: forwarded to the
#     owner, the destination's plinthd starts `receive` with the same definition, the
#     source migrates to it, and only then the owner and epoch move, in one
#     transaction; the destination records the VM running with its own pid; the
#     source's process is gone; the count goes on from where it was (none lost); the
#     destination's plinth gets the disk's id and PCI slot from the inventory, and
#     each VMM the VM's epoch (--epoch: the destination the one the switch gives);
#   - the migrated VM is stopped through its old host (forwarded to the new one);
#   - a destination whose plinth fails: the task fails in one line, the VM runs on
#     at the source, owner and epoch unchanged, nothing runs on the destination;
#   - refusals in one line: to itself, to a host that is not there, a VM not running,
#     a destination without all of the source's CPU flags (PLINTHD_CPU_FLAGS on h4)
#     or without room for the VM (h2 with half its memory taken, a VM of 60%).
# About 20 s.
TN=cluster-migrate
. "$(dirname "$0")/cluster-lib"
export FAKE_PLINTH_COUNT=1
cluster_creds
# shellcheck disable=SC2046
start_host h1 $(listener_opts 1) && start_host h2 $(listener_opts 2) &&
	FAKE_PLINTH_FAIL=1 start_host h3 $(listener_opts 3) ||
	{ fail "three plinthd with TLS listeners started"; finished=1; exit 1; }
ok "three plinthd with TLS listeners and one cluster key started"

vmf() { # NAME FIELD: from the inventory (through h1)
	cl h1 vm info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}
uuid_of() { vmf "$1" uuid; }
last_count() { grep -o '^count [0-9]*$' "$1" 2>/dev/null | tail -n 1 | cut -d' ' -f2; }
: >"$T/m1.disk"
cl h1 vm create m1 --kernel /bin/true --memory 64 --disk "path=$T/m1.disk,format=raw" \
	>/dev/null || fail "h1 defined m1"
cl h1 vm start m1 --wait-seconds 10 >/dev/null || fail "h1 started m1"
u=$(uuid_of m1)
src_log=$T/h1/vms/$u/console.log
dst_log=$T/h2/vms/$u/console.log
for _ in $(seq 50); do [ "$(last_count "$src_log")" -ge 5 ] 2>/dev/null && break; sleep 0.1; done
check "m1 runs on h1 and counts" test "$(last_count "$src_log")" -ge 5
src_pid=$(vmf m1 pid)

t0=$(date +%s%3N)
out=$(cl h3 vm migrate m1 --to h2 2>&1)
rc=$?
ms=$(($(date +%s%3N) - t0))
echo "# h3: plinth vm migrate m1 --to h2: $out ($ms ms)"
check "migrate asked of a third host: the task is done (exit 0)" test "$rc" = 0
check "owner h2, epoch 2" test "$(vmf m1 host) $(vmf m1 epoch)" = "h2 2"
for _ in $(seq 30); do [ "$(vmf m1 state)" = running ] && [ "$(vmf m1 pid)" != "$src_pid" ] && break; sleep 0.1; done
dst_pid=$(vmf m1 pid)
check "h2 records it running with its own process" \
	sh -c "[ '$(vmf m1 state)' = running ] && [ '$dst_pid' != '$src_pid' ] && grep -q 'fake-plinth' /proc/$dst_pid/cmdline 2>/dev/null && tr '\0' ' ' </proc/$dst_pid/cmdline | grep -q 'receive --listen tcp:127.0.0.1:'"
check "the source's process is gone" sh -c "! kill -0 $src_pid 2>/dev/null"
n=$(last_count "$src_log")
got=$(grep -o 'received at count [0-9]*' "$dst_log" | grep -o '[0-9]*$')
sleep 0.6
echo "# source's last count $n, received at $got, destination now at $(last_count "$dst_log")"
check "no count lost: the destination goes on from the source's last ($n = $got)" \
	sh -c "[ '$n' = '$got' ] && [ $(last_count "$dst_log") -gt $got ]"
dev="--disk path=$T/m1.disk,format=raw,id=disk0,addr=1"
check "the destination's plinth got the disk's id and slot from the inventory, as the source's" \
	sh -c "grep -qE -- 'started run .*$dev( |\$)' '$src_log' && grep -qE -- 'started receive .*$dev( |\$)' '$dst_log'"
check "the VMMs present the inventory's epoch (rule 3): the source 1, the destination 2 (the switch's)" \
	sh -c "grep -qE -- 'started run .*--epoch 1,vm=$u( |\$)' '$src_log' && grep -qE -- 'started receive .*--epoch 2,vm=$u( |\$)' '$dst_log'"
check "the event log has the move with its figures" \
	sh -c "$B/plinth events --json --state-dir $T/h2 | grep -q 'moved from h1 to h2 (epoch 2): completed, transfer [0-9]* ms, downtime [0-9]* ms'"
grep -o 'moved from h1 to h2[^"]*' <(cl h2 events --json) | sed 's/^/# /'

# Through its old host: forwarded to the new owner.
check "stopped through h1 (forwarded to h2)" sh -c "$B/plinth vm stop m1 --timeout 5 --state-dir $T/h1 >/dev/null &&
	for i in \$(seq 50); do [ \"\$($B/plinth vm info m1 --state-dir $T/h1 | awk '/^state:/ {print \$2}')\" = stopped ] && exit 0; sleep 0.1; done; exit 1"

# h3's plinth fails at once: the source carries on, nothing moves.
cl h1 vm create m2 --kernel /bin/true --memory 64 >/dev/null
cl h1 vm start m2 --wait-seconds 10 >/dev/null || fail "h1 started m2"
u2=$(uuid_of m2)
sleep 0.5
out=$(cl h1 vm migrate m2 --to h3 2>&1)
rc=$?
echo "# $out"
check "a destination that fails: the task fails in one line (exit 1)" \
	test "$rc" = 1 -a "$(wc -l <<<"$out")" = 1 -a "$(grep -c ': transfer to h3 failed: .*; the VM runs on here' <<<"$out")" = 1
check "m2 still owned by h1 at epoch 1, running there" test "$(vmf m2 host) $(vmf m2 epoch) $(vmf m2 state)" = "h1 1 running"
c1=$(last_count "$T/h1/vms/$u2/console.log")
sleep 0.6
check "m2 still counts on h1" test "$(last_count "$T/h1/vms/$u2/console.log")" -gt "$c1"
# (pgrep in a function: a "sh -c" would find its own command line)
no_receive_on_h3() { ! pgrep -f "fake-plinth receive .*$T/h3/" >/dev/null; }
check "nothing of m2 runs on h3" no_receive_on_h3

# Checked before anything starts: the destination's CPU flags (h4 registered without
# the last two of this machine's, through PLINTHD_CPU_FLAGS) and its room.
read -ra fl <<<"$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2-)"
nf=${#fl[@]}
# shellcheck disable=SC2046
PLINTHD_CPU_FLAGS="${fl[*]:0:nf-2}" start_host h4 $(listener_opts 4) || fail "h4 started"
out=$(cl h1 vm migrate m2 --to h4 2>&1); echo "# $out"
check "a destination without two of the source's CPU flags: refused in one line naming them" \
	test "$(grep -c "host 'h4' lacks CPU features of host 'h1' that VM 'm2' may use: ${fl[nf-2]} ${fl[nf-1]}\$" <<<"$out")" = 1 -a "$(wc -l <<<"$out")" = 1
# h3 stopped cleanly: --to auto has h2 (m1's 64 MiB) and h4 (empty, but without the
# flags) to choose from; spread alone would take h4.
kill -TERM "${PID[h3]}"; wait "${PID[h3]}" 2>/dev/null; unset 'PID[h3]'
out=$(cl h1 vm migrate m2 --to auto 2>&1); rc=$?; echo "# $out"
check "--to auto skips the host without the flags: m2 on h2" test "$rc $(vmf m2 host)" = "0 h2"
# At once: the task ends only once h1 has settled m2's old process (a prepare would find it).
out=$(cl h2 vm migrate m2 --to h1 2>&1) || { echo "# $out"; fail "m2 migrated back to h1"; }
check "m2 back on h1 at epoch 3, received there with --epoch 3" sh -c "[ '$(vmf m2 host) $(vmf m2 epoch)' = 'h1 3' ] &&
	grep -qE -- 'started receive .*--epoch 3,vm=$u2( |\$)' '$T/h1/vms/$u2/console.log'"
mem=$(cl h1 host list --json | python3 -c 'import json,sys; print([h for h in json.load(sys.stdin)["hosts"] if h["name"] == "h1"][0]["memory_mib"])')
cl h2 vm create pin --kernel /bin/true --memory $((mem / 2)) >/dev/null || fail "h2 defined pin"
cl h1 vm create m3 --kernel /bin/true --memory $((mem * 6 / 10)) >/dev/null || fail "h1 defined m3"
cl h1 vm start m3 --wait-seconds 10 >/dev/null || fail "h1 started m3"
out=$(cl h1 vm migrate m3 --to h2 2>&1); echo "# $out"
check "a destination without room (memory of the VMs it owns): refused in one line" \
	test "$(grep -c "host 'h2' has no room for VM 'm3' ($((mem * 6 / 10)) MiB, 1 vCPUs): its VMs take $((mem / 2 + 64)) of $mem MiB" <<<"$out")" = 1
check "m3 still runs on h1" test "$(vmf m3 host) $(vmf m3 state)" = "h1 running"

# Anti-affinity: a VM does not move beside another of its group.
cl h2 vm create g1 --kernel /bin/true --memory 64 --anti-affinity pair >/dev/null || fail "h2 defined g1"
cl h1 vm create g2 --kernel /bin/true --memory 64 --anti-affinity pair >/dev/null || fail "h1 defined g2"
cl h1 vm start g2 --wait-seconds 10 >/dev/null || fail "h1 started g2"
out=$(cl h1 vm migrate g2 --to h2 2>&1); echo "# $out"
check "a destination with a VM of its anti-affinity group: refused in one line" \
	test "$(grep -c "host 'h2' has VM 'g1' of anti-affinity group 'pair' already" <<<"$out")" = 1 \
	-a "$(wc -l <<<"$out")" = 1 -a "$(vmf g2 host) $(vmf g2 state)" = "h1 running"

out=$(cl h1 vm migrate m2 --to h1 2>&1); echo "# $out"
check "to itself: refused in one line" test "$(grep -c "already runs on host 'h1'" <<<"$out")" = 1
out=$(cl h1 vm migrate m2 --to nowhere 2>&1); echo "# $out"
check "to a host not in the cluster: refused in one line" test "$(grep -c "host 'nowhere' is not in the cluster" <<<"$out")" = 1
out=$(cl h2 vm migrate m1 --to h1 2>&1); echo "# $out"
check "a VM that is not running: refused in one line" test "$(grep -c "only a running VM migrates" <<<"$out")" = 1

finish_with_vms
