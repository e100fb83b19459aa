# --display vnc=unix:PATH in a real guest: Linux's virtio-gpu driver (Debian's standard
# kernel: build/guest/display) draws its text console (fbcon) on the scanout; a VNC
# viewer (rfb-grab, tests/tools) sees a 1024x768 frame that is not black, and a changed
# frame once the guest writes to tty1. Every thread of plinth, the display's included,
# runs under its seccomp filter. Keys typed through VNC (rfb-send) reach a shell on tty1
# whose command writes to the serial console (exact text: a lost key fails), a pointer
# event reaches the tablet's /dev/input node, and the guest names both devices. The guest
# reads plinth's EDID (its connector's modes come from it, 1024x768 preferred); a mode
# change in the guest (plinth-modeset, as a compositor makes one) reaches a connected
# viewer as a new 800x600 desktop, and the console's own mode comes back when it ends. A snapshot
# restored paused shows a viewer the very frame the source showed (the gpu's resources and
# scanout came back, the guest drew nothing), and keys typed into it reach the same shell;
# a live migration of that VM over a Unix socket shows the screen and takes keys on the
# destination, with no guest reset. A reset (plinth ctl reset) re-creates the display
# under the narrowed main filter, and a viewer sees the rebooted guest draw.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
[ -f "$GUEST/display/vmlinuz" ] || fail "no display guest in $GUEST/display (make guest)"
grab=$BUILD/vmm/display/rfb-grab
send=$BUILD/vmm/display/rfb-send
[ -x "$grab" ] && [ -x "$send" ] || fail "no $grab or $send (make build)"
dir=$(sock_dir)
pid= dst=
trap 'kill -9 $pid $dst 2>/dev/null; rm -rf "$dir"' EXIT

# The guest says whether it has a frame buffer, names its input devices, prints the
# tablet's first four events, runs a shell on tty1, then writes a line to tty1 each second.
cmd='echo "fb $(cat /sys/class/graphics/fb0/name 2>/dev/null)"
for c in /sys/class/drm/card*-Virtual-1; do
echo "edid $(od -An -tx1 -v $c/edid | tr -d " \n")"; echo "modes $(tr "\n" " " <$c/modes)"; done
grep "^N: Name=" /proc/bus/input/devices
ev=$(grep -l "plinth tablet" /sys/class/input/event*/device/name | sed -n "s|.*/\(event[0-9]*\)/.*|\1|p")
(dd if=/dev/input/$ev bs=24 count=4 2>/dev/null | od -An -w24 -tu2 | sed "s/^/ptr/") &
sh </dev/tty1 >/dev/tty1 2>&1 &
i=0; while [ $i -lt 240 ]; do i=$((i+1)); echo "tick $i" >/dev/tty1; echo "tick $i"; sleep 1; done'
start=$SECONDS
machine=(--kernel "$GUEST/display/vmlinuz" --initrd "$GUEST/display/initramfs.cpio.gz"
	--memory 256M --cmdline "$(guest_cmdline "$cmd")")
"$BUILD/plinth" run "${machine[@]}" --display "vnc=unix:$dir/vnc.sock" --api-socket "$dir/api.sock" \
	</dev/null >"$dir/console" 2>&1 &
pid=$!
wait_in "$dir/console" $pid '^tick 1' 90
expect_in "$dir/console" '^fb virtio_gpudrmfb' "the guest's frame buffer is not virtio-gpu's"
echo "guest drawing after $((SECONDS - start)) s"
[ "$(stat -c %a "$dir/vnc.sock")" = 600 ] || fail "the VNC socket is not mode 0600"

# Every thread filtered: main, vCPU, the gpu's I/O thread, the display's.
all_filtered() {
	local n=0 st sc
	for st in /proc/$pid/task/*/status; do
		sc=$(awk '/^Seccomp:/ { print $2 }' "$st")
		[ "$sc" = 2 ] || fail "$1: thread $(awk '/^Name:/ { print $2 }' "$st") is not filtered ($sc)"
		n=$((n + 1))
	done
	[ $n -ge 4 ] || fail "$1: $n threads of plinth, expected main, vCPU, the gpu's I/O and the display's"
}
all_filtered "after start"

t0=$SECONDS
out=$("$grab" "$dir/vnc.sock" 30 2>&1); rc=$?
echo "$out" | sed 's/^/rfb-grab: /'
[ $rc = 0 ] || fail "rfb-grab exited $rc (3: the screen stayed black, 4: it did not change)"
first=$(echo "$out" | sed -n 1p)
second=$(echo "$out" | sed -n 2p)
[[ $first =~ ^frame\ 1024\ 768\ nonblack=([0-9]+) ]] || fail "unexpected first frame: $first"
[ "${BASH_REMATCH[1]}" -ge 100 ] || fail "the first frame is nearly black: $first"
[[ $second =~ ^frame\ 1024\ 768\ nonblack=[1-9] ]] || fail "unexpected second frame: $second"
echo "two frames in $((SECONDS - t0)) s"
kill -0 $pid || fail "plinth died"

# Keys: a command typed on tty1 (shifted symbols included) prints on the serial console.
expect_in "$dir/console" '^N: Name="plinth keyboard"' "the guest has no virtio keyboard"
expect_in "$dir/console" '^N: Name="plinth tablet"' "the guest has no virtio tablet"
"$send" "$dir/vnc.sock" key 'echo typed-$((6*7))-The_quick:brown/fox,jumps.over=the+lazy~dog! >/dev/ttyS0' ||
	fail "rfb-send could not type"
t0=$(date +%s%N)
"$send" "$dir/vnc.sock" key $'\n' || fail "rfb-send could not press Return"
typed='^typed-42-The_quick:brown/fox,jumps[.]over=the[+]lazy~dog!'
while ! grep -q -E -- "$typed" "$dir/console" && [ $(($(date +%s%N) - t0)) -lt 30000000000 ]; do
	sleep 0.02
done
t1=$(date +%s%N)
expect_in "$dir/console" "$typed" "the typed command did not run as typed (keys lost?)"
echo "key-to-console: $(((t1 - t0) / 1000000)) ms (Return sent to the line on the serial console)"
# Pointer: the far corner with the left button is ABS_X = ABS_Y = 32767, BTN_LEFT down.
"$send" "$dir/vnc.sock" pointer 1023 767 1 || fail "rfb-send could not point"
wait_in "$dir/console" $pid '^ptr( +[0-9]+){8} +1 +272 +1 +0' 30
expect_in "$dir/console" '^ptr( +[0-9]+){8} +3 +0 +32767 +0' "no ABS_X 32767 from the tablet"
expect_in "$dir/console" '^ptr( +[0-9]+){8} +3 +1 +32767 +0' "no ABS_Y 32767 from the tablet"

# EDID: the guest read plinth's block (header, the name "plinth") and took its modes
# from it, the preferred 1024x768 first.
expect_in "$dir/console" '^edid 00ffffffffffff00[0-9a-f]*706c696e74680a' \
	"the guest has no EDID from plinth (or not its monitor name)"
expect_in "$dir/console" '^modes 1024x768 .*1920x1080.*800x600' \
	"the guest's modes are not the EDID's with 1024x768 first"
grep -m1 '^modes ' "$dir/console"
# A resolution change made by the guest: a viewer connected at 1024x768 is told the
# new size (DesktopSize) and sees the 800x600 picture; when the program ends the
# console takes its mode back and a viewer sees 1024x768 again.
"$grab" "$dir/vnc.sock" 40 800x600 >"$dir/resize" 2>&1 &
grabber=$!
sleep 2 # the viewer is connected and has its first frame
"$send" "$dir/vnc.sock" key 'plinth-modeset 800x600 6 >/dev/ttyS0 2>&1' &&
	"$send" "$dir/vnc.sock" key $'\n' ||
	fail "rfb-send could not type the mode change"
wait_in "$dir/console" $pid '^modeset 800x600 ok' 30
wait $grabber; rc=$?
sed 's/^/resize: rfb-grab: /' "$dir/resize"
[ $rc = 0 ] || fail "the viewer did not see the guest's 800x600 mode (rfb-grab exited $rc)"
[[ $(sed -n 1p "$dir/resize") =~ ^frame\ 1024\ 768\ nonblack=[1-9] ]] ||
	fail "the viewer's first frame was not the 1024x768 console"
[[ $(sed -n 2p "$dir/resize") =~ ^frame\ 800\ 600\ nonblack=([0-9]+) ]] &&
	[ "${BASH_REMATCH[1]}" -ge 400000 ] || fail "the 800x600 frame is not the guest's picture"
out=$("$grab" "$dir/vnc.sock" 30 1024x768 2>&1) || fail "the console's 1024x768 did not come back: $out"
echo "$out" | sed 's/^/restored mode: rfb-grab: /'

# Snapshot, then restore paused: the viewer sees the saved frame at once (the guest runs
# nothing), then keys reach the shell the guest had: its display was not reset.
vnc=$dir/vnc.sock api=$dir/api.sock
ctl() { "$BUILD/plinth" ctl --api-socket "$api" "$@"; }
first_frame() { # SOCKET: the first non-black frame's size, count and checksum
	local end=$((SECONDS + 60))
	while [ ! -S "$1" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
	"$grab" "$1" 3 2>/dev/null | sed -n '1s/ bytes=.*//p'
}
type_line() { # WORD: typed on tty1 as a command echoing WORD to the serial console
	"$send" "$vnc" key "echo $1-\$((6*7)) >/dev/ttyS0" && "$send" "$vnc" key $'\n' ||
		fail "rfb-send could not type into $vnc"
	wait_in "$dir/console" $pid "^$1-42" 30
}
ctl pause >/dev/null || fail "pause failed"
sleep 1 # what the gpu's I/O thread had in hand is drawn
before=$(first_frame "$vnc")
[[ $before =~ ^frame\ 1024\ 768\ nonblack=([0-9]+)\ sum=([0-9a-f]+) ]] ||
	fail "paused: unexpected frame: $before"
[ "${BASH_REMATCH[1]}" -ge 100 ] || fail "paused: the frame is nearly black: $before"
ctl snapshot --to "$dir/snap" >/dev/null || fail "snapshot failed"
kill $pid
wait $pid 2>/dev/null
echo "snapshot with a 1024x768 screen: state $(stat -c %s "$dir/snap/state") bytes," \
	"$(du -k "$dir/snap/memory" | cut -f1) KiB of memory on disk"
python3 - "$dir/snap/state" <<'PY' || fail "the snapshot has no display sections"
import struct, sys
b = open(sys.argv[1], 'rb').read()
off, size, count = 24, {}, {}
while off < len(b):
    t = b[off + 4:off + 20].rstrip(b'\0').decode()
    n = struct.unpack_from('<Q', b, off + 28)[0]
    size[t] = size.get(t, 0) + 40 + n + 4
    count[t] = count.get(t, 0) + 1
    off += 40 + n + 4
print('display sections: ' + ', '.join('%s x%d %d bytes' % (t, count[t], size[t])
      for t in ('virtio-gpu', 'virtio-gpu-px', 'virtio-input') if t in size))
sys.exit(0 if 'virtio-gpu-px' in size and count.get('virtio-input') == 2 else 1)
PY
vnc=$dir/vnc2.sock api=$dir/api2.sock
"$BUILD/plinth" restore --from "$dir/snap" "${machine[@]}" --display "vnc=unix:$vnc" \
	--api-socket "$api" --paused </dev/null >>"$dir/console" 2>&1 &
pid=$!
after=$(first_frame "$vnc")
[ "$after" = "$before" ] || { console_tail "$dir/console"
	fail "restored: the viewer sees '$after', the source showed '$before'"; }
echo "restored (paused): $after"
grep -c '^tick 1\b' "$dir/console" | grep -qx 1 || fail "the restored guest booted again"
ctl resume >/dev/null || fail "resume after restore failed"
type_line restored
all_filtered "after the restore"

# Live migration of the restored VM over a Unix socket: the destination's viewer sees
# the screen, and keys still reach the same shell.
"$BUILD/plinth" receive --listen "unix:$dir/mig.sock" "${machine[@]}" \
	--display "vnc=unix:$dir/vnc3.sock" --api-socket "$dir/api3.sock" </dev/null >>"$dir/console" 2>&1 &
dst=$!
end=$((SECONDS + 30))
while [ ! -S "$dir/mig.sock" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
ctl migrate --to "unix:$dir/mig.sock" >/dev/null || { kill -9 $dst; fail "migrate refused"; }
end=$((SECONDS + 120))
while kill -0 $pid 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.5; done
kill -0 $pid 2>/dev/null && { kill -9 $dst; fail "the source did not finish migrating"; }
wait $pid || { kill -9 $dst; fail "the source exited $? after migrating"; }
pid=$dst vnc=$dir/vnc3.sock api=$dir/api3.sock
out=$(first_frame "$vnc")
[[ $out =~ ^frame\ 1024\ 768\ nonblack=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 100 ] ||
	{ console_tail "$dir/console"; fail "migrated: unexpected frame: $out"; }
echo "migrated: $out"
type_line migrated
grep -c '^tick 1\b' "$dir/console" | grep -qx 1 || fail "the migrated guest booted again"

# A reset re-creates the VM and its display; the guest boots again and draws again.
ctl reset >/dev/null || fail "plinth ctl reset failed"
end=$((SECONDS + 90))
while [ "$(grep -c '^tick 1\b' "$dir/console")" -lt 2 ] && [ $SECONDS -lt $end ]; do
	kill -0 $pid 2>/dev/null || { console_tail "$dir/console"; fail "plinth died after the reset"; }
	sleep 0.5
done
[ "$(grep -c '^tick 1\b' "$dir/console")" -ge 2 ] || fail "the guest did not boot again after the reset"
out=$("$grab" "$vnc" 30 2>&1); rc=$?
echo "$out" | sed 's/^/after reset: rfb-grab: /'
[ $rc = 0 ] || fail "after the reset rfb-grab exited $rc"
all_filtered "after the reset"
kill -0 $pid || fail "plinth died"
grep -q 'SIGSYS\|seccomp' "$dir/console" && fail "a filter trapped: $(grep -m1 'SIGSYS\|seccomp' "$dir/console")"
kill $pid
wait $pid 2>/dev/null
pid=
echo "ok"
