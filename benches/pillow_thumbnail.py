"""Pillow's side of the core benchmark: `Image.thumbnail` of one file, in-process.

Usage: pillow_thumbnail.py FILE REPEAT BOX

Each run opens the file from memory, takes the first frame upright, fits it in BOX x BOX with
`Image.thumbnail` (its defaults: JPEG draft mode, reducing_gap 2.0, bicubic), and encodes it
as Thumbnailify does: PNG when the image has alpha, else JPEG at quality 85. Prints the median
milliseconds of REPEAT runs, after one warm-up run.
"""

import io
import statistics
import sys
import time

from PIL import Image

path, repeat, box = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()


def once():
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((box, box))
        out = io.BytesIO()
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            image.save(out, "PNG")
        else:
            image.convert("RGB").save(out, "JPEG", quality=85)
        return out


once()
times = []
for _ in range(repeat):
    start = time.perf_counter()
    once()
    times.append((time.perf_counter() - start) * 1000)
print(f"{statistics.median(times):.3f}")
