#!/bin/bash
# plinth vm display NAME and the "display" field of a VM definition, on this machine
# (tests/unit/daemon/fake-plinth stands in for the VMM: no KVM here):
#   - a bad value is one line and nothing is defined; --display vnc is kept;
#   - `vm display` of a VM without a display, of a VM that is not running and of an
#     unknown VM: one line each, exit 1;
#   - of a running VM: the socket plinth was given (RUNDIR/display.sock), the same
#     in --json and in `vm info`, and ready-to-run socat and ssh lines; the socket
#     answers as a VNC server.
# About 5 s.
TN=display
. "$(dirname "$0")/cluster-lib"

start_host solo --plinth "$FAKE" || { fail "plinthd on SQLite started"; finished=1; exit 1; }
out=$(cl solo vm create d1 --kernel "$FAKE" --memory 64 --display vga 2>&1)
rc=$?
echo "# $out"
check "a bad display value is refused in one line, exit 1" \
	test "$rc" = 1 -a "$out" = "plinth: field 'display' must be \"vnc\" or \"none\""
check "... and nothing is defined" sh -c "! $B/plinth vm info d1 --state-dir $T/solo 2>/dev/null"
cl solo vm create d1 --kernel "$FAKE" --memory 64 --display vnc >/dev/null &&
	cl solo vm create n1 --kernel "$FAKE" --memory 64 >/dev/null
check "VMs with and without a display defined" test $? = 0
check "vm info shows the display" sh -c "$B/plinth vm info d1 --state-dir $T/solo | grep -q '^display: *vnc$'"

out=$(cl solo vm display n1 2>&1)
rc=$?
echo "# $out"
check "vm display of a VM without one: one line, exit 1" \
	test "$rc" = 1 -a "$out" = "plinth: VM 'n1' has no display (define it with --display vnc, or \"display\": \"vnc\")"
out=$(cl solo vm display d1 2>&1)
rc=$?
echo "# $out"
check "vm display of a VM that is not running: one line, exit 1" \
	test "$rc" = 1 -a "$out" = "plinth: VM 'd1' is defined: its display is there only while it runs (plinth vm start d1)"
out=$(cl solo vm display nope 2>&1)
rc=$?
echo "# $out"
check "vm display of an unknown VM: one line, exit 1" \
	test "$rc" = 1 -a "$(echo "$out" | wc -l)" = 1 -a -n "$(echo "$out" | grep "nope")"
check "vm display takes one NAME" sh -c "! $B/plinth vm display d1 extra --state-dir $T/solo 2>/dev/null"

cl solo vm start d1 >/dev/null
uuid=$(cl solo vm info d1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
sock=$T/solo/vms/$uuid/display.sock
out=$(cl solo vm display d1)
rc=$?
echo "$out" | sed 's/^/#   /'
check "vm display of a running VM: its socket and ready-to-run lines, exit 0" \
	sh -c "test $rc = 0 && echo \"\$1\" | grep -qxF \"  $sock\" &&
	       echo \"\$1\" | grep -qF 'socat TCP-LISTEN:5900,bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:$sock &' &&
	       echo \"\$1\" | grep -qF 'ssh -N -L 5900:$sock root@'" _ "$out"
check "the socket is the VM's VNC server (the fake VMM's RFB 3.8 greeting)" \
	python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); assert s.recv(12) == b'RFB 003.008\\n'" "$sock"
check "plinth was given that socket (--display vnc=unix:RUNDIR/display.sock)" \
	grep -qF -- "--display vnc=unix:$sock" "$T/solo/vms/$uuid/console.log"
check "vm display --json and vm info --json agree on the socket" \
	sh -c "a=\$($B/plinth vm display d1 --json --state-dir $T/solo | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"display\"]==\"vnc\" and d[\"state\"]==\"running\"; print(d[\"socket\"])') &&
	       b=\$($B/plinth vm info d1 --json --state-dir $T/solo | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"display_socket\"])') &&
	       test \"\$a\" = '$sock' -a \"\$b\" = '$sock'"
cl solo vm kill d1 >/dev/null

for h in "${!PID[@]}"; do kill -TERM "${PID[$h]}"; done
wait 2>/dev/null
PID=()
no_sanitizer_reports
finished=1
