"""Where a gateway's CPU time goes, by stage: `perf record -e cpu-clock` (Debian's linux-perf)
on the running process, and its samples grouped by the symbol each was spent in (self time:
a memcpy is counted as copying, whoever called it). Shared by profile_service.py (under
load) and per_file_cpu.py (one file at a time). Imported, not run."""

import pathlib
import re
import signal
import subprocess
import time

# Stage, and a pattern on "dso symbol"; the first that matches wins.
STAGES = [
    ("JPEG decode (libjpeg-turbo)", r"decode_mcu|jpeg_|jsimd_|ycc_rgb|h2v[12]_|tj[A-Z3]|consume_data|decompress_(onepass|data|smooth)|process_data|sep_upsample|jdhuff|jdphuff|jpeg_decoder|zune_jpeg"),
    ("PNG decode (png, fdeflate)", r"png::|fdeflate|miniz|inflate|crc32fast|adler|unfilter"),
    ("WebP decode (libwebp)", r"VP8|WebP|GetCoeffs|GetLargeValue|Transform_|Dither|Upsample|Rescaler|DecodeInto|DecodeImageData|ReadHuffman|image_webp"),
    ("GIF and TIFF decode (LZW)", r"weezl|gif::|tiff::"),
    ("encode (JPEG, PNG, WebP)", r"jpeg_encoder|encoder|encode_mcu|jpeg_fdct|forward_DCT|jsimd_fdct|compress_data|rgb_ycc|deflate|encode_"),
    ("resize (fast_image_resize)", r"fast_image_resize|convolution"),
    ("colour (moxcms)", r"moxcms|worker::colour"),
    ("crops and placeholders", r"worker::gravity|worker::placeholder|thumbhash|blurhash"),
    ("BMP and other decode", r"worker::decode|image::"),
    ("hashing (MD5, SHA-256)", r"md5::|sha2::"),
    ("base64", r"base64::"),
    ("records (SQLite, sqlx, serde_json)", r"sqlite3|sqlx|serde_json|serde::"),
    ("HTTP (hyper, axum, tokio)", r"hyper|axum|httparse|http::|tokio::|mio::|tower"),
    ("copying and zeroing (memcpy, memset)", r"memmove|memcpy|memset|__memcmp"),
    ("allocator (malloc, free)", r"malloc|free|_int_|realloc|calloc|sysmalloc|tcache"),
    ("kernel: file reads and writes, fsync", r"\[kernel.*(copy_|_iter|ext4|jbd2|filemap|file|fsync|writeback|block|blk|bio|xfs|vfs_|generic_perform)"),
    ("kernel: page faults, zeroing pages", r"\[kernel.*(fault|clear_page|folio|alloc_pages|_pages_|rmqueue|lru|memcg|pte|do_anonymous|unmap|vma|mas_|zap_|page_)"),
    ("kernel: network (loopback TCP)", r"\[kernel.*(tcp|skb|sock|net|ip_|inet|__dev|loopback)"),
    ("kernel: scheduling and other", r"\[kernel"),
]


def record(pid, path, frequency=499):
    """Starts sampling process `pid` into the file `path`, and returns once perf has
    attached (its file begun); stop it with `stop`."""
    path = pathlib.Path(path)
    path.unlink(missing_ok=True)
    perf = subprocess.Popen(
        ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(frequency), "-p", str(pid),
         "-o", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if path.exists() and path.stat().st_size > 0:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    return perf


def stop(perf):
    """Stops a `record` and waits for it to write its file."""
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=60)


def report(path):
    """`perf report`'s self time per symbol, as text."""
    return subprocess.run(
        ["perf", "report", "-i", str(path), "--no-children", "--sort", "dso,symbol",
         "-g", "none", "--stdio"],
        capture_output=True, text=True, check=True,
    ).stdout


def group(text):
    """The share (percent) of the samples in each stage, and each stage's symbols with their
    shares."""
    totals = {stage: 0.0 for stage, _ in STAGES}
    totals["other"] = 0.0
    top = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*\S)", line)
        if not match:
            continue
        share, dso, symbol = float(match[1]), match[2], match[3]
        key = f"{dso} {symbol}"
        stage = next((name for name, pattern in STAGES if re.search(pattern, key)), "other")
        totals[stage] += share
        top.setdefault(stage, []).append((share, symbol))
    return totals, top


def print_table(totals, top, ms, unit):
    """A Markdown table of the stages over 0.05 %, with `ms` (CPU per `unit`) shared out."""
    print(f"| stage | share of the gateway's CPU | ms per {unit} | top symbols |")
    print("|---|---|---|---|")
    for stage, share in sorted(totals.items(), key=lambda item: -item[1]):
        if share < 0.05:
            continue
        symbols = ", ".join(f"`{s[:40]}` {p:.1f}" for p, s in sorted(top.get(stage, []), reverse=True)[:3])
        print(f"| {stage} | {share:.1f} % | {ms * share / 100:.1f} | {symbols} |")
