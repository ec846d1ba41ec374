"""CPU per image, per file of the corpus: through the service beside the bare peers.

Usage: per_file_cpu.py GATEWAY CORPUS_DIR [REPEAT] [--stages]  (scripts/bench runs it)

For each file of the service benchmark's mix (the corpus's JPEG, PNG, GIF, WebP, TIFF and
BMP files, the colour-managed ones among them):

- ours: the embedded gateway (GATEWAY, a release binary) on a fresh data directory, one
  upload at a time (base64 body, `?wait=` for the result, then the thumbnail fetched and
  the record deleted, as Locust's users do), REPEAT times; the gateway's CPU time (user +
  system, /proc) divided by REPEAT. Everything the service does is in it: HTTP, base64,
  digests, writes, fsyncs, the queue, decode, colour, resize, encode.
- vipsthumbnail --export-profile srgb, and Pillow's Image.thumbnail with ImageCms's sRGB
  conversion when the file has a profile (as benches/service.py runs them): one process
  over the file REPEAT times (under a new name each time for libvips, whose operation cache
  would otherwise serve the repeats); its CPU time (children's rusage) divided by REPEAT,
  the process's start-up measured on one run and taken off.

Prints a Markdown table: ms of CPU per image for each, and ours against the better peer.
With --stages, the gateway is also sampled while it serves each file (stages.py), and a
table per file says where its CPU went: base64, digests, writes, decode, resize...
"""

import base64
import http.client
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile

import stages
from process import cpu_seconds, wait_ready

STAGES = "--stages" in sys.argv
ARGS = [arg for arg in sys.argv[1:] if arg != "--stages"]
GATEWAY, CORPUS = pathlib.Path(ARGS[0]).resolve(), pathlib.Path(ARGS[1])
REPEAT = int(ARGS[2]) if len(ARGS) > 2 else 20
PORT = 18091
MIX = {".jpg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".webp": "image/webp",
       ".tiff": "image/tiff", ".bmp": "image/bmp"}
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in MIX and not p.name.startswith("."))

PILLOW = """
import io, sys
from PIL import Image, ImageCms
SRGB = ImageCms.createProfile("sRGB")
path, repeat = sys.argv[1], int(sys.argv[2])
for _ in range(repeat):
    with Image.open(path) as image:
        image.thumbnail((100, 100))
        icc = image.info.get("icc_profile")
        if icc and image.mode in ("RGB", "RGBA", "CMYK", "L"):
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            mode = "RGBA" if image.mode == "RGBA" else "RGB"
            image = ImageCms.profileToProfile(image, source, SRGB, outputMode=mode)
        out = io.BytesIO()
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            image.save(out, "PNG")
        else:
            image.convert("RGB").save(out, "JPEG", quality=85)
"""


def request(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
    connection.request(method, path, body=body, headers=headers or {})
    answer = connection.getresponse()
    data = answer.read()
    connection.close()
    return answer.status, data


def ours(path):
    """The gateway's CPU per upload of `path`, ms, and with --stages its profile's text."""
    body = base64.b64encode(path.read_bytes())
    headers = {"Content-Type": MIX[path.suffix]}
    gateway = ensure_gateway()
    perf_data = pathlib.Path(_data, "perf.data")
    perf = stages.record(gateway.pid, perf_data, 997) if STAGES else None
    start = cpu_seconds(gateway.pid)
    for _ in range(REPEAT):
        status, data = request("POST", "/images", body, headers)
        assert status == 202, (status, data[:200])
        media_id = json.loads(data)["media_id"]
        status, data = request("GET", f"/images/{media_id}?wait=60")
        record = json.loads(data)
        assert record["state"] == "Completed", record
        status, _ = request("GET", f"/images/{media_id}/thumbnail", headers={"Accept": "image/*"})
        assert status == 200
        request("DELETE", f"/images/{media_id}")
    ms = (cpu_seconds(gateway.pid) - start) / REPEAT * 1000
    if perf is None:
        return ms, None
    stages.stop(perf)
    return ms, stages.report(perf_data)


_gateway = None
_data = None


def ensure_gateway():
    global _gateway, _data
    if _gateway is None:
        _data = tempfile.mkdtemp(prefix="thumbnailify-cpu-")
        pathlib.Path(_data, "config.yaml").write_text(f"listen: 127.0.0.1:{PORT}\ndata_dir: {_data}\n")
        env = {"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"}
        _gateway = subprocess.Popen([str(GATEWAY)], cwd=_data, env=env, stdout=subprocess.DEVNULL)
        wait_ready(PORT)
        # One upload warms the process up (allocator, worker threads, caches).
        warm = FILES[0]
        request("POST", "/images", base64.b64encode(warm.read_bytes()), {"Content-Type": MIX[warm.suffix]})
    return _gateway


def child_cpu(command):
    """CPU seconds (user + system) of running `command` to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, VIPS_CONCURRENCY="1"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def vips(path, out):
    target = f"{out}/%s.jpg[Q=85]"
    base = ["vipsthumbnail", "--size", "100x100", "--export-profile", "srgb", "-o", target]
    # A name per run: libvips caches operations by file name, so the same name again would
    # be served from its cache.
    # The names live apart from the output: vipsthumbnail writes `%s.jpg` into `out`.
    links = pathlib.Path(out, "in")
    links.mkdir(exist_ok=True)
    names = []
    for run in range(REPEAT + 2):
        name = links / f"run{run}{path.suffix}"
        name.unlink(missing_ok=True)
        name.symlink_to(path.resolve())
        names.append(str(name))
    start_up = child_cpu(base + names[:1])
    many = child_cpu(base + names[1:])
    return (many - start_up) / REPEAT * 1000


def pillow(path):
    one = child_cpu([sys.executable, "-c", PILLOW, str(path), "1"])
    many = child_cpu([sys.executable, "-c", PILLOW, str(path), str(REPEAT + 1)])
    return (many - one) / REPEAT * 1000


def main():
    out = tempfile.mkdtemp(prefix="thumbnailify-ref-")
    print(f"CPU per image, ms ({REPEAT} runs per file; ours through the embedded service)")
    print("| file | ours | vipsthumbnail | Pillow | ours / better peer |")
    print("|---|---:|---:|---:|---:|")
    totals = [0.0, 0.0, 0.0]
    profiles = []
    try:
        for path in FILES:
            mine, profile = ours(path)
            profiles.append((path.name, mine, profile))
            row = [mine, vips(path, out), pillow(path)]
            totals = [t + r for t, r in zip(totals, row)]
            ratio = row[0] / min(row[1], row[2])
            print(f"| {path.name} | {row[0]:.1f} | {row[1]:.1f} | {row[2]:.1f} | {ratio:.2f} |", flush=True)
        n = len(FILES)
        ratio = totals[0] / min(totals[1], totals[2])
        print(f"| **mean** | **{totals[0] / n:.1f}** | **{totals[1] / n:.1f}** | **{totals[2] / n:.1f}** | **{ratio:.2f}** |")
        for name, mine, profile in profiles:
            if profile is not None:
                print(f"\n{name}: {mine:.1f} ms of the gateway's CPU per upload\n")
                stages.print_table(*stages.group(profile), mine, "upload")
    finally:
        if _gateway is not None:
            _gateway.terminate()
            _gateway.wait()
        shutil.rmtree(out, ignore_errors=True)
        if _data:
            shutil.rmtree(_data, ignore_errors=True)


main()
