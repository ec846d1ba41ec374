"""What the benchmark scripts share about the processes they start: waiting until the
gateway answers, uploading and fetching a thumbnail, reading its CPU time, timing a peer's
run. Imported, not run."""

import base64
import json
import os
import pathlib
import subprocess
import time
import urllib.request

CLOCK = os.sysconf("SC_CLK_TCK")


def wait_ready(port, tries=300):
    """Returns once GET /readyz on 127.0.0.1:`port` answers, or after `tries` tenths of a
    second."""
    for _ in range(tries):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)


def cpu_seconds(pid):
    """User and system CPU time of process `pid` so far, in seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK


def wait_final(port, media_id):
    """The record of `media_id` once final, long-polling the service on `port`."""
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/images/{media_id}?wait=30") as answer:
            record = json.loads(answer.read())
        if record["state"] != "Processing":
            return record


def timed(command):
    """Wall seconds and peak RSS (KiB) of one run of `command` (under /usr/bin/time);
    (None, None) when it fails."""
    started = time.monotonic()
    run = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True)
    if run.returncode != 0:
        return None, None
    return time.monotonic() - started, int(run.stderr.decode().strip().splitlines()[-1])


def post(port, query, body, media_type):
    """Uploads `body` in base64 as `media_type` with `query`; the new record's id."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/images?{query}", data=base64.b64encode(body),
        headers={"Content-Type": media_type}, method="POST")
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())["media_id"]


def thumbnail(port, media_id):
    """The record's first variant, its own bytes."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/images/{media_id}/thumbnail",
                                     headers={"Accept": "image/*"})
    with urllib.request.urlopen(request) as answer:
        return answer.read()
