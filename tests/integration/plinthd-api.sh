# plinthd's API without VMs: the control socket's mode and error shapes (404, 405 with
# Allow, 400, 413), and the TCP listener: TLS only, every request with an API token,
# roles (viewer reads, operator acts on VMs, admin changes the inventory), a revoked
# token refused, the actor in the event log.
. tests/integration/lib.sh
command -v curl >/dev/null && command -v openssl >/dev/null || fail "needs curl and openssl"
dir=$(sock_dir)
state=$dir/state
pdpid=
trap '[ -n "$pdpid" ] && kill -9 $pdpid 2>/dev/null; rm -rf "$dir"' EXIT
P() { "$BUILD/plinth" "$1" --state-dir "$state" "${@:2}"; }
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 \
	-subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null || fail "openssl"
port=$((20000 + RANDOM % 20000))
"$BUILD/plinthd" --state-dir "$state" --listen "tcp:127.0.0.1:$port" --tls-cert "$dir/cert.pem" \
	--tls-key "$dir/key.pem" >"$dir/log" 2>&1 &
pdpid=$!
for _ in $(seq 100); do P vm list >/dev/null 2>&1 && break; sleep 0.2; done
[ "$(stat -c %a "$state/plinthd.sock")" = 600 ] || fail "the control socket is not mode 0600"
"$BUILD/plinthd" --state-dir "$dir/x" --listen tcp:127.0.0.1:1 2>"$dir/err" && fail "--listen without TLS started"
grep -q "needs --tls-cert" "$dir/err" || fail "no TLS: $(cat "$dir/err")"

# Error shapes on the control socket.
U() { curl -s -o "$dir/body" -w '%{http_code}' --unix-socket "$state/plinthd.sock" "$@"; }
[ "$(U http://x/v1/nothing)" = 404 ] || fail "unknown path: not 404"
[ "$(U -X PUT http://x/v1/vms)" = 405 ] || fail "wrong method: not 405"
[ "$(curl -s -D - -o /dev/null --unix-socket "$state/plinthd.sock" -X PUT http://x/v1/vms | tr -d '\r' | grep -i '^allow:')" = "Allow: GET, POST" ] ||
	fail "405 without Allow: GET, POST"
[ "$(U -X POST -d '{"name": "a", "kernel": "/k", "surprise": 1}' http://x/v1/vms)" = 400 ] || fail "unknown field: not 400"
grep -q "unknown field 'surprise'" "$dir/body" || fail "400 body: $(cat "$dir/body")"
head -c 70000 /dev/zero | tr '\0' ' ' >"$dir/big"
[ "$(U -X POST --data-binary @"$dir/big" http://x/v1/vms)" = 413 ] || fail "a 70 KB body: not 413"
[ "$(P vm list --json)" = "$(printf '{\n  "vms": []\n}')" ] || fail "a refused request changed the inventory"

# Tokens and roles over TLS.
tok() { P token create "$1" --role "$2" --json | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])'; }
V=$(tok watcher viewer) O=$(tok ops operator) A=$(tok boss admin)
[ ${#V} = 64 ] || fail "token: '$V'"
P token list | grep -q '^boss  *admin' || fail "token list"
T() { local t=$1; shift; curl -s -o "$dir/body" -w '%{http_code}' --cacert "$dir/cert.pem" \
	${t:+-H "Authorization: Bearer $t"} "$@"; }
H=https://127.0.0.1:$port
[ "$(T "" $H/v1/vms)" = 401 ] || fail "no token: not 401"
[ "$(T "${V%?}0" $H/v1/vms)" = 401 ] || [ "${V: -1}" = 0 ] || fail "a wrong token: not 401"
[ "$(T "$V" $H/v1/vms)" = 200 ] || fail "viewer cannot list"
[ "$(T "$V" -X POST -d '{"name": "i", "size": 1048576}' $H/v1/images)" = 403 ] || fail "viewer created an image"
[ "$(T "$O" -X POST -d '{"name": "i", "size": 1048576}' $H/v1/images)" = 403 ] || fail "operator created an image"
[ "$(T "$O" -X POST $H/v1/vms/none/start)" = 404 ] || fail "operator may not act on VMs"
[ "$(T "$V" -X POST $H/v1/vms/none/start)" = 403 ] || fail "viewer acted on a VM"
[ "$(T "$O" $H/v1/tokens)" = 403 ] || fail "operator listed tokens"
[ "$(T "$A" -X POST -d '{"name": "i", "size": 1048576}' $H/v1/images)" = 201 ] || fail "admin cannot create an image"
P events | grep -q 'token boss *image.create' || fail "the event does not name the token"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/vms" || true)
[ "$code" = 000 ] || fail "clear-text HTTP answered $code"
P token delete boss >/dev/null || fail "token delete"
[ "$(T "$A" $H/v1/vms)" = 401 ] || fail "a revoked token still works"
kill -TERM $pdpid
wait $pdpid || fail "plinthd exited $? on SIGTERM"
pdpid=
echo "plinthd-api: ok"
