# virtio-net in a real guest: a tap in its own network namespace; the guest pings the
# host end and the host pings it back; then bulk data both ways with checksums
# over HTTP (host to guest, then guest to host), which goes through the offloads
# (TSO, checksum) and merged receive buffers.
. tests/integration/lib.sh
dir=$(mktemp -d)
ns=plinth-vt$$
trap 'ip netns del $ns 2>/dev/null; kill $httpd_pid 2>/dev/null; rm -rf "$dir"' EXIT
out=$dir/console
bb() { if command -v "$1" >/dev/null; then "$@"; else busybox "$@"; fi; }
ip netns add $ns || fail "cannot create a network namespace"
ip netns exec $ns ip link set lo up
ip netns exec $ns ip tuntap add vtap0 mode tap || fail "cannot create a tap"
ip netns exec $ns ip addr add 10.77.0.1/24 dev vtap0
ip netns exec $ns ip link set vtap0 up

mkdir "$dir/www"
head -c 3000000 /dev/urandom > "$dir/www/blob"
want=$(md5sum < "$dir/www/blob" | cut -d' ' -f1)
ip netns exec $ns busybox httpd -f -p 10.77.0.1:8080 -h "$dir/www" &
httpd_pid=$!

# Once the guest has pinged us, ping it back; once it serves its file, fetch it.
(for i in $(seq 240); do grep -q '^guest ping ok' "$out" 2>/dev/null && break; sleep 0.5; done
 ip netns exec $ns $(command -v ping || echo busybox ping) -c 3 -W 2 10.77.0.2 >"$dir/hostping" 2>&1
 for i in $(seq 240); do grep -q '^upload ' "$out" 2>/dev/null && break; sleep 0.5; done
 ip netns exec $ns busybox wget -q -O "$dir/upload" http://10.77.0.2:8080/up) &
helper_pid=$!
ip netns exec $ns "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" \
	--initrd "$GUEST/initramfs.cpio.gz" --memory 256M \
	--net tap=vtap0,mac=52:54:00:12:34:56 \
	--cmdline "$(guest_cmdline '
		cat /sys/class/net/eth0/address
		ip link set eth0 up && ip addr add 10.77.0.2/24 dev eth0
		ping -c 3 -W 5 10.77.0.1 && echo "guest ping ok"
		sleep 8
		wget -q -O /tmp/blob http://10.77.0.1:8080/blob && echo "download $(md5sum < /tmp/blob | cut -d" " -f1)"
		mkdir /tmp/www && head -c 2000000 /dev/urandom > /tmp/www/up
		httpd -p 8080 -h /tmp/www
		echo "upload $(md5sum < /tmp/www/up | cut -d" " -f1)"
		sleep 20 # the host fetches it meanwhile
		')" </dev/null >"$out" 2>&1 || fail "plinth exited $?"
sed -i 's/\r$//' "$out"
wait $helper_pid
expect_in "$out" '^plinth-guest: exit status 0' "the guest command did not finish"
expect_in "$out" '^52:54:00:12:34:56$' "the guest has the wrong MAC"
expect_in "$out" '^guest ping ok' "the guest could not ping the host"
expect_in "$dir/hostping" ' 0% packet loss' "the host could not ping the guest"
expect_in "$out" "^download $want\$" "the 3 MB download arrived damaged or not at all"
up=$(sed -n 's/^upload \([0-9a-f]*\)$/\1/p' "$out")
[ -n "$up" ] && [ "$(md5sum < "$dir/upload" | cut -d' ' -f1)" = "$up" ] ||
	{ grep -E 'virtio|upload' "$out"; false; } ||
	fail "the 2 MB upload arrived damaged ($(stat -c %s "$dir/upload") bytes)"
