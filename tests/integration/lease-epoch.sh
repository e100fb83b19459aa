# Rule 3 (docs/cluster.md): the ownership epoch in the disk's lease record. A plinth run
# with --epoch 1,vm=v1 records it in its disk's IMAGE.lease. Then another owner's newer
# epoch (2, as a host that restarted the VM elsewhere writes it) appears there while the
# guest is paused: `ctl resume` is refused (409, one line) and the guest stays paused; a
# guest reset does not reopen the disk (plinth exits 1 saying so); a plinth started with
# the old epoch refuses to start in one line and leaves the record alone; one started
# with the new epoch runs and takes the record; it warns about a record it cannot read
# and runs on, and pauses its guest within 2 s when a newer epoch appears while it runs.
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
[ "$(sed -n 2p "$lease")" = "epoch=1 vm=v1" ] || { cat "$lease"; fail "the lease does not hold epoch 1"; }
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
[ "$(sed -n 2p "$lease")" = "epoch=2 vm=v1" ] && ! grep -q "h2 pid=9" "$lease" ||
	{ cat "$lease"; fail "the VMM with the new epoch did not take the record"; }

# While it runs: a record it cannot read is only warned about (storage blips must not
# stop guests); another owner's newer epoch pauses the guest within a check period (2 s).
printf 'not a lease record\n\001\n' >"$lease"
sleep 5
ctl info | grep -q '"state": *"running"' || fail "an unreadable record paused the guest"
expect_in "$dir/c3" "disk 'disk0': its lease record .* is not one plinth writes; not running .*checked again in 2 s" \
	"no warning about the unreadable record"
t0=$(date +%s%N)
printf 'h3 pid=7 start=1\nepoch=3 vm=v1\n' >"$lease"
while ! ctl info | grep -q '"state": *"paused"' && [ $(($(date +%s%N) - t0)) -lt 15000000000 ]; do
	sleep 0.2
done
t1=$(date +%s%N)
ctl info | grep -q '"state": *"paused"' || { cat "$dir/c3"; fail "a newer epoch on the disk did not pause the running guest"; }
expect_in "$dir/c3" "disk 'disk0' is leased at epoch 3 \(by 'h3 pid=7 start=1'\), newer than this VMM's --epoch 2: the VM has another owner now; not running: the guest is paused" \
	"the pause was not explained in one line"
echo "a newer epoch paused the running guest after $(((t1 - t0) / 1000000)) ms"
ctl resume 2>/dev/null && fail "resume under the newer epoch succeeded"
grep -q "h3 pid=7" "$lease" || fail "the paused VMM changed the newer record"
echo "ok: resume, restart and start refused under epoch 1 once the disk held 2; epoch 2 ran" \
	"and paused itself when epoch 3 appeared"
