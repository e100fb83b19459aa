#!/bin/bash
# Forwarding (docs/cluster.md): any host's API carries out a request about a VM on the
# host that owns it. Three plinthd on a private PostgreSQL, each with a TLS listener;
# h1 and h2 share the cluster key, h3 has another. The VMs are tests/unit/daemon/
# fake-plinth (no KVM needed: what is tested is where each request is carried out).
#   - start, console input, console, pause, resume, stop and delete of h1's VM asked
#     of h2 are done by h1 (its process is h1's, the events are h1's with the client
#     "via h2");
#   - a host with a wrong key is refused by the owner in one line;
#   - the owner down: one line that says so, and nothing done;
#   - without --cluster-key: the old refusal, with the hint.
#   - request bodies: past 64 KiB 413 (whole or chunked), malformed JSON 400.
# About 15 s.
TN=cluster-forward
. "$(dirname "$0")/cluster-lib"
cluster_creds
openssl rand -hex 32 >"$T/other-key" && chmod 600 "$T/other-key"
# shellcheck disable=SC2046
start_host h1 $(listener_opts 1) && start_host h2 $(listener_opts 2) &&
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
check "pause through h2" sh -c "$B/plinth vm pause f1 --state-dir $T/h2 >/dev/null && test \$($B/plinth vm info f1 --json --state-dir $T/h1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])') = paused"
check "resume through h2" sh -c "$B/plinth vm resume f1 --state-dir $T/h2 >/dev/null"
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

# The owner stopped: one line, nothing done.
cl h1 vm create f2 --kernel /bin/true --memory 64 >/dev/null
kill -TERM "${PID[h1]}"; wait "${PID[h1]}" 2>/dev/null; unset "PID[h1]"
out=$(cl h2 vm start f2 2>&1)
rc=$?
echo "# h1 stopped; h2: $out"
check "the owner stopped: refused in one line (exit 1) that names it" \
	test "$rc" = 1 -a "$(wc -l <<<"$out")" = 1 -a "$(grep -c "host 'h1', which is stopped" <<<"$out")" = 1
check "f2 still defined, on h1" sh -c "$B/plinth vm info f2 --state-dir $T/h2 | grep -q 'state: *defined'"

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
