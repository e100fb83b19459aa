# virtio-rng and virtio-console in a real guest: /dev/hwrng gives bytes from the
# device; hvc0 output reaches the host file given with --console virtio,path=.
. tests/integration/lib.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$dir/console
: >"$dir/hvc"
run_plinth "$out" '
	echo "rng $(cat /sys/class/misc/hw_random/rng_current)"
	echo "bytes $(head -c 4096 /dev/hwrng | wc -c)"
	head -c 64 /dev/hwrng | od -An -tx1 | tr -d " \n"; echo
	echo "hello from hvc0" > /dev/hvc0
	echo "console done"
	' --rng --console "virtio,path=$dir/hvc" || fail "plinth exited $?"
expect_in "$out" '^plinth-guest: exit status 0' "the guest command did not finish"
expect_in "$out" '^rng virtio_rng' "virtio-rng is not the guest's hwrng"
expect_in "$out" '^bytes 4096$' "/dev/hwrng did not give 4096 bytes"
grep -qE '^[0-9a-f]{128}$' "$out" || fail "no random bytes printed"
grep -qE '^0{128}$' "$out" && fail "the random bytes are all zero"
expect_in "$dir/hvc" 'hello from hvc0' "hvc0 output did not reach the host"

# hvc0 on plinth's own stdin/stdout (reopened privately, non-blocking).
run_plinth "$out" 'echo "hello via stdio hvc0" > /dev/hvc0; echo "stdio done"' \
	--console virtio || fail "plinth exited $? (stdio console)"
expect_in "$out" '^plinth-guest: exit status 0' "the guest command did not finish (stdio)"
expect_in "$out" 'hello via stdio hvc0' "hvc0 output did not reach plinth's stdout"
