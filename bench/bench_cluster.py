"""The cluster with real guests, for bench.py --part kvm: live migration between hosts and
HA failover, from the test bed of #15 (tests/integration/cluster-bed.sh), not a copy of it.

bench_bed(runs): runs the bed min(runs, 3) times ($BENCH_BED_RUNS overrides; one run takes
about 3 minutes in the emulated host) with BED_FIGURES set, so that it writes its figures to
a file as it measures them, and takes the median of each. A run counts only if the bed
passed every one of its checks (one writer per disk, no two copies, restarts issued 14-25 s
after the cut); a failed run is listed in FAILED_RUNS and run once more, and a second
failure in a row makes the rows n/a with its reason. No peer is run: QEMU has no cluster.
"""
import os, re, signal, subprocess, sys, tempfile

import bench as B  # bench.py: stats, na, wanted, FAILED_RUNS

BED = "tests/integration/cluster-bed.sh"
BED_TIMEOUT = 900  # s; a passing run takes about 180 s (tests/integration/run allows 600)
# row -> (the bed's figure name, the row's unit, divisor from the bed's ms, what it measures)
ROWS = {
    "cluster: live migration between hosts, downtime (ms)": (
        "migration-downtime", "ms", 1,
        "downtime as the source's plinthd records it in the move's event (source paused to the "
        "destination's ack)"),
    "cluster: live migration between hosts, migrate command wall time (s)": (
        "migration-wall", "s", 1000,
        "`plinth vm migrate v1 --to HOST` asked of the source, start to its exit: prepare, "
        "transfer, confirm, switch"),
    "HA failover: host link cut to restart issued (s)": (
        "failover-issued", "s", 1000,
        "a host's link set down in its namespace to the leader's vm.ha event"),
    "HA failover: host link cut to the guest's init on another host (s)": (
        "failover-init", "s", 1000,
        "a host's link set down in its namespace to 'init started' on the VM's console on its new "
        "host (after the 6 s disk-lease watch and a boot from scratch)"),
}
CONDITIONS = ("%s; tests/integration/cluster-bed.sh with BED_FIGURES, %d runs of the whole bed "
              "(about 3 min each): 3 plinthd, each in its network namespace (veth on a bridge), "
              "PostgreSQL over TCP in a fourth, disks on a directory all see; 3 HA guests of 96 MiB "
              "and 1 vCPU, one per host, each appending fsynced records to its disk every 0.5 s "
              "(the migrated one also dirties 4 MiB of memory per record); heartbeat every 1 s, "
              "leader lease 4 s, a host lost after T = 15 s without a heartbeat, a cut host's "
              "watchdog I + W = 10 s; no QEMU peer (no cluster of its own)")


def bed_once():
    """One run of the bed: {figure name: ms}, the first of each (the migration, then the
    link cut). Raises with the bed's failure line if it failed or gave no figures."""
    fd, figs = tempfile.mkstemp(prefix="bench-bed-", suffix=".txt")
    os.close(fd)
    try:
        p = subprocess.Popen(["bash", BED], cwd=B.TOP, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             env=dict(os.environ, BUILD=B.B, BED_FIGURES=figs))
        try:
            out = p.communicate(timeout=BED_TIMEOUT)[0]
        except subprocess.TimeoutExpired:
            # the whole session, as tests/integration/run does: the bed's exit trap cleans up
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
            raise RuntimeError("the bed did not end within %d s" % BED_TIMEOUT)
        text = out.decode(errors="replace")
        if p.returncode:
            why = [l for l in text.splitlines() if l.startswith("FAIL:")] or text.splitlines()[-1:] or ["no output"]
            raise RuntimeError("the bed failed (exit %d): %s" % (p.returncode, why[-1][:240]))
        got = {}
        with open(figs) as f:
            for line in f:
                mt = re.match(r"FIGURE (\S+) (\d+) ms\b", line)
                if mt:
                    got.setdefault(mt.group(1), int(mt.group(2)))
    finally:
        os.unlink(figs)
    # The downtime is missing when the source ended before its plinthd asked for its
    # figures: that run counts for the other rows.
    missing = [name for name, _, _, _ in ROWS.values() if name not in got and name != "migration-downtime"]
    if missing:
        raise RuntimeError("the bed passed but wrote no figure " + ", ".join(missing))
    print("bench: cluster bed: %s" % ", ".join("%s %d ms" % kv for kv in got.items()), file=sys.stderr)
    return got


def bench_bed(runs):
    names = [n for n in ROWS if B.wanted(n)]
    if not names:
        return {}
    n = int(os.environ.get("BENCH_BED_RUNS") or min(runs, 3))
    results, failure = [], None
    for _ in range(n):
        for attempt in range(2):
            try:
                results.append(bed_once())
                failure = None
                break
            except (RuntimeError, OSError) as e:
                B.FAILED_RUNS.append("cluster bed: %s" % str(e)[:300])
                failure = e
        if failure:
            break
    res = {}
    for name in names:
        fig, unit, div, what = ROWS[name]
        row = {"unit": unit, "lower_is_better": True, "conditions": CONDITIONS % (what, n)}
        vals = [r[fig] / div for r in results if fig in r]
        row["plinth"] = (B.na(str(failure)[:200]) if failure else
                         B.stats(vals) if vals else B.na("no run reported it"))
        res[name] = row
    return res
