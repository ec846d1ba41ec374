"""What an SVG's and a PDF's thumbnail cost through the service, beside vipsthumbnail
(librsvg) for SVG and poppler's pdftoppm for PDF, on the same files.

Usage: documents.py GATEWAY_BINARY [WORK_DIR]   (default WORK_DIR: target/bench-corpus/documents)

The files: the fixtures' svg-shapes.svg (a small drawing) and pdf-page.pdf, and real
documents from Debian's packages, downloaded once: desktop-base's wallpapers (large SVG
drawings of many paths and gradients), adwaita-icon-theme's scalable icons (small ones),
and the manuals libtasn1-doc and shared-mime-info ship as PDF (text, fonts, vector
figures). Each is thumbnailed to fit in 400×400 as PNG (a PDF: its first page):

- through the service: GATEWAY_BINARY alone (embedded queue and store), one upload at a
  time, the time from the 202 to the final record (median of RUNS); this includes starting
  the renderer's child process, drawing, resizing, encoding and storing;
- bare: `vipsthumbnail FILE --size 400x400 -o OUT.png` for SVG, `pdftoppm -png -singlefile
  -f 1 -l 1 -scale-to 400 FILE OUT` for PDF, one process per file (median of RUNS wall
  time), and its peak RSS.

Each thumbnail is also compared with the peer's picture of the same file: the mean absolute
difference, 0–255 per channel, both composed on white.

Then the renderer alone: the peak RSS of the child process drawing the largest wallpaper
(the gateway binary started as the worker starts it).
"""

import glob
import io
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from PIL import Image, ImageChops, ImageStat
from process import post, thumbnail, timed, wait_final, wait_ready

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = pathlib.Path(sys.argv[1]).resolve()
WORK = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "target/bench-corpus/documents")
PORT = 18085
RUNS = 5


def corpus():
    WORK.mkdir(parents=True, exist_ok=True)
    root = WORK / "root"
    if not root.exists():
        for package in ("desktop-base", "adwaita-icon-theme", "libtasn1-doc", "shared-mime-info"):
            subprocess.run(["apt-get", "download", package], cwd=WORK, check=True,
                           capture_output=True)
        for deb in WORK.glob("*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    files = [ROOT / "tests/fixtures/svg-shapes.svg"]
    # The largest wallpaper of each theme, the three largest themes.
    themes = {}
    base = root / "usr/share/desktop-base"
    for svg in glob.glob(f"{base}/**/*.svg", recursive=True):
        svg = pathlib.Path(svg)
        theme = svg.relative_to(base).parts[0]
        if theme not in themes or svg.stat().st_size > themes[theme].stat().st_size:
            themes[theme] = svg
    files += sorted(themes.values(), key=lambda p: p.stat().st_size, reverse=True)[:3]
    icons = sorted(glob.glob(f"{root}/usr/share/icons/Adwaita/scalable/**/*.svg", recursive=True))
    files += [pathlib.Path(p) for p in icons[:2]]
    files.append(ROOT / "tests/fixtures/pdf-page.pdf")
    files += sorted(pathlib.Path(p) for p in glob.glob(f"{root}/usr/share/doc/**/*.pdf", recursive=True))
    return files


def media_type(path):
    return "application/pdf" if path.suffix == ".pdf" else "image/svg+xml"


def difference(ours_png, theirs_path):
    """Mean absolute difference, 0–255 per channel, between two pictures composed on white
    (the peer's resized to ours when they differ by rounding)."""
    def on_white(image):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    ours_image = on_white(Image.open(io.BytesIO(ours_png)))
    theirs = on_white(Image.open(theirs_path))
    if theirs.size != ours_image.size:
        theirs = theirs.resize(ours_image.size, Image.BILINEAR)
    return sum(ImageStat.Stat(ImageChops.difference(ours_image, theirs)).mean) / 3


def ours(files):
    data = tempfile.mkdtemp(prefix="thumbnailify-svg-")
    pathlib.Path(data, "config.yaml").write_text(
        f"listen: 127.0.0.1:{PORT}\ndata_dir: {data}\ndedup: false\n")
    gateway = subprocess.Popen([BINARY], cwd=data, env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    results = {}
    try:
        wait_ready(PORT)
        for path in files:
            body = path.read_bytes()
            times = []
            for _ in range(RUNS):
                media_id = post(PORT, "sizes=400x400&format=png", body, media_type(path))
                started = time.monotonic()
                record = wait_final(PORT, media_id)
                times.append(time.monotonic() - started)
            picture = thumbnail(PORT, media_id) if record["state"] == "Completed" else None
            results[path] = (statistics.median(times), record, picture)
    finally:
        gateway.terminate()
        gateway.wait()
        shutil.rmtree(data, ignore_errors=True)
    return results


def peer(path, out):
    if path.suffix == ".pdf":
        command = ["pdftoppm", "-png", "-singlefile", "-f", "1", "-l", "1", "-scale-to", "400",
                   str(path), str(out.with_suffix(""))]
    else:
        command = ["vipsthumbnail", str(path), "--size", "400x400", "-o", str(out)]
    runs = [timed(command) for _ in range(RUNS)]
    if any(wall is None for wall, _ in runs):
        return None, None
    return statistics.median(w for w, _ in runs), max(r for _, r in runs)


def renderer_rss(path):
    request = json.dumps({
        "media_type": media_type(path),
        "variants": [{"name": "400x400", "size": "400x400", "fit": "contain", "format": "png",
                      "quality": 85, "enlarge": True, "lossless": False, "gravity": "centre",
                      "focus": None, "color": "srgb"}],
        "limits": {}, "documents": {},
    })
    run = subprocess.run(["/usr/bin/time", "-f", "%M", str(BINARY), "--render-document",
                          request, str(path)], capture_output=True)
    lines = run.stderr.decode().strip().splitlines()
    return int(lines[-1]) if run.returncode == 0 and lines else None


files = corpus()
served = ours(files)
out = pathlib.Path(tempfile.mkdtemp()) / "out.png"
print("| file | bytes | size | ours, upload to final (median of 5) | peer | peer wall | peer peak RSS | difference from the peer's |")
print("|---|---:|---|---:|---|---:|---:|---:|")
for path in files:
    wall, record, picture = served[path]
    vwall, vrss = peer(path, out)
    who = "pdftoppm" if path.suffix == ".pdf" else "vipsthumbnail"
    state = record["state"]
    size = f"{record.get('width')}×{record.get('height')}" if state == "Completed" else state
    vtext = f"{vwall * 1000:.0f} ms" if vwall is not None else "fails"
    vrsstext = f"{vrss / 1024:.0f} MiB" if vrss is not None else "—"
    name = f"{path.parent.parent.parent.parent.name}/{path.name}" if "desktop-base" in str(path) else path.name
    apart = f"{difference(picture, out):.2f}" if picture is not None and vwall is not None else "—"
    print(f"| {name} | {path.stat().st_size} | {size} | {wall * 1000:.0f} ms | {who} | {vtext} | {vrsstext} | {apart} |")
print()
for suffix in (".svg", ".pdf"):
    largest = max((f for f in files if f.suffix == suffix), key=lambda p: p.stat().st_size)
    rss = renderer_rss(largest)
    print(f"The renderer's child process drawing {largest.name} in 400×400: peak RSS "
          f"{rss / 1024:.0f} MiB." if rss else "The renderer's peak RSS could not be read.")
