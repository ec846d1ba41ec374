"""What the benchmark scripts share about the gateway process they start: waiting until it
answers, and reading its CPU time. Imported, not run."""

import json
import os
import pathlib
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
