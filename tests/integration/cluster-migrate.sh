# Live migration of a real guest between two plinthd hosts of one cluster (#15): a
# private PostgreSQL (tests/daemon/pg-server), hosts h1 on 127.0.0.1 and h2 on 127.0.0.2
# (each its own TLS listener, state directory and `receive` address), one cluster key,
# the guest's disk on a directory both see. The guest counts in memory and appends
# numbered records to its disk (fsynced) from a second vCPU, as in migrate-live.
#   - `plinth vm migrate m --to h2`: the task is done, the inventory says h2 at epoch 2,
#     exactly one plinth serves the VM and it is h2's, the guest goes on counting and
#     writing without a new boot, the disk's lease names h2's plinth;
#   - back to h1, asked of h1 (forwarded to the owner h2): epoch 3, one copy, on h1;
#   - the destination's plinth killed mid-transfer: the task fails in one line, the VM
#     runs on at h1 (owner and epoch unchanged, one copy), the guest goes on;
#   - at the end every record the guest reported is on the disk, in order.
# Prints the figures (the VMM's transfer and downtime, the command's wall time).
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(sock_dir)
chmod 711 "$dir"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; pkill -9 -f -- "--api-socket $dir/" 2>/dev/null
	tests/daemon/pg-server stop "$dir/pg" >/dev/null 2>&1; rm -rf "$dir"' EXIT
mkdir -p "$dir/pg" "$dir/shared"
# (no process substitution: the emulated host has no /dev/fd)
tests/daemon/pg-server start "$dir/pg" >"$dir/pg.addr" || fail "PostgreSQL did not start"
read -r pgsock pgport <"$dir/pg.addr"
DB="postgresql:///postgres?host=$pgsock&port=$pgport&user=plinth"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=plinth-cluster -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 ||
	fail "no test certificate"
openssl rand -hex 32 >"$dir/ckey" && chmod 600 "$dir/ckey"
start_host() { # NAME IP
	mkdir -p "$dir/$1"
	"$BUILD/plinthd" --state-dir "$dir/$1" --host-name "$1" --db "$DB" \
		--listen "tcp:$2:7443" --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" \
		--cluster-key "$dir/ckey" -v >>"$dir/$1.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		[ -S "$dir/$1/plinthd.sock" ] && P "$1" host list >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$dir/$1.log"
	fail "plinthd $1 did not start"
}
P() { "$BUILD/plinth" "${@:2}" --state-dir "$dir/$1"; }
field() { P h1 vm info m --json | python3 -c "import sys, json; print(json.load(sys.stdin)['$1'])"; }
# The plinth processes serving the VM's API socket, on any host: "HOST PID" lines.
copies() {
	local p
	for p in $(pgrep -f -- "--api-socket $dir/h[12]/vms/$uuid/api.sock"); do
		tr '\0' '\n' <"/proc/$p/cmdline" | grep -o "^$dir/h[12]/" | head -n 1 |
			sed "s|^$dir/||; s|/\$| $p|"
	done
}
console() { P "$1" vm console m | tr -d '\r'; }
# wait_console HOST REGEX [SECONDS]: the VM's console on HOST (its run directory's log).
wait_console() {
	local end=$((SECONDS + ${3:-120}))
	while [ $SECONDS -lt $end ]; do
		grep -a -q -E -- "$2" "$dir/$1/vms/$uuid/console.log" 2>/dev/null && return 0
		sleep 0.3
	done
	tail -n 20 "$dir/$1/vms/$uuid/console.log" 2>&1 | sed 's/^/console: /'
	fail "$1: no /$2/ on the VM's console"
}
cnt() { last_num "$dir/$1/vms/$uuid/console.log" "$2"; }

start_host h1 127.0.0.1
start_host h2 127.0.0.2
cmd='echo "cpus $(cat /sys/devices/system/cpu/online)"; taskset -p 1 $$ >/dev/null
taskset 2 sh -c '"'"'j=0; while :; do j=$((j+1)); printf "disk %010d\n" $j | dd of=/dev/vda bs=16 seek=$j conv=notrunc,fsync 2>/dev/null && echo "disk $j"; sleep 0.3; done'"'"' &
i=0; while :; do i=$((i+1)); dd if=/dev/zero of=/dev/shm/buf bs=1M count=16 conv=notrunc 2>/dev/null; echo "count $i"; sleep 0.2; done'
truncate -s 4M "$dir/shared/disk.raw"
P h1 vm create m --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256 \
	--cpus 2 --disk "path=$dir/shared/disk.raw,format=raw" \
	--cmdline "$(guest_cmdline "$cmd")" >/dev/null || fail "vm create"
uuid=$(field uuid)
P h1 vm start m >/dev/null || fail "vm start on h1"
wait_console h1 'disk 3[[:space:]]' 180
wait_console h1 'count 3[[:space:]]'

# h1 -> h2.
t0=$(date +%s%3N)
out=$(P h1 vm migrate m --to h2 2>&1) || { echo "$out"; tail -n 20 "$dir/h1.log" "$dir/h2.log"; fail "migrate h1 -> h2"; }
wall=$(($(date +%s%3N) - t0))
echo "# h1 -> h2: $out ($wall ms)"
[ "$(field host) $(field epoch)" = "h2 2" ] || fail "after h1 -> h2 the inventory says $(field host) at epoch $(field epoch)"
for _ in $(seq 50); do [ "$(copies | wc -l)" = 1 ] && [ "$(field state)" = running ] && break; sleep 0.2; done
[ "$(copies | cut -d' ' -f1)" = h2 ] || { copies; fail "not exactly one copy, on h2"; }
dst=$(copies | cut -d' ' -f2)
[ "$(field pid)" = "$dst" ] || fail "the inventory's pid $(field pid) is not h2's plinth $dst"
n=$(cnt h1 count)
m=$(cnt h1 disk)
wait_console h2 "count $((n + 2))[[:space:]]" 60
wait_console h2 "disk $((m + 2))[[:space:]]" 60
grep -a -q "init started" "$dir/h2/vms/$uuid/console.log" && fail "h2 booted the guest instead of receiving it"
grep -q " pid=$dst " "$dir/shared/disk.raw.lease" || { cat "$dir/shared/disk.raw.lease"; fail "the disk's lease does not name h2's plinth"; }
fig1=$(P h1 events --json | grep -o 'moved from h1 to h2[^"]*' | tail -n 1)
echo "# $fig1"

# h2 -> h1, asked of h1 (forwarded to the owner, h2).
t0=$(date +%s%3N)
out=$(P h1 vm migrate m --to h1 2>&1) || { echo "$out"; tail -n 20 "$dir/h1.log" "$dir/h2.log"; fail "migrate h2 -> h1"; }
wall2=$(($(date +%s%3N) - t0))
[ "$(field host) $(field epoch)" = "h1 3" ] || fail "after h2 -> h1 the inventory says $(field host) at epoch $(field epoch)"
for _ in $(seq 50); do [ "$(copies | wc -l)" = 1 ] && [ "$(field state)" = running ] && break; sleep 0.2; done
[ "$(copies | cut -d' ' -f1)" = h1 ] || { copies; fail "not exactly one copy, on h1"; }
n=$(cnt h2 count)
m=$(cnt h2 disk)
wait_console h1 "count $((n + 2))[[:space:]]" 60
wait_console h1 "disk $((m + 2))[[:space:]]" 60
fig2=$(P h1 events --json | grep -o 'moved from h2 to h1[^"]*' | tail -n 1)
echo "# $fig2 ($wall2 ms)"

# The destination's plinth killed once the transfer runs: the VM stays on h1.
P h1 vm migrate m --to h2 >"$dir/cut.out" 2>&1 &
mig=$!
end=$((SECONDS + 60))
victim=
while [ $SECONDS -lt $end ] && [ -z "$victim" ]; do
	victim=$(pgrep -f -- "receive --listen tcp:127.0.0.2:.*--api-socket $dir/h2/" | head -n 1)
	sleep 0.05
done
[ -n "$victim" ] || { cat "$dir/cut.out"; fail "h2's receive never started"; }
while [ $SECONDS -lt $end ] &&
	[ "$(awk '/^rchar:/ { print $2 }' /proc/$victim/io 2>/dev/null || echo 0)" -lt 2097152 ]; do
	sleep 0.02
done
kill -9 "$victim"
wait $mig && { cat "$dir/cut.out"; fail "the cut migration reported success"; }
out=$(cat "$dir/cut.out")
echo "# cut: $out"
[ "$(wc -l <<<"$out")" = 1 ] || fail "the cut migration's failure is not one line"
[ "$(field host) $(field epoch)" = "h1 3" ] || fail "after the cut the inventory says $(field host) at epoch $(field epoch)"
sleep 1
[ "$(copies | cut -d' ' -f1 | tr '\n' ' ')" = "h1 " ] || { copies; fail "after the cut: not exactly one copy, on h1"; }
[ "$(field state)" = running ] || fail "after the cut the VM is $(field state)"
n=$(cnt h1 count)
m=$(cnt h1 disk)
wait_console h1 "count $((n + 2))[[:space:]]" 60
wait_console h1 "disk $((m + 2))[[:space:]]" 60

P h1 vm kill m >/dev/null || fail "vm kill"
m=$(cnt h1 disk)
check_disk "$dir/shared/disk.raw" "$m" || fail "the disk lost writes across the migrations"
echo "figures: h1->h2 $fig1, command ${wall} ms; h2->h1 $fig2, command ${wall2} ms"
echo "ok: a guest writing its disk migrated between two plinthd hosts and back, and stayed on its host when the destination died"
