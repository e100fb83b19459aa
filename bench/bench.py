#!/usr/bin/env python3
"""Side-by-side benchmarks: plinth against QEMU, measured from outside the guest.

--part host: things that need no KVM (binary size, image conversion, image reads), run on this machine.
--part kvm:  guest boots, memory overhead, I/O, run where /dev/kvm is real KVM.
--merge:     combine parts into results.json and results.md.
Each pair of commands runs interleaved (A B A B ...); we report the median and flag a
figure as unstable when (max - min) / median exceeds 20 %. A metric that a feature does not
support yet is reported as n/a with the reason, never estimated.
BENCH_ONLY=REGEX limits a run to the metrics whose names it matches (e.g. 'migration|API').
"""
import argparse, atexit, json, os, platform, re, select, shutil, statistics, subprocess, sys, tempfile, time
# Run as a script, this file is __main__: the helper modules' `import bench` must get this
# very module (its FAILED_RUNS), not a second copy.
sys.modules.setdefault("bench", sys.modules[__name__])
import bench_migrate  # bench/bench_migrate.py: live migration and control-socket readiness
import bench_display  # bench/bench_display.py: VNC key latency and a scrolling console
import bench_cluster  # bench/bench_cluster.py: migration between hosts and HA failover, real guests
import bench_density  # bench/bench_density.py: idle guests held in 3 GiB, plain, with KSM, with free page reporting

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = os.path.join(TOP, "build")
KERNEL = os.path.join(B, "guest", "vmlinuz")
INITRD = os.path.join(B, "guest", "initramfs.cpio.gz")
PLINTH = os.path.join(B, "plinth")
PLINTH_IMG = os.path.join(B, "plinth-img")
NETPERF = os.path.join(B, "guest", "tools", "plinth-netperf")  # host side of the net test
MARKER = b"plinth-guest: init started"
UNSTABLE = 0.20
# The newest QEMU, unpacked by scripts/deps from Debian's bookworm-backports beside Debian 12's.
QEMU_NEW = os.path.join(os.environ.get("PLINTH_QEMU_NEW", "/opt/plinth/qemu"), "usr/bin/qemu-system-x86_64")


def qemu_version(binary):
    """QEMU's version ('10.0.2'), or None if the binary does not run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    mt = re.search(r"version (\d+\.\d+\.\d+)", out)
    return mt.group(1) if mt else None


def find_qemus():
    """The QEMU peers, oldest first: {"7.2": (binary, "7.2.22"), "10.0": (...)}: Debian 12's
    qemu-system-x86_64 and the newest one scripts/deps unpacked ($PLINTH_QEMU_NEW)."""
    peers = {}
    for b in (shutil.which("qemu-system-x86_64"), QEMU_NEW):
        v = qemu_version(b) if b and os.access(b, os.X_OK) else None
        if v:
            peers.setdefault(".".join(v.split(".")[:2]), (b, v))
    return dict(sorted(peers.items(), key=lambda kv: [int(x) for x in kv[0].split(".")]))


QEMUS = find_qemus()


def qemu_keys(*machines):
    """Result keys of the QEMU peers for machines ('pc', 'microvm'): 'qemu-7.2-pc', ..."""
    return ["qemu-%s-%s" % (v, mach) for mach in machines for v in QEMUS]


def wanted(metric_name):
    """True if the metric matches $BENCH_ONLY (a regex searched in its name), or no filter is set."""
    return all(not r or re.search(r, metric_name) is not None
               for r in (os.environ.get("BENCH_ONLY"), os.environ.get("BENCH_SECTION")))


def host_kind():
    kvm = os.path.exists("/dev/kvm")
    mods = [m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if os.path.isdir("/sys/module/" + m)]
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hv = "hypervisor" in open("/proc/cpuinfo").read()
    try:
        machine = open("/sys/class/dmi/id/product_version").read().strip()  # pc-q35-10.0
    except OSError:
        machine = ""
    if kvm and "kvm_amd" in mods and cpu.startswith("QEMU"):
        kind = "emulated virtualization host (QEMU %s TCG, AMD SVM+NPT, kvm_amd)" % (
            machine.rsplit("-", 1)[-1] if machine.startswith("pc-") else "?")
    elif kvm and ("kvm_intel" in mods or "kvm_amd" in mods):
        kind = "hardware KVM (%s)" % ",".join(mods)
    else:
        kind = "no KVM"
    return {"kind": kind, "cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
            "virtualized": hv, "qemu": {v: "QEMU %s, %s" % (full, b) for v, (b, full) in QEMUS.items()}}


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    med = statistics.median(xs)
    spread = (max(xs) - min(xs)) / med if med else 0.0
    return {"median": med, "min": min(xs), "max": max(xs), "n": len(xs),
            "unstable": spread > UNSTABLE}


def na(reason):
    return {"na": reason}


def plinth_has(*words):
    """True if build/plinth exists and its help mentions every word (feature probe)."""
    if not os.access(PLINTH, os.X_OK):
        return False
    try:
        out = subprocess.run([PLINTH, "run", "--help"], capture_output=True, timeout=10)
        text = (out.stdout + out.stderr).decode(errors="replace")
        out2 = subprocess.run([PLINTH, "--help"], capture_output=True, timeout=10)
        text += (out2.stdout + out2.stderr).decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return all(w in text for w in words)


def cmdline(cmd):
    import base64
    return "console=ttyS0 quiet panic=-1 plinth.run64=" + base64.b64encode(cmd.encode()).decode()


def vmm_cmd(vmm, mem="512M", cpus=2, run="true", extra=(), kernel=KERNEL, initrd=INITRD):
    cl = cmdline(run)
    if vmm == "plinth":
        return [PLINTH, "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", cl,
                "--cpus", str(cpus), "--memory", mem, "--no-reboot"] + list(extra)
    _, ver, mach = vmm.split("-")  # qemu-VERSION-MACHINE, a key of qemu_keys()
    binary = QEMUS[ver][0]
    machine = {"microvm": "microvm,acpi=on", "pc": "pc"}[mach]
    data = os.path.join(os.path.dirname(binary), "..", "share", "qemu")
    firmware = ["-L", data] if os.path.isdir(data) and os.path.realpath(data) != "/usr/share/qemu" else []
    return [binary] + firmware + ["-accel", "kvm", "-cpu", "host", "-M", machine,
            "-smp", str(cpus), "-m", mem, "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
            "-append", cl] + list(extra)


def boot_once(cmd, timeout=300, marker=MARKER, at_marker=None):
    """Start cmd; return (seconds to marker, total seconds, cpu seconds of the VMM, extra)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    buf, t_marker, extra = b"", None, None
    deadline = t0 + timeout
    while True:
        r, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            p.kill()
            p.wait()
            raise RuntimeError("timed out: " + " ".join(cmd[:3]))
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        if t_marker is None and marker in buf:
            t_marker = time.monotonic() - t0
            if at_marker:
                extra = at_marker(p.pid, buf)
    _, status, ru = os.wait4(p.pid, 0)
    total = time.monotonic() - t0
    if t_marker is None:
        raise RuntimeError("no init marker from %s (exit %s): %s" % (cmd[0], status, buf[-400:]))
    return t_marker, total, ru.ru_utime + ru.ru_stime, extra


# Memory written and freed before each timed boot in the emulated host (recycle_memory);
# BENCH_RECYCLE_MIB=0 boots without it, as `make bench` did before 2026-12-07.
RECYCLE_MIB = int(os.environ.get("BENCH_RECYCLE_MIB", "1024"))


def recycle_memory():
    """Write RECYCLE_MIB of shared memory, then free it, so that the next boot is handed pages
    the emulated host has just written rather than pages the last guest ran from. Without it,
    in the emulated host, the first writes to such pages cost up to 25 times more (faulting in
    plinth's 53 MB unpacked kernel: 76-676 ms right after another boot, 27-39 ms after this),
    probably QEMU TCG dropping the code it had translated from them; a real host has no
    such cost. Every VMM's boot gets it, so both sides run on the same host."""
    fd = os.memfd_create("plinth-bench-recycle")
    try:
        blk = b"\1" * (1 << 20)
        for _ in range(RECYCLE_MIB):
            os.write(fd, blk)
    finally:
        os.close(fd)


# Runs that failed and were run again (the emulated host is flaky): listed in results.md.
FAILED_RUNS = []


def interleave(fns, runs):
    """Run each fn runs times, A B A B ..., after one warm-up each; return lists of results.
    A run that raises is recorded in FAILED_RUNS and run once more; a second failure in a
    row makes that VMM's metric n/a (the exception)."""
    res = {k: [] for k in fns}
    def attempt(k, fn, keep):
        for i in range(2):
            try:
                v = fn()
            except Exception as e:
                FAILED_RUNS.append("%s%s: %s" % (k, " (warm-up)" if not keep else "", str(e)[:300]))
                if i:
                    res[k] = e
                continue
            if keep:
                res[k].append(v)
            return
    for k, fn in fns.items():
        attempt(k, fn, False)
    for _ in range(runs):
        for k, fn in fns.items():
            if not isinstance(res[k], Exception):
                attempt(k, fn, True)
    return res


def smaps_rollup(pid):
    out = {}
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m:
                out[m.group(1)] = int(m.group(2)) * 1024
    except OSError:
        pass
    return out


def guest_touched(pid):
    """Bytes of the VMM's largest mapping that are resident: the guest memory it touched."""
    best = 0
    try:
        cur = None
        for line in open("/proc/%d/smaps" % pid):
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                a, b = line.split()[0].split("-")
                cur = int(b, 16) - int(a, 16)
            elif line.startswith("Rss:") and cur is not None:
                rss = int(line.split()[1]) * 1024
                if cur >= 64 << 20:
                    best = max(best, rss)
                cur = None
    except OSError:
        pass
    return best


def part_host(runs):
    out = {"host": host_kind(), "metrics": {}}
    m = out["metrics"]
    # Stripped binary sizes.
    def stripped(path):
        if not path or not os.path.exists(path):
            return None
        with tempfile.NamedTemporaryFile() as t:
            subprocess.run(["strip", "-o", t.name, path], check=True)
            return stats([os.path.getsize(t.name)])
    m["binary size, stripped (bytes)"] = dict(
        {"plinth": stripped(PLINTH) if os.path.exists(PLINTH) else na("build/plinth not built"),
         "unit": "bytes", "lower_is_better": True},
        **{"qemu-%s" % v: stripped(b) for v, (b, _) in QEMUS.items()})
    if any(wanted(convert_key(p_, m_)) for p_ in CONVERT_PAIRS for m_ in CONVERT_MODES) or \
            any(wanted(k) for k, _, _ in more_keys()):
        m.update(bench_convert(runs))
    if wanted("4 KiB reads"):
        m.update(bench_randread(runs))
    if wanted(TAKEOVER):
        m[TAKEOVER] = bench_takeover(runs)
    out["metrics"] = {k: v for k, v in m.items() if wanted(k)}
    return out


TAKEOVER = "cluster leader takeover after its SIGKILL (s)"


def bench_takeover(runs):
    """plinthd's leader killed max(runs, 3) times among three plinthd on a private PostgreSQL
    (tests/daemon/cluster.sh, CLUSTER_ROUNDS): SIGKILL to the next leader's event. No peer is
    run here; the published figures of others are in docs/cluster.md."""
    row = {"unit": "s", "lower_is_better": True,
           "conditions": "3 plinthd, PostgreSQL 15 on a Unix socket; lease 4 s, claim every 1 s "
                         "(bound 5 s)"}
    r = subprocess.run(["bash", os.path.join(TOP, "tests/daemon/cluster.sh")], capture_output=True,
                       text=True, env=dict(os.environ, BUILD=B, CLUSTER_ROUNDS=str(max(runs, 3))))
    line = [l for l in r.stdout.splitlines() if l.startswith("# leader takeover after SIGKILL (ms):")]
    ms = line[0].split(":", 1)[1].split() if line else []
    if r.returncode or not ms or "not ok" in r.stdout:
        bad = [l for l in r.stdout.splitlines() if l.startswith("not ok")] or [r.stderr[-200:]]
        return dict(row, plinth=na("tests/daemon/cluster.sh failed: " + bad[0][:120]))
    return dict(row, plinth=stats([int(x) / 1000.0 for x in ms]))


CONVERT_PAIRS = ("raw->qcow2", "qcow2->vhdx", "vmdk->vhd", "vhdx->raw")
# Both sides get the same -t: what each tool does by default differs (plinth-img syncs, qemu-img not).
CONVERT_MODES = {"writeback": "the output fdatasync'ed before exit, plinth-img's default",
                 "unsafe": "the output never synced, qemu-img convert's default"}
# The larger and harder rows (#19): a 16 GiB image with 25 % data; compressed outputs
# from a 1 GiB image whose data compresses like text. name -> (source, out format,
# extra options).
CONVERT_MORE = {
    "convert raw->qcow2 -t %s, 16 GiB 25 % data (s)": ("big", "qcow2", []),
    "convert qcow2->raw -t %s, 16 GiB 25 % data (s)": ("bigq", "raw", []),
    "convert raw->qcow2 -c (zlib) -t %s, 1 GiB half data (s)": ("text", "qcow2", ["-c"]),
    "convert raw->vmdk streamOptimized -t %s, 1 GiB half data (s)": (
        "text", "vmdk", ["-o", "subformat=streamOptimized"]),
}
CONVERT_MORE_MODES = {"convert raw->qcow2 -t %s, 16 GiB 25 % data (s)": CONVERT_MODES}


def convert_key(pair, mode):
    return "convert %s -t %s, 2 GiB half data (s)" % (pair, mode)


def more_keys():
    """(row name, template, mode) of the larger rows: the 16 GiB raw->qcow2 row in both
    modes, the others in writeback (plinth-img's default; the sync is a small part there)."""
    return [(t.replace("%s", m), t, m) for t in CONVERT_MORE
            for m in CONVERT_MORE_MODES.get(t, {"writeback": CONVERT_MODES["writeback"]})]


def write_sparse_raw(path, size, extent, every, data):
    """A raw file of size bytes: extent bytes of data(i) at every multiple of `every`."""
    with open(path, "wb") as f:
        for i in range(size // every):
            f.seek(i * every)
            f.write(data(i))
        f.truncate(size)


# Text-like bytes: 16 letters and a space, at random (zlib keeps about 60 %).
TEXT_TABLE = bytes((b"abcdefghijklmnop " * 16)[i] for i in range(256))


def bench_convert(runs):
    """plinth-img convert vs qemu-img convert, interleaved, the same -t on both sides:
    the four pairs on a 2 GiB image, half data, half holes, in both cache modes; then the
    rows of CONVERT_MORE."""
    res = {}
    keys = [convert_key(p_, m_) for p_ in CONVERT_PAIRS for m_ in CONVERT_MODES] + [k for k, _, _ in more_keys()]
    if not os.access(PLINTH_IMG, os.X_OK):
        return {k: {"plinth": na("plinth-img not built"), "qemu": None, "unit": "s"} for k in keys if wanted(k)}
    d = tempfile.mkdtemp(prefix="bench-img-")
    fmts = {"raw": "raw", "qcow2": "qcow2", "vhdx": "vhdx", "vmdk": "vmdk", "vhd": "vpc"}
    dst = os.path.join(d, "dst")
    def run(cmd):
        for f_ in os.listdir(d):
            if f_.startswith("dst"):
                os.unlink(os.path.join(d, f_))
        t = time.monotonic()
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode:
            raise RuntimeError(r.stderr.decode(errors="replace")[-300:])
        return time.monotonic() - t
    def measure(name, mode, a, b, src, extra, conditions):
        ra = interleave({
            "plinth": lambda: run([PLINTH_IMG, "convert", "-t", mode, "-f", a, "-O", b] + extra + [src, dst]),
            "qemu": lambda: run(["qemu-img", "convert", "-t", mode, "-f", fmts[a], "-O", fmts[b]] + extra +
                                [src, dst]),
        }, runs)
        res[name] = {k: (na(str(v)[:120]) if isinstance(v, Exception) else stats(v)) for k, v in ra.items()} | {
            "unit": "s", "lower_is_better": True,
            "conditions": "-t %s on both sides: %s; %swarm page cache, output removed before each run; "
                          "whole process; QEMU = Debian's qemu-img" % (mode, CONVERT_MODES[mode], conditions)}
    try:
        if any(wanted(k) for k in keys[:len(CONVERT_PAIRS) * len(CONVERT_MODES)]):
            src = os.path.join(d, "src.raw")  # 64 MiB data, 64 MiB hole, ... up to 2 GiB
            chunk = os.urandom(1 << 20) * 64
            write_sparse_raw(src, 2 << 30, 64 << 20, 128 << 20, lambda i: chunk)
            srcs = {"raw": src}
            for f_ in ("qcow2", "vmdk", "vhdx"):
                p = os.path.join(d, "src." + f_)
                subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmts[f_], src, p], check=True)
                srcs[f_] = p
            # The sources' own writeback (3-4 GiB just written) must not land in the
            # first runs of whichever side comes first: written out before any is timed.
            os.sync()
            for pair in CONVERT_PAIRS:
                a, b = pair.split("->")
                for mode in CONVERT_MODES:
                    if wanted(convert_key(pair, mode)):
                        measure(convert_key(pair, mode), mode, a, b, srcs[a], [], "")
            for f_ in os.listdir(d):
                os.unlink(os.path.join(d, f_))
        made = {}
        for name, tmpl, mode in more_keys():
            if not wanted(name):
                continue
            kind, b, extra = CONVERT_MORE[tmpl]
            if kind not in made:
                p = os.path.join(d, "src-%s.raw" % kind)
                if kind in ("big", "bigq"):  # 64 MiB of data every 256 MiB: 4 GiB of 16 GiB
                    chunk = os.urandom(1 << 20) * 64
                    write_sparse_raw(p, 16 << 30, 64 << 20, 256 << 20, lambda i: chunk)
                    if kind == "bigq":
                        q = os.path.join(d, "src-bigq.qcow2")
                        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", p, q], check=True)
                        os.unlink(p)
                        p = q
                else:  # 32 MiB data, 32 MiB hole: three data extents of four text-like
                    write_sparse_raw(p, 1 << 30, 32 << 20, 64 << 20,
                                     lambda i: b"".join(os.urandom(1 << 20) if i % 4 == 3 else
                                                        os.urandom(1 << 20).translate(TEXT_TABLE)
                                                        for _ in range(32)))
                made[kind] = p
                os.sync()  # as above: the source written out before the timed runs
            a = "qcow2" if kind == "bigq" else "raw"
            cond = {"big": "64 MiB of random data every 256 MiB, the rest holes; ",
                    "bigq": "the same image made qcow2 by qemu-img; ",
                    "text": "32 MiB of data every 64 MiB, three extents in four text-like (17 symbols, "
                            "zlib keeps about 60 %), the fourth random; "}[kind]
            measure(name, mode, a, b, made[kind], extra, cond)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


def bench_randread(runs, count=20000, step=16384):
    """Random 4 KiB reads, plinth-img bench vs qemu-io, one offset list (bench/img-randread.sh).

    Per format: reads/s over the whole process (start to exit, warm page cache), qemu-io fed
    "read -q OFF 4096" lines on stdin; and a strided reference where both plinth-img bench and
    qemu-img bench (-d 1) time only their own read loop.
    """
    fmts = {"raw": "raw", "qcow2": "qcow2", "vhdx": "vhdx", "vmdk": "vmdk", "vhd": "vpc"}
    res = {}
    def key(f):
        return ("random 4 KiB reads, %s, 2 GiB half data (reads/s)" % f,
                "strided 4 KiB reads (-S 16k), %s (reads/s, read loop only)" % f)
    if not os.access(PLINTH_IMG, os.X_OK) or not plinth_img_has("bench"):
        for f in fmts:
            for k in key(f):
                res[k] = {"plinth": na("plinth-img bench not built"), "qemu": None, "unit": "reads/s"}
        return res
    d = tempfile.mkdtemp(prefix="bench-randread-")
    try:
        src = os.path.join(d, "img.raw")
        with open(src, "wb") as fh:  # 32 MiB data, 32 MiB hole, ... up to 2 GiB
            for i in range(0, 64, 2):
                fh.seek(i * (32 << 20))
                for _ in range(32):
                    fh.write(os.urandom(1 << 20))
            fh.truncate(2 << 30)
        imgs = {"raw": src}
        for f, q in fmts.items():
            if f != "raw":
                imgs[f] = os.path.join(d, "img." + q)
                subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", q, src, imgs[f]], check=True)
        import random
        r = random.Random(1)
        offs = [r.randrange(0, (2 << 30) // 4096) * 4096 for _ in range(count)]
        lst, script = os.path.join(d, "offsets"), os.path.join(d, "qemu-io.script")
        with open(lst, "w") as l, open(script, "w") as sc:
            for o in offs:
                l.write("%d\n" % o)
                sc.write("read -q %d 4096\n" % o)
        def wall(cmd, stdin=None):
            t = time.monotonic()
            with open(stdin or os.devnull) as i:
                p = subprocess.run(cmd, stdin=i, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            dt = time.monotonic() - t
            if p.returncode:
                raise RuntimeError(p.stderr.decode(errors="replace")[-300:])
            return count / dt
        def loop(cmd, parse):
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode:
                raise RuntimeError(p.stderr[-300:])
            return count / parse(p.stdout)
        def qemu_img_secs(out):
            m = re.search(r"Run completed in ([0-9.]+) seconds", out)
            if not m:
                raise RuntimeError("no 'Run completed' in qemu-img bench output")
            return float(m.group(1))
        for f, q in fmts.items():
            img = imgs[f]
            rnd, stride = key(f)
            rr = interleave({
                "plinth": lambda: wall([PLINTH_IMG, "bench", "-f", q, "--offsets", lst, img]),
                "qemu": lambda: wall(["qemu-io", "-r", "-f", q, img], script),
            }, runs)
            res[rnd] = {k: (na(str(v)[:120]) if isinstance(v, Exception) else stats(v)) for k, v in rr.items()} | {
                "unit": "reads/s", "lower_is_better": False,
                "conditions": "%d reads, same offsets; whole process, warm cache; QEMU = qemu-io < script" % count}
            rs = interleave({
                "plinth": lambda: loop([PLINTH_IMG, "bench", "-f", q, "--output=json", "--pattern", "sequential",
                                        "-S", str(step), "-c", str(count), img],
                                       lambda o: json.loads(o)["seconds"]),
                "qemu": lambda: loop(["qemu-img", "bench", "-f", q, "-d", "1", "-s", "4096", "-S", str(step),
                                      "-c", str(count), img], qemu_img_secs),
            }, runs)
            res[stride] = {k: (na(str(v)[:120]) if isinstance(v, Exception) else stats(v)) for k, v in rs.items()} | {
                "unit": "reads/s", "lower_is_better": False,
                "conditions": "%d reads; QEMU = qemu-img bench -d 1" % count}
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


def plinth_img_has(word):
    """True if plinth-img's help lists the command word."""
    try:
        p = subprocess.run([PLINTH_IMG, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"^\s+%s\b" % re.escape(word), p.stdout, re.M) is not None


def install_plinth():
    """Copy build/plinth and its VNC module to a tmpfs directory, as a user installs them,
    and time that copy from then on: QEMU runs from the root filesystem, while build/ may
    be a share that exec reads again each time (the emulated host's 9p mount of the
    repository, cache=mmap, costs 20-60 ms per start). The same bytes, the same options."""
    global PLINTH
    if not os.access(PLINTH, os.X_OK):
        return
    for parent in ("/run", "/dev/shm"):
        if os.access(parent, os.W_OK):
            break
    else:
        return
    d = tempfile.mkdtemp(prefix="plinth-bench-", dir=parent)
    atexit.register(shutil.rmtree, d, True)
    for name in ("plinth", "plinth-vnc.so"):
        if os.path.exists(os.path.join(B, name)):
            shutil.copy2(os.path.join(B, name), os.path.join(d, name))
    PLINTH = os.path.join(d, "plinth")


def part_kvm(runs, save=lambda out: None):
    out = {"host": host_kind(), "metrics": {}}
    m = out["metrics"]
    if not os.path.exists("/dev/kvm"):
        out["error"] = "no /dev/kvm"
        return out
    install_plinth()
    have_plinth = plinth_has("--kernel")
    # 1. Process start to the guest's init, and the VMM's CPU time for a whole boot.
    if wanted("start to guest init (s)") or wanted("VMM CPU time, boot to poweroff (s)"):
        recycling = RECYCLE_MIB > 0 and out["host"]["kind"].startswith("emulated")
        def timed_boot(vmm):
            if recycling:
                recycle_memory()
            return boot_once(vmm_cmd(vmm))
        fns = {k: (lambda k=k: timed_boot(k))
               for k in (["plinth"] if have_plinth else []) + qemu_keys("microvm", "pc")}
        r = interleave(fns, runs)
        for metric, idx in (("start to guest init (s)", 0), ("VMM CPU time, boot to poweroff (s)", 2)):
            row = {"unit": "s", "lower_is_better": True,
                   "conditions": "2 vCPUs, 512 MiB; every VMM gets the same bzImage: plinth unpacks its "
                                 "payload itself into guest memory (inside the time), "
                                 "QEMU's guest runs the kernel's own decompressor" +
                                 ("; before each boot %d MiB of memory is written and freed "
                                  "(bench.py's recycle_memory: pages the last guest ran from "
                                  "cost the emulated host up to 25x more to write)" % RECYCLE_MIB
                                  if recycling else "")}
            for k in ["plinth"] + qemu_keys("microvm", "pc"):
                v = r.get(k, na("plinth not built"))
                row[k] = na(str(v)[:160]) if isinstance(v, Exception) else (
                    v if isinstance(v, dict) else stats([x[idx] for x in v]))
            m[metric] = row
    # 2. VMM overhead memory after boot: PSS minus the guest memory it touched.
    for mem in ("128M", "1G"):
        if not wanted("VMM overhead memory, %s guest (MiB)" % mem):
            continue
        def overhead(vmm):
            def at_marker(pid, _buf):
                time.sleep(1.0)
                s = smaps_rollup(pid)
                return s.get("Pss", 0) - guest_touched(pid)
            return boot_once(vmm_cmd(vmm, mem=mem, run="sleep 2"), at_marker=at_marker)[3]
        fns = {k: (lambda k=k: overhead(k)) for k in (["plinth"] if have_plinth else []) + qemu_keys("microvm", "pc")}
        r = interleave(fns, runs)
        row = {"unit": "MiB", "lower_is_better": True, "conditions": "2 vCPUs, %s guest, 1 s after init" % mem}
        for k in ["plinth"] + qemu_keys("microvm", "pc"):
            v = r.get(k, na("plinth not built"))
            row[k] = na(str(v)[:160]) if isinstance(v, Exception) else (
                v if isinstance(v, dict) else stats([x / (1 << 20) for x in v]))
        m["VMM overhead memory, %s guest (MiB)" % mem] = row
    # 3. VMM start to API socket ready (plinth and QEMU's QMP, each answering a request).
    save(out)
    m.update(bench_migrate.bench_api_ready(runs))
    save(out)
    # 3b. snapshot restore of a 128 MiB guest to its control socket answering, running.
    m.update(bench_migrate.bench_restore(runs))
    save(out)
    # 4. virtio-blk to raw and qcow2: sequential throughput with busybox dd (1 MiB blocks,
    #    O_DIRECT), 4 KiB random reads and writes with plinth-fio (queue depth 1).
    m.update(bench_blk(runs, plinth_has("--disk")))
    save(out)
    # 5. virtio-net: one TCP stream from the guest to the host over a tap.
    m.update(bench_net(runs, plinth_has("--net", "tap=")))
    save(out)
    # 6. live migration, idle and dirtying.
    m.update(bench_migrate.bench_migrate(runs))
    save(out)
    # 6b. the cluster test bed: live migration between hosts, HA failover of a cut host.
    m.update(bench_cluster.bench_bed(runs))
    save(out)
    # 7. the display over VNC: key to screen, a scrolling console.
    m.update(bench_display.bench_display(runs))
    save(out)
    # 8. density: idle 128 MiB guests held in a 3 GiB memory cgroup: plain, KSM, free page reporting.
    m.update(bench_density.bench_density(runs, lambda rows: (m.update(rows), save(out))))
    out["metrics"] = {k: v for k, v in m.items() if wanted(k)}
    return out


DD_RE = re.compile(rb"BENCH-DD op=(\w+) bytes=(\d+) secs=([0-9.]+)")
# Busybox dd in Debian prints no rate: time it with the guest's /proc/uptime (10 ms ticks).
DD_WRAP = ("a=$(cut -d' ' -f1 /proc/uptime); %s 2>/dev/null; b=$(cut -d' ' -f1 /proc/uptime); "
           "echo BENCH-DD op=%s bytes=$((%d << 20)) secs=$(awk \"BEGIN { print $b - $a }\")")


FIO_RE = re.compile(rb"PLINTH-FIO rw=(\w+) bs=\d+ qd=\d+ ios=\d+ bytes=\d+ secs=[0-9.]+ iops=([0-9.]+)")
# Both random patterns in one boot: a read then a write pass of 10 s each.
FIO_CMD = " && ".join("plinth-fio --dev /dev/vda --rw %s --bs 4k --size 256M --runtime 10" % rw
                      for rw in ("randread", "randwrite"))


def blk_cmd(vmm, path, fmt_, run):
    """Command line booting vmm with path as its virtio disk (vda), running run in the guest."""
    if vmm == "plinth":
        return vmm_cmd("plinth", run=run, extra=["--disk", "path=%s,format=%s" % (path, fmt_)])
    return vmm_cmd(vmm, run=run, extra=["-drive", "file=%s,format=%s,if=none,id=d0" % (path, fmt_),
                                        "-device", "virtio-blk-pci,drive=d0"])


def guest_output(cmd, timeout=600):
    """Run a VMM to the guest's poweroff; return its console output, then its stderr."""
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError("%s: no poweroff after %d s: %r" % (os.path.basename(cmd[0]), timeout,
                                                              (e.stdout or b"")[-200:] + (e.stderr or b"")[-200:]))
    return p.stdout + p.stderr


def bench_blk(runs, have_plinth):
    """virtio-blk, measured inside the guest: sequential read and write with dd (1 MiB
    blocks), 4 KiB random read and write with plinth-fio, both O_DIRECT."""
    res = {}
    formats = [f_ for f_ in os.environ.get("BENCH_BLK_FORMATS", "raw,qcow2").split(",") if f_ in ("raw", "qcow2")]
    seq_name = "virtio-blk sequential %s, %s (MB/s)"
    rnd_name = "virtio-blk 4 KiB random %s, %s (IOPS)"
    if not any(wanted(n % (w, f_)) for f_ in formats for n in (seq_name, rnd_name) for w in ("read", "write")):
        return res
    not_built = na("plinth has no --disk yet")
    d = tempfile.mkdtemp(prefix="bench-blk-", dir="/dev/shm")
    try:
        raw = os.path.join(d, "disk.raw")
        with open(raw, "wb") as f:
            blk = os.urandom(1 << 20)
            for _ in range(320):
                f.write(blk)
        q = os.path.join(d, "disk.qcow2")
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, q], check=True)
        mib = 256
        # Both directions in one boot: the read pass, then the write pass.
        seq_cmd = " && ".join(DD_WRAP % (dd, what, mib) for what, dd in (
            ("read", "dd if=/dev/vda of=/dev/null bs=1M count=%d iflag=direct" % mib),
            ("write", "dd if=/dev/zero of=/dev/vda bs=1M count=%d oflag=direct" % mib)))
        for fmt_, path in [(f_, p_) for f_, p_ in (("raw", raw), ("qcow2", q)) if f_ in formats]:
            if wanted(seq_name % ("read", fmt_)) or wanted(seq_name % ("write", fmt_)):
                def once(vmm, fmt_=fmt_, path=path):
                    out = guest_output(blk_cmd(vmm, path, fmt_, seq_cmd))
                    got = {w.decode(): int(b) / float(t) / 1e6 for w, b, t in DD_RE.findall(out)}
                    if set(got) != {"read", "write"}:
                        raise RuntimeError("no dd result: %r" % out[-300:])
                    return got
                fns = {}
                if have_plinth:
                    fns["plinth"] = lambda: once("plinth")
                for k in qemu_keys("pc"):
                    fns[k] = lambda k=k: once(k)
                r = interleave(fns, runs)
                for what in ("read", "write"):
                    row = {"unit": "MB/s", "lower_is_better": False,
                           "conditions": "dd 1 MiB blocks, O_DIRECT, 256 MiB (the read pass, then the write "
                                         "pass, in one boot), %s file in the host's tmpfs (/dev/shm), "
                                         "QEMU -M pc virtio-blk-pci cache=writeback" % fmt_}
                    for k in ["plinth"] + qemu_keys("pc"):
                        v = r.get(k, not_built)
                        row[k] = na(str(v)[:160]) if isinstance(v, Exception) else (
                            v if isinstance(v, dict) else stats([x[what] for x in v]))
                    res[seq_name % (what, fmt_)] = row
            if not (wanted(rnd_name % ("read", fmt_)) or wanted(rnd_name % ("write", fmt_))):
                continue
            def fio(vmm, fmt_=fmt_, path=path):
                out = guest_output(blk_cmd(vmm, path, fmt_, FIO_CMD))
                iops = {rw.decode(): float(x) for rw, x in FIO_RE.findall(out)}
                if set(iops) != {"randread", "randwrite"}:
                    raise RuntimeError("no plinth-fio result: %r" % out[-300:])
                return iops
            fns = {}
            if have_plinth:
                fns["plinth"] = lambda: fio("plinth")
            for k in qemu_keys("pc"):
                fns[k] = lambda k=k: fio(k)
            r = interleave(fns, runs)
            for what in ("read", "write"):
                row = {"unit": "IOPS", "lower_is_better": False,
                       "conditions": "plinth-fio in the guest: 4 KiB O_DIRECT, queue depth 1 (synchronous), "
                                     "fixed-seed random offsets in the first 256 MiB, 10 s (the read pass, "
                                     "then the write pass, in one boot); %s file in the host's tmpfs "
                                     "(/dev/shm), QEMU -M pc virtio-blk-pci cache=writeback" % fmt_}
                for k in ["plinth"] + qemu_keys("pc"):
                    v = r.get(k, not_built)
                    row[k] = na(str(v)[:160]) if isinstance(v, Exception) else (
                        v if isinstance(v, dict) else stats([x["rand" + what] for x in v]))
                res[rnd_name % (what, fmt_)] = row
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


NET_RE = re.compile(rb"PLINTH-NET bytes=\d+ secs=[0-9.]+ mbits=([0-9.]+)")
NET_HOST, NET_GUEST, NET_PORT, NET_TAP = "10.0.2.1", "10.0.2.2", 5201, "pbtap0"


def bench_net(runs, have_plinth):
    """One TCP stream from the guest (plinth-netperf --send, 10 s) to plinth-netperf --listen
    on the host, over a tap in a network namespace of its own."""
    name = "virtio-net guest to host over tap (Mbit/s)"
    if not wanted(name):
        return {}
    row = {"unit": "Mbit/s", "lower_is_better": False,
           "conditions": "one TCP stream, guest to host, 10 s, 128 KiB writes, measured by plinth-netperf in "
                         "the guest; tap in its own network namespace, 2 vCPUs, 512 MiB; QEMU -M pc "
                         "virtio-net-pci, vhost=off (a userspace backend, like plinth's)"}
    if not os.access(NETPERF, os.X_OK):
        return {name: row | {k: na("no plinth-netperf (make guest)") for k in ["plinth"] + qemu_keys("pc")}}
    ns = "plinth-bench%d" % os.getpid()
    inns = ["ip", "netns", "exec", ns]
    recv = None
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "tuntap", "add", NET_TAP, "mode", "tap"],
                    ["ip", "addr", "add", NET_HOST + "/24", "dev", NET_TAP], ["ip", "link", "set", NET_TAP, "up"]):
            subprocess.run(inns + cmd, check=True)
        recv = subprocess.Popen(inns + [NETPERF, "--listen", "%s:%d" % (NET_HOST, NET_PORT)],
                                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        run = ("ip link set eth0 up && ip addr add %s/24 dev eth0 && plinth-netperf --send %s:%d --time 10"
               % (NET_GUEST, NET_HOST, NET_PORT))
        def once(vmm):
            if vmm == "plinth":
                c = vmm_cmd("plinth", run=run, extra=["--net", "tap=" + NET_TAP])
            else:
                c = vmm_cmd(vmm, run=run, extra=[
                    "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no,vhost=off" % NET_TAP,
                    "-device", "virtio-net-pci,netdev=n0"])
            out = guest_output(inns + c)
            mt = NET_RE.search(out)
            if not mt:
                raise RuntimeError("no plinth-netperf result: %r" % out[-300:])
            return float(mt.group(1))
        fns = {}
        if have_plinth:
            fns["plinth"] = lambda: once("plinth")
        for k in qemu_keys("pc"):
            fns[k] = lambda k=k: once(k)
        r = interleave(fns, runs)
        for k in ["plinth"] + qemu_keys("pc"):
            v = r.get(k, na("plinth has no --net tap= yet"))
            row[k] = na(str(v)[:160]) if isinstance(v, Exception) else (v if isinstance(v, dict) else stats(v))
    except (OSError, subprocess.CalledProcessError) as e:
        row |= {k: na("network setup failed: %s" % str(e)[:120]) for k in ["plinth"] + qemu_keys("pc")}
    finally:
        if recv:
            recv.kill()
            recv.wait()
        subprocess.run(inns + ["ip", "link", "del", NET_TAP], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    return {name: row}


def fmt(v, unit):
    if v is None:
        return "n/a"
    if "na" in v:
        return "n/a (%s)" % v["na"]
    med = v["median"]
    s = ("%.3g" % med) if unit != "bytes" else "%d" % med
    s += " [%.3g-%.3g]" % (v["min"], v["max"]) if unit != "bytes" else ""
    if v.get("unstable"):
        s += " UNSTABLE"
    return s


def merge(parts, json_out, md_out):
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "parts": []}
    lines = ["# plinth benchmarks", "",
             "Generated by `make bench` on %s. Median [min-max] of interleaved runs (A B A B); "
             "UNSTABLE marks a spread over %d %% of the median; n/a means not measurable yet, "
             "with the reason. Ratio is plinth / the QEMU column named. The guest rows run each "
             "VMM from the machine's own filesystem, as installed: plinth copied from build/ to a "
             "tmpfs directory before the first run (in the emulated host build/ is the "
             "repository's 9p share, which exec reads again at every start; QEMU comes from the "
             "root filesystem, cached)." % (res["date"], UNSTABLE * 100), ""]
    for p in parts:
        d = json.load(open(p))
        res["parts"].append(d)
        h = d["host"]
        lines += ["## Measured on: %s" % h["kind"], "",
                  "CPU: %s, %s CPUs, kernel %s" % (h["cpu"], h["nproc"], h["kernel"]), ""]
        if h.get("qemu"):
            lines += ["QEMU peers: " + "; ".join("`qemu-%s` is %s" % kv for kv in h["qemu"].items()) +
                      " (`-pc` and `-microvm` name the machine type).", ""]
        by_commit = {}
        for sec in d.get("sections", [d]):
            for note in sec.get("notes", []):
                lines += ["Note: " + note, ""]
            if sec.get("failed_runs"):
                lines += ["Runs that failed and were run again (%s): %s" % (
                    ", ".join(list(sec.get("metrics", []))[:2]) or "this part",
                    "; ".join("`%s`" % f.replace("`", "'").replace("|", "/").replace("\n", " ")[:240]
                              for f in sec["failed_runs"])), ""]
            # A section whose rows were all measured again since names no row's code.
            if sec.get("commit") and not ("metrics" in sec and not sec["metrics"]):
                by_commit.setdefault(sec["commit"], []).extend(list(sec.get("metrics", []))[:1] or ["all"])
        if by_commit:
            lines += ["Code: " + "; ".join("commit %s (%s)" % (c, ", ".join(m.split(" (")[0] for m in ms))
                                           if len(by_commit) > 1 else "commit %s" % c
                                           for c, ms in sorted(by_commit.items())) + ".", ""]
        if d.get("partial"):
            lines += ["**Cut short** by its time limit: the metrics of this part missing from the table "
                      "below were not measured in this run (n/a).", ""]
        if d.get("error"):
            lines += ["Not measured: " + d["error"], ""]
            continue
        lines += ["| metric | plinth | QEMU | ratio | conditions |", "|---|---|---|---|---|"]
        for name, row in d["metrics"].items():
            unit = row.get("unit", "")
            pl = row.get("plinth")
            peers = [(k, v) for k, v in row.items() if k.startswith("qemu")]
            qtxt = "<br>".join("%s: %s" % (k, fmt(v, unit)) if k != "qemu" else fmt(v, unit) for k, v in peers)
            ratios = []
            for k, v in peers:
                if pl and "median" in pl and v and "median" in v and v["median"]:
                    ratios.append(("%s %.2f" % (k, pl["median"] / v["median"])) if k != "qemu" else "%.2f" % (pl["median"] / v["median"]))
            lines.append("| %s | %s | %s | %s | %s |" % (name, fmt(pl, unit), qtxt, "<br>".join(ratios) or "n/a",
                                                        row.get("conditions", "")))
        lines.append("")
    json.dump(res, open(json_out, "w"), indent=1)
    open(md_out, "w").write("\n".join(lines) + "\n")


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "?"
    except OSError:
        return "?"


def combine(parts, json_out):
    """One emulated-host part from the sections bench/run measured each in a fresh emulated
    host: metrics in section order; partial if any section was cut short or missing."""
    out = {"host": None, "metrics": {}, "sections": []}
    for p in parts:
        try:
            d = json.load(open(p))
        except (OSError, ValueError) as e:
            out["partial"] = True
            out["sections"].append({"file": os.path.basename(p), "error": str(e)[:200]})
            continue
        out["host"] = out["host"] or d.get("host")
        out["metrics"].update(d.get("metrics", {}))
        if d.get("partial") or d.get("error"):
            out["partial"] = True
        out["sections"].append({"file": os.path.basename(p), "notes": d.get("notes", []),
                                "failed_runs": d.get("failed_runs", []), "commit": d.get("commit"),
                                "metrics": list(d.get("metrics", {}))})
    if out["host"] is None:
        out["host"] = {"kind": "unknown", "cpu": "?", "nproc": "?", "kernel": "?"}
        out["error"] = "no section was measured"
    json.dump(out, open(json_out, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["host", "kvm"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--merge", nargs="*")
    ap.add_argument("--combine", nargs="*")
    a = ap.parse_args()
    if a.combine:
        combine(a.combine, a.json)
        return
    if a.merge:
        merge(a.merge, a.json, a.md)
        return
    def save(out, partial=True):
        """Write what is measured so far: a run cut short keeps its finished sections.
        $BENCH_NOTE (from bench/run) is kept with them."""
        d = dict(out, metrics={k: v for k, v in out["metrics"].items() if wanted(k)},
                 failed_runs=list(FAILED_RUNS), commit=git_commit())
        if os.environ.get("BENCH_NOTE"):
            d["notes"] = [os.environ["BENCH_NOTE"]]
        if partial:
            d["partial"] = True
        with open(a.json + ".tmp", "w") as f:
            json.dump(d, f, indent=1)
        os.replace(a.json + ".tmp", a.json)
    out = part_host(a.runs) if a.part == "host" else part_kvm(a.runs, save)
    save(out, partial=False)


if __name__ == "__main__":
    main()
