"""Thumbnail sizes of JPEG, WebP and AVIF at the same SSIM, on the corpus's photographs.

Usage: output_sizes.py GATEWAY_BINARY PHOTOS_DIR  (a gateway built with `--features heif`,
for AVIF; benches/corpus/make.sh puts the photographs in target/bench-corpus/photos)

Starts GATEWAY_BINARY alone (embedded) with presets for a 400x300 `cover` thumbnail in PNG
(the exact pixels, the reference) and in JPEG, lossy WebP and AVIF at qualities 20 to 95, and
lossless WebP; uploads each photograph once asking for all of them; fetches every variant.
Each lossy thumbnail is decoded (Pillow) and compared with the reference by SSIM on luma
(scikit-image's structural_similarity, the Wang et al. definition, 7x7 windows). For each
photograph and codec, the size at a target SSIM is interpolated between the two qualities
around it (log of the size, linear in SSIM). Prints, for targets 0.95 to 0.99, over the
photographs where all three codecs reach the target within the qualities tried: the median
size per codec, and the median of each photograph's size relative to its JPEG; then the sizes
at the default quality (85) with their SSIM, and lossless WebP's.
"""

import base64
import http.client
import io
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

import numpy
from PIL import Image
from skimage.metrics import structural_similarity

from process import wait_ready

BINARY = pathlib.Path(sys.argv[1]).resolve()
PHOTOS = sorted(pathlib.Path(sys.argv[2]).glob("*.jpg"))
PORT = 18097
QUALITIES = [10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95]
CODECS = {"jpeg": "JPEG", "webp": "WebP (lossy)", "avif": "AVIF"}
TARGETS = [0.95, 0.97, 0.98, 0.99]


def presets():
    lines = ["    ref: {size: 400x300, fit: cover, format: png}",
             "    lossless: {size: 400x300, fit: cover, format: webp, lossless: true}"]
    for codec in CODECS:
        for quality in QUALITIES:
            lines.append(f"    {codec[0]}{quality}: {{size: 400x300, fit: cover, "
                         f"format: {codec}, quality: {quality}}}")
    return "\n".join(lines)


def names():
    return ["ref", "lossless"] + [f"{codec[0]}{q}" for codec in CODECS for q in QUALITIES]


def request(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def luma(payload):
    image = Image.open(io.BytesIO(payload)).convert("RGB")
    return numpy.asarray(image.convert("L"), dtype=numpy.float64)


def size_at(curve, target):
    """The size at SSIM `target` on a curve of (ssim, bytes), by quality; None off its ends."""
    curve = sorted(curve)
    for (s0, b0), (s1, b1) in zip(curve, curve[1:]):
        if s0 <= target <= s1 and s1 > s0:
            t = (target - s0) / (s1 - s0)
            return float(numpy.exp(numpy.log(b0) + t * (numpy.log(b1) - numpy.log(b0))))
    return None


def main():
    data = pathlib.Path(tempfile.mkdtemp(prefix="thumbnailify-sizes-"))
    (data / "config.yaml").write_text(
        f"listen: 127.0.0.1:{PORT}\ndata_dir: {data}\n"
        f"limits: {{max_variants: {len(names())}}}\nthumbnail:\n  presets:\n{presets()}\n")
    gateway = subprocess.Popen([BINARY], cwd=data, env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    try:
        wait_ready(PORT)
        curves = {codec: [] for codec in CODECS}
        default = {codec: [] for codec in list(CODECS) + ["lossless"]}
        for photo in PHOTOS:
            body = base64.b64encode(photo.read_bytes())
            status, answer = request("POST", f"/images?sizes={','.join(names())}", body,
                                     {"Content-Type": "image/jpeg"})
            assert status == 202, answer
            media_id = json.loads(answer)["media_id"]
            record = {"state": "Processing"}
            while record["state"] == "Processing":
                status, record = request("GET", f"/images/{media_id}?wait=60")
                record = json.loads(record)
                assert status == 200, record
            assert record["state"] == "Completed", record
            variants = {}
            for name in names():
                status, payload = request("GET", f"/images/{media_id}/thumbnails/{name}",
                                          headers={"Accept": "image/*"})
                assert status == 200, (name, status)
                variants[name] = payload
            reference = luma(variants["ref"])
            for codec in CODECS:
                curve = []
                for quality in QUALITIES:
                    payload = variants[f"{codec[0]}{quality}"]
                    ssim = structural_similarity(reference, luma(payload), data_range=255)
                    curve.append((ssim, len(payload)))
                    if quality == 85:
                        default[codec].append((len(payload), ssim))
                curves[codec].append(curve)
            default["lossless"].append((len(variants["lossless"]), 1.0))
            print(f"  {photo.name}: " + ", ".join(
                f"{codec} q85 {default[codec][-1][0]} B" for codec in CODECS)
                + f", lossless WebP {default['lossless'][-1][0]} B", file=sys.stderr)
    finally:
        gateway.terminate()
        gateway.wait()
    print(f"{len(PHOTOS)} photographs, a 400x300 `cover` thumbnail of each.\n")
    print("| SSIM (luma) | photographs | " + " | ".join(CODECS.values()) + " |")
    print("|---|---|" + "---|" * len(CODECS))
    for target in TARGETS:
        sizes = {codec: [size_at(curve, target) for curve in curves[codec]] for codec in CODECS}
        common = [i for i in range(len(PHOTOS)) if all(sizes[c][i] for c in CODECS)]
        if not common:
            continue
        cells = []
        for codec in CODECS:
            median = statistics.median(sizes[codec][i] for i in common)
            ratio = statistics.median(sizes[codec][i] / sizes["jpeg"][i] for i in common)
            cells.append(f"{median / 1024:.1f} KiB" + ("" if codec == "jpeg" else f", {ratio:.0%}"))
        print(f"| {target} | {len(common)} | " + " | ".join(cells) + " |")
    print("\nMedian size over the photographs that reach the SSIM with every codec, and the median"
          " of each one's size relative to its JPEG.\n")
    print("At the default quality, 85:\n")
    print("| | median size | median SSIM |")
    print("|---|---|---|")
    for codec, label in list(CODECS.items()) + [("lossless", "WebP (lossless)")]:
        sizes = [size for size, _ in default[codec]]
        ssims = [ssim for _, ssim in default[codec]]
        print(f"| {label} | {statistics.median(sizes) / 1024:.1f} KiB |"
              f" {statistics.median(ssims):.4f} |")


main()
