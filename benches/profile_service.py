"""Where the embedded service's CPU goes under load: a profile of the whole process.

Usage: profile_service.py GATEWAY CORPUS_DIR SECONDS USERS  (scripts/bench calls it)

Starts GATEWAY (embedded queue: HTTP, base64, hashing, probe, files, records, queue, decode,
resize and encode all in one process) on a fresh data directory with deduplication off,
drives it with locustfile.py (USERS users uploading the corpus's photographs) for SECONDS,
and meanwhile records it by stage (stages.py). Prints the
CPU time the gateway and Locust spent per completed thumbnail (from /proc), and the
gateway's samples grouped by stage, from the symbol each sample's time was spent in (self
time: a memcpy is counted as copying, whoever called it).
"""

import csv
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import stages
from process import cpu_seconds, wait_ready

ROOT = pathlib.Path(__file__).resolve().parent.parent
GATEWAY, CORPUS, SECONDS, USERS = (
    pathlib.Path(sys.argv[1]).resolve(),
    pathlib.Path(sys.argv[2]).resolve(),
    int(sys.argv[3]),
    int(sys.argv[4]),
)
PORT = 18090


def main():
    data = tempfile.mkdtemp(prefix="thumbnailify-profile-")
    (pathlib.Path(data) / "config.yaml").write_text("dedup: false\n")
    env = dict(os.environ, THUMBNAILIFY_LISTEN=f"127.0.0.1:{PORT}", THUMBNAILIFY_DATA_DIR=data, RUST_LOG="warn")
    gateway = subprocess.Popen([GATEWAY], env=env, cwd=data)
    perf_data = pathlib.Path(data) / "perf.data"
    try:
        wait_ready(PORT)
        prefix = pathlib.Path(data) / "locust"
        locust = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
             "-u", str(USERS), "-r", str(USERS), "-t", f"{SECONDS}s", "--only-summary",
             "--host", f"http://127.0.0.1:{PORT}", "--csv", str(prefix)],
            env=dict(os.environ, THUMBNAILIFY_LOAD_IMAGES=str(CORPUS)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        gateway_before = cpu_seconds(gateway.pid)
        perf = stages.record(gateway.pid, perf_data)
        locust_cpu = 0.0
        while locust.poll() is None:
            try:
                locust_cpu = cpu_seconds(locust.pid)
            except FileNotFoundError:
                break
            time.sleep(0.5)
        gateway_cpu = cpu_seconds(gateway.pid) - gateway_before
        stages.stop(perf)
        with open(f"{prefix}_stats.csv") as f:
            rows = {row["Name"]: row for row in csv.DictReader(f)}
        thumbnails = rows["GET /images/{id}/thumbnail"]
        completed = int(thumbnails["Request Count"]) - int(thumbnails["Failure Count"])
        failures = int(rows["Aggregated"]["Failure Count"])
        report = stages.report(perf_data)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)

    totals, top = stages.group(report)
    per = 1000 / max(completed, 1)
    print(f"profile: {USERS} Locust users, {SECONDS} s, {completed} thumbnails "
          f"({completed / SECONDS:.1f}/s), {failures} failures")
    print(f"CPU per thumbnail: gateway {gateway_cpu * per:.1f} ms, Locust {locust_cpu * per:.1f} ms")
    print()
    stages.print_table(totals, top, gateway_cpu * per, "thumbnail")


main()
