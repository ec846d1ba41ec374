"""Derives the benchmark corpus from the mate-backgrounds photographs.

Usage: make.py SOURCE_DIR OUT_DIR  (make.sh fetches SOURCE_DIR and calls this)

Two photographs are copied as they ship (progressive JPEGs of 5640x3172 and 3840x2160); the
rest are derived: baseline JPEGs of 4000x3000 and 6000x4000 (24 MP), PNG RGB and RGBA, GIF,
TIFF (LZW), BMP and lossy WebP, at the sizes the speed targets name; and two colour-managed
files, converted by LittleCMS (Pillow's ImageCms) with the profile embedded: an Adobe RGB
JPEG (ghostscript's a98.icc) and a ProPhoto PNG (ghostscript's rommrgb.icc), so that the
service benchmark converts colours as the peers it is compared with do.
"""

import io
import os
import shutil
import sys

from PIL import Image, ImageCms, ImageDraw, ImageFilter, ImageOps

SRC, OUT = sys.argv[1], sys.argv[2]


def source(rel):
    image = Image.open(os.path.join(SRC, rel))
    image.load()
    return image.convert("RGB")


def fitted(image, size):
    """`image` cropped to the aspect ratio of `size` around its centre, then resized to it."""
    return ImageOps.fit(image, size, Image.LANCZOS)


def save(image, name, **options):
    image.save(os.path.join(OUT, name), **options)


def with_alpha(image):
    """An RGBA copy with a soft elliptical vignette in its alpha channel."""
    mask = Image.new("L", image.size, 0)
    w, h = image.size
    ImageDraw.Draw(mask).ellipse((w // 10, h // 10, w * 9 // 10, h * 9 // 10), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(min(w, h) // 20))
    rgba = image.convert("RGBA")
    rgba.putalpha(mask)
    return rgba


for rel, name in [
    ("abstract/Elephants_5640x3172.jpg", "jpeg-progressive-5640x3172.jpg"),
    ("abstract/Elephants_3840x2160.jpg", "jpeg-progressive-3840x2160.jpg"),
]:
    shutil.copyfile(os.path.join(SRC, rel), os.path.join(OUT, name))

elephants = source("abstract/Elephants_5640x3172.jpg")
jpeg_4000 = fitted(elephants, (4000, 3000))
save(jpeg_4000, "jpeg-4000x3000.jpg", quality=90)
save(fitted(elephants, (6000, 4000)), "jpeg-24mp-6000x4000.jpg", quality=90)
save(source("nature/TwoWings.jpg"), "jpeg-2560x1600.jpg", quality=85)

save(source("abstract/Elephants_3840x2160.jpg"), "png-rgb-3840x2160.png")
save(with_alpha(source("nature/LadyBird.jpg")), "png-rgba-2560x1600.png")
save(source("abstract/Elephants.jpg").quantize(256), "gif-1920x1080.gif")
save(source("nature/YellowFlower.jpg"), "tiff-lzw-2560x1600.tiff", compression="tiff_lzw")
save(source("nature/Storm.jpg"), "bmp-1920x1280.bmp")
save(jpeg_4000, "webp-4000x3000.webp", quality=80)
save(with_alpha(source("nature/Garden.jpg")), "webp-alpha-2560x1600.webp", quality=80)

GHOSTSCRIPT = "/usr/share/color/icc/ghostscript"
SRGB = ImageCms.createProfile("sRGB")
for icc_name, photo, name, options in [
    ("a98.icc", "nature/Aqua.jpg", "jpeg-a98-2560x1600.jpg", {"quality": 90}),
    ("rommrgb.icc", "nature/GreenMeadow.jpg", "png-prophoto-1280x1024.png", {}),
]:
    icc = open(os.path.join(GHOSTSCRIPT, icc_name), "rb").read()
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    converted = ImageCms.profileToProfile(source(photo), SRGB, profile, outputMode="RGB")
    save(converted, name, icc_profile=icc, **options)
