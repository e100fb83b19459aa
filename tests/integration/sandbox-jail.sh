# The jailer: `--jail DIR --uid 65534 --gid 65534` boots the standard guest; the
# process then runs as 65534 with no capabilities, no_new_privs and seccomp on
# every thread (checked from /proc/PID/status); a guest reset re-creates the VM
# inside the jail (the kernel, initrd and /dev/kvm were kept open) and the guest
# boots again; with a disk, whose image can't be re-opened in the jail, a reset
# ends plinth with exit 3 (a reset it could not carry out, with a warning).
. tests/integration/lib.sh
kvm_usable || fail "no usable KVM: $(kvm_why)"
[ "$(id -u)" = 0 ] || fail "the jail needs root (the emulated host runs tests as root)"
dir=$(sock_dir)
jail=$dir/jail
mkdir -p "$jail"
pid=
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
out=$dir/console
J=(--jail "$jail" --uid 65534 --gid 65534)
: >"$out" # exists before plinth's redirection does: the polls below read it

wait_boots() { # N: until the console shows N guest inits (or plinth exits)
	for _ in $(seq 1500); do
		[ "$(grep -c 'plinth-guest: init started' "$out")" -ge "$1" ] && return 0
		kill -0 $pid 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
field() { awk -v f="$1:" '$1 == f { $1 = ""; sub(/^ /, ""); print; exit }' "/proc/$pid/status"; }

# 1. Jailed boot, checked from outside while the guest sleeps.
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--memory 256M --cpus 2 --rng \
	--cmdline "$(guest_cmdline 'echo jail-start; sleep 12; echo jailed-done')" \
	"${J[@]}" </dev/null >"$out" 2>&1 &
pid=$!
for _ in $(seq 900); do
	grep -q '^jail-start' "$out" && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
grep -q '^jail-start' "$out" || { tail -n 20 "$out"; fail "the jailed guest did not boot"; }
uid=$(field Uid) gid=$(field Gid) capeff=$(field CapEff) capprm=$(field CapPrm)
capbnd=$(field CapBnd) nnp=$(field NoNewPrivs) sc=$(field Seccomp)
echo "# jailed plinth: Uid $uid, Gid $gid, CapEff $capeff, CapBnd $capbnd, NoNewPrivs $nnp, Seccomp $sc"
[ "$uid" = "65534	65534	65534	65534" ] || [ "$(echo $uid)" = "65534 65534 65534 65534" ] ||
	fail "Uid is '$uid', not 65534 everywhere"
[ "$(echo $gid)" = "65534 65534 65534 65534" ] || fail "Gid is '$gid'"
[ "$capeff" = 0000000000000000 ] || fail "CapEff $capeff"
[ "$capprm" = 0000000000000000 ] || fail "CapPrm $capprm"
[ "$capbnd" = 0000000000000000 ] || fail "CapBnd $capbnd"
[ "$nnp" = 1 ] || fail "NoNewPrivs $nnp"
[ "$sc" = 2 ] || fail "Seccomp $sc"
grep -h '^Seccomp:' /proc/$pid/task/*/status | grep -qv '2$' && fail "a thread is not filtered"
[ "$(readlink /proc/$pid/root)" = / ] && fail "plinth's root is still /"
wait $pid
rc=$?
pid=
sed -i 's/\r$//' "$out"
[ $rc = 0 ] || { tail -n 20 "$out"; fail "jailed plinth exited $rc"; }
expect_in "$out" '^jailed-done' "the jailed guest did not run its command"
grep -q 'forbidden syscall' "$out" && fail "a forbidden syscall in the jail"

# 2. A reset inside the jail: the guest reboots and boots again.
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--memory 256M --rng --cmdline "$(guest_cmdline 'reboot -f')" "${J[@]}" \
	</dev/null >"$out" 2>&1 &
pid=$!
wait_boots 2
n=$(grep -c 'plinth-guest: init started' "$out")
[ "$(echo $(field Uid))" = "65534 65534 65534 65534" ] || fail "after the reset: Uid '$(field Uid)'"
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
pid=
[ "$n" -ge 2 ] || { tail -n 20 "$out"; fail "jailed reset: the guest did not boot again ($n boots)"; }
[ $rc = 143 ] || { tail -n 20 "$out"; fail "jailed reset then SIGTERM: exit $rc, not 143"; }
grep -q 'forbidden syscall\|cannot open' "$out" && { tail -n 20 "$out"; fail "jailed reset: errors"; }

# 3. With a disk, a reset can't re-open the image inside the jail: exit 3 (not a power-off).
truncate -s 8M "$dir/disk.img"
"$BUILD/plinth" run --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" \
	--memory 256M --cmdline "$(guest_cmdline 'reboot -f')" \
	--disk "path=$dir/disk.img,format=raw" "${J[@]}" </dev/null >"$out" 2>&1
rc=$?
[ $rc = 3 ] || { tail -n 20 "$out"; fail "jailed reset with a disk: exit $rc, not 3"; }
expect_in "$out" 'cannot be re-opened inside the jail' "jailed reset with a disk: no warning"
echo "ok: jailed boot (uid 65534, no caps, seccomp), reset in the jail ($n boots), disk + reset"
