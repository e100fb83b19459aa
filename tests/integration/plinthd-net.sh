# plinthd networks: an isolated network "lan" (a bridge) and a nat network "wan" with
# DHCP (plinthd's dnsmasq). Two VMs with a NIC on each: on lan (static addresses) they
# ping each other and the host's address on the bridge; on wan each gets an address by
# DHCP (udhcpc), is told the other's and pings it, and reaches an "uplink" (a veth into
# a network namespace with a route back) masqueraded: the uplink sees the host's
# address, not the guest's; what lan would forward to the uplink is dropped (isolated).
# The taps go when the VMs stop; a network can't be deleted while a VM uses it, and
# its bridge, rules and dnsmasq go with it.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(sock_dir)
state=$dir/state
pdpid=
cleanup() {
	[ -n "$pdpid" ] && kill -9 $pdpid 2>/dev/null
	pkill -9 -f -- "--api-socket $state/" 2>/dev/null
	for f in "$state"/networks/*/dnsmasq.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	ip link del plbr1 2>/dev/null; ip link del plbr2 2>/dev/null
	nft delete table ip plinth_plbr1 2>/dev/null; nft delete table ip plinth_plbr2 2>/dev/null
	ip netns del plup 2>/dev/null; ip link del plup0 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
P() { "$BUILD/plinth" "$1" --state-dir "$state" "${@:2}"; }
"$BUILD/plinthd" --state-dir "$state" >"$dir/plinthd.log" 2>&1 &
pdpid=$!
for _ in $(seq 100); do P vm list >/dev/null 2>&1 && break; sleep 0.2; done

P net create lan --cidr 10.78.0.0/24 >/dev/null || fail "net create"
ip -br addr show plbr1 | grep -q 10.78.0.1/24 || { ip -br addr; fail "the bridge has no host address"; }
P net create wan --cidr 10.79.0.0/24 --nat >/dev/null || { cat "$dir/plinthd.log"; fail "net create --nat"; }
P net info wan | grep -q 'mode: *nat' || fail "wan is not nat: $(P net info wan)"
nft list table ip plinth_plbr2 | grep -q masquerade || fail "no masquerade rule for wan"
nft list table ip plinth_plbr1 | grep -q drop || fail "no isolation rule for lan"
[ -n "$(cat "$state/networks/plbr2/dnsmasq.pid")" ] && kill -0 "$(cat "$state/networks/plbr2/dnsmasq.pid")" ||
	fail "wan's dnsmasq is not running"
# The uplink: a namespace behind a veth, with a route back to anything (so only the
# isolation rules stop lan's packets, and only masquerading hides wan's addresses).
ip netns add plup && ip link add plup0 type veth peer name plup1 netns plup || fail "uplink veth"
ip addr add 192.168.250.1/24 dev plup0 && ip link set plup0 up
ip netns exec plup sh -c 'ip addr add 192.168.250.2/24 dev plup1 && ip link set plup1 up &&
	ip link set lo up && ip route add default via 192.168.250.1' || fail "uplink namespace"
ip netns exec plup python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.168.250.2", 7777)); s.listen(8)
while True:
    c, a = s.accept(); print(a[0], flush=True); c.close()' >"$dir/uplink-peers" 2>&1 &
P vm create x --kernel "$GUEST/vmlinuz" --nic nowhere 2>"$dir/err" && fail "a NIC on no network was accepted"
grep -q "no network named 'nowhere'" "$dir/err" || { cat "$dir/err"; fail "unexpected refusal"; }

for i in 1 2; do
	peer=$((3 - i))
	cmd="ip link set eth0 up && ip addr add 10.78.0.1$i/24 dev eth0
for t in \$(seq 60); do ping -c 1 -W 2 10.78.0.1$peer >/dev/null 2>&1 && break; done
ping -c 2 -W 2 10.78.0.1$peer && echo peer-ok-$i
ping -c 2 -W 2 10.78.0.1 && echo host-ok-$i
udhcpc -i eth1 -n -q -t 10 -T 3 || echo dhcp-failed-$i
read -r peer
echo \"peer-addr \$peer\"
ping -c 2 -W 2 \$peer && echo dhcp-peer-ok-$i
echo hello | nc -w 5 192.168.250.2 7777 && echo nat-ok-$i
ip route add 192.168.250.2/32 via 10.78.0.1 dev eth0
ping -c 2 -W 2 192.168.250.2 >/dev/null && echo isolation-leak-$i || echo isolated-ok-$i
while :; do sleep 1; done"
	P vm create "n$i" --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
		--memory 128 --nic lan --nic wan --cmdline "$(guest_cmdline "$cmd")" >/dev/null || fail "define n$i"
done
P vm start n1 --wait-seconds 0 >/dev/null || fail "start n1"
P vm start n2 --wait-seconds 0 >/dev/null || fail "start n2"
ip -br link | grep -q '^pt1n0' || { ip -br link; fail "no tap for n1"; }
for i in 1 2; do
	end=$((SECONDS + 180))
	until P vm console "n$i" | tr -d '\r' | grep -q "^host-ok-$i"; do
		[ $SECONDS -lt $end ] || { P vm console "n$i" | tail -n 20; fail "n$i: no ping through the bridge"; }
		sleep 1
	done
	P vm console "n$i" | tr -d '\r' | grep -q "^peer-ok-$i" || fail "n$i did not reach its peer"
done
# DHCP on wan: each guest's address (from the range), typed into the other's console.
declare -A addr
for i in 1 2; do
	end=$((SECONDS + 120))
	until addr[$i]=$(P vm console "n$i" | tr -d '\r' | sed -n 's|^plinth-guest: dhcp eth1 \([0-9.]*\)/24$|\1|p' | tail -n 1); [ -n "${addr[$i]}" ]; do
		[ $SECONDS -lt $end ] || { P vm console "n$i" | tail -n 20; cat "$state/networks/plbr2/dnsmasq.log"; fail "n$i got no DHCP address"; }
		sleep 1
	done
	case ${addr[$i]} in 10.79.0.1[2-9][0-9] | 10.79.0.2[0-5][0-9]) ;; *) fail "n$i: ${addr[$i]} is not from wan's DHCP range" ;; esac
	echo "# n$i: ${addr[$i]} by DHCP"
done
[ "${addr[1]}" != "${addr[2]}" ] || fail "both VMs got ${addr[1]}"
grep -q "${addr[1]}" "$state/networks/plbr2/leases" || fail "no lease for ${addr[1]}"
printf '%s\n' "${addr[2]}" | P vm console n1 --attach >/dev/null 2>&1 || fail "console n1"
printf '%s\n' "${addr[1]}" | P vm console n2 --attach >/dev/null 2>&1 || fail "console n2"
for i in 1 2; do
	end=$((SECONDS + 120))
	until P vm console "n$i" | tr -d '\r' | grep -q -E "^(isolated-ok|isolation-leak)-$i"; do
		[ $SECONDS -lt $end ] || { P vm console "n$i" | tail -n 20; fail "n$i: the wan checks did not finish"; }
		sleep 1
	done
	con=$(P vm console "n$i" | tr -d '\r')
	echo "$con" | grep -q "^dhcp-peer-ok-$i" || { echo "$con" | tail -n 20; fail "n$i could not ping its peer by its DHCP address"; }
	echo "$con" | grep -q "^nat-ok-$i" || { echo "$con" | tail -n 20; fail "n$i did not reach the uplink through wan"; }
	echo "$con" | grep -q "^isolated-ok-$i" || { echo "$con" | tail -n 20; fail "n$i reached the uplink through the isolated lan"; }
done
sort -u "$dir/uplink-peers" | grep -q -v '^192\.168\.250\.1$' && fail "the uplink saw a guest's own address (not masqueraded): $(sort -u "$dir/uplink-peers" | tr '\n' ' ')"
[ "$(grep -c '^192\.168\.250\.1$' "$dir/uplink-peers")" -ge 2 ] || fail "the uplink saw $(wc -l <"$dir/uplink-peers") connections, not 2: $(cat "$dir/uplink-peers")"
$(command -v ping || echo busybox ping) -c 2 -W 2 10.78.0.11 >/dev/null || fail "the host cannot ping n1"
P net delete lan 2>"$dir/err" && fail "a network in use was deleted"
grep -q "used by VM" "$dir/err" || fail "unexpected refusal: $(cat "$dir/err")"
P vm kill n1 >/dev/null && P vm kill n2 >/dev/null || fail "kill"
ip -br link | grep -q '^pt[12]n0' && { ip -br link; fail "taps left after the VMs stopped"; }
P vm delete n1 >/dev/null && P vm delete n2 >/dev/null || fail "delete"
dpid=$(cat "$state/networks/plbr2/dnsmasq.pid")
P net delete lan >/dev/null || fail "net delete"
P net delete wan >/dev/null || fail "net delete wan"
ip link show plbr1 >/dev/null 2>&1 && fail "the bridge is still there"
ip link show plbr2 >/dev/null 2>&1 && fail "wan's bridge is still there"
nft list table ip plinth_plbr2 >/dev/null 2>&1 && fail "wan's rules are still there"
sleep 0.5
kill -0 "$dpid" 2>/dev/null && fail "wan's dnsmasq still runs"
[ -z "$(ls "$state/networks")" ] || fail "files left: $(ls "$state/networks")"
echo "plinthd-net: ok"
