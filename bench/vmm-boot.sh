#!/bin/bash
# Boot time, plinth beside QEMU (-M microvm and -M pc), same kernel, initrd, CPUs and
# memory: time from starting the VMM to the guest init's first marker line, and to the
# VMM's exit after the guest powers off. Median of N runs (default 5). Runs where KVM
# is usable (inside scripts/hostvm on the project's machines):
#   scripts/hostvm -- bench/vmm-boot.sh [N] [CPUS] [MEMORY_MB]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. tests/integration/lib.sh
n=${1:-5} cpus=${2:-1} mem=${3:-512}
kvm_usable || { echo "bench: no usable KVM: $(kvm_why)" >&2; exit 1; }
K=$GUEST/vmlinuz I=$GUEST/initramfs.cpio.gz
cmdline=$(guest_cmdline 'true')

# Microseconds since the epoch, without forking (bash 5).
now() { local t=${EPOCHREALTIME/./}; echo "${t}"; }

# measure CMD...: prints "INIT_MS EXIT_MS" (INIT_MS "-" when the marker never came).
# The console goes through a pipe read line by line here, so the marker is timed
# when it arrives and the end is the VMM closing its output (its exit).
measure() {
	local start
	start=${EPOCHREALTIME/./}
	"$@" </dev/null 2>&1 | {
		t_init=""
		while IFS= read -r line; do
			case $line in
			"plinth-guest: init started"*) [ -n "$t_init" ] || t_init=${EPOCHREALTIME/./} ;;
			esac
		done
		end=${EPOCHREALTIME/./}
		if [ -n "$t_init" ]; then
			echo "$(( (t_init - start) / 1000 )) $(( (end - start) / 1000 ))"
		else
			echo "- $(( (end - start) / 1000 ))"
		fi
	}
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

declare -A init_ms exit_ms
vmms="plinth qemu-microvm qemu-pc"
for ((i = 1; i <= n; i++)); do
	for vmm in $vmms; do
		case $vmm in
		plinth) r=$(measure "$BUILD/plinth" run --kernel "$K" --initrd "$I" --cpus "$cpus" \
				--memory "${mem}M" --cmdline "$cmdline") ;;
		qemu-microvm) r=$(measure qemu-system-x86_64 -M microvm -accel kvm -cpu host \
				-smp "$cpus" -m "$mem" -nodefaults -no-user-config -display none \
				-serial stdio -no-reboot -kernel "$K" -initrd "$I" -append "$cmdline") ;;
		qemu-pc) r=$(measure qemu-system-x86_64 -M pc -accel kvm -cpu host \
				-smp "$cpus" -m "$mem" -nodefaults -no-user-config -display none \
				-serial stdio -no-reboot -kernel "$K" -initrd "$I" -append "$cmdline") ;;
		esac
		init_ms[$vmm]+="${r% *} "
		exit_ms[$vmm]+="${r#* } "
		echo "# run $i $vmm: init ${r% *} ms, exit ${r#* } ms" >&2
	done
done

base_init=$(tr ' ' '\n' <<<"${init_ms[plinth]}" | grep -v -e '^-$' -e '^$' | median)
printf '%-14s %14s %14s %10s\n' VMM "to init (ms)" "to exit (ms)" "init/plinth"
for vmm in $vmms; do
	mi=$(tr ' ' '\n' <<<"${init_ms[$vmm]}" | grep -v -e '^-$' -e '^$' | median)
	me=$(tr ' ' '\n' <<<"${exit_ms[$vmm]}" | grep -v '^$' | median)
	ratio=$(awk -v a="$mi" -v b="$base_init" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
	printf '%-14s %14s %14s %10s\n' "$vmm" "$mi" "$me" "$ratio"
done
echo "($n runs each, median; $cpus vCPU, ${mem} MiB; $(uname -r))"
