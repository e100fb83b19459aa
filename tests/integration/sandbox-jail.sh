# The jailer: `--jail DIR --uid 65534 --gid 65534` boots the standard guest; the
# process then runs as 65534 with no capabilities, no_new_privs and seccomp on
# every thread (checked from /proc/PID/status); a guest reset re-creates the VM
# inside the jail (the kernel, initrd and /dev/kvm were kept open) and the guest
# boots again; with a disk, whose image can't be re-opened in the jail, a reset
# ends plinth with exit 3 (a reset it could not carry out, with a warning); restore --jail
# and receive --jail with a disk keep the guest writing it, every thread filtered.
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

# 4. restore --jail and receive --jail with a disk. A snapshot of a guest that writes
# numbered records to its disk is restored jailed; that jailed VM migrates over a Unix
# socket (inside its jail) to a jailed receive, which takes the image over from the
# file it opened before its jail: the guest goes on writing in both, every thread of
# both is filtered, and the image holds every record in order.
ctl() { "$BUILD/plinth" ctl --api-socket "$@"; }
threads_filtered() { # PID WHAT
	local n=0 s
	for s in /proc/$1/task/*/status; do
		grep -q '^Seccomp:[[:space:]]*2$' "$s" ||
			fail "$2: thread $(awk '$1 == "Name:" { print $2 }' "$s") is not filtered"
		n=$((n + 1))
	done
	awk '$1 == "Uid:" { exit !($2 == 65534 && $3 == 65534) }' /proc/$1/status ||
		fail "$2: not running as 65534"
	[ $n -ge 4 ] || fail "$2: only $n threads"
	echo "# $2: $n threads, all Seccomp 2, uid 65534"
}
truncate -s 4M "$dir/rec.raw"
M=(--kernel "$GUEST/vmlinuz" --initrd "$GUEST/initramfs.cpio.gz" --memory 256M
	--disk "path=$dir/rec.raw,format=raw")
rec='j=0; while :; do j=$((j+1)); printf "disk %010d\n" $j | dd of=/dev/vda bs=16 seek=$j conv=notrunc,fsync 2>/dev/null && echo "disk $j"; sleep 0.5; done'
"$BUILD/plinth" run "${M[@]}" --cmdline "$(guest_cmdline "$rec")" --api-socket "$dir/a.sock" \
	</dev/null >"$dir/a.out" 2>&1 &
pid=$!
wait_in "$dir/a.out" $pid 'disk 3[[:space:]]'
ctl "$dir/a.sock" pause >/dev/null || fail "pause failed"
ctl "$dir/a.sock" snapshot --to "$dir/snap" >/dev/null || fail "snapshot failed"
kill -9 $pid
wait $pid 2>/dev/null
mkdir "$dir/jb" "$dir/jc"
"$BUILD/plinth" restore --from "$dir/snap" "${M[@]}" --api-socket "$dir/b.sock" \
	--jail "$dir/jb" --uid 65534 --gid 65534 </dev/null >"$dir/b.out" 2>&1 &
pid=$!
b=$pid
wait_in "$dir/b.out" $b 'disk [0-9]+[[:space:]]'
first=$(grep -ao 'disk [0-9]*' "$dir/b.out" | head -n 1 | cut -d' ' -f2)
wait_in "$dir/b.out" $b "disk $((first + 2))[[:space:]]"
threads_filtered $b "restore --jail with a disk"
# The destination binds its socket inside the source's jail, as root before its own jail:
# the operator lets the source's user (65534) connect.
"$BUILD/plinth" receive --listen "unix:$dir/jb/mig.sock" "${M[@]}" --api-socket "$dir/c.sock" \
	--jail "$dir/jc" --uid 65534 --gid 65534 </dev/null >"$dir/c.out" 2>&1 &
c=$!
for _ in $(seq 100); do [ -S "$dir/jb/mig.sock" ] && break; sleep 0.1; done
chown 65534:65534 "$dir/jb/mig.sock" || fail "receive --jail --disk did not listen: $(cat "$dir/c.out")"
ctl "$dir/b.sock" migrate --to unix:/mig.sock >/dev/null || fail "migrate from the jailed restore refused"
wait $b
rc=$?
pid=$c
[ $rc = 0 ] || { tail -n 5 "$dir/b.out" "$dir/c.out"; fail "the jailed source exited $rc"; }
at=$(last_num "$dir/b.out" disk)
wait_in "$dir/c.out" $c "disk $((at + 2))[[:space:]]" 90
grep -q 'init started' "$dir/c.out" && fail "the jailed destination booted the guest instead"
threads_filtered $c "receive --jail with a disk"
grep -q " pid=$c " "$dir/rec.raw.lease" || { cat "$dir/rec.raw.lease"; fail "the lease does not name the jailed destination"; }
m=$(last_num "$dir/c.out" disk)
kill -TERM $c
wait $c
pid=
grep -q 'forbidden syscall' "$dir"/[abc].out && fail "a forbidden syscall"
check_disk "$dir/rec.raw" "$m" "restored at $first, migrated at $at" || fail "the disk lost writes"
echo "ok: jailed boot (uid 65534, no caps, seccomp), reset in the jail ($n boots), disk + reset, restore --jail and receive --jail with a disk"
