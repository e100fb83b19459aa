"""Density, plinth beside QEMU, for bench.py --part kvm (#19).

bench_density(runs): idle 128 MiB, 1 vCPU guests of the standard guest (the same kernel,
initrd and command line on both sides, bench.vmm_cmd) started one after another, two
booting at a time, inside one memory cgroup v2 with memory.max = 3 GiB and
memory.swap.max = 0: everything the VMMs cost the host (guest RAM, the VMM's own heap,
KVM's page tables and other kernel memory charged to the cgroup) counts against the same
budget on both sides. A fill stops at the first guest that does not reach its init
marker, or as soon as the cgroup's OOM killer has killed a VMM, or at the cap. Then it
settles for SETTLE_S seconds; a guest counts as up if its VMM is alive and its console
printed a new heartbeat during the settle. Reported: the guests up, and the cgroup's
memory.current after the settle divided by them (the host memory each really costs).
The KSM rows are the same fill with /sys/kernel/mm/ksm/run = 1 (the same scan rate for
both sides), settled until ksmd has made KSM_SCANS full scans after the last guest.
The free-page-reporting rows are the same fill with a virtio-balloon that reports the
guest's free pages (plinth --balloon; QEMU -device virtio-balloon-pci,free-page-reporting=on),
so memory the guest touched and freed (the compressed kernel, the initrd) goes back.
A boot that fails by itself (its VMM exits with no OOM kill in the cgroup) is listed among
the failed runs and replaced, at most RETRIES times a fill.
A side that can't be measured is n/a with the reason; nothing is estimated.
"""
import os, re, shutil, subprocess, tempfile, time

import bench as B  # bench.py: vmm_cmd, qemu_keys, stats, na, wanted, plinth_has, PLINTH

BUDGET = 3 << 30
GUEST_MEM = "128M"
CAP = int(os.environ.get("BENCH_DENSITY_CAP", "40"))
IN_FLIGHT = 2       # guests booting at once (the emulated host has 2 CPUs)
BOOT_TIMEOUT = 180  # seconds to the init marker; the emulated host is slow
SETTLE_S = 30
RETRIES = 2         # boots that fail by themselves (no OOM kill) replaced per fill
BEAT_S = 3
KSM_SCANS = 1
KSM_WAIT = 400      # seconds at most for those scans
KSM_PAGES = 1000    # pages per ksmd wake-up (the kernel's default, 100, needs minutes here)
KSM_SLEEP_MS = 20
IDLE = "i=0; while :; do i=$((i+1)); echo \"beat $i\"; sleep %d; done" % BEAT_S
BEAT_RE = re.compile(rb"beat (\d+)")
CG_ROOT = "/sys/fs/cgroup"
KSM = "/sys/kernel/mm/ksm/"
THP = "/sys/kernel/mm/transparent_hugepage/"

REPORT = ", free page reporting"
UP = "density: idle 128 MiB guests up in 3 GiB%s (guests)"
PER = "density: host memory per idle 128 MiB guest in 3 GiB%s (MiB)"


def rd(path):
    with open(path) as f:
        return f.read().strip()


def wr(path, value):
    with open(path, "w") as f:
        f.write(value)


def cgroup_setup():
    """A fresh memory cgroup of BUDGET bytes with no swap; its path."""
    if not os.path.exists(os.path.join(CG_ROOT, "cgroup.controllers")):
        subprocess.run(["mount", "-t", "cgroup2", "cgroup2", CG_ROOT], check=True)
    if "memory" not in rd(os.path.join(CG_ROOT, "cgroup.controllers")).split():
        raise RuntimeError("no memory controller in cgroup v2")
    if "memory" not in rd(os.path.join(CG_ROOT, "cgroup.subtree_control")).split():
        wr(os.path.join(CG_ROOT, "cgroup.subtree_control"), "+memory")
    cg = os.path.join(CG_ROOT, "bench-density")
    if os.path.isdir(cg):
        os.rmdir(cg)
    os.mkdir(cg)
    wr(os.path.join(cg, "memory.max"), str(BUDGET))
    if os.path.exists(os.path.join(cg, "memory.swap.max")):
        wr(os.path.join(cg, "memory.swap.max"), "0")
    return cg


def oom_kills(cg):
    for line in rd(os.path.join(cg, "memory.events")).splitlines():
        k, v = line.split()
        if k == "oom_kill":
            return int(v)
    return 0


def mem_stat(cg):
    out = {}
    for line in rd(os.path.join(cg, "memory.stat")).splitlines():
        k, v = line.split()
        out[k] = int(v)
    return out


class Guest:
    def __init__(self, cmd, cg, d, i):
        self.path = os.path.join(d, "g%d.out" % i)
        self.out = open(self.path, "wb")
        # Into the cgroup before exec: every page the VMM ever touches is charged there.
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                  preexec_fn=lambda: wr(os.path.join(cg, "cgroup.procs"), str(os.getpid())))
        self.t0 = time.monotonic()
        self.up = False

    def text(self):
        with open(self.path, "rb") as f:
            return f.read()

    def beats(self):
        b = [int(x) for x in BEAT_RE.findall(self.text())]
        return max(b) if b else 0

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.out.close()


def fill(vmm, cg, ksm, extra=()):
    """One fill of the budget; returns (guests up, bytes per guest, a line of detail)."""
    d = tempfile.mkdtemp(prefix="bench-density-", dir="/run" if os.path.isdir("/run") else None)
    guests, why, t0, made, retried = [], None, time.monotonic(), 0, 0
    ooms0 = oom_kills(cg)
    try:
        if ksm:
            wr(KSM + "pages_to_scan", str(KSM_PAGES))
            wr(KSM + "sleep_millisecs", str(KSM_SLEEP_MS))
            wr(KSM + "run", "1")
        cmd = B.vmm_cmd(vmm, mem=GUEST_MEM, cpus=1, run=IDLE, extra=extra)
        while why is None:
            booting = [g for g in guests if not g.up]
            if len(guests) < CAP and len(booting) < IN_FLIGHT:
                guests.append(Guest(cmd, cg, d, made))
                made += 1
                continue
            if not booting and len(guests) >= CAP:
                why = "the cap of %d guests" % CAP
                break
            time.sleep(0.2)
            for g in guests:
                if g.p.poll() is not None and not g.up and oom_kills(cg) == ooms0 and retried < RETRIES:
                    # A boot that failed by itself, not for memory (once a microvm guest
                    # found no PCI config access under load and powered off): recorded,
                    # and another guest started in its place.
                    B.FAILED_RUNS.append("density %s: guest %d's VMM exited (status %s) before its init, "
                                         "replaced: %r" % (vmm, guests.index(g) + 1, g.p.returncode,
                                                           g.text()[-200:]))
                    retried += 1
                    g.kill()
                    guests.remove(g)
                    break
                if g.p.poll() is not None:
                    why = "guest %d's VMM exited (status %s)%s" % (
                        guests.index(g) + 1, g.p.returncode, ", killed by the cgroup's OOM killer"
                        if oom_kills(cg) > ooms0 else ": %r" % g.text()[-200:])
                elif not g.up and B.MARKER in g.text():
                    g.up = True
                elif not g.up and time.monotonic() - g.t0 > BOOT_TIMEOUT:
                    why = "guest %d reached no init marker in %d s" % (guests.index(g) + 1, BOOT_TIMEOUT)
                if why:
                    break
            if why is None and oom_kills(cg) > ooms0:
                why = "the cgroup's OOM killer killed a process"
        # Guests still booting when the fill stopped do not count: they are stopped.
        for g in guests:
            if not g.up:
                g.kill()
        live = [g for g in guests if g.up and g.p.poll() is None]
        ksm_note = ""
        if ksm:
            # ksmd counts no full scan while no process has mergeable memory.
            scans, t1 = int(rd(KSM + "full_scans")), time.monotonic()
            while int(rd(KSM + "full_scans")) < scans + KSM_SCANS:
                if time.monotonic() - t1 > KSM_WAIT:
                    ksm_note = "; ksmd made no full scan in %d s" % KSM_WAIT
                    break
                if time.monotonic() - t1 > 30 and not any(
                        int(rd(KSM + f)) for f in ("pages_shared", "pages_unshared", "pages_volatile")):
                    ksm_note = "; ksmd found no mergeable memory"
                    break
                time.sleep(1)
        before = {g: g.beats() for g in live}
        time.sleep(SETTLE_S)
        up = [g for g in live if g.p.poll() is None and g.beats() > before[g]]
        cur = int(rd(os.path.join(cg, "memory.current")))
        st = mem_stat(cg)
        detail = ("%s: stopped at %s; %d started, %d up after %d s; memory.current %.0f MiB (anon %.0f, "
                  "shmem %.0f, file %.0f, kernel %.0f); OOM kills %d; %.0f s" % (
                      vmm, why, len(guests), len(up), SETTLE_S, cur / 2**20, st.get("anon", 0) / 2**20,
                      st.get("shmem", 0) / 2**20, st.get("file", 0) / 2**20, st.get("kernel", 0) / 2**20,
                      oom_kills(cg) - ooms0, time.monotonic() - t0))
        if ksm:
            detail += "; KSM pages_sharing %s, pages_shared %s%s" % (rd(KSM + "pages_sharing"),
                                                                      rd(KSM + "pages_shared"), ksm_note)
        print("bench density: " + detail, flush=True)
        if not up:
            raise RuntimeError("no guest up: " + detail)
        return len(up), cur / len(up), detail
    finally:
        for g in guests:
            g.kill()
        if ksm:
            wr(KSM + "run", "2")  # unmerge and stop: the next fill starts from nothing merged
        shutil.rmtree(d, ignore_errors=True)


def warm(paths):
    """Read the files every VMM maps before any fill, outside the cgroup: their page cache
    is charged here, not to whichever side happens to read them first."""
    for p in paths:
        try:
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass
        except OSError:
            pass


def libs(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    return [w for w in r.stdout.split() if w.startswith("/")]


def bench_density(runs, keep=lambda rows: None):
    """The rows of the module docstring; one fill per side and mode (a fill is itself
    tens of guests), sides in turn. keep(rows) is given the rows of each finished mode:
    a run cut short keeps them."""
    res = {}
    modes = [m for m in ("", ", KSM on", REPORT) if B.wanted(UP % m) or B.wanted(PER % m)]
    if not modes:
        return res
    have_plinth = B.plinth_has("--kernel")
    sides = (["plinth"] if have_plinth else []) + B.qemu_keys("microvm", "pc")
    # plinth's guest RAM is a shared memfd, which KSM never merges; --memory-merge makes
    # it private anonymous memory marked MADV_MERGEABLE, as QEMU's is by default.
    merge = ["--memory-merge"] if B.plinth_has("--memory-merge") else []
    try:
        cg = cgroup_setup()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        for m in modes:
            res[UP % m] = {"unit": "guests", "lower_is_better": False}
            res[PER % m] = {"unit": "MiB", "lower_is_better": True}
            for k in ["plinth"] + B.qemu_keys("microvm", "pc"):
                res[UP % m][k] = res[PER % m][k] = B.na("no memory cgroup: %s" % str(e)[:120])
        return res
    warm([B.KERNEL, B.INITRD] + [b for b in [B.PLINTH] + [q for q, _ in B.QEMUS.values()] for b in [b] + libs(b)])
    thp = rd(THP + "enabled") if os.path.exists(THP + "enabled") else "?"
    shm = rd(THP + "shmem_enabled") if os.path.exists(THP + "shmem_enabled") else "?"
    swap = len(open("/proc/swaps").read().splitlines()) - 1
    for m in modes:
        ksm = m == ", KSM on"
        report = m == REPORT
        if ksm and not os.path.exists(KSM + "run"):
            r = {k: B.na("no KSM in this kernel") for k in ["plinth"] + B.qemu_keys("microvm", "pc")}
            res[UP % m] = dict(r, unit="guests", lower_is_better=False)
            res[PER % m] = dict(r, unit="MiB", lower_is_better=True)
            continue
        if ksm:
            wr(KSM + "run", "2")
        cond = ("1 vCPU, %s guests idle (a shell loop printing a line every %d s), started two at a time "
                "into one cgroup v2 of memory.max 3 GiB, swap off (%d swap devices, memory.swap.max 0); "
                "a guest is up when its VMM lives and its console went on after a %d s settle; a fill "
                "stops at a guest that fails to boot, an OOM kill, or the cap of %d; memory = the "
                "cgroup's memory.current after the settle / guests up (guest RAM, VMM heap, kernel "
                "memory such as KVM's page tables; kernel, initrd and binaries pre-read outside); "
                "one fill per side; THP enabled %s, shmem_enabled %s" % (
                    GUEST_MEM, BEAT_S, swap, SETTLE_S, CAP, thp.split("[")[1].split("]")[0] if "[" in thp else thp,
                    shm.split("[")[1].split("]")[0] if "[" in shm else shm))
        if report:
            cond += ("; free page reporting: plinth --balloon, QEMU -M pc only (for time) with -device "
                     "virtio-balloon-pci,free-page-reporting=on; the guest reports free blocks of 2 MiB "
                     "and up, 2 s after they are freed")
        if ksm:
            cond += ("; KSM run=1, pages_to_scan %d, sleep_millisecs %d, settled after %d full scan(s) from the "
                     "last guest up (QEMU -M pc only, for time); plinth %s" % (KSM_PAGES, KSM_SLEEP_MS, KSM_SCANS,
                                                   "with --memory-merge (private anonymous guest RAM, "
                                                   "MADV_MERGEABLE)" if merge else
                                                   "without a mergeable option (its guest RAM is a shared "
                                                   "memfd, which KSM never merges)"))
        up = {"unit": "guests", "lower_is_better": False, "conditions": cond}
        per = {"unit": "MiB", "lower_is_better": True, "conditions": "as the row above"}
        details = []
        for k in ["plinth"] + B.qemu_keys(*(("pc",) if ksm or report else ("microvm", "pc"))):
            if k not in sides:
                up[k] = per[k] = B.na("plinth not built")
                continue
            if report and k == "plinth" and not B.plinth_has("--balloon"):
                up[k] = per[k] = B.na("this plinth has no --balloon")
                continue
            extra = ()
            if ksm and k == "plinth":
                extra = merge
            elif report:
                extra = ["--balloon"] if k == "plinth" else [
                    "-device", "virtio-balloon-pci,free-page-reporting=on"]
            try:
                n, per_guest, detail = fill(k, cg, ksm, extra)
            except Exception as e:
                B.FAILED_RUNS.append("density%s %s: %s" % (m, k, str(e)[:300]))
                up[k] = per[k] = B.na(str(e)[:160])
                continue
            up[k] = B.stats([n])
            per[k] = B.stats([per_guest / 2**20])
            details.append(detail)
        up["detail"] = details
        res[UP % m] = up
        res[PER % m] = per
        keep(res)
    try:
        os.rmdir(cg)
    except OSError:
        pass
    return res
