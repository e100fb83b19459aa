# A VM's display through plinthd's web console with a real guest (the part
# tests/browser/run cannot do without KVM): plinthd --web in the emulated host, a VM
# defined with "display": "vnc" (the display guest: Debian's standard kernel, whose
# virtio-gpu driver draws fbcon), started jailed through the web session; a WebSocket
# client (tests/integration/web-display.cjs, node and the ws package) opens
# /web/display/VM with a ticket, speaks RFB 3.8 through plinthd to plinth's libvncserver
# and gets a whole 1024x768 frame that is not black (timed from the start request); a
# viewer's key event is left out while its frame request is answered; stopping the VM
# closes the display with its sentence.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
[ -f "$GUEST/display/vmlinuz" ] || fail "no display guest in $GUEST/display (make guest)"
dir=$(sock_dir)
state=$dir/state
pdpid=
trap '[ -n "$pdpid" ] && kill -9 $pdpid 2>/dev/null; pkill -9 -f -- "--api-socket $state/" 2>/dev/null; rm -rf "$dir"' EXIT
URL=https://127.0.0.1:18444
mkdir -p "$state"
printf 'admin-password\n' | "$BUILD/plinthd" user add admin --role admin --state-dir "$state" >/dev/null || fail "user add admin"
printf 'viewer-password\n' | "$BUILD/plinthd" user add viewer --role viewer --state-dir "$state" >/dev/null || fail "user add viewer"
"$BUILD/plinthd" --state-dir "$state" --web tcp:127.0.0.1:18444 -v >"$dir/plinthd.log" 2>&1 &
pdpid=$!
for _ in $(seq 100); do
	curl -skf -o /dev/null "$URL/" && break
	sleep 0.1
done
curl -skf -o /dev/null "$URL/" || { cat "$dir/plinthd.log"; fail "plinthd --web did not come up"; }
cmd='i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo "tick $i" >/dev/tty1; sleep 1; done'
def=$(python3 -c 'import json, sys; print(json.dumps({"name": "d1", "cpus": 1, "memory_mib": 256,
	"kernel": sys.argv[1] + "/display/vmlinuz", "initrd": sys.argv[1] + "/display/initramfs.cpio.gz",
	"cmdline": sys.argv[2], "display": "vnc"}))' "$GUEST" "$(guest_cmdline "$cmd")")
URL1=$URL VM_DEF=$def timeout 300 node tests/integration/web-display.cjs >"$dir/out" 2>&1
rc=$?
cat "$dir/out"
[ $rc = 0 ] || { grep -v '^$' "$dir/plinthd.log" | tail -n 20; "$BUILD/plinth" vm console d1 --state-dir "$state" | tail -n 20; fail "the display through the web console"; }
kill $pdpid
wait $pdpid 2>/dev/null
pdpid=
echo "# web display: a real guest's frame through plinthd's WebSocket"
