"""Gateway memory under a multipart form of many tiny parts: PARTS one-byte file parts (a
body of about 100 bytes a part) posted in one request.

Usage: form_memory.py GATEWAY_BINARY [PARTS...]   (scripts/bench calls it; default 100000
and 500000)

For each count, twice: with the default limits (`limits.max_form_parts` 1000: the gateway
stops reading at the part past it) and with `max_form_parts` raised over the count, so that
every part past `limits.max_files_per_request` is read through and counted. Each time a fresh
embedded gateway on a fresh data directory; prints its resident memory before, its peak
(VmHWM) and resident memory after, the answer's status, size and items, and the time taken.
"""

import http.client
import json
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

from process import wait_ready

BINARY = pathlib.Path(sys.argv[1]).resolve()
COUNTS = [int(arg) for arg in sys.argv[2:]] or [100_000, 500_000]
PORT = 18083
BOUNDARY = "tinyparts"


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def body(parts):
    part = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\nx\r\n"
    ).encode()
    return part * parts + f"--{BOUNDARY}--\r\n".encode()


def run(parts, max_form_parts):
    with tempfile.TemporaryDirectory() as data:
        config = "" if max_form_parts is None else f"limits: {{max_form_parts: {max_form_parts}}}\n"
        pathlib.Path(data, "config.yaml").write_text(config)
        env = {"THUMBNAILIFY_LISTEN": f"127.0.0.1:{PORT}", "THUMBNAILIFY_DATA_DIR": data,
               "RUST_LOG": "warn", "PATH": "/usr/bin:/bin"}
        gateway = subprocess.Popen([BINARY], env=env, cwd=data)
        try:
            wait_ready(PORT)
            before = status_kib(gateway.pid, "VmRSS")
            payload = body(parts)
            started = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
            try:
                connection.request("POST", "/images", body=payload, headers={
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
                response = connection.getresponse()
                answer = response.read()
                status = response.status
            except (BrokenPipeError, ConnectionResetError):
                answer, status = b"", "closed"
            finally:
                connection.close()
            elapsed = time.monotonic() - started
            time.sleep(1)
            peak = status_kib(gateway.pid, "VmHWM")
            after = status_kib(gateway.pid, "VmRSS")
            try:
                items = len(json.loads(answer).get("items", []))
            except ValueError:
                items = "-"
            limit = "default (1000)" if max_form_parts is None else str(max_form_parts)
            print(f"| {parts:,} | {len(payload) / 1e6:.1f} MB | {limit} | {status} | "
                  f"{len(answer):,} B, {items} items | {before / 1024:.0f} | {peak / 1024:.0f} | "
                  f"{after / 1024:.0f} | {elapsed:.1f} s |")
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(timeout=60)


print("| parts | body | max_form_parts | status | answer | RSS before (MiB) | peak (MiB) | "
      "RSS after (MiB) | time |")
print("|---:|---:|---|---|---|---:|---:|---:|---:|")
for count in COUNTS:
    run(count, None)
    run(count, count + 10)
