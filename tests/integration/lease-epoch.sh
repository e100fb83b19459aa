# Rule 3 (docs/cluster.md): the ownership epoch in the disk's lease record. A plinth run
# with --epoch 1,vm=v1 records it in its disk's IMAGE.lease. Then another owner's newer
# epoch (2, as a host that restarted the VM elsewhere writes it) appears there while the
# guest is paused: `ctl resume` is refused (409, one line) and the guest stays paused; a
# guest reset does not reopen the disk (plinth exits 1 saying so); a plinth started with
# the old epoch refuses to start in one line and leaves the record alone; one started
# with the new epoch runs and takes the record; it warns about a record it cannot read
# and runs on, and pauses its guest within 2 s when a newer epoch appears while it runs.
# Rule 4: the running VMM renews its record every second; a record it cannot renew for
# 4 s pauses its guest, which runs again once it can; a VMM about to start a guest
# whose record another host's VMM renews refuses, and takes it once it stood still 6 s.
. tests/integration/lib.sh
dir=$(mktemp -d)
s=$(sock_dir)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir" "$s"' EXIT
truncate -s 16M "$dir/d.raw"
lease=$dir/d.raw.lease
ctl() { "$BUILD/plinth" ctl --api-socket "$s/api" "$@"; }
start() { # CONSOLE EPOCH: plinth in the background, its pid in pid
	"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
		--memory 256M --cmdline "$(guest_cmdline 'echo GUEST-UP; sleep 600')" \
		--disk "path=$dir/d.raw,format=raw" --api-socket "$s/api" --epoch "$2" \
		</dev/null >"$1" 2>&1 &
	pid=$!
}
wait_state() { # STATE WHY: within 15 s of t0, the VM's state is STATE, or fail with WHY
	while ! ctl info | grep -q "\"state\": *\"$1\"" && [ $(($(date +%s%N) - t0)) -lt 15000000000 ]; do
		sleep 0.2
	done
	ctl info | grep -q "\"state\": *\"$1\"" || { cat "$dir/c3"; fail "$2"; }
}
wait_exit() { # SECONDS: plinth's exit status, or fail
	local end=$((SECONDS + $1))
	while kill -0 $pid 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
	kill -0 $pid 2>/dev/null && fail "plinth did not exit"
	wait $pid
	rc=$?
	pid=
}

start "$dir/c1" 1,vm=v1
wait_in "$dir/c1" $pid GUEST-UP 120
sed -n 2p "$lease" | grep -q -E '^epoch=1 vm=v1 renew=[0-9]+$' || { cat "$lease"; fail "the lease does not hold epoch 1"; }
ctl pause >/dev/null || fail "pause failed"
printf 'h2 pid=9 start=1\nepoch=2 vm=v1\n' >"$lease"
cp "$lease" "$dir/newer"
ctl resume 2>"$dir/err" && fail "resume with a newer epoch on the disk succeeded"
expect_in "$dir/err" "disk 'disk0' is leased at epoch 2 \(by 'h2 pid=9 start=1'\), newer than this VMM's --epoch 1: the VM has another owner now; not resuming" \
	"resume refused without the one line"
[ "$(wc -l <"$dir/err")" = 1 ] || { cat "$dir/err"; fail "the refusal is more than one line"; }
ctl info | grep -q '"state": *"paused"' || fail "not paused after the refused resume"
ctl reset >/dev/null || fail "reset failed"
wait_exit 60
[ $rc = 1 ] || fail "after a reset with a newer epoch on the disk plinth exited $rc, not 1"
expect_in "$dir/c1" "newer than this VMM's --epoch 1: the VM has another owner now; not restarting"
cmp -s "$lease" "$dir/newer" || fail "the refused VMM changed the record"

start "$dir/c2" 1,vm=v1
wait_exit 60
[ $rc = 1 ] || fail "a start with an older epoch exited $rc, not 1"
expect_in "$dir/c2" "disk 'disk0' is leased at epoch 2 .*; not starting"
grep -q GUEST-UP "$dir/c2" && fail "the guest ran under the older epoch"
cmp -s "$lease" "$dir/newer" || fail "the refused start changed the record"

start "$dir/c3" 2,vm=v1
wait_in "$dir/c3" $pid GUEST-UP 120
sed -n 2p "$lease" | grep -q -E '^epoch=2 vm=v1 renew=[0-9]+$' && ! grep -q "h2 pid=9" "$lease" ||
	{ cat "$lease"; fail "the VMM with the new epoch did not take the record"; }

# Renewed while it runs: the count goes up.
r1=$(sed -n 's/.* renew=//p' "$lease")
sleep 2.5
r2=$(sed -n 's/.* renew=//p' "$lease")
[ -n "$r1" ] && [ -n "$r2" ] && [ "$r2" -gt "$r1" ] || { cat "$lease"; fail "the lease is not renewed ($r1, then $r2)"; }
echo "renewals: $r1, then $r2 2.5 s later"
# A record it cannot read (a blip of the storage): warned about, the guest runs on; for
# 4 s: paused; renewable again: it runs on by itself.
good=$(cat "$lease")
t0=$(date +%s%N)
printf 'not a lease record\n\001\n' >"$lease"
sleep 1.5
ctl info | grep -q '"state": *"running"' || fail "an unreadable record paused the guest at once"
expect_in "$dir/c3" "disk 'disk0': its lease record .* is not one plinth writes; not running .*tried again every 1 s" \
	"no warning about the unreadable record"
wait_state paused "a record it could not renew did not pause the guest"
t1=$(date +%s%N)
expect_in "$dir/c3" "not one plinth writes; not running .*, for 4 s: the guest is paused until they can be renewed" \
	"the pause was not explained in one line"
echo "a lease it could not renew paused the guest after $(((t1 - t0) / 1000000)) ms"
printf '%s\n' "$good" >"$lease"
t0=$(date +%s%N)
wait_state running "the guest did not run again once its lease could be renewed"
expect_in "$dir/c3" "its disk leases are renewed again: the guest runs on"

# Another owner's newer epoch pauses the guest within a check period.
t0=$(date +%s%N)
printf 'h3 pid=7 start=1\nepoch=3 vm=v1\n' >"$lease"
wait_state paused "a newer epoch on the disk did not pause the running guest"
t1=$(date +%s%N)
expect_in "$dir/c3" "disk 'disk0' is leased at epoch 3 \(by 'h3 pid=7 start=1'\), newer than this VMM's --epoch 2: the VM has another owner now; not running: the guest is paused" \
	"the pause was not explained in one line"
echo "a newer epoch paused the running guest after $(((t1 - t0) / 1000000)) ms"
ctl resume 2>/dev/null && fail "resume under the newer epoch succeeded"
grep -q "h3 pid=7" "$lease" || fail "the paused VMM changed the newer record"
kill -9 $pid
wait $pid 2>/dev/null
pid=

# Rule 4, the taker: another host's VMM renews the record in place (every 0.3 s), as a
# VMM does through its open file: a start refuses.
(i=0; while :; do i=$((i + 1)); printf 'h9 pid=1 start=1\nepoch=3 vm=v1 renew=%d\n' $i >"$lease"; sleep 0.3; done) &
renewer=$!
start "$dir/c4" 4,vm=v1
wait_exit 30
kill $renewer
wait $renewer 2>/dev/null
[ $rc = 1 ] || fail "a start on a lease another host renews exited $rc, not 1"
expect_in "$dir/c4" "disk 'disk0': its lease is being renewed by 'h9 pid=1 start=1' \(a VMM on another host runs this VM's guest on it\); not starting"
grep -q GUEST-UP "$dir/c4" && fail "the guest ran on a lease another host renews"
# It stands still: taken after the watch. (Its last record written whole: the loop may
# have been killed while its shell truncated the file for the next.)
printf 'h9 pid=1 start=1\nepoch=3 vm=v1 renew=9999\n' >"$lease"
t0=$(date +%s%N)
start "$dir/c5" 4,vm=v1
wait_in "$dir/c5" $pid GUEST-UP 120
t1=$(date +%s%N)
expect_in "$dir/c5" "disk 'disk0': its lease was renewed by 'h9 pid=1 start=1', on another host: watching it for 6 s"
sed -n 2p "$lease" | grep -q -E '^epoch=4 vm=v1 renew=[0-9]+$' || { cat "$lease"; fail "epoch 4 did not take the record"; }
echo "a lease another host had renewed was taken after its watch: start to the guest $(((t1 - t0) / 1000000)) ms"
echo "ok: resume, restart and start refused under epoch 1 once the disk held 2; epoch 2 ran," \
	"renewed its lease, paused itself while it could not and when epoch 3 appeared;" \
	"another host's renewed lease refused a start, and was taken once it stood still"
