"""Gateway memory held by requests waiting with `?wait=`.

Usage: waiters.py GATEWAY_BINARY [WAITERS]  (scripts/bench calls it; default 1000 waiters)

Starts GATEWAY_BINARY on a fresh data directory with RabbitMQ as its queue and no worker
(127.0.0.1:5672, guest/guest, a fresh vhost), so that an uploaded record stays Processing.
Uploads one image, opens WAITERS connections that each send `GET /images/{id}?wait=60`, waits
until the gateway counts them all (`thumbnailify_waiting_requests` in /metrics), and prints
the gateway's resident memory (VmRSS) before and with them, and the difference per waiter.
Then starts a worker, which completes the record, and reports how long after that every
waiter had its answer.
"""

import base64
import http.client
import json
import pathlib
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from rabbit import fresh_vhost, gateway_env, rabbitmqctl

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = pathlib.Path(sys.argv[1]).resolve()
WAITERS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
PORT = 18082


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def waiting(base):
    text = urllib.request.urlopen(f"{base}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith("thumbnailify_waiting_requests "):
            return int(float(line.split()[1]))
    return 0


def main():
    data = tempfile.mkdtemp(prefix="thumbnailify-waiters-")
    vhost = fresh_vhost()
    env = gateway_env(PORT, data, vhost)
    limit = WAITERS + 64
    pathlib.Path(data, "config.yaml").write_text(
        f"limits: {{max_connections: {limit}, max_connections_per_client: {limit}}}\n"
    )
    gateway = subprocess.Popen([BINARY], env=env, cwd=data)
    worker = None
    sockets = []
    base = f"http://127.0.0.1:{PORT}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/readyz")
                break
            except OSError:
                time.sleep(0.05)
        image = (ROOT / "tests/fixtures/jpeg-baseline.jpg").read_bytes()
        connection = http.client.HTTPConnection("127.0.0.1", PORT)
        connection.request("POST", "/images", body=base64.b64encode(image), headers={"Content-Type": "image/jpeg"})
        media_id = json.loads(connection.getresponse().read())["media_id"]
        time.sleep(1)
        before = rss_kib(gateway.pid)
        request = f"GET /images/{media_id}?wait=60 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for _ in range(WAITERS):
            s = socket.create_connection(("127.0.0.1", PORT))
            s.sendall(request)
            sockets.append(s)
        deadline = time.time() + 60
        while waiting(base) < WAITERS and time.time() < deadline:
            time.sleep(0.1)
        counted = waiting(base)
        time.sleep(0.5)
        during = rss_kib(gateway.pid)
        print(f"{counted} waiters: gateway RSS {before / 1024:.1f} MiB before, {during / 1024:.1f} MiB with them: "
              f"{(during - before) / max(counted, 1):.1f} KiB per waiter (its connection included)")
        worker_binary = BINARY.parent / "worker"
        worker = subprocess.Popen([worker_binary], env=env, cwd=data)
        selector = selectors.DefaultSelector()
        for s in sockets:
            selector.register(s, selectors.EVENT_READ)
        answered, first, last = 0, None, None
        while answered < len(sockets) and time.time() < deadline + 60:
            for key, _ in selector.select(timeout=5):
                chunk = key.fileobj.recv(65536)
                now = time.time()
                first = first or now
                last = now
                selector.unregister(key.fileobj)
                answered += 1
                assert chunk.startswith(b"HTTP/1.1 200"), chunk[:40]
        print(f"{answered} answered once the worker finished; the last {1000 * (last - first):.0f} ms after the first")
    finally:
        for s in sockets:
            s.close()
        for process in (worker, gateway):
            if process:
                process.terminate()
                process.wait()
        rabbitmqctl("delete_vhost", vhost)
        shutil.rmtree(data, ignore_errors=True)


main()
