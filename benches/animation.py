"""What an animated thumbnail costs through the service, beside vipsthumbnail on the same
files, and how much memory a long animation takes.

Usage: animation.py GATEWAY_BINARY [WORK_DIR]   (default WORK_DIR: target/bench-corpus/animation)

The files: the fixtures anim-photo.webp (8 frames) and anim-disposal.gif (9 frames, every
disposal), and two long ones FFmpeg makes once from its testsrc2 source, 480×270 at 25
frames a second for 20 s: a 500-frame GIF (palettegen/paletteuse, frames cropped to what
changed) and a 500-frame animated WebP (libwebp_anim, lossy). Each is thumbnailed to fit in
200×200 with `animated=true`, as animated WebP (`format=webp`, quality 80) and as GIF
(`format=gif`):

- through the service: GATEWAY_BINARY alone (embedded queue and store), one upload at a
  time, the time from the 202 to the final record (median of RUNS), and the gateway's peak
  RSS (VmHWM) after all of a file's runs, beside its RSS before the first (its growth is
  what the animation took);
- bare: `vipsthumbnail 'FILE[n=-1]' --size '200x200>' -o OUT.webp[Q=80]` (or `OUT.gif`), one
  process per file (median of RUNS wall time), and its peak RSS.

Each of our animations is also compared with vipsthumbnail's, frame by frame (both read
back by Pillow, composed on white): the mean absolute difference, 0–255 per channel, over
all frames.
"""

import io
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from PIL import Image, ImageChops, ImageSequence, ImageStat
from process import post, thumbnail, timed, wait_final, wait_ready

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = pathlib.Path(sys.argv[1]).resolve()
WORK = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "target/bench-corpus/animation")
PORT = 18086
RUNS = 3
SOURCE = "testsrc2=size=480x270:rate=25:duration=20"


def corpus():
    WORK.mkdir(parents=True, exist_ok=True)
    gif = WORK / "testsrc-500.gif"
    if not gif.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", SOURCE, "-frames:v", "500",
                        "-filter_complex", "split[a][b];[a]palettegen[p];[b][p]paletteuse",
                        str(gif)], check=True)
    webp = WORK / "testsrc-500.webp"
    if not webp.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", SOURCE, "-frames:v", "500",
                        "-c:v", "libwebp_anim", "-q:v", "75", "-loop", "0", str(webp)],
                       check=True)
    fixtures = ROOT / "tests/fixtures"
    return [fixtures / "anim-photo.webp", fixtures / "anim-disposal.gif", gif, webp]


def media_type(path):
    return "image/gif" if path.suffix == ".gif" else "image/webp"


def memory(pid):
    """The process's RSS and peak RSS (VmHWM), KiB."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def frames(data):
    """Every frame of an animation, composed on white."""
    out = []
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        for page in ImageSequence.Iterator(image):
            page = page.convert("RGBA")
            white = Image.new("RGBA", page.size, (255, 255, 255, 255))
            out.append(Image.alpha_composite(white, page).convert("RGB"))
    return out


def difference(ours, theirs_path):
    ours, theirs = frames(ours), frames(theirs_path)
    if len(ours) != len(theirs):
        return f"{len(ours)} frames, vips {len(theirs)}"
    total = 0.0
    for a, b in zip(ours, theirs):
        if b.size != a.size:
            b = b.resize(a.size, Image.BILINEAR)
        total += sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3
    return f"{total / len(ours):.2f}"


def ours(files, form):
    data = tempfile.mkdtemp(prefix="thumbnailify-anim-")
    pathlib.Path(data, "config.yaml").write_text(
        f"listen: 127.0.0.1:{PORT}\ndata_dir: {data}\ndedup: false\n")
    gateway = subprocess.Popen([BINARY], cwd=data, env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    results = {}
    try:
        wait_ready(PORT)
        for path in files:
            body = path.read_bytes()
            before, _ = memory(gateway.pid)
            times = []
            for _ in range(RUNS):
                media_id = post(PORT, f"animated=true&sizes=200x200&format={form}&quality=80", body,
                               media_type(path))
                started = time.monotonic()
                record = wait_final(PORT, media_id)
                times.append(time.monotonic() - started)
            _, peak = memory(gateway.pid)
            picture = thumbnail(PORT, media_id) if record["state"] == "Completed" else None
            results[path] = (statistics.median(times), record, picture, before, peak)
    finally:
        gateway.terminate()
        gateway.wait()
        shutil.rmtree(data, ignore_errors=True)
    return results


def vips(path, out):
    target = f"{out}[Q=80]" if out.suffix == ".webp" else str(out)
    # `>`: only ever shrink, as the service does without `enlarge`.
    command = ["vipsthumbnail", f"{path}[n=-1]", "--size", "200x200>", "-o", target]
    runs = [timed(command) for _ in range(RUNS)]
    if any(wall is None for wall, _ in runs):
        return None, None
    return statistics.median(w for w, _ in runs), max(r for _, r in runs)


files = corpus()
work = pathlib.Path(tempfile.mkdtemp())
print("| file | frames | out | ours, upload to final (median of 3) | gateway RSS before → peak | vipsthumbnail wall | its peak RSS | ours / its bytes | difference from vips's frames |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for form in ("webp", "gif"):
    served = ours(files, form)
    for path in files:
        wall, record, picture, before, peak = served[path]
        out = work / f"out.{form}"
        vwall, vrss = vips(path, out)
        thumb = record["thumbnails"][0] if record["state"] == "Completed" else {}
        count = thumb.get("frames", record.get("message", record["state"]))
        vtext = f"{vwall * 1000:.0f} ms" if vwall is not None else "fails"
        vrsstext = f"{vrss / 1024:.0f} MiB" if vrss is not None else "—"
        sizes = f"{len(picture)} / {out.stat().st_size}" if picture and vwall is not None else "—"
        apart = difference(picture, out) if picture and vwall is not None else "—"
        print(f"| {path.name} | {count} | {form} | {wall * 1000:.0f} ms | {before / 1024:.0f} → "
              f"{peak / 1024:.0f} MiB | {vtext} | {vrsstext} | {sizes} | {apart} |")
