# The web console with a real VM (the part tests/browser/run cannot do outside KVM):
# plinthd --web in the emulated host, driven over HTTPS as the page drives it (curl:
# log-in, the session's CSRF token, the API under /v1, the live stream /web/live). A VM
# made from a template as a linked clone starts (jailed, seccomp on), the live stream
# pushes it "running", its guest's init line is read through the session, typed input
# is answered, the console's WebSocket carries keystrokes and their echo to two viewers
# (timed: node with the ws package, as web/package-lock.json pins it), a viewer's start is
# refused, stop; the event log names the user.
# (No browser in here: Chromium under TCG would take minutes to start.)
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(sock_dir)
state=$dir/state
pdpid=
livepid=
trap '[ -n "$livepid" ] && kill $livepid 2>/dev/null; [ -n "$pdpid" ] && kill -9 $pdpid 2>/dev/null; pkill -9 -f -- "--api-socket $state/" 2>/dev/null; rm -rf "$dir"' EXIT
URL=https://127.0.0.1:18443
mkdir -p "$state"
printf 'admin-password\n' | "$BUILD/plinthd" user add admin --role admin --state-dir "$state" >/dev/null || fail "user add admin"
printf 'viewer-password\n' | "$BUILD/plinthd" user add viewer --role viewer --state-dir "$state" >/dev/null || fail "user add viewer"
"$BUILD/plinthd" --state-dir "$state" --web tcp:127.0.0.1:18443 -v >"$dir/plinthd.log" 2>&1 &
pdpid=$!
for _ in $(seq 100); do
	curl -skf -o /dev/null "$URL/" && break
	sleep 0.1
done
curl -skf -o /dev/null "$URL/" || { cat "$dir/plinthd.log"; fail "plinthd --web did not come up"; }
P() { "$BUILD/plinth" "$1" --state-dir "$state" "${@:2}"; }

# login USER PASSWORD JAR: prints the session's CSRF token.
login() {
	curl -sk -c "$3" -H 'Content-Type: application/json' \
		-d "{\"user\":\"$1\",\"password\":\"$2\"}" "$URL/web/login" |
		python3 -c 'import sys, json; print(json.load(sys.stdin)["csrf"])'
}
# web JAR CSRF METHOD PATH [JSON]: the body; the status on the last line.
web() {
	curl -sk -b "$1" -H "X-CSRF-Token: $2" -H 'Content-Type: application/json' -X "$3" \
		${5:+-d "$5"} -w '\n%{http_code}\n' "$URL$4"
}
status() { tail -n 1; }
json_field() { head -n 1 | python3 -c "import sys, json; print(json.load(sys.stdin).get('$1', ''))"; }
# live_state NAME: NAME's state in the last VM list the live stream pushed.
live_state() {
	python3 - "$dir/live" "$1" <<'PY'
import json, sys
vms, event = None, None
for line in open(sys.argv[1], errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("event: "):
        event = line[7:]
    elif line.startswith("data: ") and event == "vms":
        try:
            vms = json.loads(line[6:])["vms"]
        except ValueError:
            pass  # a line still being written
print(next((v["state"] for v in vms or [] if v["name"] == sys.argv[2]), ""))
PY
}

csrf=$(login admin admin-password "$dir/admin") && [ -n "$csrf" ] || fail "admin log-in"
truncate -s 16M "$dir/template.raw"
P image import tmpl "$dir/template.raw" --format raw >/dev/null || fail "import the template"
[ "$(web "$dir/admin" "$csrf" POST /v1/images/tmpl/clone '{"name":"w1-disk","linked":true}' | status)" = 201 ] ||
	fail "linked clone through the web session"
cmd='while read -r l; do echo "got:$l"; done; while :; do sleep 1; done'
def=$(python3 -c 'import json, sys; print(json.dumps({"name": "w1", "cpus": 1, "memory_mib": 128,
	"kernel": sys.argv[1] + "/vmlinuz", "initrd": sys.argv[1] + "/initramfs.cpio.gz",
	"cmdline": sys.argv[2], "disks": [{"image": "w1-disk"}]}))' "$GUEST" "$(guest_cmdline "$cmd")")
[ "$(web "$dir/admin" "$csrf" POST /v1/vms "$def" | status)" = 201 ] || fail "define w1 through the web session"

curl -skN -b "$dir/admin" "$URL/web/live" >"$dir/live" 2>/dev/null &
livepid=$!
vcsrf=$(login viewer viewer-password "$dir/viewer") && [ -n "$vcsrf" ] || fail "viewer log-in"
out=$(web "$dir/viewer" "$vcsrf" POST /v1/vms/w1/start)
[ "$(echo "$out" | status)" = 403 ] || fail "a viewer's start: $out"
t0=$(date +%s%3N)
[ "$(web "$dir/admin" "$csrf" POST /v1/vms/w1/start | status)" = 202 ] || fail "start w1 through the web session"
end=$((SECONDS + 120))
until [ "$(live_state w1)" = running ]; do
	[ $SECONDS -lt $end ] || { tail -c 2000 "$dir/live"; P vm info w1; fail "the live stream never said w1 is running"; }
	sleep 0.2
done
echo "# w1 running on the live stream $(($(date +%s%3N) - t0)) ms after the start request"
end=$((SECONDS + 180))
until web "$dir/admin" "$csrf" GET /v1/vms/w1/console | head -n 1 | grep -q 'plinth-guest: init started'; do
	[ $SECONDS -lt $end ] || { P vm console w1 | tail -n 20; fail "no init line in the console read through the web session"; }
	sleep 0.5
done
[ "$(web "$dir/admin" "$csrf" POST /v1/vms/w1/console '{"input":"hello-web\n"}' | status)" = 200 ] ||
	fail "console input through the web session"
end=$((SECONDS + 60))
until web "$dir/admin" "$csrf" GET /v1/vms/w1/console | head -n 1 | grep -q 'got:hello-web'; do
	[ $SECONDS -lt $end ] || { P vm console w1 | tail -n 20; fail "the guest did not answer the typed line"; }
	sleep 0.5
done
# The console's WebSocket (web_ws.c) with the real guest, as the page's xterm.js uses it:
# two viewers; one types, the guest's terminal echoes each key and answers the line, both
# see it; the keystroke-to-echo latency (the emulated host's figure for docs/web.md).
cat >"$dir/ws.cjs" <<'JS'
'use strict';
const https = require('https');
const WebSocket = require(process.env.WS_MODULE);
const URL1 = process.env.URL1;
const keys = 30;
function post(p, s, body) {
  return new Promise((resolve, reject) => {
    const h = { 'Content-Type': 'application/json' };
    if (s) { h.Cookie = s.cookie; h['X-CSRF-Token'] = s.csrf; }
    const req = https.request(new URL(p, URL1), { method: 'POST', headers: h, rejectUnauthorized: false }, (res) => {
      let d = '';
      res.on('data', (x) => { d += x; });
      res.on('end', () => resolve({ status: res.statusCode, body: d, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body || {}));
  });
}
async function viewer(s) {
  const t = JSON.parse((await post('/web/console/w1/ticket', s)).body);
  const ws = new WebSocket(URL1.replace('https', 'wss') + t.url, { headers: { Cookie: s.cookie, Origin: URL1 }, rejectUnauthorized: false });
  ws.out = '';
  ws.on('message', (d, bin) => { if (bin) ws.out += d.toString('latin1'); });
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  return ws;
}
const until = (fn, what, ms) => new Promise((resolve, reject) => {
  const end = Date.now() + ms;
  const tick = () => { if (fn()) resolve(); else if (Date.now() > end) reject(new Error(`no ${what} in ${ms} ms`)); else setTimeout(tick, 2); };
  tick();
});
(async () => {
  const r = await post('/web/login', null, { user: 'admin', password: 'admin-password' });
  const s = { cookie: r.headers['set-cookie'][0].split(';')[0], csrf: JSON.parse(r.body).csrf };
  const a = await viewer(s);
  const b = await viewer(s);
  await until(() => a.out.includes('plinth-guest: init started') && b.out.includes('plinth-guest: init started'), 'scrollback in both', 10000);
  const lat = [];
  let typed = '';
  for (let i = 0; i < keys; i++) {
    const ch = 'abcdefghijklmnopqrstuvwxyz'[i % 26];
    const from = a.out.length;
    const t0 = process.hrtime.bigint();
    a.send(ch);
    await until(() => a.out.indexOf(ch, from) >= 0, `echo of key ${i}`, 10000);
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    typed += ch;
  }
  a.send('\r');
  await until(() => a.out.includes('got:' + typed) && b.out.includes('got:' + typed), 'the answer in both viewers', 20000);
  lat.sort((x, y) => x - y);
  console.log(`# figure: console keystroke-to-echo latency in the emulated host (WebSocket client -> plinthd -> plinth -> guest tty echo -> back), median ${lat[Math.floor((keys - 1) / 2)].toFixed(1)} ms, min ${lat[0].toFixed(1)}, p90 ${lat[Math.floor(keys * 0.9)].toFixed(1)}, max ${lat[keys - 1].toFixed(1)}, ${keys} keystrokes`);
  a.close();
  b.close();
  process.exit(0);
})().catch((e) => { console.log(`error: ${e.message}`); process.exit(1); });
JS
URL1=$URL WS_MODULE="$PWD/web/node_modules/ws" timeout 120 node "$dir/ws.cjs" >"$dir/ws.out" 2>&1 ||
	{ cat "$dir/ws.out"; P vm console w1 | tail -n 20; fail "the console over the WebSocket"; }
cat "$dir/ws.out"
[ "$(web "$dir/admin" "$csrf" POST /v1/vms/w1/stop '{"timeout":5}' | status)" = 200 ] || fail "stop w1"
end=$((SECONDS + 60))
until [ "$(web "$dir/admin" "$csrf" GET /v1/vms/w1 | json_field state)" = stopped ]; do
	[ $SECONDS -lt $end ] || { P vm info w1; fail "w1 did not stop"; }
	sleep 0.3
done
[ "$(live_state w1)" = stopped ] || sleep 1
[ "$(live_state w1)" = stopped ] || fail "the live stream never said w1 stopped"
events=$(web "$dir/admin" "$csrf" GET '/v1/events?after=0&limit=1000' | head -n 1)
for a in vm.define vm.start vm.stop; do
	echo "$events" | python3 -c "import sys, json; sys.exit(not any(e['actor'] == 'user admin' and e['action'] == '$a' and e['object'] == 'w1' for e in json.load(sys.stdin)['events']))" ||
		fail "no $a of w1 by user admin in the event log"
done
echo "$events" | python3 -c "import sys, json; sys.exit(any(e['actor'] == 'user viewer' and e['action'].startswith('vm.') for e in json.load(sys.stdin)['events']))" ||
	fail "the viewer's refused start is in the event log as done"
kill $pdpid
wait $pdpid 2>/dev/null
pdpid=
echo "# web console: VM created, started, answered and stopped through the web session"
