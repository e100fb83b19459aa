# virtio-vsock in a real guest, Firecracker's convention: the host connects to the
# Unix socket and says CONNECT 1234 to reach a guest listener (echo), and the guest
# connects to host port 5000, which is the Unix socket PATH_5000.
. tests/integration/lib.sh
dir=$(mktemp -d)
sdir=$(sock_dir)
trap 'kill $host_pid 2>/dev/null; rm -rf "$dir" "$sdir"' EXIT
out=$dir/console
gcc -static -O2 -o "$dir/vsock-echo" tests/integration/vsock-echo.c || fail "cannot build vsock-echo"
size=$(stat -c %s "$dir/vsock-echo")
cp "$dir/vsock-echo" "$dir/tool.img"
truncate -s %1M "$dir/tool.img"

# The host side: a listener on PATH_5000 that answers "echo:<msg>", and a client that
# keeps trying CONNECT 1234 until the guest listens, then checks the echo.
python3 - "$sdir/v.sock" >"$dir/host.log" 2>&1 <<'PY' &
import socket, sys, threading, time
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path + "_5000")
srv.listen(1)
def serve():
    c, _ = srv.accept()
    msg = c.recv(100)
    c.sendall(b"echo:" + msg)
    c.close()
    print("host: guest connected to 5000 and sent", msg.decode(), flush=True)
threading.Thread(target=serve, daemon=True).start()
deadline = time.time() + 150
while time.time() < deadline:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(b"CONNECT 1234\n")
        line = b""
        while not line.endswith(b"\n"):
            ch = s.recv(1)
            if not ch:
                break
            line += ch
        if not line.startswith(b"OK "):
            s.close()
            time.sleep(0.5)
            continue
        print("host: got", line.decode().strip(), flush=True)
        s.sendall(b"hello-vsock")
        reply = b""
        while len(reply) < 11:
            d = s.recv(100)
            if not d:
                break
            reply += d
        print("host: echo", reply.decode(), flush=True)
        s.close()
        break
    except OSError as e:
        time.sleep(0.5)
time.sleep(5)
PY
host_pid=$!

run_plinth "$out" "
	head -c $size /dev/vda > /tmp/ve && chmod +x /tmp/ve || exit 9
	/tmp/ve listen 1234 &
	sleep 1
	/tmp/ve connect 2 5000 ping-from-guest
	wait
	" --disk "path=$dir/tool.img,format=raw,readonly=on" \
	--vsock "cid=3,socket=$sdir/v.sock" || fail "plinth exited $?"
wait $host_pid
cat "$dir/host.log"
expect_in "$out" '^plinth-guest: exit status 0' "the guest command did not finish"
expect_in "$out" '^vsock-echo: reply echo:ping-from-guest' "guest to host connection failed"
expect_in "$out" '^vsock-echo: echoed, peer closed' "host to guest connection failed"
expect_in "$dir/host.log" '^host: got OK [0-9]+' "no OK from the device"
expect_in "$dir/host.log" '^host: echo hello-vsock' "the guest did not echo"
[ ! -e "$sdir/v.sock" ] || fail "the vsock socket was left behind"
