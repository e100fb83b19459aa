# Migration trusts only the operator and the cluster's key: a destination with
# another key refuses the source at the TLS handshake, one built from other
# options (--cpus) refuses the stream with one line, one whose device refuses its
# state at the stream's end (another vsock CID) says so (the source rolls back for
# sure), receive will not listen on TCP without a key, and the source goes on in
# every case. A destination that
# takes the whole stream and never confirms leaves the source paused with the
# outcome "unknown" (it may run the guest) until the operator takes it back with
# resume, which is refused while the disk's lease names another owner.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(mktemp -d -p /run 2>/dev/null || mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; rm -rf "$dir"' EXIT
ctl() { "$BUILD/plinth" ctl --api-socket "$1" "${@:2}"; }
key() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1"; chmod 600 "$1"; }
key "$dir/key"
key "$dir/other"
truncate -s 4M "$dir/disk.raw"
machine="--kernel $GUEST/vmlinuz --initrd $GUEST/initramfs.cpio.gz --memory 256M"
machine="$machine --disk path=$dir/disk.raw,format=raw"
# vsock(SOCK, CID): a device whose state the destination checks at the end of the stream.
vsock() { echo "--vsock cid=$2,socket=$dir/$1"; }
cmd='i=0; while :; do i=$((i+1)); echo "count $i"; sleep 0.5; done'
"$BUILD/plinth" run $machine $(vsock va.sock 3) --cmdline "$(guest_cmdline "$cmd")" --migrate-psk "$dir/key" \
	--api-socket "$dir/a.sock" </dev/null >"$dir/a.out" 2>"$dir/a.err" &
a=$!
pids+=($a)
wait_in "$dir/a.out" $a 'count 3[[:space:]]'

# wait_status STATUS: the source's last migration ended so.
wait_status() {
	local end=$((SECONDS + 90))
	until ctl "$dir/a.sock" info 2>/dev/null | grep -q "\"status\": *\"$1\""; do
		[ $SECONDS -lt $end ] || { ctl "$dir/a.sock" info; cat "$dir/a.err"; fail "no migration status $1"; }
		sleep 0.3
	done
}
# still_counting: the guest goes on at the source.
still_counting() {
	local n
	n=$(last_num "$dir/a.out" count)
	wait_in "$dir/a.out" $a "count $((n + 2))[[:space:]]" 30
}

# No key, no TCP.
"$BUILD/plinth" receive --listen tcp:47320 $machine $(vsock v47320.sock 3) </dev/null >"$dir/r0.out" 2>&1
[ $? = 2 ] || fail "receive on TCP without a key should be a usage error"
expect_in "$dir/r0.out" 'needs --migrate-psk' "no key: no clear line"

# Another key: refused at the handshake.
"$BUILD/plinth" receive --listen tcp:47321 $machine $(vsock v47321.sock 3) --migrate-psk "$dir/other" \
	</dev/null >"$dir/r1.out" 2>&1 &
r1=$!
pids+=($r1)
sleep 1
ctl "$dir/a.sock" migrate --to tcp:127.0.0.1:47321 >/dev/null || fail "migrate (other key) not started"
wait_status failed
wait $r1
[ $? = 1 ] || fail "the destination with another key did not exit 1"
expect_in "$dir/r1.out" 'migration refused: TLS handshake failed.*migration key' "other key: no clear line"
echo "other key: $(grep 'migration refused' "$dir/r1.out")"
still_counting

# Another machine (--cpus 2): the stream's config is refused, the source goes on.
"$BUILD/plinth" receive --listen tcp:47322 $machine $(vsock v47322.sock 3) --cpus 2 --migrate-psk "$dir/key" \
	</dev/null >"$dir/r2.out" 2>&1 &
r2=$!
pids+=($r2)
sleep 1
ctl "$dir/a.sock" migrate --to tcp:127.0.0.1:47322 >/dev/null || fail "migrate (--cpus 2) not started"
wait_status failed
wait $r2
[ $? = 1 ] || fail "the mismatched destination did not exit 1"
expect_in "$dir/r2.out" 'the saved VM has 1 vCPUs, this one 2 \(--cpus\)' "--cpus mismatch: no clear line"
[ "$(grep -c . "$dir/r2.out")" -le 2 ] || { cat "$dir/r2.out"; fail "more than the line"; }
grep -q 'init started' "$dir/r2.out" && fail "the mismatched destination booted a guest"
echo "mismatch: $(grep 'refused' "$dir/r2.out")"
still_counting

# A destination that refuses late (the vsock's CID, in the device state at the stream's
# end): it says so, and the source rolls back for sure instead of waiting paused.
"$BUILD/plinth" receive --listen tcp:47323 $machine $(vsock v3.sock 4) --migrate-psk "$dir/key" \
	</dev/null >"$dir/r3.out" 2>&1 &
r3=$!
pids+=($r3)
sleep 1
ctl "$dir/a.sock" migrate --to tcp:127.0.0.1:47323 >/dev/null || fail "migrate (other CID) not started"
wait_status failed
wait $r3
[ $? = 1 ] || fail "the destination with another CID did not exit 1"
expect_in "$dir/r3.out" 'migration refused' "other CID: no clear line"
ctl "$dir/a.sock" info | grep -q 'the destination refused the stream' ||
	{ ctl "$dir/a.sock" info; fail "other CID: the source does not say the destination refused"; }
echo "late refusal: $(grep 'migration refused' "$dir/r3.out")"
still_counting

# A destination that reads everything and never acks: the outcome is unknown.
python3 - "$dir/fake.sock" >"$dir/fake.out" 2>&1 <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
c, _ = s.accept()
c.settimeout(4)
n = 0
try:
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        n += len(b)
except socket.timeout:
    pass
print(n, "bytes, no ack")
c.close()
PY
fake=$!
pids+=($fake)
for _ in $(seq 50); do [ -S "$dir/fake.sock" ] && break; sleep 0.1; done
ctl "$dir/a.sock" migrate --to "unix:$dir/fake.sock" >/dev/null || fail "migrate (no ack) not started"
wait_status unknown
wait $fake
ctl "$dir/a.sock" info >"$dir/info"
grep -q '"state": *"paused"' "$dir/info" || { cat "$dir/info"; fail "unknown outcome: the source is not paused"; }
n=$(last_num "$dir/a.out" count)
sleep 3
[ "$(last_num "$dir/a.out" count)" = "$n" ] || fail "unknown outcome: the source's guest went on running"
ctl "$dir/a.sock" snapshot --to "$dir/snap" >/dev/null 2>"$dir/snap.err" && fail "a snapshot in the unknown state"
expect_in "$dir/snap.err" 'outcome is unknown' "snapshot in the unknown state: no clear line"
echo "unknown: $(cat "$dir/fake.out"); $(grep -o 'outcome unknown: no confirmation[^(]*' "$dir/a.err")"
# Had the destination taken the disk over (it records itself in the disk's lease before
# it acks), taking the guest back would be refused.
grep -q " pid=$a " "$dir/disk.raw.lease" || { cat "$dir/disk.raw.lease"; fail "the lease does not name the source"; }
cp "$dir/disk.raw.lease" "$dir/lease.mine"
echo "other-host pid=1 start=1" >"$dir/disk.raw.lease"
ctl "$dir/a.sock" resume >/dev/null 2>"$dir/resume.err" && fail "taken back while the disk is leased elsewhere"
expect_in "$dir/resume.err" "leased to 'other-host pid=1 start=1'" "lease elsewhere: no clear line"
echo "leased elsewhere: $(cat "$dir/resume.err")"
cp "$dir/lease.mine" "$dir/disk.raw.lease"
# The operator knows the destination does not run it: take it back.
ctl "$dir/a.sock" resume >/dev/null || fail "take back (resume) failed"
wait_in "$dir/a.out" $a "count $((n + 2))[[:space:]]" 30
ctl "$dir/a.sock" info | grep -q 'taken back' || fail "info does not say the guest was taken back"
kill -TERM $a
wait $a
echo "ok: no key, other key, other machine, late refusal; no ack -> paused, unknown, lease checked, taken back"
