#!/bin/bash
# Forwarding (docs/cluster.md): any host's API carries out a request about a VM on the
# host that owns it. Three plinthd on a private PostgreSQL, each with a TLS listener;
# h1 and h2 share the cluster key, h3 has another. The VMs are tests/unit/daemon/
# fake-plinth (no KVM needed: what is tested is where each request is carried out).
#   - start, console input, console, pause, resume, disk-add and disk-remove, stop and
#     delete of h1's VM asked of h2 are done by h1 (its process is h1's, the events are h1's with the client
#     "via h2");
#   - a host with a wrong key is refused by the owner in one line;
#   - the owner down: one line that says so, and nothing done;
#   - without --cluster-key: the old refusal, with the hint.
#   - request bodies: past 64 KiB 413 (whole or chunked), malformed JSON 400.
#   - consoles and displays of h1's VMs through h2: `plinth vm console --attach` and
#     the web console's console and display WebSockets (tests/daemon/cluster-web.cjs,
#     node and the ws package of web/node_modules) carry them both ways, a viewer's
#     keys filtered on h2; h1 refuses a stream with a forged credential, a display
#     stream to a token, and a stream of a VM it does not own; h1 down: the WebSocket
#     closes with the sentence.
# About 20 s.
TN=cluster-forward
. "$(dirname "$0")/cluster-lib"
cluster_creds
openssl rand -hex 32 >"$T/other-key" && chmod 600 "$T/other-key"
mkdir -p "$T/h2"
for u in admin viewer; do
	printf '%s-password\n' $u | "$B/plinthd" user add $u --role $u --state-dir "$T/h2" >/dev/null ||
		fail "web user $u added on h2"
done
web2=https://127.0.0.1:$((base + 12))
# shellcheck disable=SC2046
start_host h1 $(listener_opts 1) && start_host h2 $(listener_opts 2) --web "tcp:${web2#https://}" &&
	start_host h3 $(listener_opts 3 "$T/other-key") ||
	{ fail "three plinthd with TLS listeners started"; finished=1; exit 1; }
ok "three plinthd with TLS listeners and cluster keys started"

state_of() { cl h3 vm info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
cl h1 vm create f1 --kernel /bin/true --memory 64 >/dev/null || fail "h1 defined f1"
out=$(cl h2 vm start f1 --wait-seconds 10 2>&1)
echo "# h2: plinth vm start f1: $out" | head -n 3
check "h2 starts h1's VM: running" test "$(state_of f1)" = running
uuid=$(cl h1 vm info f1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
runs_on_h1() { # its plinth (the run directory's pid file) serves h1's run directory
	local pid
	pid=$(cut -d' ' -f2 "$T/h1/vms/$uuid/pid" 2>/dev/null)
	[ -n "$pid" ] && [ ! -e "$T/h2/vms/$uuid" ] &&
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "fake-plinth run .*$T/h1/vms/$uuid/api.sock"
}
check "its process runs on h1 (h1's run directory)" runs_on_h1
curl -s -X POST --unix-socket "$T/h2/plinthd.sock" -d '{"input": "hello from h2\n"}' \
		http://plinthd/v1/vms/f1/console >/dev/null
sleep 0.5
check "console input through h2 reaches the VM on h1, and its console reads through h2" \
	sh -c "$B/plinth vm console f1 --state-dir $T/h2 </dev/null | grep -q 'fake-plinth: input: hello from h2'"
# Streams of h1's VMs through h2: the CLI's (Upgrade: plinth-console), the web console's.
out=$( (sleep 1; echo "attached on h2"; sleep 1.5) | timeout 20 "$B/plinth" vm console f1 --attach --state-dir "$T/h2" 2>&1)
echo "$out" | tail -n 3 | sed 's/^/#   /'
check "plinth vm console --attach through h2: h1's VM's scrollback, and the input reaches it" \
	sh -c 'echo "$1" | grep -q "fake-plinth: started" && echo "$1" | grep -q "fake-plinth: input: attached on h2"' _ "$out"
cl h1 vm create d1 --kernel /bin/true --memory 64 --display vnc >/dev/null && cl h2 vm start d1 >/dev/null ||
	fail "h1's VM d1 with a display started through h2"
duuid=$(cl h1 vm info d1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
for _ in $(seq 50); do [ -S "$T/h1/vms/$duuid/display.sock" ] && break; sleep 0.1; done
PLINTH_URL=$web2 node "$top/tests/daemon/cluster-web.cjs" streams f1 d1 "$T/h1/vms/$duuid/display.sock" ||
	fail "cluster-web.cjs streams passed (see above)"
check "h1's event log has the streams with their clients through h2" \
	sh -c "$B/plinth events --json --state-dir $T/h1 | python3 -c '
import json, sys
e = [(x[\"action\"], x[\"object\"], x[\"actor\"]) for x in json.load(sys.stdin)[\"events\"]]
assert (\"vm.console\", \"f1\", \"user admin via h2\") in e and (\"vm.display\", \"d1\", \"user viewer via h2\") in e, e
assert any(a == \"vm.console\" and o == \"f1\" and c.startswith(\"uid \") and c.endswith(\" via h2\") for a, o, c in e), e'"
stream_code() { # CREDENTIAL PATH PROTOCOL: the status h1's listener answers a stream request with
	curl -sk -o /dev/null -w '%{http_code}' -H "X-Plinth-Cluster: $1" -H "Upgrade: $3" \
		-H 'Connection: Upgrade' "https://127.0.0.1:$((base + 1))$2"
}
check "a console stream with a forged cluster credential: 401" \
	test "$(stream_code 00 /v1/vms/f1/console plinth-console)" = 401
code=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Upgrade: plinth-display' -H 'Connection: Upgrade' \
	"https://127.0.0.1:$((base + 1))/v1/vms/d1/display")
check "a display stream without the cluster credential (a client of the listener): 403" test "$code" = 403
cl h2 vm create g2 --kernel /bin/true --memory 64 >/dev/null
cred=$(printf 'plinth cluster API v1' | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(cat "$T/ckey")" | awk '{print $NF}')
check "a stream with the credential of a VM h1 does not own (it moved): 421" \
	test "$(stream_code "$cred" /v1/vms/g2/console plinth-console)" = 421
cl h2 vm kill d1 >/dev/null

check "pause through h2" sh -c "$B/plinth vm pause f1 --state-dir $T/h2 >/dev/null && test \$($B/plinth vm info f1 --json --state-dir $T/h1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])') = paused"
check "resume through h2" sh -c "$B/plinth vm resume f1 --state-dir $T/h2 >/dev/null"
truncate -s 1M "$T/hot.img"
check "disk-add through h2: hot-plugged into the VM on h1, recorded with h1's slot" \
	sh -c "$B/plinth vm disk-add f1 hot path=$T/hot.img --state-dir $T/h2 | grep -q '^devices:.*hot slot' &&
	       $B/plinth vm console f1 --state-dir $T/h1 </dev/null | grep -q 'fake-plinth: disk-add hot addr=.* $T/hot.img'"
check "disk-remove through h2: gone once h1's VM ejected it" \
	sh -c "$B/plinth vm disk-remove f1 hot --state-dir $T/h2 >/dev/null &&
	       $B/plinth vm console f1 --state-dir $T/h1 </dev/null | grep -q 'fake-plinth: ejected hot' &&
	       ! $B/plinth vm info f1 --state-dir $T/h1 | grep -q 'hot slot'"
check "h1's event log names the client and the host it came through" \
	sh -c "$B/plinth events --json --state-dir $T/h1 | python3 -c '
import json, sys
e = [x for x in json.load(sys.stdin)[\"events\"] if x[\"object\"] == \"f1\" and x[\"action\"] in (\"vm.start\", \"vm.pause\")]
assert e and all(x[\"actor\"].endswith(\" via h2\") for x in e), e'"

# h3's key is another: h1 refuses what h3 forwards, in one line, and does nothing.
out=$(cl h3 vm stop f1 2>&1)
rc=$?
echo "# h3: $out"
check "a host with a wrong cluster key is refused in one line (exit 1), the VM untouched" \
	test "$rc" = 1 -a "$(wc -l <<<"$out")" = 1 -a "$(grep -c 'cluster credential' <<<"$out")" = 1 \
	-a "$(state_of f1)" = running
# A forwarded request with a forged credential, straight to h1's listener.
code=$(curl -sk -o /dev/null -w '%{http_code}' -X POST -H 'X-Plinth-Cluster: 00' \
	"https://127.0.0.1:$((base + 1))/v1/vms/f1/stop")
check "a forged credential on the listener: 401" test "$code" = 401
# Request bodies (common/reqbody.c): past PD_BODY_MAX (64 KiB), in one piece or in
# chunks, 413 and nothing done; malformed JSON under the cap, 400 in one sentence.
body_reply() { # FILE [curl options...]: "BODY CODE" of a POST of FILE to h2's socket
	local f=$1
	shift
	curl -s -w ' %{http_code}' -X POST --unix-socket "$T/h2/plinthd.sock" "$@" \
		--data-binary @"$f" http://plinthd/v1/vms | tr -d "\n"
}
head -c $((64 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$T/big"
check "a body past 64 KiB: 413" sh -c "$(declare -f body_reply); T=$T; body_reply $T/big | grep -q 'too large.* 413\$'"
check "a body past 64 KiB in chunks: 413" \
	sh -c "$(declare -f body_reply); T=$T; body_reply $T/big -H 'Transfer-Encoding: chunked' | grep -q 'too large.* 413\$'"
printf '{"name": "x", ' >"$T/bad"
check "a malformed JSON body: 400 that says where" \
	sh -c "$(declare -f body_reply); T=$T; body_reply $T/bad | grep -q 'invalid JSON at line 1.* 400\$'"
head -c $((64 * 1024)) /dev/zero | tr '\0' ' ' >"$T/full"
check "a body of exactly 64 KiB is read (whitespace: 400, invalid JSON)" \
	sh -c "$(declare -f body_reply); T=$T; body_reply $T/full | grep -q 'invalid JSON.* 400\$'"
check "nothing was created" sh -c "! $B/plinth vm info x --state-dir $T/h1 >/dev/null 2>&1"

check "stop through h2: stopped on h1" sh -c "$B/plinth vm stop f1 --state-dir $T/h2 --timeout 5 >/dev/null &&
	for i in \$(seq 50); do $B/plinth vm info f1 --state-dir $T/h1 | grep -q 'state: *stopped' && exit 0; sleep 0.1; done; exit 1"
check "delete through h2" sh -c "$B/plinth vm delete f1 --state-dir $T/h2 >/dev/null &&
	! $B/plinth vm info f1 --state-dir $T/h1 >/dev/null 2>&1"

# h2 stops while it relays streams of h1's VM (a web viewer's, the CLI's): they end, and so
# does h2, at once; then it starts again.
PLINTH_URL=$web2 node "$top/tests/daemon/cluster-web.cjs" hold d1 >"$T/hold" 2>&1 &
hold=$!
"$B/plinth" vm console d1 --attach --state-dir "$T/h2" < <(sleep 60) >"$T/attach" 2>&1 &
attach=$!
for _ in $(seq 100); do grep -q '^open$' "$T/hold" && grep -q attached "$T/attach" && break; sleep 0.1; done
t0=$(date +%s%N)
kill -TERM "${PID[h2]}"; wait "${PID[h2]}" 2>/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
wait $hold $attach
echo "# h2 stopped in $ms ms while relaying a web console and a CLI stream of h1's VM"
sed 's/^/#   /' "$T/hold" "$T/attach"
check "h2 stops within 2 s while it relays them: the WebSocket closes (1001 plinthd is stopping.), the CLI's stream ends" \
	sh -c "test $ms -lt 2000 && grep -qF '{\"code\":1001,\"reason\":\"plinthd is stopping.\"' $T/hold &&
	       grep -q 'plinthd ended the console stream' $T/attach"
start_host h2 || fail "h2 started again"

# The owner stopped: one line, nothing done.
cl h1 vm create f2 --kernel /bin/true --memory 64 >/dev/null
# A web console of f2 (not running: its log so far) open through h2 while h1 stops.
PLINTH_URL=$web2 node "$top/tests/daemon/cluster-web.cjs" hold f2 >"$T/hold" 2>&1 &
hold=$!
for _ in $(seq 100); do grep -q '^open$' "$T/hold" && break; sleep 0.1; done
t0=$(date +%s%N)
kill -TERM "${PID[h1]}"; wait "${PID[h1]}" 2>/dev/null; unset "PID[h1]"
echo "# h1 stopped in $((($(date +%s%N) - t0) / 1000000)) ms with a stream of its VM relayed by h2"
wait $hold
sed 's/^/#   /' "$T/hold"
check "h1 stops while h2 relays its VM's console: the WebSocket closes with the sentence (1001: the page opens it again)" \
	grep -qF '{"code":1001,"reason":"The VM'"'"'s host ended its console stream."' "$T/hold"
out=$(cl h2 vm start f2 2>&1)
rc=$?
echo "# h1 stopped; h2: $out"
check "the owner stopped: refused in one line (exit 1) that names it" \
	test "$rc" = 1 -a "$(wc -l <<<"$out")" = 1 -a "$(grep -c "host 'h1', which is stopped" <<<"$out")" = 1
check "f2 still defined, on h1" sh -c "$B/plinth vm info f2 --state-dir $T/h2 | grep -q 'state: *defined'"
PLINTH_URL=$web2 node "$top/tests/daemon/cluster-web.cjs" down f2 || fail "cluster-web.cjs down passed (see above)"

# Without --cluster-key: no forwarding, and the refusal says how to get it.
start_host h4 --db "$DB" --plinth "$FAKE" || fail "plinthd h4 without a key started"
out=$(cl h4 vm start f2 2>&1)
echo "# h4: $out"
check "without --cluster-key: refused in one line with the hint" \
	test "$(wc -l <<<"$out")" = 1 -a "$(grep -c -- '--cluster-key to forward' <<<"$out")" = 1
out=$("$B/plinthd" --state-dir "$T/h5" --db "$DB" --cluster-key "$T/ckey" 2>&1)
check "--cluster-key without --listen is refused in one line (exit 2)" \
	sh -c "test $? = 2 && test $(wc -l <<<"$out") = 1"

for h in "${!PID[@]}"; do kill -TERM "${PID[$h]}"; done
wait 2>/dev/null
PID=()
no_sanitizer_reports
finished=1
