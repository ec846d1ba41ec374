"""What identical uploads cost with and without deduplication.

Usage: dedup.py GATEWAY_BINARY [UPLOADS]  (default 20; run benches/corpus/make.sh first)

For `dedup: true` and `dedup: false`, starts GATEWAY_BINARY alone (embedded queue and store,
workers in-process) on a fresh data directory with `keep_raw: true`, posts the same
4000×3000 JPEG of the benchmark corpus UPLOADS times at once, and waits until every record is
final. Prints the wall time from the first upload to the last final record, the process's CPU
time over that span, how many records were decoded (their history has `started`), and how
many originals are stored.
"""

import base64
import concurrent.futures
import http.client
import json
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from process import cpu_seconds, wait_ready

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = pathlib.Path(sys.argv[1]).resolve()
UPLOADS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
PHOTO = ROOT / "target/bench-corpus/jpeg-4000x3000.jpg"
PORT = 18083


def request(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()



def measure(dedup, body):
    data = tempfile.mkdtemp(prefix="thumbnailify-dedup-")
    pathlib.Path(data, "config.yaml").write_text(
        f"listen: 127.0.0.1:{PORT}\ndata_dir: {data}\nkeep_raw: true\ndedup: {str(dedup).lower()}\n"
    )
    gateway = subprocess.Popen([BINARY], cwd=data, env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    try:
        wait_ready(PORT)
        cpu_before = cpu_seconds(gateway.pid)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(UPLOADS) as pool:
            answers = list(
                pool.map(
                    lambda _: request("POST", "/images", body, {"Content-Type": "image/jpeg"}),
                    range(UPLOADS),
                )
            )
        assert all(status == 202 for status, _ in answers), answers
        ids = [record["media_id"] for _, record in answers]
        for media_id in ids:
            while request("GET", f"/images/{media_id}")[1]["state"] == "Processing":
                time.sleep(0.02)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(gateway.pid) - cpu_before
        decoded = sum(
            any(event["event"] == "started" for event in request("GET", f"/images/{i}/events")[1]["items"])
            for i in ids
        )
        originals = len(list(pathlib.Path(data, "raw").iterdir()))
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)
    print(f"| {str(dedup).lower()} | {UPLOADS} | {elapsed:.2f} | {cpu:.2f} | {decoded} | {originals} |", flush=True)


def main():
    body = base64.b64encode(PHOTO.read_bytes())
    print(f"dedup: {BINARY}, {UPLOADS} uploads at once of {PHOTO.name} ({PHOTO.stat().st_size} bytes)")
    print("| dedup | uploads | seconds to all final | gateway CPU seconds | decoded | originals stored |")
    print("|---|---|---|---|---|---|")
    measure(True, body)
    measure(False, body)


main()
