"""Where the embedded service's CPU goes under load: a profile of the whole process.

Usage: profile_service.py GATEWAY CORPUS_DIR SECONDS USERS  (scripts/bench calls it)

Starts GATEWAY (embedded queue: HTTP, base64, hashing, probe, files, records, queue, decode,
resize and encode all in one process) on a fresh data directory with deduplication off,
drives it with locustfile.py (USERS users uploading the corpus's photographs) for SECONDS,
and meanwhile records it with `perf record -e cpu-clock` (Debian's linux-perf). Prints the
CPU time the gateway and Locust spent per completed thumbnail (from /proc), and the
gateway's samples grouped by stage, from the symbol each sample's time was spent in (self
time: a memcpy is counted as copying, whoever called it).
"""

import csv
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from process import cpu_seconds, wait_ready

ROOT = pathlib.Path(__file__).resolve().parent.parent
GATEWAY, CORPUS, SECONDS, USERS = (
    pathlib.Path(sys.argv[1]).resolve(),
    pathlib.Path(sys.argv[2]).resolve(),
    int(sys.argv[3]),
    int(sys.argv[4]),
)
PORT = 18090

# Stage, and a pattern on "dso symbol"; the first that matches wins.
STAGES = [
    ("JPEG decode (libjpeg-turbo)", r"decode_mcu|jpeg_|jsimd_|ycc_rgb|h2v[12]_|tj[A-Z3]|consume_data|decompress_(onepass|data|smooth)|process_data|sep_upsample|jdhuff|jdphuff|jpeg_decoder|zune_jpeg"),
    ("PNG decode (png, fdeflate)", r"png::|fdeflate|miniz|inflate|crc32fast|adler|unfilter"),
    ("WebP decode (libwebp)", r"VP8|WebP|GetCoeffs|GetLargeValue|Transform_|Dither|Upsample|Rescaler|DecodeInto|DecodeImageData|ReadHuffman|image_webp"),
    ("GIF and TIFF decode (LZW)", r"weezl|gif::|tiff::"),
    ("encode (JPEG, PNG, WebP)", r"jpeg_encoder|encoder|encode_mcu|jpeg_fdct|forward_DCT|jsimd_fdct|compress_data|rgb_ycc|deflate|encode_"),
    ("resize (fast_image_resize)", r"fast_image_resize|convolution"),
    ("BMP and other decode", r"worker::decode|image::"),
    ("hashing (MD5, SHA-256)", r"md5::|sha2::"),
    ("base64", r"base64::"),
    ("records (sled, serde_json)", r"sled::|serde_json|serde::|crossbeam_epoch"),
    ("HTTP (hyper, axum, tokio)", r"hyper|axum|httparse|http::|tokio::|mio::|tower"),
    ("copying and zeroing (memcpy, memset)", r"memmove|memcpy|memset|__memcmp"),
    ("allocator (malloc, free)", r"malloc|free|_int_|realloc|calloc|sysmalloc|tcache"),
    ("kernel: file reads and writes, fsync", r"\[kernel.*(copy_|_iter|ext4|jbd2|filemap|file|fsync|writeback|block|blk|bio|xfs|vfs_|generic_perform)"),
    ("kernel: page faults, zeroing pages", r"\[kernel.*(fault|clear_page|folio|alloc_pages|_pages_|rmqueue|lru|memcg|pte|do_anonymous|unmap|vma|mas_|zap_|page_)"),
    ("kernel: network (loopback TCP)", r"\[kernel.*(tcp|skb|sock|net|ip_|inet|__dev|loopback)"),
    ("kernel: scheduling and other", r"\[kernel"),
]



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
        perf = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-p", str(gateway.pid),
             "-o", str(perf_data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        locust_cpu = 0.0
        while locust.poll() is None:
            try:
                locust_cpu = cpu_seconds(locust.pid)
            except FileNotFoundError:
                break
            time.sleep(0.5)
        gateway_cpu = cpu_seconds(gateway.pid) - gateway_before
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        with open(f"{prefix}_stats.csv") as f:
            rows = {row["Name"]: row for row in csv.DictReader(f)}
        thumbnails = rows["GET /images/{id}/thumbnail"]
        completed = int(thumbnails["Request Count"]) - int(thumbnails["Failure Count"])
        failures = int(rows["Aggregated"]["Failure Count"])
        report = subprocess.run(
            ["perf", "report", "-i", str(perf_data), "--no-children", "--sort", "dso,symbol",
             "-g", "none", "--stdio"],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)

    totals = {stage: 0.0 for stage, _ in STAGES}
    totals["other"] = 0.0
    top = {}
    for line in report.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*\S)", line)
        if not match:
            continue
        share, dso, symbol = float(match[1]), match[2], match[3]
        key = f"{dso} {symbol}"
        stage = next((name for name, pattern in STAGES if re.search(pattern, key)), "other")
        totals[stage] += share
        top.setdefault(stage, []).append((share, symbol))
    per = 1000 / max(completed, 1)
    print(f"profile: {USERS} Locust users, {SECONDS} s, {completed} thumbnails "
          f"({completed / SECONDS:.1f}/s), {failures} failures")
    print(f"CPU per thumbnail: gateway {gateway_cpu * per:.1f} ms, Locust {locust_cpu * per:.1f} ms")
    print()
    print("| stage | share of the gateway's CPU | ms per thumbnail | top symbols |")
    print("|---|---|---|---|")
    for stage, share in sorted(totals.items(), key=lambda item: -item[1]):
        if share < 0.05:
            continue
        symbols = ", ".join(f"`{s[:40]}` {p:.1f}" for p, s in sorted(top.get(stage, []), reverse=True)[:3])
        print(f"| {stage} | {share:.1f} % | {gateway_cpu * per * share / 100:.1f} | {symbols} |")


main()
