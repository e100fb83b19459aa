# virtio-net in a real guest: a tap in its own network namespace, the guest pings
# the host end, and the host pings the guest back.
. tests/integration/lib.sh
dir=$(mktemp -d)
ns=plinth-vt$$
trap 'ip netns del $ns 2>/dev/null; rm -rf "$dir"' EXIT
out=$dir/console
ip netns add $ns || fail "cannot create a network namespace"
ip netns exec $ns ip link set lo up
ip netns exec $ns ip tuntap add vtap0 mode tap || fail "cannot create a tap"
ip netns exec $ns ip addr add 10.77.0.1/24 dev vtap0
ip netns exec $ns ip link set vtap0 up
# Once the guest has pinged us, ping it back (it waits for that).
(for i in $(seq 240); do grep -q '^guest ping ok' "$out" 2>/dev/null && break; sleep 0.5; done
 ip netns exec $ns $(command -v ping || echo busybox ping) -c 3 -W 2 10.77.0.2 >"$dir/hostping" 2>&1) &
ip netns exec $ns "$BUILD/plinth" run --kernel "$GUEST/vmlinuz" \
	--initrd "$GUEST/initramfs.cpio.gz" --memory 256M \
	--net tap=vtap0,mac=52:54:00:12:34:56 \
	--cmdline "$(guest_cmdline '
		cat /sys/class/net/eth0/address
		ip link set eth0 up && ip addr add 10.77.0.2/24 dev eth0
		ping -c 3 -W 5 10.77.0.1 && echo "guest ping ok"
		sleep 12
		')" </dev/null >"$out" 2>&1 || fail "plinth exited $?"
wait
sed -i 's/\r$//' "$out"
expect_in "$out" '^plinth-guest: exit status 0' "the guest command did not finish"
expect_in "$out" '^52:54:00:12:34:56$' "the guest has the wrong MAC"
expect_in "$out" '^guest ping ok' "the guest could not ping the host"
expect_in "$dir/hostping" ' 0% packet loss' "the host could not ping the guest"
