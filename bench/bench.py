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
import argparse, json, os, platform, re, select, shutil, statistics, subprocess, sys, tempfile, time
import bench_migrate  # bench/bench_migrate.py: live migration and control-socket readiness

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = os.path.join(TOP, "build")
KERNEL = os.path.join(B, "guest", "vmlinuz")
INITRD = os.path.join(B, "guest", "initramfs.cpio.gz")
PLINTH = os.path.join(B, "plinth")
PLINTH_IMG = os.path.join(B, "plinth-img")
MARKER = b"plinth-guest: init started"
UNSTABLE = 0.20


def wanted(metric_name):
    """True if the metric matches $BENCH_ONLY (a regex searched in its name), or no filter is set."""
    only = os.environ.get("BENCH_ONLY")
    return not only or re.search(only, metric_name) is not None


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
    if kvm and "kvm_amd" in mods and cpu.startswith("QEMU"):
        kind = "emulated virtualization host (QEMU TCG, AMD SVM+NPT, kvm_amd)"
    elif kvm and ("kvm_intel" in mods or "kvm_amd" in mods):
        kind = "hardware KVM (%s)" % ",".join(mods)
    else:
        kind = "no KVM"
    return {"kind": kind, "cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
            "virtualized": hv}


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


def vmm_cmd(vmm, mem="512M", cpus=2, run="true", extra=()):
    cl = cmdline(run)
    if vmm == "plinth":
        return [PLINTH, "run", "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", cl,
                "--cpus", str(cpus), "--memory", mem, "--no-reboot"] + list(extra)
    machine = {"qemu-microvm": "microvm,acpi=on", "qemu-pc": "pc"}[vmm]
    return ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", machine,
            "-smp", str(cpus), "-m", mem, "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-no-reboot", "-kernel", KERNEL, "-initrd", INITRD,
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


def interleave(fns, runs):
    """Run each fn runs times, A B A B ..., after one warm-up each; return lists of results."""
    res = {k: [] for k in fns}
    for k, fn in fns.items():
        try:
            fn()
        except Exception as e:  # a failed warm-up makes the metric n/a
            res[k] = e
    for _ in range(runs):
        for k, fn in fns.items():
            if isinstance(res[k], Exception):
                continue
            try:
                res[k].append(fn())
            except Exception as e:
                res[k] = e
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
    q = shutil.which("qemu-system-x86_64")
    m["binary size, stripped (bytes)"] = {
        "plinth": stripped(PLINTH) if os.path.exists(PLINTH) else na("build/plinth not built"),
        "qemu": stripped(q), "unit": "bytes", "lower_is_better": True}
    m.update(bench_convert(runs))
    m.update(bench_randread(runs))
    return out


def bench_convert(runs):
    """plinth-img convert vs qemu-img convert on a 2 GiB image, half data, half holes."""
    res = {}
    if not os.access(PLINTH_IMG, os.X_OK):
        for pair in ("raw->qcow2", "qcow2->vhdx", "vmdk->vhd", "vhdx->raw"):
            res["convert %s, 2 GiB half data (s)" % pair] = {"plinth": na("plinth-img not built"),
                                                           "qemu": None, "unit": "s"}
        return res
    d = tempfile.mkdtemp(prefix="bench-img-")
    try:
        src = os.path.join(d, "src.raw")
        with open(src, "wb") as f:  # 64 MiB data, 64 MiB hole, ... up to 2 GiB
            chunk = os.urandom(1 << 20) * 64
            for i in range(16):
                f.seek(i * (128 << 20))
                f.write(chunk)
            f.truncate(2 << 30)
        fmts = {"raw": "raw", "qcow2": "qcow2", "vhdx": "vhdx", "vmdk": "vmdk", "vhd": "vpc"}
        srcs = {"raw": src}
        for f_ in ("qcow2", "vmdk", "vhdx"):
            p = os.path.join(d, "src." + f_)
            subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmts[f_], src, p], check=True)
            srcs[f_] = p
        for a, b in (("raw", "qcow2"), ("qcow2", "vhdx"), ("vmdk", "vhd"), ("vhdx", "raw")):
            dst = os.path.join(d, "dst")
            def run(cmd):
                if os.path.exists(dst):
                    os.unlink(dst)
                t = time.monotonic()
                r = subprocess.run(cmd, capture_output=True)
                if r.returncode:
                    raise RuntimeError(r.stderr.decode(errors="replace")[-300:])
                return time.monotonic() - t
            r = interleave({
                "plinth": lambda: run([PLINTH_IMG, "convert", "-f", a, "-O", b, srcs[a], dst]),
                "qemu": lambda: run(["qemu-img", "convert", "-f", fmts[a], "-O", fmts[b], srcs[a], dst]),
            }, runs)
            res["convert %s, 2 GiB half data (s)" % (a + "->" + b)] = {
                k: (na(str(v)[:120]) if isinstance(v, Exception) else stats(v)) for k, v in r.items()
            } | {"unit": "s", "lower_is_better": True}
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


def bench_randread(runs, count=100000, step=16384):
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


def part_kvm(runs):
    out = {"host": host_kind(), "metrics": {}}
    m = out["metrics"]
    if not os.path.exists("/dev/kvm"):
        out["error"] = "no /dev/kvm"
        return out
    have_plinth = plinth_has("--kernel")
    # 1. Process start to the guest's init, and the VMM's CPU time for a whole boot.
    if wanted("start to guest init (s)") or wanted("VMM CPU time, boot to poweroff (s)"):
        fns = {}
        if have_plinth:
            fns["plinth"] = lambda: boot_once(vmm_cmd("plinth"))
        fns["qemu-microvm"] = lambda: boot_once(vmm_cmd("qemu-microvm"))
        fns["qemu-pc"] = lambda: boot_once(vmm_cmd("qemu-pc"))
        r = interleave(fns, runs)
        for metric, idx in (("start to guest init (s)", 0), ("VMM CPU time, boot to poweroff (s)", 2)):
            row = {"unit": "s", "lower_is_better": True, "conditions": "2 vCPUs, 512 MiB"}
            for k in ("plinth", "qemu-microvm", "qemu-pc"):
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
        fns = {k: (lambda k=k: overhead(k)) for k in (["plinth"] if have_plinth else []) + ["qemu-microvm", "qemu-pc"]}
        r = interleave(fns, max(3, runs // 2))
        row = {"unit": "MiB", "lower_is_better": True, "conditions": "2 vCPUs, %s guest, 1 s after init" % mem}
        for k in ("plinth", "qemu-microvm", "qemu-pc"):
            v = r.get(k, na("plinth not built"))
            row[k] = na(str(v)[:160]) if isinstance(v, Exception) else (
                v if isinstance(v, dict) else stats([x / (1 << 20) for x in v]))
        m["VMM overhead memory, %s guest (MiB)" % mem] = row
    # 3. VMM start to API socket ready (plinth and QEMU's QMP, each answering a request).
    m.update(bench_migrate.bench_api_ready(runs))
    # 4. virtio-blk sequential throughput with busybox dd (1 MiB blocks, O_DIRECT) to raw and qcow2.
    if wanted("virtio-blk sequential read, raw qcow2 write 4 KiB random read/write (MB/s)"):
        m.update(bench_blk(runs, plinth_has("--disk")))
    # 5. virtio-net, migration: only once plinth has them.
    for metric, feature in (("virtio-net guest to host over tap (Mbit/s)", "--net tap"),
                            ):
        if not plinth_has(feature) or "migrate" in feature or "--net" in feature:
            m[metric] = {"plinth": na("not measured by make bench yet" if plinth_has(feature)
                                      else "plinth has no %s yet" % feature),
                         "qemu": na("not measured by make bench yet"), "unit": ""}
    m.update(bench_migrate.bench_migrate(runs))
    out["metrics"] = {k: v for k, v in m.items() if wanted(k)}
    return out


DD_RE = re.compile(rb"BENCH-DD bytes=(\d+) secs=([0-9.]+)")
# Busybox dd in Debian prints no rate: time it with the guest's /proc/uptime (10 ms ticks).
DD_WRAP = ("a=$(cut -d' ' -f1 /proc/uptime); %s 2>/dev/null; b=$(cut -d' ' -f1 /proc/uptime); "
           "echo BENCH-DD bytes=$((%d << 20)) secs=$(awk \"BEGIN { print $b - $a }\")")


def bench_blk(runs, have_plinth):
    """Sequential read and write through virtio-blk, measured by dd inside the guest."""
    res = {}
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
        tests = (("read", DD_WRAP % ("dd if=/dev/vda of=/dev/null bs=1M count=%d iflag=direct" % mib, mib)),
                 ("write", DD_WRAP % ("dd if=/dev/zero of=/dev/vda bs=1M count=%d oflag=direct" % mib, mib)))
        formats = os.environ.get("BENCH_BLK_FORMATS", "raw,qcow2").split(",")
        for fmt_, path in [(f_, p_) for f_, p_ in (("raw", raw), ("qcow2", q)) if f_ in formats]:
            for what, cmd in tests:
                def once(vmm, fmt_=fmt_, path=path, cmd=cmd):
                    run = cmd
                    if vmm == "plinth":
                        c = vmm_cmd("plinth", run=run, extra=["--disk", "path=%s,format=%s" % (path, fmt_)])
                    else:
                        c = vmm_cmd(vmm, run=run, extra=[
                            "-drive", "file=%s,format=%s,if=none,id=d0" % (path, fmt_),
                            "-device", "virtio-blk-pci,drive=d0"])
                    p = subprocess.run(c, capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
                    mt = DD_RE.search(p.stdout)
                    if not mt:
                        raise RuntimeError("no dd result: %r" % p.stdout[-300:])
                    return int(mt.group(1)) / float(mt.group(2)) / 1e6
                fns = {}
                if have_plinth:
                    fns["plinth"] = lambda: once("plinth")
                fns["qemu-pc"] = lambda: once("qemu-pc")
                r = interleave(fns, max(3, runs // 2))
                row = {"unit": "MB/s", "lower_is_better": False,
                       "conditions": "dd 1 MiB blocks, O_DIRECT, 256 MiB, %s file in the host's tmpfs (/dev/shm), "
                                     "QEMU -M pc virtio-blk-pci cache=writeback" % fmt_}
                for k in ("plinth", "qemu-pc"):
                    v = r.get(k, na("plinth has no --disk yet"))
                    row[k] = na(str(v)[:160]) if isinstance(v, Exception) else (v if isinstance(v, dict) else stats(v))
                res["virtio-blk sequential %s, %s (MB/s)" % (what, fmt_)] = row
        res["virtio-blk 4 KiB random read/write"] = {
            "plinth": na("no random-I/O tool in the standard guest yet"),
            "qemu-pc": na("no random-I/O tool in the standard guest yet"), "unit": ""}
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


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
             "with the reason. Ratio is plinth / the QEMU column named." % (res["date"], UNSTABLE * 100), ""]
    for p in parts:
        d = json.load(open(p))
        res["parts"].append(d)
        h = d["host"]
        lines += ["## Measured on: %s" % h["kind"], "",
                  "CPU: %s, %s CPUs, kernel %s" % (h["cpu"], h["nproc"], h["kernel"]), ""]
        if d.get("error"):
            lines += ["Not measured: " + d["error"], ""]
            continue
        lines += ["| metric | plinth | QEMU | ratio | conditions |", "|---|---|---|---|---|"]
        for name, row in d["metrics"].items():
            unit = row.get("unit", "")
            pl = row.get("plinth")
            peers = [(k, row[k]) for k in ("qemu-microvm", "qemu-pc", "qemu") if k in row]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["host", "kvm"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--merge", nargs="*")
    a = ap.parse_args()
    if a.merge:
        merge(a.merge, a.json, a.md)
        return
    out = part_host(a.runs) if a.part == "host" else part_kvm(a.runs)
    json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
