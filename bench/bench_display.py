"""The display over VNC, plinth beside QEMU, for bench.py --part kvm (issue #18).

bench_display(runs): each VMM boots the display guest (build/guest/display: Debian's
standard kernel with virtio_gpu; fbcon on a 1024x768 scanout), 1 vCPU, 512 MiB, with
a virtio keyboard and tablet, and serves VNC on a Unix socket (plinth --display
vnc=unix:PATH; QEMU -device virtio-gpu-pci,xres=1024,yres=768 -vnc unix:PATH). The
guest turns fbcon's cursor blink off, runs a shell on tty1 and says it is ready on the
serial console; then one viewer, tests/tools/rfb-bench (zlib, raw and DesktopSize
offered to both servers), measures:
  - key to screen: 'x' pressed after 250 ms without an update, to the end of the
    update that changes the picture (the shell's echo), median of KEYS keys;
  - a scrolling console: it types `sh /s` (the guest prints 5 lines, then sleeps
    50 ms, in a loop: fbcon scrolls) and counts bytes and updates for SECS seconds
    from Return with zlib, then RAW_SECS seconds on a second connection offering raw;
  - the VMM's CPU time (user + system, /proc/PID/stat) over the zlib window.
A failed run makes its cell n/a with the reason (bench.interleave); nothing is estimated.
"""
import os, re, select, shutil, subprocess, tempfile, time

import bench as B  # bench.py: vmm_cmd, interleave, stats, na, wanted, plinth_has


def path(*parts):
    """A file of the build (bench.py's build/: it is read once this module is loaded)."""
    return os.path.join(B.B, *parts)


KERNEL, INITRD = ("guest", "display", "vmlinuz"), ("guest", "display", "initramfs.cpio.gz")
RFB_BENCH = ("vmm", "display", "rfb-bench")
MEM, CPUS, W, H = "512M", 1, 1024, 768
KEYS, GAP_MS, SECS, RAW_SECS = 20, 250, 10, 5
READY = b"bench-display: ready"
# Waits for the frame buffer, turns the cursor blink off, writes the scrolling load
# to /s, starts the shell on tty1 the viewer types into.
GUEST_RUN = r"""i=0; while [ ! -e /sys/class/graphics/fb0 ] && [ $i -lt 300 ]; do i=$((i+1)); sleep 0.1; done
echo 0 >/sys/class/graphics/fbcon/cursor_blink
cat >/s <<'EOF'
i=0
while :; do
	printf 'scroll %d: the quick brown fox jumps over the lazy dog 0123456789\n' $i $((i+1)) $((i+2)) $((i+3)) $((i+4))
	i=$((i+5))
	sleep 0.05
done
EOF
sh </dev/tty1 >/dev/tty1 2>&1 &
echo "bench-display: ready $(cat /sys/class/graphics/fb0/name)"
sleep 100000"""
# Unix sockets can't live on the 9p /tmp of the emulated host.
SOCK_PARENT = "/dev/shm" if os.path.isdir("/dev/shm") else None

LAT = "VNC key to screen, median of %d keys (ms)" % KEYS
ZBYTES = "VNC scrolling console, zlib (KiB/s)"
ZUPD = "VNC scrolling console, zlib (updates/s)"
RBYTES = "VNC scrolling console, raw (KiB/s)"
CPU = "VNC scrolling console, zlib: VMM CPU time (% of one CPU)"
ROWS = (LAT, ZBYTES, ZUPD, RBYTES, CPU)

SCROLL_RE = re.compile(r"^scroll enc=(\w+) secs=([0-9.]+) bytes=(\d+) updates=(\d+) rects=(\d+) "
                       r"zlib_rects=(\d+)$")


def cpu_secs(pid):
    """User + system seconds of process pid (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def display_cmd(vmm, sock):
    if vmm == "plinth":
        extra = ["--display", "vnc=unix:%s,width=%d,height=%d" % (sock, W, H)]
    else:
        extra = ["-device", "virtio-gpu-pci,xres=%d,yres=%d" % (W, H), "-device", "virtio-keyboard-pci",
                 "-device", "virtio-tablet-pci", "-vnc", "unix:" + sock]
    return B.vmm_cmd(vmm, mem=MEM, cpus=CPUS, run=GUEST_RUN, extra=extra, kernel=path(*KERNEL), initrd=path(*INITRD))


def vmm_env(vmm):
    """The environment for vmm: a QEMU unpacked outside /usr loads its own device modules
    (virtio-gpu is one), not those of Debian's QEMU in /usr/lib."""
    env = dict(os.environ)
    if vmm != "plinth":
        binary = B.QEMUS[vmm.split("-")[1]][0]
        mods = os.path.join(os.path.dirname(binary), "..", "lib", "x86_64-linux-gnu", "qemu")
        if os.path.isdir(mods) and os.path.realpath(binary) != "/usr/bin/qemu-system-x86_64":
            env["QEMU_MODULE_DIR"] = os.path.realpath(mods)
    return env


def wait_ready(p, console, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        if READY in open(console, "rb").read():
            return
        if p.poll() is not None:
            raise RuntimeError("the VMM exited (%s) before the guest was ready: %r" % (
                p.returncode, open(console, "rb").read()[-300:]))
        if time.monotonic() > deadline:
            raise RuntimeError("the guest was not ready in %d s: %r" % (timeout, open(console, "rb").read()[-300:]))
        time.sleep(0.2)


def once(vmm):
    """One boot: the key latencies, then the scrolling windows."""
    d = tempfile.mkdtemp(prefix="bench-vnc-", dir=SOCK_PARENT)
    sock, console = os.path.join(d, "vnc.sock"), os.path.join(d, "console")
    p = viewer = None
    try:
        with open(console, "wb") as out:
            p = subprocess.Popen(display_cmd(vmm, sock), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=vmm_env(vmm))
        wait_ready(p, console)
        viewer = subprocess.Popen([path(*RFB_BENCH), sock, "--wait", "60", "--keys", str(KEYS), "--gap", str(GAP_MS),
                                   "--scroll", "sh /s", "--secs", str(SECS), "--raw-secs", str(RAW_SECS)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        got, lines, cpu0, buf = {}, [], None, b""
        deadline = time.monotonic() + 300
        while True:
            r, _, _ = select.select([viewer.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                raise RuntimeError("rfb-bench took over 300 s: %r" % lines[-3:])
            chunk = os.read(viewer.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.decode(errors="replace")
                lines.append(line)
                if line.startswith("keys "):  # the scrolling starts next
                    cpu0 = (cpu_secs(p.pid), time.monotonic())
                m = SCROLL_RE.match(line)
                if m:
                    secs, nbytes, updates = float(m.group(2)), int(m.group(3)), int(m.group(4))
                    got[m.group(1)] = (nbytes / secs / 1024, updates / secs)
                    if m.group(1) == "zlib" and cpu0:
                        got["cpu"] = 100 * (cpu_secs(p.pid) - cpu0[0]) / (time.monotonic() - cpu0[1])
                    if m.group(1) == "zlib" and int(m.group(6)) * 2 < int(m.group(5)):
                        raise RuntimeError("the server sent zlib for few rectangles: %s" % line)
                mk = re.match(r"^keys n=\d+ median_ms=([0-9.]+)$", line)
                if mk:
                    got["lat"] = float(mk.group(1))
        err = viewer.stderr.read().decode(errors="replace")
        if viewer.wait() or set(got) != {"lat", "zlib", "raw", "cpu"}:
            raise RuntimeError("rfb-bench exited %s: %s %r" % (viewer.returncode, err.strip()[-200:], lines[-3:]))
        if not any(l == "frame %d %d" % (W, H) for l in lines):
            raise RuntimeError("the viewer's screen is not %dx%d: %r" % (W, H, lines[:1]))
        return got
    finally:
        for q in (viewer, p):
            if q and q.poll() is None:
                q.kill()
                q.wait()
        shutil.rmtree(d, ignore_errors=True)


def bench_display(runs):
    if not any(B.wanted(n) for n in ROWS):
        return {}
    cond = ("display guest (Debian 12 standard kernel, virtio_gpu, fbcon %dx%d, 8x16 font), 1 vCPU, 512 MiB, "
            "virtio keyboard and tablet; VNC on a Unix socket, one viewer (tests/tools/rfb-bench) offering "
            "zlib, raw, DesktopSize, 32 bpp, an incremental request always outstanding; QEMU -M pc "
            "virtio-gpu-pci -vnc unix:" % (W, H))
    rows = {
        LAT: {"unit": "ms", "lower_is_better": True,
              "conditions": "'x' pressed after %d ms without an update, to the end of the update that "
                            "changes the picture (the shell's echo on tty1, cursor blink off); " % GAP_MS + cond},
        ZBYTES: {"unit": "KiB/s", "lower_is_better": None,
                 "conditions": "the guest prints 5 lines then sleeps 50 ms, in a loop (fbcon scrolls); bytes "
                               "received over %d s from the Return, zlib; read with the updates/s row; " % SECS + cond},
        ZUPD: {"unit": "updates/s", "lower_is_better": False,
               "conditions": "FramebufferUpdates received in the same window (frames the viewer could show); " + cond},
        RBYTES: {"unit": "KiB/s", "lower_is_better": None,
                 "conditions": "the same load, %d s on a second connection offering raw and DesktopSize "
                               "only; " % RAW_SECS + cond},
        CPU: {"unit": "%", "lower_is_better": True,
              "conditions": "the VMM process's user + system time over the zlib window (guest vCPU "
                            "included); " + cond},
    }
    keys = ["plinth"] + B.qemu_keys("pc")
    missing = None
    if not os.access(path(*RFB_BENCH), os.X_OK):
        missing = "no build/%s (make build)" % "/".join(RFB_BENCH)
    elif not os.path.exists(path(*KERNEL)):
        missing = "no display guest (make guest)"
    if missing:
        return {n: dict(row, **{k: B.na(missing) for k in keys}) for n, row in rows.items() if B.wanted(n)}
    fns = {}
    if B.plinth_has("--display"):
        fns["plinth"] = lambda: once("plinth")
    for k in B.qemu_keys("pc"):
        fns[k] = lambda k=k: once(k)
    r = B.interleave(fns, runs)
    pick = {LAT: lambda x: x["lat"], ZBYTES: lambda x: x["zlib"][0], ZUPD: lambda x: x["zlib"][1],
            RBYTES: lambda x: x["raw"][0], CPU: lambda x: x["cpu"]}
    for name, row in rows.items():
        for k in keys:
            v = r.get(k, B.na("plinth has no --display"))
            row[k] = B.na(str(v)[:200]) if isinstance(v, Exception) else (
                v if isinstance(v, dict) else B.stats([pick[name](x) for x in v]))
    return {n: row for n, row in rows.items() if B.wanted(n)}
