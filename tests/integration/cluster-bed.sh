# The cluster test bed of #15 with real guests: three hosts of one cluster, each its
# plinthd in its own network namespace with a veth pair on a bridge, PostgreSQL
# (tests/daemon/pg-server) in a fourth namespace reached over TCP, the VMs' disks on
# a directory every host sees. HA VMs of 96 MiB and one vCPU: three in make test (one
# per host; six, two per host, took 2-4 minutes more in the emulated host shared with
# other work, mostly their boots on its two CPUs), six with BED_FULL. Each guest
# appends 16-byte records "ID SEQ" to its disk, fsynced, and says "w ID SEQ" on its
# console: ID is random per boot (the console it first appears on names the host),
# SEQ counts in the guest's memory. A boot starts after the last record on the disk,
# so two copies writing at once would interleave or overwrite each other's records.
#   - the VMs are spread evenly (--placement spread);
#   - v1 (which also dirties 4 MiB of memory per record) is live-migrated to another
#     host: the inventory moves it (epoch 2), one copy, no new boot, its count goes on;
#   - the third host's link is taken down in its namespace (a pulled cable): it stops
#     its HA VMs itself (within 12 s), the leader restarts them on the others 13-25 s
#     after the cut, their guests boot there; the VMs' plinth processes are sampled
#     every 0.2 s: never two copies of one VM; its link up again, it starts nothing;
#   - at the end (VMs killed) each disk's records are runs of one boot each, counting
#     from 1 with no gap, each boot's last reported record on the disk, no boot twice,
#     the boots' hosts in the order expected (v1: one boot; a cut host's VM: the cut
#     host's boot, then the new host's).
# BED_FULL=1 (make soak, part "bed") goes on with the rest of the issue's list: a host
# evacuated (its VMs live-migrated, none rebooted), a host powered off (every process
# of its namespace SIGKILLed), the leader's plinthd killed (another leads; its VMs run
# elsewhere) and a later cut handled, PostgreSQL stopped for 60 s (every VM runs on,
# the same process) and a host lost after it handled again. Prints the figures:
# migration downtime, host loss -> restart issued -> the guest's init elsewhere, leader
# takeover. KEEP_LOGS=DIR keeps the hosts' logs and consoles. BED_FIGURES=FILE (make bench,
# bench/bench_cluster.py) also appends them to FILE, one "FIGURE NAME VALUE UNIT WHAT..."
# line each as it is measured: migration-downtime, migration-wall, then per host lost
# failover-issued and failover-init (its last guest's), the link cut's first.
# asan-pass: no (several guests, three plinthd and PostgreSQL under the sanitizer build
# do not fit the pass's time; cluster-ha.sh covers the same code under ASan)
. tests/integration/lib.sh
net=10.232.$((RANDOM % 200 + 20))
tag=bd$((RANDOM % 9000 + 1000)) # interface and namespace names (at most 15 characters)
declare -A ADDR=([pg]=2 [h1]=11 [h2]=12 [h3]=13)
cleanup_more() {
	local n
	for n in pg h1 h2 h3; do ip netns del "$tag$n" 2>/dev/null; done
	ip link del "${tag}br" 2>/dev/null
}
bed_net() {
	local n
	ip link add "${tag}br" type bridge && ip link set "${tag}br" up || return 1
	for n in pg h1 h2 h3; do
		ip netns add "$tag$n" && ip link add "${tag}v$n" type veth peer name eth0 netns "$tag$n" &&
			ip link set "${tag}v$n" master "${tag}br" up &&
			ip -n "$tag$n" addr add "$net.${ADDR[$n]}/24" dev eth0 &&
			ip -n "$tag$n" link set eth0 up && ip -n "$tag$n" link set lo up || return 1
	done
}
bed_net || { cleanup_more; fail "four network namespaces on a bridge"; }
export PG_NETNS=${tag}pg PG_LISTEN=$net.2/24 HOST_OPTS="--placement spread"
. tests/integration/cluster-lib
HOSTS="h1 h2 h3"
T0=$(date +%s%3N)
say() { echo "# [$((($(date +%s%3N) - T0) / 1000)) s] $*"; }
figure() { [ -z "${BED_FIGURES:-}" ] || echo "FIGURE $*" >>"$BED_FIGURES"; } # NAME VALUE UNIT WHAT...
for h in $HOSTS; do NETNS[$h]=$tag$h; done
start_host h1 "$net.11"
sleep 1.5 # h1 leads as a rule
start_host h2 "$net.12"
start_host h3 "$net.13"
say "three plinthd in namespaces on $net.0/24, PostgreSQL at $net.2:$pgport"

# The guest's writer; $1 = 1: it also dirties 4 MiB of memory per record.
writer_cmd() {
	echo 'id=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d " \n")
n=$(($(tr -d "\000" </dev/vda | wc -c) / 16))
echo "bed boot $id at $n"; j=0
while :; do j=$((j+1))
printf "%s %06d\n" $id $j | dd of=/dev/vda bs=16 seek=$((n + j - 1)) conv=notrunc,fsync 2>/dev/null && echo "w $id $j"
[ "'"$1"'" = 1 ] && dd if=/dev/zero of=/dev/shm/buf bs=1M count=4 conv=notrunc 2>/dev/null
sleep 0.5; done'
}
nvms=${BED_VMS:-$([ -n "${BED_FULL:-}" ] && echo 6 || echo 3)}
VMS=$(seq -f 'v%g' "$nvms" | tr '\n' ' ')
declare -A UUID
for v in $VMS; do
	truncate -s 1M "$dir/shared/$v.raw"
	P h1 vm create "$v" --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 96 \
		--disk "path=$dir/shared/$v.raw,format=raw" --ha \
		--cmdline "$(guest_cmdline "$(writer_cmd "$([ $v = v1 ] && echo 1)")")" >/dev/null ||
		fail "vm create $v"
	UUID[$v]=$(field "$v" uuid)
done
t0=$(date +%s%3N)
for v in $VMS; do P h1 vm start "$v" --wait-seconds 0 >/dev/null || fail "vm start $v"; done
declare -A ON
for v in $VMS; do ON[$v]=$(field "$v" host); done
spread=$(for v in $VMS; do echo "${ON[$v]}"; done | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
say "placed: $spread"
per=$(($nvms / 3))
[ "$spread" = "h1:$per h2:$per h3:$per " ] || fail "the HA VMs are not $per per host: $spread"
for v in $VMS; do wait_console "${ON[$v]}" "${UUID[$v]}" 'w [0-9a-f]{8} 3[[:space:]]' 240; done
say "$nvms guests writing their disks after $(($(date +%s%3N) - t0)) ms"

bootid() { grep -a -o 'bed boot [0-9a-f]*' "$dir/$1/vms/${UUID[$2]}/console.log" | tail -n 1 | cut -d' ' -f3; } # HOST VM
# last_w HOST VM: the last whole "w ID SEQ" line's SEQ on HOST's console of VM
last_w() { last_num "$dir/$1/vms/${UUID[$2]}/console.log" "w [0-9a-f]*"; }

# 1. v1 live-migrated from its host A to B, while it writes.
A=${ON[v1]}
B=$(for h in $HOSTS; do [ "$h" != "$A" ] && echo "$h"; done | head -n 1)
C=$(for h in $HOSTS; do [ "$h" != "$A" ] && [ "$h" != "$B" ] && echo "$h"; done)
id1=$(bootid "$A" v1)
t=$(date +%s%3N)
out=$(P "$A" vm migrate v1 --to "$B" --wait-seconds 600 2>&1) || { echo "$out"; tail -n 20 "$dir/$A.log" "$dir/$B.log"; fail "migrate v1 $A -> $B"; }
wall=$(($(date +%s%3N) - t))
[ "$(field v1 host "$A") $(field v1 epoch "$A")" = "$B 2" ] ||
	fail "after the migration the inventory says $(field v1 host "$A") at epoch $(field v1 epoch "$A")"
for _ in $(seq 50); do [ "$(copies "${UUID[v1]}" | wc -l)" = 1 ] && break; sleep 0.2; done
[ "$(copies "${UUID[v1]}" | cut -d' ' -f1)" = "$B" ] || { copies "${UUID[v1]}"; fail "v1: not one copy, on $B"; }
k=$(last_w "$A" v1)
wait_console "$B" "${UUID[v1]}" "w $id1 $((k + 3))[[:space:]]" 60
grep -a -q "init started" "$dir/$B/vms/${UUID[v1]}/console.log" && fail "$B booted v1 instead of receiving it"
first=$(grep -a -o "^w $id1 [0-9]*" "$dir/$B/vms/${UUID[v1]}/console.log" | head -n 1 | cut -d' ' -f3)
[ "$first" = $((k + 1)) ] || [ "$first" = $((k + 2)) ] ||
	fail "v1's count on $B begins at $first, after $k on $A"
mig=$(P "$A" events --json | grep -o "moved from $A to $B[^\"]*" | tail -n 1)
downtime=$(grep -o 'downtime [0-9]* ms' <<<"$mig")
say "v1 $A -> $B: $mig; the command $wall ms; its count $k on $A, $first on $B"
# (none when the source ended before its plinthd asked for its figures: "unknown")
[ -n "$downtime" ] && figure migration-downtime "$(tr -dc 0-9 <<<"$downtime")" ms "v1 $A -> $B"
figure migration-wall "$wall" ms "v1 $A -> $B"

# The VMs' plinth processes, sampled every 0.2 s from here on: "MS HOST/UUID ..." lines
# (a migrated VM's plinth is its destination's "receive"; the checks look only at the
# samples after a host's loss, when no migration runs).
(while :; do
	echo "$(date +%s%3N) $(pgrep -a -f -- "--api-socket $dir/h" |
		grep -o "$dir/h[0-9]/vms/[^/]*/api.sock" | sed -E "s|^$dir/(h[0-9])/vms/([^/]*)/api.sock|\1/\2|" | tr '\n' ' ')"
	sleep 0.2
done) >"$dir/samples" 2>/dev/null &
pids+=($!)
# two_copies FROM: the samples since FROM (ms) in which a VM had two plinth
two_copies() {
	awk -v from="$1" '$1 >= from { delete n; for (i = 2; i <= NF; i++) { split($i, p, "/"); if (++n[p[2]] == 2) print } }' "$dir/samples"
}
# gone_from HOST FROM VM...: ms after FROM of the first sample with none of the VMs on HOST
gone_from() {
	local h=$1 from=$2 pat="" v
	shift 2
	for v in "$@"; do pat="$pat|$h/${UUID[$v]}"; done
	awk -v from="$from" -v pat="(${pat#|})( |\$)" '$1 >= from && $0 !~ pat { print $1 - from; exit }' "$dir/samples"
}
leader() { P "$1" host list --json 2>/dev/null | python3 -c 'import json, sys
l = json.load(sys.stdin)["leader"]
print(l["host"] if l["expires_in_ms"] > 0 else "")'; }
ha_issued() { # ASK VM FROM: ms after FROM of the VM's latest vm.ha event
	P "$1" events --json --limit 1000 | python3 -c '
import json, sys
t = [e["time_ms"] for e in json.load(sys.stdin)["events"] if e["action"] == "vm.ha" and e["object"] == sys.argv[1]]
print(t[-1] - int(sys.argv[2]) if t else -1)' "$2" "$3"
}
# failover LOST ASK VM...: after host LOST was lost at $t0, wait (150 s) until each VM's
# guest reached init on another host (its console there, past what it held at $t0);
# sets NEW[VM] and INIT[VM] (ms after $t0), checks that the inventory (asked of ASK)
# agrees, that LOST's copies were gone first and that the restarts were issued 13-25 s
# after the loss; prints the figures and appends them to $figs.
declare -A NEW INIT SIZE0
mark_consoles() { local h v; for h in $HOSTS; do for v in $VMS; do SIZE0[$h/$v]=$(stat -c %s "$dir/$h/vms/${UUID[$v]}/console.log" 2>/dev/null || echo 0); done; done; }
booted_since() { # HOST VM: the console has "init started" past its size at the mark
	local f=$dir/$1/vms/${UUID[$2]}/console.log
	[ -f "$f" ] && tail -c +$((SIZE0[$1/$2] + 1)) "$f" | grep -a -q "init started"
}
figs=
failover() {
	local lost=$1 ask=$2 v h left end=$((SECONDS + 150)) stopped issued inits="" last=0
	shift 2
	for v in "$@"; do unset "INIT[$v]" "NEW[$v]"; done
	while [ $SECONDS -lt $end ]; do
		left=0
		for v in "$@"; do
			[ -n "${INIT[$v]:-}" ] && continue
			left=1
			for h in $HOSTS; do
				[ "$h" != "$lost" ] && booted_since "$h" "$v" && INIT[$v]=$(($(date +%s%3N) - t0)) NEW[$v]=$h
			done
		done
		[ $left = 0 ] && break
		sleep 0.1
	done
	for v in "$@"; do
		[ -n "${INIT[$v]:-}" ] || { tail -n 30 "$dir"/h?.log; fail "$v's guest did not start on another host within 150 s of losing $lost"; }
		[ "$(field "$v" host "$ask")" = "${NEW[$v]}" ] || fail "the inventory puts $v on $(field "$v" host "$ask"), its guest booted on ${NEW[$v]}"
		inits="$inits$v on ${NEW[$v]} ${INIT[$v]} ms, "
		[ "${INIT[$v]}" -gt $last ] && last=${INIT[$v]}
	done
	stopped=$(gone_from "$lost" "$t0" "$@")
	issued=$(ha_issued "$ask" "$1" "$t0")
	say "$lost lost: its copies gone after ${stopped:-?} ms, restart issued after $issued ms, the guests' init: ${inits%, }"
	figs="$figs
  $lost lost ($what): restart issued $issued ms; guest init ${inits%, }"
	figure failover-issued "$issued" ms "$lost lost ($what)"
	figure failover-init "$last" ms "$lost lost ($what), $# guests"
	[ -n "$stopped" ] && [ "$stopped" -lt "$issued" ] || fail "$lost's copies were not gone (${stopped:-never}) before the restart ($issued ms)"
	[ "$issued" -ge 13000 ] && [ "$issued" -le 25000 ] || fail "restart issued after $issued ms, not 13-25 s"
	for v in "$@"; do wait_console "${NEW[$v]}" "${UUID[$v]}" 'w [0-9a-f]{8} 3[[:space:]]' 120; done
	[ -z "$(two_copies "$t0")" ] || { two_copies "$t0" | head -n 5; fail "two plinth served one VM at once after losing $lost"; }
}
vms_on() { local v; for v in $VMS; do [ "$(field "$v" host "$1")" = "$2" ] && echo "$v"; done; } # ASK HOST

# 2. C's link down (in its namespace): it stops its HA VMs itself and they run on A and B.
cut=($(vms_on "$A" "$C"))
[ ${#cut[@]} -ge 1 ] || fail "$C runs no VM"
led=$(leader "$A")
mark_consoles
t0=$(date +%s%3N)
ip -n "$tag$C" link set eth0 down
what="link down, $led led"
failover "$C" "$A" "${cut[@]}"
stopped=$(gone_from "$C" "$t0" "${cut[@]}")
[ "$stopped" -le 12000 ] || fail "$C did not stop its HA VMs within 12 s of its cut ($stopped ms)"
say "$(leader "$A") leads after the cut ($led before)"
# Its link back: it rejoins and runs nothing of its former VMs.
ip -n "$tag$C" link set eth0 up
sleep 6
for v in "${cut[@]}"; do
	[ "$(copies "${UUID[$v]}" | cut -d' ' -f1 | tr '\n' ' ')" = "${NEW[$v]} " ] ||
		{ copies "${UUID[$v]}"; fail "$C back: $v is not one copy, on ${NEW[$v]}"; }
	[ "$(field "$v" host "$C")" = "${NEW[$v]}" ] || fail "$C back: the inventory (asked of $C) puts $v on $(field "$v" host "$C")"
done
[ -z "$(two_copies "$t0")" ] || { two_copies "$t0" | head -n 5; fail "two plinth served one VM at once"; }
# Each VM's expected writers (hosts of its boots, in order), for the disks' check at the end.
declare -A WANT
for v in $VMS; do WANT[$v]=${ON[$v]}; done
WANT[v1]=$A
for v in "${cut[@]}"; do WANT[$v]="$C ${NEW[$v]}"; done
figs="
  migration v1 $A -> $B: $downtime, the command $wall ms$figs"

# The rest of the issue's list, with BED_FULL (make soak).
other() { local h; for h in $HOSTS; do [ "$h" != "$1" ] && [ "$h" != "${2:-}" ] && { echo "$h"; return; }; done; }
# power_off HOST: every process of its namespace SIGKILLed at once: plinthd, the shims
# and the VMs' plinth (whose jail has a mount namespace of its own, not a network one)
power_off() {
	# shellcheck disable=SC2046
	kill -9 $(ip netns pids "$tag$1") 2>/dev/null
}
restarted_nothing() { # HOST VM...: after HOST's plinthd is back, it runs none of them
	local h=$1 v
	shift
	sleep 6
	for v in "$@"; do
		[ "$(copies "${UUID[$v]}" | cut -d' ' -f1 | tr '\n' ' ')" = "${NEW[$v]} " ] ||
			{ copies "${UUID[$v]}"; fail "$h back: $v is not one copy, on ${NEW[$v]}"; }
	done
}
# busiest ASK [EXCEPT]: the host (not EXCEPT) that owns the most VMs
busiest() {
	local h
	for h in $HOSTS; do [ "$h" != "${2:-}" ] && echo "$(vms_on "$1" "$h" | wc -l) $h"; done |
		sort -k1,1rn -k2,2 | head -n 1 | cut -d' ' -f2
}
moved_on() { local v; for v in "$@"; do WANT[$v]="${WANT[$v]} ${NEW[$v]}"; done; }
full() {
	local X L L2 Y vs t out before after end h
	# A host evacuated: its running VMs live-migrated to the others, none rebooted.
	X=$(busiest "$A")
	vs=($(vms_on "$A" "$X"))
	mark_consoles
	t=$(date +%s%3N)
	out=$(P "$(other "$X")" host evacuate "$X" --wait-seconds 900 2>&1) || { echo "$out"; tail -n 20 "$dir/$X.log"; fail "host evacuate $X"; }
	say "$X evacuated (${vs[*]}) in $(($(date +%s%3N) - t)) ms: $out"
	figs="$figs
  evacuation of $X (${#vs[@]} VMs): $(($(date +%s%3N) - t)) ms"
	[ -z "$(vms_on "$A" "$X")" ] || fail "$X still owns $(vms_on "$A" "$X" | tr '\n' ' ')after its evacuation"
	for v in "${vs[@]}"; do
		h=$(field "$v" host "$A")
		for _ in $(seq 50); do [ "$(copies "${UUID[$v]}" | cut -d' ' -f1)" = "$h" ] && break; sleep 0.2; done
		[ "$(copies "${UUID[$v]}" | cut -d' ' -f1)" = "$h" ] || { copies "${UUID[$v]}"; fail "$v: not one copy, on $h"; }
		booted_since "$h" "$v" && fail "$h booted $v instead of receiving it"
		wait_console "$h" "${UUID[$v]}" "w [0-9a-f]{8} $(($(last_w "$X" "$v") + 2))[[:space:]]" 60
	done
	P "$A" host activate "$X" >/dev/null || fail "host activate $X"

	# A host powered off (plinthd, shims and VMs SIGKILLed): its VMs run on the others.
	L=$(leader "$A")
	X=$(busiest "$L" "$L")
	vs=($(vms_on "$L" "$X"))
	[ ${#vs[@]} -ge 1 ] || fail "$X runs no VM to lose"
	mark_consoles
	t0=$(date +%s%3N)
	power_off "$X"
	what="powered off"
	failover "$X" "$L" "${vs[@]}"
	moved_on "${vs[@]}"
	start_host "$X" "$net.${ADDR[$X]}"
	restarted_nothing "$X" "${vs[@]}"

	# The leader's plinthd killed: another leads; its HA VMs (stopped by their shims'
	# watchdog) run on the others; later, another host's cable pulled is handled too.
	L=$(leader "$X")
	Y=$(other "$L")
	vs=($(vms_on "$Y" "$L"))
	mark_consoles
	t0=$(date +%s%3N)
	kill -9 "${HPID[$L]}"
	L2=
	end=$((SECONDS + 30))
	while [ $SECONDS -lt $end ]; do L2=$(leader "$Y"); [ -n "$L2" ] && [ "$L2" != "$L" ] && break; sleep 0.1; done
	[ -n "$L2" ] && [ "$L2" != "$L" ] || fail "no other host leads within 30 s of killing the leader $L"
	say "the leader $L killed: $L2 leads after $(($(date +%s%3N) - t0)) ms"
	figs="$figs
  leader $L killed: $L2 leads after $(($(date +%s%3N) - t0)) ms"
	what="leader's plinthd killed"
	[ ${#vs[@]} -ge 1 ] && { failover "$L" "$Y" "${vs[@]}"; moved_on "${vs[@]}"; }
	sleep 6 # its name is free 5 s after its last heartbeat
	start_host "$L" "$net.${ADDR[$L]}"
	[ ${#vs[@]} -ge 1 ] && restarted_nothing "$L" "${vs[@]}"
	sleep 12 # the restarted host in contact long enough to count for condition 3
	X=$(busiest "$L2" "$L2")
	vs=($(vms_on "$L2" "$X"))
	mark_consoles
	t0=$(date +%s%3N)
	ip -n "$tag$X" link set eth0 down
	what="link down after the leader's loss"
	[ ${#vs[@]} -ge 1 ] && { failover "$X" "$L2" "${vs[@]}"; moved_on "${vs[@]}"; }
	ip -n "$tag$X" link set eth0 up
	[ ${#vs[@]} -ge 1 ] && restarted_nothing "$X" "${vs[@]}"

	# PostgreSQL stopped for 60 s: every VM runs on, the same process, and writes on.
	sleep 12
	before=$(for v in $VMS; do echo "$v $(copies "${UUID[$v]}" | tr '\n' ' ')"; done)
	declare -A W0
	for v in $VMS; do h=$(copies "${UUID[$v]}" | cut -d' ' -f1); W0[$v]=$(last_w "$h" "$v"); done
	t=$(date +%s%3N)
	tests/daemon/pg-server stop "$dir/pg" >/dev/null 2>&1
	sleep 60
	after=$(for v in $VMS; do echo "$v $(copies "${UUID[$v]}" | tr '\n' ' ')"; done)
	[ "$after" = "$before" ] || { echo "before: $before"; echo "after: $after"; fail "the VMs' processes changed while PostgreSQL was stopped"; }
	for v in $VMS; do
		h=$(copies "${UUID[$v]}" | cut -d' ' -f1)
		[ "$(last_w "$h" "$v")" -ge $((W0[$v] + 30)) ] || fail "$v wrote $(( $(last_w "$h" "$v") - W0[$v] )) records in PostgreSQL's 60 s outage"
	done
	[ -z "$(two_copies "$t")" ] || fail "two copies of a VM during PostgreSQL's outage"
	ip netns exec "$PG_NETNS" tests/daemon/pg-server start "$dir/pg" >/dev/null || fail "PostgreSQL did not start again"
	say "PostgreSQL stopped for 60 s: every VM ran on, the same processes ($(echo "$after" | tr '\n' ';'))"
	# HA works again afterwards: once the hosts are in contact for 15 s, one powered off.
	sleep 30
	L=$(leader "$A")
	[ -n "$L" ] || fail "no host leads 30 s after PostgreSQL came back"
	X=$(busiest "$L" "$L")
	vs=($(vms_on "$L" "$X"))
	mark_consoles
	t0=$(date +%s%3N)
	power_off "$X"
	what="powered off after PostgreSQL's outage"
	[ ${#vs[@]} -ge 1 ] && { failover "$X" "$L" "${vs[@]}"; moved_on "${vs[@]}"; }
	A=$L # asked from here on: a host that is up
}
[ -n "${BED_FULL:-}" ] && full

# The disks: the VMs killed, each disk's records checked against every console.
for v in $VMS; do P "$A" vm kill "$v" >/dev/null || fail "vm kill $v"; done
for v in $VMS; do for _ in $(seq 50); do [ -z "$(copies "${UUID[$v]}")" ] && break; sleep 0.2; done; done
# disk_log VM: the disk's runs "HOST:FIRST-LAST ...", or a failure saying what is wrong
disk_log() {
	python3 - "$dir/shared/$1.raw" "$dir" "${UUID[$1]}" <<'PY'
import glob, re, sys
img, d, uuid = sys.argv[1:]
boots, reported = {}, {}
for con in sorted(glob.glob(f'{d}/h[0-9]/vms/{uuid}/console.log')):
    host = con[len(d) + 1:].split('/')[0]
    text = open(con, 'rb').read().decode('latin-1')
    lines = text.split('\n')
    if not text.endswith('\n'):
        lines = lines[:-1] # a line cut by a migration or a kill
    for ln in lines:
        m = re.match(r'bed boot ([0-9a-f]{8}) ', ln)
        if m:
            boots.setdefault(m.group(1), host)
        m = re.match(r'w ([0-9a-f]{8}) (\d+)\r?$', ln)
        if m:
            reported[m.group(1)] = max(reported.get(m.group(1), 0), int(m.group(2)))
data = open(img, 'rb').read()
runs, i = [], 0
while 16 * i + 16 <= len(data) and data[16 * i:16 * i + 16] != bytes(16):
    rec = data[16 * i:16 * i + 16]
    m = re.fullmatch(rb'([0-9a-f]{8}) (\d{6})\n', rec)
    if not m:
        sys.exit(f'record {i} is not one: {rec!r} (two writers?)')
    bid, seq = m.group(1).decode(), int(m.group(2))
    if runs and runs[-1][0] == bid and seq == runs[-1][2] + 1:
        runs[-1][2] = seq
    elif seq == 1 and bid not in [r[0] for r in runs]:
        runs.append([bid, 1, 1])
    else:
        sys.exit(f'record {i} is {rec!r} after {runs[-1] if runs else "nothing"}: two writers interleaved, or a write lost')
    i += 1
if any(data[16 * i:]):
    sys.exit(f'data after the last record {i - 1}: a write went past the log')
for bid, n in reported.items():
    run = next((r for r in runs if r[0] == bid), None)
    if run is None or run[2] < n:
        sys.exit(f'boot {bid} reported record {n}, the disk has {run[2] if run else "none of it"}')
for bid, _, _ in runs:
    if bid not in boots:
        sys.exit(f'boot {bid} wrote the disk but no console has its boot')
print(' '.join(f'{boots[b]}:{a}-{z}' for b, a, z in runs))
PY
}
hosts_of_log() { sed -E 's/:[0-9]+-[0-9]+//g' <<<"$1"; }
for v in $VMS; do
	log=$(disk_log "$v" 2>&1) || fail "$v's disk: $log"
	want=${WANT[$v]}
	say "$v's disk: $log"
	[ "$(hosts_of_log "$log")" = "$want" ] || fail "$v's disk was written by $(hosts_of_log "$log"), not $want"
done
echo "figures:$figs"
echo "ok: $nvms HA guests over three hosts in network namespaces: a live migration, a cut host${BED_FULL:+, an evacuation, a killed host, a killed leader, PostgreSQL stopped for 60 s}; one writer per disk"
