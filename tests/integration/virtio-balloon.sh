# virtio-balloon's free page reporting in a real guest: 150 MiB written in the guest
# and freed again go back to the host (plinth's RSS drops by 100 MiB or more), and the
# guest uses those pages again afterwards (a 100 MiB pattern written and compared).
# The same guest without --balloon keeps the memory: the control.
. tests/integration/lib.sh
dir=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null; rm -rf "$dir"' EXIT

guest='
	ls /sys/bus/virtio/drivers/virtio_balloon 2>/dev/null | grep -q virtio && echo "balloon bound"
	mount -t tmpfs -o size=200m tmpfs /mnt
	dd if=/dev/zero of=/mnt/f bs=1M count=150 2>/dev/null && echo "filled"
	sleep 4
	rm /mnt/f && echo "freed"
	sleep 15
	echo "settled"
	sleep 3
	yes plinth-balloon | head -c 104857600 >/mnt/g
	yes plinth-balloon | head -c 104857600 | cmp - /mnt/g && echo "pattern ok"
	'

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# dropped NAME [OPTIONS...]: boot the guest; drop is how many KiB plinth's RSS fell from
# "filled" to "settled".
dropped() {
	local name=$1 out=$dir/$1 full low
	shift
	"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
		--memory 256M --cmdline "$(guest_cmdline "$guest")" "$@" </dev/null >"$out" 2>&1 &
	pid=$!
	FAIL_DUMP_PID=$pid
	wait_in "$out" $pid '^filled' 120
	full=$(rss_kib $pid)
	wait_in "$out" $pid '^settled' 120
	low=$(rss_kib $pid)
	wait_in "$out" $pid '^plinth-guest: exit status' 120
	wait $pid || fail "$name: plinth exited $?"
	pid=
	sed -i 's/\r$//' "$out"
	expect_in "$out" '^pattern ok$' "$name: the guest's memory did not read back what it wrote"
	echo "# $name: RSS ${full} KiB when filled, ${low} KiB after the free" >&2
	drop=$((full - low))
}

dropped balloon --balloon
expect_in "$dir/balloon" '^balloon bound$' "the guest has no virtio_balloon driver (an old build/guest?)"
[ "$drop" -ge $((100 * 1024)) ] || fail "with --balloon plinth's RSS fell by only $drop KiB"
dropped control
[ "$drop" -lt $((50 * 1024)) ] ||
	fail "without --balloon plinth's RSS fell by $drop KiB: the test measures nothing"
