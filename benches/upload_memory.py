"""Gateway memory under concurrent uploads at the size limit, raw base64 and JSON envelope.

Also: one multipart/form-data request of FILES files of 20 MB each (200 MB by default) beside
the same files as FILES base64 uploads one after another: peak RSS and MB/s of image bytes.

Usage: upload_memory.py GATEWAY_BINARY [CLIENTS [BUDGET_BYTES]]  (scripts/bench calls it;
default 64 clients; BUDGET_BYTES, when given, is written as limits.max_upload_memory_bytes)

For each form, starts GATEWAY_BINARY on a fresh data directory with RabbitMQ as its queue and
no worker (127.0.0.1:5672, guest/guest, a fresh vhost), so that only the gateway's own work is
measured: reading, decoding, checking and writing the uploads. Then CLIENTS clients post at
once a real JPEG padded to 52 428 000 bytes (just under the default 50 MiB limit), as base64
with line breaks every 76 characters, or inside `{"data", "media_type"}`. Prints the gateway's
peak RSS (VmHWM) before and after, the growth per upload, and how many uploads got 202, how
many 503 (`overloaded`: the upload memory budget was taken for longer than 5 s), and how many
saw the connection closed before their answer (a refused client still sending its body past
the 8 MB the gateway reads and discards).
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

from process import wait_ready
from rabbit import fresh_vhost, gateway_env, rabbitmqctl

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = pathlib.Path(sys.argv[1]).resolve()
CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 64
BUDGET = int(sys.argv[3]) if len(sys.argv) > 3 else None
PORT = 18081
SIZE = 52_428_000


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def post(media_type, body):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
    try:
        connection.request("POST", "/images", body=body, headers={"Content-Type": media_type})
        response = connection.getresponse()
        response.read()
        return response.status
    except (BrokenPipeError, ConnectionResetError):
        return "closed"
    finally:
        connection.close()


FILES = 10
FILE_SIZE = 20_000_000


def start_gateway(data, vhost):
    env = gateway_env(PORT, data, vhost)
    # The same bytes every time: measured is reading and storing each, not deduplication.
    config = "dedup: false\n"
    if BUDGET is not None:
        config += f"limits: {{max_upload_memory_bytes: {BUDGET}}}\n"
    pathlib.Path(data, "config.yaml").write_text(config)
    gateway = subprocess.Popen([BINARY], env=env, cwd=data)
    wait_ready(PORT)
    small = base64.b64encode((ROOT / "tests/fixtures/small.png").read_bytes())
    assert post("image/png", small) == 202
    return gateway


def measure_files(form, requests):
    """Sends `requests` ((media_type, body) pairs) one after another; prints peak RSS and MB/s."""
    data = tempfile.mkdtemp(prefix="thumbnailify-upload-memory-")
    vhost = fresh_vhost()
    gateway = start_gateway(data, vhost)
    try:
        before = peak_rss_kib(gateway.pid)
        started = time.monotonic()
        statuses = [post(media_type, body) for media_type, body in requests]
        elapsed = time.monotonic() - started
        after = peak_rss_kib(gateway.pid)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        rabbitmqctl("delete_vhost", vhost)
        shutil.rmtree(data, ignore_errors=True)
    assert statuses == [202] * len(requests), statuses
    mb = 1024 * 1024
    print(
        f"| {form} | {FILES} × {FILE_SIZE / 1e6:.0f} MB | {before * 1024 / mb:.0f} | {after * 1024 / mb:.0f} "
        f"| {(after - before) * 1024 / mb:.0f} | {FILES * FILE_SIZE / 1e6 / elapsed:.0f} | {elapsed:.2f} |",
        flush=True,
    )


def multipart_and_base64():
    image = (ROOT / "tests/fixtures/jpeg-baseline.jpg").read_bytes()
    image += b"\0" * (FILE_SIZE - len(image))
    boundary = "----thumbnailify-bench-boundary"
    parts = []
    for i in range(FILES):
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{i}.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n".encode()
        )
        parts.append(image)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    form = b"".join(parts)
    encoded = base64.b64encode(image)
    print(f"multipart: {FILES} files of {FILE_SIZE} bytes in one request, beside {FILES} base64 uploads in turn")
    print("| form | files | peak RSS before, MB | peak RSS after, MB | growth, MB | image MB/s | seconds |")
    print("|---|---|---|---|---|---|---|")
    measure_files("multipart, one request", [(f"multipart/form-data; boundary={boundary}", form)])
    measure_files("base64, one request per file", [("image/jpeg", encoded)] * FILES)


def measure(form, media_type, body):
    data = tempfile.mkdtemp(prefix="thumbnailify-upload-memory-")
    vhost = fresh_vhost()
    gateway = start_gateway(data, vhost)
    try:
        before = peak_rss_kib(gateway.pid)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            statuses = list(pool.map(lambda _: post(media_type, body), range(CLIENTS)))
        elapsed = time.monotonic() - started
        after = peak_rss_kib(gateway.pid)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        rabbitmqctl("delete_vhost", vhost)
        shutil.rmtree(data, ignore_errors=True)
    mb = 1024 * 1024
    accepted = statuses.count(202)
    refused = statuses.count(503)
    closed = statuses.count("closed")
    other = len(statuses) - accepted - refused - closed
    print(
        f"| {form} | {CLIENTS} | {before * 1024 / mb:.0f} | {after * 1024 / mb:.0f} "
        f"| {(after - before) * 1024 / CLIENTS / mb:.1f} | {accepted} | {refused} | {closed} | {other} "
        f"| {elapsed:.1f} |",
        flush=True,
    )


def main():
    image = (ROOT / "tests/fixtures/jpeg-baseline.jpg").read_bytes()
    image += b"\0" * (SIZE - len(image))
    encoded = base64.encodebytes(image)  # MIME style: a line break every 76 characters
    envelope = json.dumps(
        {"data": base64.b64encode(image).decode(), "media_type": "image/jpeg", "name": "big.jpg"}
    ).encode()
    budget = "default" if BUDGET is None else f"{BUDGET / 1024 / 1024:.0f} MiB"
    print(f"upload memory: {BINARY}, {SIZE} bytes per upload, {CLIENTS} clients at once, upload memory budget {budget}")
    print("| form | clients | peak RSS before, MB | peak RSS after, MB | growth per upload, MB | 202 | 503 | closed | other | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    measure("base64 (MIME line breaks)", "image/jpeg", encoded)
    measure("JSON envelope", "application/json", envelope)
    multipart_and_base64()


main()
