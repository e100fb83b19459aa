# The control API on a running guest: info, pause/resume (and their 409s), a bad
# request, a migration to nowhere that leaves the guest running, reset, and the
# ACPI power button (the guest's acpid powers it off cleanly; plinth exits 0).
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
# /tmp is 9p inside the emulated host: no sockets there; /run is a tmpfs.
dir=$(mktemp -d -p /run 2>/dev/null || mktemp -d)
sock=$dir/api.sock
out=$dir/console
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
ctl() { "$BUILD/plinth" ctl --api-socket "$sock" "$@"; }
wait_for() { wait_in "$out" "$pid" "$@"; } # REGEX [SECONDS]
last_count() { last_num "$out" count; }

# ff_pwr_btn: "COUNT  enabled|disabled ... [STS]": STS is PM1's PWRBTN_STS as the guest reads it.
cmd='i=0; while :; do i=$((i+1)); echo "count $i pwrbtn $(cat /sys/firmware/acpi/interrupts/ff_pwr_btn)"; sleep 1; done'
# TCP migrations are TLS 1.3 with a pre-shared key (the migration below fails at connect).
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/key"
chmod 600 "$dir/key"
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256M \
	--migrate-psk "$dir/key" --rng=id=entropy,addr=4 \
	--cmdline "$(guest_cmdline "$cmd")" --api-socket "$sock" </dev/null >"$out" 2>&1 &
pid=$!
wait_for 'count 3 '

ctl info >"$dir/info" || fail "info failed"
grep -q '"state": *"running"' "$dir/info" || { cat "$dir/info"; fail "info: not running"; }
grep -q '"cpus": *1' "$dir/info" || fail "info: no config"
# The typed device configs: kind, id and PCI slot as given (id=, addr=).
python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))["config"]["devices"]
sys.exit(d != [{"kind": "rng", "id": "entropy", "addr": 4}])' "$dir/info" ||
	{ cat "$dir/info"; fail "info: devices are not [rng entropy in slot 4]"; }

ctl resume 2>"$dir/err" && fail "resume of a running VM succeeded"
grep -q 409 "$dir/err" || { cat "$dir/err"; fail "resume of a running VM: not 409"; }

ctl pause >/dev/null || fail "pause failed"
ctl info | grep -q '"state": *"paused"' || fail "info: not paused after pause"
n1=$(last_count)
sleep 3
n2=$(last_count)
[ "$n1" = "$n2" ] || fail "the guest ran while paused ($n1 -> $n2)"
ctl pause 2>"$dir/err" && fail "pause of a paused VM succeeded"
grep -q 409 "$dir/err" || fail "pause of a paused VM: not 409"
ctl resume >/dev/null || fail "resume failed"
wait_for "count $((n2 + 2)) " 30
echo "$(date +%T) pause ok"
echo "pause: counter held at $n2 for 3 s, then went on"

# Bad input: 4xx, nothing changes.
ctl snapshot --to relative/dir 2>"$dir/err" && fail "snapshot to a relative path succeeded"
grep -q -E '40[0-9]' "$dir/err" || { cat "$dir/err"; fail "bad snapshot path: not 4xx"; }

# A migration to a closed port fails, and the guest keeps counting.
echo "$(date +%T) migrate to nowhere"
ctl migrate --to tcp:127.0.0.1:1 >/dev/null || fail "migrate was not accepted"
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ] && ! ctl info | grep -q '"status": *"failed"'; do sleep 0.3; done
ctl info | grep -q '"status": *"failed"' || { ctl info; fail "migration to nowhere not reported failed"; }
n=$(last_count)
wait_for "count $((n + 2)) " 30
ctl info | grep -q '"state": *"running"' || fail "not running after the failed migration"

# Reset: the guest boots again in the same process; the API stays up.
echo "$(date +%T) reset"
ctl reset >/dev/null || fail "reset failed"
end=$((SECONDS + 90))
while [ $SECONDS -lt $end ] && [ "$(grep -c 'plinth-guest: init started' "$out")" -lt 2 ]; do sleep 0.3; done
[ "$(grep -c 'plinth-guest: init started' "$out")" -ge 2 ] || { tail "$out"; fail "reset: no second boot"; }
ctl info | grep -q '"boots": *2' || { ctl info; fail "info: boots is not 2 after reset"; }
n=$(last_count)
wait_for "count $((n + 2)) " 60

# The power button: the guest's button.ko enables PWRBTN_EN, the press raises
# the SCI, the key reaches busybox acpid, whose handler asks init to power off;
# init syncs and powers off through PM1 SLP_TYP=S5 and plinth exits 0.
echo "$(date +%T) shutdown"
grep -q -E 'pwrbtn +[0-9]+ .* enabled' "$out" || { tail -n 5 "$out"; fail "the guest did not enable the power button event"; }
ctl shutdown >/dev/null || fail "shutdown failed"
t0=$SECONDS
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ] && kill -0 $pid 2>/dev/null; do sleep 0.2; done
kill -0 $pid 2>/dev/null && { tail -n 10 "$out"; fail "the guest did not power off within 60 s of the power button"; }
wait $pid
rc=$?
pid=
[ $rc = 0 ] || { tail -n 10 "$out"; fail "plinth exited $rc after the guest powered off"; }
expect_in "$out" 'plinth-guest: power button' "acpid did not run the power button handler"
expect_in "$out" 'plinth-guest: powering off' "init did not take the clean poweroff path"
echo "shutdown: the guest powered off cleanly in $((SECONDS - t0)) s, plinth exit 0"
echo "ok: info (devices too), pause/resume, 409s, 400, failed migration, reset, power button -> clean poweroff"
