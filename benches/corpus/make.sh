#!/usr/bin/env bash
# Builds the benchmark corpus in target/bench-corpus (nothing of it is committed): real
# photographs from Debian's mate-backgrounds package (14 of them as they ship, in photos/),
# and every supported format derived from them with Pillow (installed from PyPI when absent), and JPEG XL, HEIC and AVIF with cjxl,
# heif-enc and avifenc (Debian's libjxl-tools, libheif-examples and libavif-bin, installed by
# scripts/bench). Idempotent: an existing corpus is kept.
# Usage: benches/corpus/make.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../target/bench-corpus"}
if [ -f "$out/.complete" ] && [ -d "$out/photos" ]; then
  exit 0
fi
python3 -c 'import PIL' 2>/dev/null || python3 -m pip install --quiet 'pillow>=10'
[ -f /usr/share/color/icc/ghostscript/a98.icc ] || apt-get install -y -qq ghostscript >/dev/null
work=$(mktemp -d)
chmod 755 "$work"  # apt-get download runs as _apt
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download mate-backgrounds >/dev/null && dpkg -x mate-backgrounds_*.deb root)
mkdir -p "$out"
python3 "$here/make.py" "$work/root/usr/share/backgrounds/mate" "$out"
# The photographs as they ship, one of each (benches/output_sizes.py compares codecs on them).
mkdir -p "$out/photos"
mate="$work/root/usr/share/backgrounds/mate"
cp "$mate"/nature/*.jpg "$mate/abstract/Elephants_3840x2160.jpg" \
  "$mate/desktop/GreenTraditional.jpg" "$out/photos/"
# JPEG XL by libjxl's encoder (Debian's libjxl-tools), lossy at its default effort; HEIC by
# libheif's heif-enc (libheif-examples), AVIF by libavif's avifenc (libavif-bin).
cjxl "$out/jpeg-4000x3000.jpg" "$out/jxl-4000x3000.jxl" -d 1 --lossless_jpeg=0 >/dev/null 2>&1
heif-enc -q 60 -o "$out/heic-4000x3000.heic" "$out/jpeg-4000x3000.jpg" >/dev/null 2>&1
avifenc -s 6 --min 20 --max 30 "$out/jpeg-4000x3000.jpg" "$out/avif-4000x3000.avif" >/dev/null 2>&1
touch "$out/.complete"
