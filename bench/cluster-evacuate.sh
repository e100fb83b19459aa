#!/bin/bash
# Evacuation time of N running stand-in VMs (tests/unit/daemon/fake-plinth) from one of
# three plinthd on a private PostgreSQL (tests/daemon/cluster-lib), on this machine:
#   N=10 bench/cluster-evacuate.sh
# prints the command's time, the task's own figure (event host.evacuate) and where the
# VMs went. Measures plinthd's orchestration (prepare, transfer hand-off, confirm,
# switch per VM), not a guest's memory transfer (bench/vmm-migrate.sh).
TN=bench-cluster-evacuate
. "$(dirname "$0")/../tests/daemon/cluster-lib"
export FAKE_PLINTH_COUNT=1
cluster_creds
N=${N:-10}
# shellcheck disable=SC2046
start_host h1 $(listener_opts 1) && start_host h2 $(listener_opts 2) &&
	start_host h3 $(listener_opts 3) || exit 1
for i in $(seq "$N"); do
	cl h1 vm create "v$i" --kernel /bin/true --memory 64 >/dev/null &&
		cl h1 vm start "v$i" --wait-seconds 10 >/dev/null || fail "h1 started v$i"
done
sleep 1
t0=$(date +%s%3N)
out=$(cl h2 host evacuate h1 2>&1)
echo "# N=$N: $out: the command $(($(date +%s%3N) - t0)) ms"
cl h2 events --json | grep -o '[0-9]* of [0-9]* VMs moved in [0-9]* ms' | sed 's/^/# task: /'
cl h2 vm list --json | python3 -c 'import json,sys,collections
print("# per host:", dict(collections.Counter(v["host"] for v in json.load(sys.stdin)["vms"])))'
finish_with_vms
