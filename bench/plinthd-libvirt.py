#!/usr/bin/python3
# plinthd beside libvirt (Debian 12's libvirtd driving Debian 12's QEMU 7.2), on the same
# host, same guest (the standard guest: kernel, initramfs, cmdline), 1 vCPU and 128 MiB each,
# a qcow2 linked clone of one template as each VM's disk:
#   - define and start N VMs (default 20) at once, until every console shows the guest's
#     "plinth-guest: init started" (clones made beforehand, not timed);
#   - the daemon's RSS (VmRSS of plinthd; of libvirtd, and virtlogd beside it if it runs)
#     with TOTAL VMs defined (default 100) and N running;
#   - latency of listing the TOTAL VMs with their states, p50 and p99 of REQS requests:
#     GET /v1/vms on plinthd's socket (a new connection each, as `plinth vm list` does)
#     and listAllDomains() + state() of each on one libvirt connection (python3-libvirt).
# One system at a time (the other's VMs all gone). Runs as root where KVM is usable:
#   scripts/hostvm --memory 6G -- bench/plinthd-libvirt.py [--vms N] [--total M] [--json F]
# Inside the emulated host the root is read-only: libvirt's state, log, cache and run
# directories and a copy of /etc/libvirt go on tmpfs (qemu.conf: run QEMU as root, no
# security driver, console logs to files, no private /dev or cgroups for QEMU: the emulated
# host has no AppArmor, virtlogd or udev, and its /dev is not one libvirt can copy).
import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
GUEST = os.environ.get("GUEST", os.path.join(BUILD, "guest"))
KERNEL = os.path.join(GUEST, "vmlinuz")
INITRD = os.path.join(GUEST, "initramfs.cpio.gz")
MARK = b"plinth-guest: init started"
WORK = "/run/bench-pd-lv"


def cmdline():
    cmd = base64.b64encode(b"while :; do sleep 1; done").decode()
    return "console=ttyS0 quiet panic=-1 plinth.run64=" + cmd


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def wait_consoles(paths, t0, limit=900):
    left = set(paths)
    while left:
        for p in list(left):
            try:
                with open(p, "rb") as f:
                    if MARK in f.read():
                        left.discard(p)
            except FileNotFoundError:
                pass
        if time.monotonic() - t0 > limit:
            sys.exit(f"bench: {len(left)} VMs did not reach init in {limit} s: {sorted(left)[:3]}")
        time.sleep(0.1)
    return time.monotonic() - t0


def template(path):
    raw = path + ".raw"
    with open(raw, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, path], check=True)
    os.unlink(raw)


# --- plinthd ---------------------------------------------------------------------------

class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("plinthd", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def pd_call(sock, method, path, body=None):
    c = UnixHTTP(sock)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status >= 300:
        sys.exit(f"bench: plinthd {method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data else None


def bench_plinthd(n, total, reqs):
    state = os.path.join(WORK, "pd")
    os.makedirs(state)
    sock = os.path.join(state, "plinthd.sock")
    log = open(os.path.join(WORK, "plinthd.log"), "w")
    pd = subprocess.Popen([os.path.join(BUILD, "plinthd"), "--state-dir", state], stdout=log,
                          stderr=subprocess.STDOUT)
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    P = os.path.join(BUILD, "plinth")
    tmpl = os.path.join(WORK, "tmpl.qcow2")
    template(tmpl)
    subprocess.run([P, "image", "import", "tmpl", tmpl, "--state-dir", state], check=True,
                   stdout=subprocess.DEVNULL)
    for i in range(n):
        subprocess.run([P, "image", "clone", "tmpl", f"c{i}", "--linked", "--state-dir", state],
                       check=True, stdout=subprocess.DEVNULL)
    spec = lambda i: {"name": f"vm{i}", "cpus": 1, "memory_mib": 128, "kernel": KERNEL,
                      "initrd": INITRD, "cmdline": cmdline(),
                      "disks": [{"image": f"c{i}"}] if i < n else []}
    t0 = time.monotonic()
    for i in range(n):
        pd_call(sock, "POST", "/v1/vms", spec(i))
        pd_call(sock, "POST", f"/v1/vms/vm{i}/start")
    consoles = []
    for i in range(n):
        uuid = pd_call(sock, "GET", f"/v1/vms/vm{i}")["uuid"]
        consoles.append(os.path.join(state, "vms", uuid, "console.log"))
    t_start = wait_consoles(consoles, t0)
    for i in range(n, total):
        pd_call(sock, "POST", "/v1/vms", spec(i))
    running = sum(v["state"] == "running" for v in pd_call(sock, "GET", "/v1/vms")["vms"])
    rss = rss_kib(pd.pid)
    lat = []
    for _ in range(reqs):
        t = time.perf_counter()
        vms = pd_call(sock, "GET", "/v1/vms")["vms"]
        lat.append(time.perf_counter() - t)
        assert len(vms) == total
    for i in range(n):
        pd_call(sock, "POST", f"/v1/vms/vm{i}/kill")
    pd.terminate()
    pd.wait()
    return {"start_s": t_start, "rss_kib": rss, "running": running,
            "list_p50_ms": pct(lat, 50) * 1000, "list_p99_ms": pct(lat, 99) * 1000,
            "version": subprocess.run([P, "--version"], capture_output=True, text=True)
            .stdout.strip() or "plinthd (this tree)"}


# --- libvirt ---------------------------------------------------------------------------

def libvirt_setup():
    for d in ("/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt", "/run/libvirt"):
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True)
    etc = os.path.join(WORK, "etc-libvirt")
    shutil.copytree("/etc/libvirt", etc)
    with open(os.path.join(etc, "qemu.conf"), "a") as f:
        f.write('\nuser = "root"\ngroup = "root"\nsecurity_driver = "none"\n'
                'stdio_handler = "file"\ndynamic_ownership = 0\nnamespaces = []\n'
                'cgroup_controllers = []\n')
    subprocess.run(["mount", "--bind", etc, "/etc/libvirt"], check=True)
    os.makedirs("/var/lib/libvirt/qemu", exist_ok=True)
    log = open(os.path.join(WORK, "libvirtd.log"), "w")
    lv = subprocess.Popen(["/usr/sbin/libvirtd"], stdout=log, stderr=subprocess.STDOUT)
    import libvirt  # python3-libvirt, of Debian's python3
    for _ in range(200):
        try:
            return lv, libvirt.open("qemu:///system")
        except libvirt.libvirtError:
            time.sleep(0.1)
    sys.exit("bench: libvirtd did not come up (see " + WORK + "/libvirtd.log)")


def domain_xml(i, n):
    disk = (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source file='{WORK}/lv{i}.qcow2'/><target dev='vda' bus='virtio'/></disk>"
            if i < n else "")
    return f"""<domain type='kvm'>
  <name>lv{i}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{KERNEL}</kernel>
    <initrd>{INITRD}</initrd><cmdline>{cmdline()}</cmdline></os>
  <features><acpi/></features><cpu mode='host-passthrough'/>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{disk}
    <serial type='file'><source path='{WORK}/lv{i}.log'/><target port='0'/></serial>
    <memballoon model='none'/></devices>
</domain>"""


def bench_libvirt(n, total, reqs):
    lv, conn = libvirt_setup()
    tmpl = os.path.join(WORK, "lvtmpl.qcow2")
    template(tmpl)
    for i in range(n):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", tmpl, "-F", "qcow2",
                        f"{WORK}/lv{i}.qcow2"], check=True)
    t0 = time.monotonic()
    doms = []
    for i in range(n):
        d = conn.defineXML(domain_xml(i, n))
        d.create()
        doms.append(d)
    t_start = wait_consoles([f"{WORK}/lv{i}.log" for i in range(n)], t0)
    for i in range(n, total):
        conn.defineXML(domain_xml(i, n))
    import libvirt
    running = sum(d.state()[0] == libvirt.VIR_DOMAIN_RUNNING for d in conn.listAllDomains(0))
    rss = rss_kib(lv.pid)
    logd = subprocess.run(["pidof", "virtlogd"], capture_output=True, text=True).stdout.split()
    rss_logd = sum(rss_kib(int(p)) for p in logd)
    lat = []
    for _ in range(reqs):
        t = time.perf_counter()
        doms_all = conn.listAllDomains(0)
        states = [(d.name(), d.state()[0]) for d in doms_all]
        lat.append(time.perf_counter() - t)
        assert len(states) == total
    for d in doms:
        d.destroy()
    version = conn.getLibVersion()
    qemu = subprocess.run(["/usr/bin/qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]
    conn.close()
    lv.terminate()
    lv.wait()
    return {"start_s": t_start, "rss_kib": rss, "rss_virtlogd_kib": rss_logd,
            "running": running, "list_p50_ms": pct(lat, 50) * 1000,
            "list_p99_ms": pct(lat, 99) * 1000,
            "version": f"libvirt {version // 1000000}.{version // 1000 % 1000}.{version % 1000}, {qemu}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=20)
    ap.add_argument("--total", type=int, default=100)
    ap.add_argument("--reqs", type=int, default=200)
    ap.add_argument("--json")
    a = ap.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    res = {"vms": a.vms, "total": a.total, "reqs": a.reqs}
    res["plinthd"] = bench_plinthd(a.vms, a.total, a.reqs)
    print("plinthd:", json.dumps(res["plinthd"]), flush=True)
    res["libvirt"] = bench_libvirt(a.vms, a.total, a.reqs)
    print("libvirt:", json.dumps(res["libvirt"]), flush=True)
    p, l = res["plinthd"], res["libvirt"]
    print(f"| metric | plinthd | libvirt | libvirt / plinthd |\n|---|---|---|---|")
    for k, name, unit in (("start_s", f"define + start {a.vms} VMs to init", "s"),
                          ("rss_kib", f"daemon RSS, {a.total} defined / {a.vms} running", "KiB"),
                          ("list_p50_ms", f"list {a.total} VMs, p50", "ms"),
                          ("list_p99_ms", f"list {a.total} VMs, p99", "ms")):
        print(f"| {name} | {p[k]:.1f} {unit} | {l[k]:.1f} {unit} | {l[k] / p[k]:.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
