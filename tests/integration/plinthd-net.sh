# plinthd networks: a network (a bridge), two VMs with a NIC on it ping each other and
# the host's address on the bridge; the taps go when the VMs stop; the network can't be
# deleted while a VM uses it, and its bridge goes with it.
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
dir=$(sock_dir)
state=$dir/state
pdpid=
trap '[ -n "$pdpid" ] && kill -9 $pdpid 2>/dev/null; pkill -9 -f -- "--api-socket $state/" 2>/dev/null; ip link del plbr1 2>/dev/null; rm -rf "$dir"' EXIT
P() { "$BUILD/plinth" "$1" --state-dir "$state" "${@:2}"; }
"$BUILD/plinthd" --state-dir "$state" >"$dir/plinthd.log" 2>&1 &
pdpid=$!
for _ in $(seq 100); do P vm list >/dev/null 2>&1 && break; sleep 0.2; done

P net create lan --cidr 10.78.0.0/24 >/dev/null || fail "net create"
ip -br addr show plbr1 | grep -q 10.78.0.1/24 || { ip -br addr; fail "the bridge has no host address"; }
P vm create x --kernel "$GUEST/vmlinuz" --nic nowhere 2>"$dir/err" && fail "a NIC on no network was accepted"
grep -q "no network named 'nowhere'" "$dir/err" || { cat "$dir/err"; fail "unexpected refusal"; }

for i in 1 2; do
	peer=$((3 - i))
	cmd="ip link set eth0 up && ip addr add 10.78.0.1$i/24 dev eth0
for t in \$(seq 60); do ping -c 1 -W 2 10.78.0.1$peer >/dev/null 2>&1 && break; done
ping -c 2 -W 2 10.78.0.1$peer && echo peer-ok-$i
ping -c 2 -W 2 10.78.0.1 && echo host-ok-$i
while :; do sleep 1; done"
	P vm create "n$i" --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
		--memory 128 --nic lan --cmdline "$(guest_cmdline "$cmd")" >/dev/null || fail "define n$i"
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
$(command -v ping || echo busybox ping) -c 2 -W 2 10.78.0.11 >/dev/null || fail "the host cannot ping n1"
P net delete lan 2>"$dir/err" && fail "a network in use was deleted"
grep -q "used by VM" "$dir/err" || fail "unexpected refusal: $(cat "$dir/err")"
P vm kill n1 >/dev/null && P vm kill n2 >/dev/null || fail "kill"
ip -br link | grep -q '^pt[12]n0' && { ip -br link; fail "taps left after the VMs stopped"; }
P vm delete n1 >/dev/null && P vm delete n2 >/dev/null || fail "delete"
P net delete lan >/dev/null || fail "net delete"
ip link show plbr1 >/dev/null 2>&1 && fail "the bridge is still there"
echo "plinthd-net: ok"
