"""Live migration and control-socket readiness, plinth beside QEMU, for bench.py --part kvm.

bench_migrate(runs): a 512 MiB, 1 vCPU guest (idle, then rewriting 32 MiB of tmpfs in a
loop), and a 2 GiB, 4 vCPU guest with one such loop pinned to each vCPU (64 MiB each),
migrated over loopback TCP, TLS 1.3 with a pre-shared key on both sides (plinth's TCP
migrations always are), with a 300 ms downtime target on both sides. Each run starts
the source, waits for the guest's counters, starts the destination on a fresh port,
migrates, takes the figures the VMM itself reports, checks that every counter of the
guest goes on on the destination, and kills every process it started.
bench_api_ready(runs): process start to the first successful reply on the control socket
(plinth: GET /v1/vm answers 200; QEMU: the QMP greeting and a qmp_capabilities return).
bench_restore(runs): a 128 MiB guest booted to init, snapshotted (plinth ctl snapshot; QEMU
stopped and saved with migrate to a file) and killed; then process start of the restoring
VMM to its control socket saying the guest runs, polled every 1 ms.
A failed run makes its cell n/a with the reason; nothing is estimated.
"""
import collections, json, os, re, shutil, socket, subprocess, tempfile, time

import bench as B  # bench.py: vmm_cmd, interleave, stats, na, wanted, plinth_has

DOWNTIME_MS = 300
IDLE = 'i=0; while :; do i=$((i+1)); echo "count $i"; sleep 1; done'
DIRTY = ('i=0; while :; do i=$((i+1)); dd if=/dev/zero of=/dev/shm/buf bs=1M count=32 '
         'conv=notrunc 2>/dev/null; echo "count $i"; done')
# One writer pinned to each of the 4 vCPUs (busybox taskset), each with its own counter:
# every vCPU dirties memory, and each counter must go on at the destination.
DIRTY4 = ('for k in 0 1 2 3; do taskset -c $k sh -c "i=0; while :; do i=\\$((i+1)); '
          'dd if=/dev/zero of=/dev/shm/buf$k bs=1M count=64 conv=notrunc 2>/dev/null; '
          'echo \\"cpu$k count \\$i\\"; done" & done; wait')
# The guests of bench_migrate: run is the guest's command, counters how many counters it
# prints ("count N", or "cpuK count N" per vCPU).
# converge: QEMU runs with its auto-converge capability (vCPU throttling, which plinth does
# unasked). Without it QEMU 7.2 moved this guest in 201 s over 1,541 rounds (one diagnostic
# run, 2026-12-06 19:08 UTC), and in make bench its runs ended in broken QMP pipes.
Guest = collections.namedtuple("Guest", "label mem cpus run counters what converge")
MIG_GUESTS = (Guest("512 MiB idle", "512M", 1, IDLE, 1, "idle guest", False),
              Guest("512 MiB dirtying", "512M", 1, DIRTY, 1, "guest rewriting 32 MiB of tmpfs in a loop",
                    False),
              Guest("2 GiB 4 vCPUs dirtying", "2G", 4, DIRTY4, 4,
                    "4 writers in the guest, one pinned to each vCPU (taskset), each rewriting its "
                    "own 64 MiB of tmpfs in a loop (256 MiB in all); QEMU with auto-converge on", True))
COUNT_RE = re.compile(rb"(?:cpu(\d+) )?count (\d+)")
PLINTH_DONE_RE = re.compile(rb"migration completed: total (\d+) ms, downtime (\d+) ms, (\d+) bytes, (\d+) rounds")
# Unix sockets can't live on the 9p /tmp of the emulated host.
SOCK_PARENT = "/dev/shm" if os.path.isdir("/dev/shm") else None


def http_unix(path, method, url, body=None, timeout=10.0):
    """One HTTP/1.1 request over a Unix socket; returns (status, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else b""
    req = ("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, url)).encode()
    if body is not None:
        req += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
    req += b"\r\n" + data
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(req)
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    head, _, payload = resp.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not m:
        raise ConnectionError("no HTTP status line: %r" % resp[:80])
    try:
        doc = json.loads(payload) if payload.strip() else None
    except ValueError:
        doc = None
    return int(m.group(1)), doc


class Qmp:
    """A minimal QMP client: greeting, qmp_capabilities, then commands (events skipped)."""

    def __init__(self, path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX)
        try:
            self.s.settimeout(timeout)
            self.s.connect(path)
            self.f = self.s.makefile("rwb")
            greeting = json.loads(self.f.readline() or b"null")
            if not isinstance(greeting, dict) or "QMP" not in greeting:
                raise ConnectionError("no QMP greeting")
            self.cmd("qmp_capabilities")
        except Exception:
            self.s.close()
            raise

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("QMP closed during %s" % name)
            r = json.loads(line)
            if "error" in r:
                raise RuntimeError("QMP %s: %s" % (name, r["error"].get("desc", r["error"])))
            if "return" in r:
                return r["return"]

    def close(self):
        self.s.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """True once something listens on 127.0.0.1:port (read from /proc: no probe connection)."""
    want = ":%04X" % port
    try:
        for line in open("/proc/net/tcp").readlines()[1:]:
            f = line.split()
            if f[1].endswith(want) and f[3] == "0A":
                return True
    except OSError:
        pass
    return False


def wait_until(cond, timeout, what, procs=()):
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError("%s: process exited (status %s) first" % (what, p.returncode))
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for %s" % what)
        time.sleep(0.2)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def counts(path):
    """The last count of each counter in a guest's output: {None: n} for a single counter,
    {b"0": n, b"1": n, ...} for the per-vCPU ones."""
    c = {}
    for k, n in COUNT_RE.findall(read(path)):
        k = k or None
        c[k] = max(c.get(k, 0), int(n))
    return c


def started(path, g, n=3):
    """Every one of guest g's counters has reached n."""
    c = counts(path)
    return len(c) >= g.counters and min(c.values()) >= n


class Run:
    """One migration run's processes and files; kill() leaves nothing behind."""

    def __init__(self):
        self.d = tempfile.mkdtemp(prefix="bench-mig-", dir=SOCK_PARENT)
        self.procs, self.files = [], []

    def path(self, name):
        return os.path.join(self.d, name)

    def start(self, cmd, name):
        out = open(self.path(name + ".out"), "wb")
        err = open(self.path(name + ".err"), "wb")
        self.files += [out, err]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.procs.append(p)
        return p

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()
        for f in self.files:
            f.close()
        shutil.rmtree(self.d, ignore_errors=True)


def check_resumed(r, src_out, dst_out, procs):
    """Each of the guest's counters must go on on the destination, past its last count on
    the source."""
    n = counts(r.path(src_out))

    def on():
        d = counts(r.path(dst_out))
        return all(d.get(k, 0) > v for k, v in n.items())
    wait_until(on, 120, "the guest counting on the destination (the source stopped at %s)"
               % ", ".join("%s%d" % ("" if k is None else "cpu%s " % k.decode(), v)
                           for k, v in sorted(n.items(), key=lambda kv: kv[0] or b"")), procs)


def plinth_migrate(g):
    r = Run()
    try:
        sock = r.path("api.sock")
        # TCP migrations are TLS 1.3 with the cluster's key; the destination builds the
        # same machine from its own options.
        key = r.path("key")
        with open(key, "w") as f:
            f.write(os.urandom(32).hex())
        os.chmod(key, 0o600)
        src = r.start(B.vmm_cmd("plinth", mem=g.mem, cpus=g.cpus, run=g.run,
                                extra=["--api-socket", sock, "--migrate-psk", key]), "a")
        wait_until(lambda: started(r.path("a.out"), g), 300, "the source guest's counts 3", [src])
        port = free_port()
        machine = B.vmm_cmd("plinth", mem=g.mem, cpus=g.cpus, run=g.run)[2:]
        dst = r.start([B.PLINTH, "receive", "--listen", "tcp:127.0.0.1:%d" % port,
                       "--migrate-psk", key] + machine, "b")
        wait_until(lambda: listening(port), 60, "plinth receive listening", [dst])
        st, doc = http_unix(sock, "POST", "/v1/vm/migrate",
                            {"to": "tcp:127.0.0.1:%d" % port, "downtime_ms": DOWNTIME_MS})
        if st not in (200, 202):
            raise RuntimeError("POST /v1/vm/migrate: %d %s" % (st, doc))
        # The source exits once the destination confirmed; a failure rolls back and keeps it running.
        deadline = time.monotonic() + 600
        while src.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("plinth migration did not finish in 600 s")
            try:
                _, info = http_unix(sock, "GET", "/v1/vm", timeout=5)
                mig = (info or {}).get("migration") or {}
                if mig.get("status") == "failed":
                    raise RuntimeError("plinth migration failed: %s" % mig.get("error", "?"))
            except OSError:
                pass  # the API goes away as the source exits
            time.sleep(0.5)
        m = PLINTH_DONE_RE.search(read(r.path("a.err")))
        if not m:
            raise RuntimeError("plinth source exited %s without completing: %r"
                               % (src.returncode, read(r.path("a.err"))[-200:]))
        check_resumed(r, "a.out", "b.out", [dst])
        total_ms, down_ms, nbytes = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return down_ms, total_ms / 1000.0, nbytes / 1e6
    finally:
        r.kill()


def qemu_migrate(g, vmm):
    r = Run()
    q = qd = None
    try:
        qmp, qmpd = r.path("qmp.sock"), r.path("qmpd.sock")
        # TLS with a pre-shared key on both sides, as plinth's TCP migrations always are:
        # QEMU's tls-creds-psk reads "identity:hex key" lines from DIR/keys.psk.
        psk = r.path("psk")
        os.mkdir(psk, 0o700)
        with open(os.path.join(psk, "keys.psk"), "w") as f:
            f.write("qemu:%s\n" % os.urandom(32).hex())
        src = r.start(B.vmm_cmd(vmm, mem=g.mem, cpus=g.cpus, run=g.run,
                                extra=["-qmp", "unix:%s,server=on,wait=off" % qmp, "-object",
                                       "tls-creds-psk,id=tls0,endpoint=client,dir=%s" % psk]), "a")
        wait_until(lambda: started(r.path("a.out"), g), 300, "the source guest's counts 3", [src])
        port = free_port()
        dst = r.start(B.vmm_cmd(vmm, mem=g.mem, cpus=g.cpus, run=g.run,
                                extra=["-qmp", "unix:%s,server=on,wait=off" % qmpd, "-incoming", "defer",
                                       "-object", "tls-creds-psk,id=tls0,endpoint=server,dir=%s" % psk]), "b")
        wait_until(lambda: os.path.exists(qmpd), 60, "QEMU's destination QMP socket", [dst])
        qd = Qmp(qmpd)
        qd.cmd("migrate-set-parameters", {"tls-creds": "tls0"})
        qd.cmd("migrate-incoming", {"uri": "tcp:127.0.0.1:%d" % port})
        wait_until(lambda: listening(port), 60, "QEMU -incoming listening", [dst])
        q = Qmp(qmp)
        # No bandwidth cap (plinth has none; QEMU's default is 128 MiB/s).
        q.cmd("migrate-set-parameters", {"downtime-limit": DOWNTIME_MS, "max-bandwidth": 100 << 30,
                                         "tls-creds": "tls0"})
        if g.converge:
            q.cmd("migrate-set-capabilities",
                  {"capabilities": [{"capability": "auto-converge", "state": True}]})
        q.cmd("migrate", {"uri": "tcp:127.0.0.1:%d" % port})
        deadline = time.monotonic() + 600
        while True:
            st = q.cmd("query-migrate")
            if st.get("status") == "completed":
                break
            if st.get("status") in ("failed", "cancelled"):
                raise RuntimeError("QEMU migration %s: %s" % (st["status"], st.get("error-desc", "?")))
            if time.monotonic() > deadline:
                raise RuntimeError("QEMU migration did not finish in 600 s (%s)" % st.get("status"))
            time.sleep(0.1)
        check_resumed(r, "a.out", "b.out", [dst])
        return st["downtime"], st["total-time"] / 1000.0, st["ram"]["transferred"] / 1e6
    finally:
        for c in (q, qd):
            if c:
                c.close()
        r.kill()


def bench_migrate(runs):
    res = {}
    have = B.plinth_has("receive", "migrate")
    cond = ("loopback TCP with TLS 1.3 and a pre-shared key on both (plinth "
            "--migrate-psk, QEMU tls-creds-psk), %d ms downtime target on both; each VMM's own figures: "
            "plinth its 'migration completed' line (downtime = source paused to the destination's ack "
            "of the checked stream), QEMU -M pc query-migrate with max-bandwidth uncapped (downtime = "
            "source stopped to its last byte sent, no destination ack); a run counts only if the guest "
            "then counts on at the destination (each of its counters)" % DOWNTIME_MS)
    for g in MIG_GUESTS:
        label = g.label
        rows = (("migration downtime, %s (ms)" % label, "ms"),
                ("migration total time, %s (s)" % label, "s"),
                ("migration bytes sent, %s (MB)" % label, "MB"))
        if not any(B.wanted(n) for n, _ in rows):
            continue
        fns = {}
        if have:
            fns["plinth"] = lambda g=g: plinth_migrate(g)
        for k in B.qemu_keys("pc"):
            fns[k] = lambda g=g, k=k: qemu_migrate(g, k)
        r = B.interleave(fns, runs)
        for i, (name, unit) in enumerate(rows):
            if not B.wanted(name):
                continue
            row = {"unit": unit, "lower_is_better": True,
                   "conditions": "%s; %d vCPU%s, %s guest, %s" % (
                       g.what, g.cpus, "s" if g.cpus > 1 else "", " ".join(label.split()[:2]), cond)}
            for k in ["plinth"] + B.qemu_keys("pc"):
                v = r.get(k, B.na("plinth has no receive/migrate"))
                row[k] = B.na(str(v)[:200]) if isinstance(v, Exception) else (
                    v if isinstance(v, dict) else B.stats([x[i] for x in v]))
            res[name] = row
    return res


def api_ready_once(vmm):
    """Seconds from process start to the first successful reply on its control socket."""
    d = tempfile.mkdtemp(prefix="bench-api-", dir=SOCK_PARENT)
    sock = os.path.join(d, "ctl.sock")
    if vmm == "plinth":
        cmd = B.vmm_cmd("plinth", run="sleep 5", extra=["--api-socket", sock])

        def probe():
            st, doc = http_unix(sock, "GET", "/v1/vm", timeout=30)
            if st != 200 or not isinstance(doc, dict):
                raise ConnectionError("GET /v1/vm: %d" % st)
    else:
        cmd = B.vmm_cmd(vmm, run="sleep 5", extra=["-qmp", "unix:%s,server=on,wait=off" % sock])

        def probe():
            Qmp(sock, timeout=30).close()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                probe()
                return time.monotonic() - t0
            except (OSError, ValueError):  # not there, refused, or closed early: not ready yet
                pass
            if p.poll() is not None:
                raise RuntimeError("%s exited (status %s) before its control socket answered" % (vmm, p.returncode))
            if time.monotonic() - t0 > 120:
                raise RuntimeError("%s control socket did not answer in 120 s" % vmm)
            time.sleep(0.001)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def bench_api_ready(runs):
    name = "VMM start to API socket ready (s)"
    if not B.wanted(name):
        return {}
    have = B.plinth_has("--api-socket")
    fns = {}
    if have:
        fns["plinth"] = lambda: api_ready_once("plinth")
    for k in B.qemu_keys("microvm", "pc"):
        fns[k] = lambda k=k: api_ready_once(k)
    r = B.interleave(fns, runs)
    row = {"unit": "s", "lower_is_better": True,
           "conditions": "2 vCPUs, 512 MiB; process start to the first successful reply, polled every "
                         "1 ms: plinth GET /v1/vm answering 200 on --api-socket, QEMU the greeting and "
                         "qmp_capabilities return on -qmp unix:...,server=on,wait=off"}
    for k in ["plinth"] + B.qemu_keys("microvm", "pc"):
        v = r.get(k, B.na("plinth has no --api-socket"))
        row[k] = B.na(str(v)[:200]) if isinstance(v, Exception) else (v if isinstance(v, dict) else B.stats(v))
    return {name: row}


RESTORE = "snapshot restore, 128 MiB guest: process start to the API answering with the guest running (s)"
RESTORE_MEM, RESTORE_CPUS = "128M", 2


def qemu_file_uri(vmm, path, save):
    """QEMU's migration URI for a file: file: where the version has it (8.2 on), else exec: cat."""
    ver = tuple(int(x) for x in vmm.split("-")[1].split("."))
    if ver >= (8, 2):
        return "file:" + path
    return "exec:cat > %s" % path if save else "exec:cat %s" % path


def booted(path):
    try:
        return B.MARKER in read(path)
    except OSError:
        return False


def poll_1ms(probe, p, what, timeout=120):
    """Call probe() every 1 ms until it returns True; p exiting first or timeout seconds raise."""
    t0 = time.monotonic()
    while True:
        try:
            if probe():
                return
        except (OSError, ValueError):  # not there, refused, or closed early: not ready yet
            pass
        if p.poll() is not None:
            raise RuntimeError("%s: exited (status %s) first" % (what, p.returncode))
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("%s: not in %d s" % (what, timeout))
        time.sleep(0.001)


def plinth_restore_once():
    """A guest booted to init, snapshotted (ctl snapshot) and killed; then the time from
    `plinth restore` starting to GET /v1/vm answering 200 with the state running."""
    r = Run()
    try:
        sock, snap = r.path("a.sock"), r.path("snap")
        cmd = B.vmm_cmd("plinth", mem=RESTORE_MEM, cpus=RESTORE_CPUS, run="sleep 100000")
        src = r.start(cmd + ["--api-socket", sock], "a")
        wait_until(lambda: booted(r.path("a.out")), 300, "the guest's init", [src])
        ctl = subprocess.run([B.PLINTH, "ctl", "--api-socket", sock, "snapshot", "--to", snap],
                             capture_output=True, timeout=120)
        if ctl.returncode:
            raise RuntimeError("plinth ctl snapshot: %s" % ctl.stderr.decode(errors="replace")[-200:])
        src.kill()
        src.wait()
        sock2 = r.path("b.sock")

        def running():
            st, doc = http_unix(sock2, "GET", "/v1/vm", timeout=30)
            return st == 200 and isinstance(doc, dict) and doc.get("state") == "running"
        t0 = time.monotonic()
        dst = r.start([B.PLINTH, "restore", "--from", snap] + cmd[2:] + ["--api-socket", sock2], "b")
        poll_1ms(running, dst, "plinth restore answering with the guest running")
        return time.monotonic() - t0
    finally:
        r.kill()


def qemu_restore_once(vmm):
    """The same guest stopped and saved with QMP migrate to a file, killed; then the time from
    a new QEMU -incoming that file starting to query-status saying running (after cont: QEMU
    keeps the state the source was saved in, paused)."""
    r = Run()
    q = None
    try:
        qmp, state = r.path("a.sock"), r.path("state")
        cmd = B.vmm_cmd(vmm, mem=RESTORE_MEM, cpus=RESTORE_CPUS, run="sleep 100000")
        src = r.start(cmd + ["-qmp", "unix:%s,server=on,wait=off" % qmp], "a")
        wait_until(lambda: booted(r.path("a.out")), 300, "the guest's init", [src])
        q = Qmp(qmp)
        q.cmd("stop")
        q.cmd("migrate", {"uri": qemu_file_uri(vmm, state, True)})
        deadline = time.monotonic() + 120
        while (st := q.cmd("query-migrate")).get("status") != "completed":
            if st.get("status") in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError("QEMU save: %s %s" % (st.get("status"), st.get("error-desc", "")))
            time.sleep(0.05)
        q.close()
        q = None
        src.kill()
        src.wait()
        qmp2 = r.path("b.sock")
        conn = []

        def running():
            if not conn:
                conn.append(Qmp(qmp2, timeout=30))
            s = conn[0].cmd("query-status")["status"]
            if s == "paused":
                conn[0].cmd("cont")
                s = conn[0].cmd("query-status")["status"]
            return s == "running"
        t0 = time.monotonic()
        dst = r.start(cmd + ["-qmp", "unix:%s,server=on,wait=off" % qmp2,
                             "-incoming", qemu_file_uri(vmm, state, False)], "b")
        try:
            poll_1ms(running, dst, "QEMU -incoming running")
            return time.monotonic() - t0
        finally:
            for c in conn:
                c.close()
    finally:
        if q:
            q.close()
        r.kill()


def bench_restore(runs):
    if not B.wanted(RESTORE):
        return {}
    fns = {}
    if B.plinth_has("restore", "--from"):
        fns["plinth"] = plinth_restore_once
    for k in B.qemu_keys("pc"):
        fns[k] = lambda k=k: qemu_restore_once(k)
    r = B.interleave(fns, runs)
    row = {"unit": "s", "lower_is_better": True,
           "conditions": "%d vCPUs, 128 MiB, the guest booted to init (sleeping), its snapshot on tmpfs "
                         "(/dev/shm); polled every 1 ms from process start: plinth `ctl snapshot --to DIR`, "
                         "then `plinth restore --from DIR --api-socket` until GET /v1/vm answers 200 with "
                         "state running; QEMU -M pc stopped and saved with QMP migrate (file: from 8.2, "
                         "exec:cat before), then a new QEMU with -incoming the same URI until QMP "
                         "query-status says running, after a cont as soon as it says paused (QEMU keeps "
                         "the saved run state)" % RESTORE_CPUS}
    for k in ["plinth"] + B.qemu_keys("pc"):
        v = r.get(k, B.na("plinth has no restore"))
        row[k] = B.na(str(v)[:200]) if isinstance(v, Exception) else (v if isinstance(v, dict) else B.stats(v))
    return {RESTORE: row}
