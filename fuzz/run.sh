#!/usr/bin/env bash
# Fuzzes Thumbnailify with libFuzzer (cargo fuzz), each target for SECONDS (default 600),
# seeded with the test fixtures (the metadata bombs among them: ICC, text, EXIF, comment and
# strip-table bombs of every format):
#   thumbnail    the worker's decode → resize → encode path, animated GIF and WebP frame by
#                frame among it (first byte: the media type)
#   video        the worker's FFmpeg probe and poster, then resize → encode (first byte: the
#                video type: mp4, quicktime, webm, matroska, avi)
#   upload_body  the gateway's streaming base64 decoder and JSON envelope parser
#   form         multipart bodies posted to a real gateway in the process (over loopback)
#   source       a source fetched from a loopback server answering the input (no redirect
#                followed: nothing but 127.0.0.1 is reached)
#   jxl_header   JPEG XL headers and files: the pixel and rendering limits, cut files
#   icc_profile  ICC profiles read and used to convert pixels (first byte: grey or colour),
#                seeded with the profiles Debian ships and the fixtures' own
#   svg          the SVG renderer in the process: structure bounds, usvg, resvg (seeded with
#                the SVG fixtures and the bombs)
#   pdf          the PDF renderer in the process: page bounds, hayro (seeded with the PDFs)
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (installed if absent). On a stable toolchain RUSTC_BOOTSTRAP=1 lets it
# pass its sanitizer flags. A crashing input lands in fuzz/artifacts/<target>/: copy it to
# tests/fuzz-regressions/<target>/ and `cargo test --test fuzz_regressions` replays it.
set -euo pipefail
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(thumbnail video upload_body form source jxl_header icc_profile svg pdf)
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1

# Seeds. The thumbnail target's first byte picks the media type, in the order of the images
# of common::media::ALL: jpeg, png, gif, webp, tiff, bmp, jxl, avif, heic.
mkdir -p corpus/thumbnail corpus/video corpus/upload_body corpus/form corpus/source \
  corpus/jxl_header corpus/icc_profile corpus/svg corpus/pdf
# Every SVG but the slow one, which is meant to outlast a time bound (the service's, in a
# child process; libFuzzer's in the process would stop at it).
find ../tests/fixtures -name '*.svg' ! -name 'hostile-svg-slow.svg' -exec cp {} corpus/svg/ \;
cp ../tests/fixtures/*.pdf corpus/pdf/
for file in ../tests/fixtures/*.jpg ../tests/fixtures/*.png ../tests/fixtures/*.gif \
            ../tests/fixtures/*.webp ../tests/fixtures/*.tiff ../tests/fixtures/*.bmp \
            ../tests/fixtures/*.jxl ../tests/fixtures/*.avif ../tests/fixtures/*.heic; do
  case $file in
    *.jpg) selector=0 ;; *.png) selector=1 ;; *.gif) selector=2 ;;
    *.webp) selector=3 ;; *.tiff) selector=4 ;; *.bmp) selector=5 ;; *.jxl) selector=6 ;;
    *.avif) selector=7 ;; *.heic) selector=8 ;;
  esac
  { printf "\\x0$selector"; cat "$file"; } > "corpus/thumbnail/$(basename "$file")"
done
for file in ../tests/fixtures/*.mp4 ../tests/fixtures/*.mov ../tests/fixtures/*.webm \
            ../tests/fixtures/*.mkv ../tests/fixtures/*.avi; do
  case $file in
    *.mp4) selector=0 ;; *.mov) selector=1 ;; *.webm) selector=2 ;; *.mkv) selector=3 ;;
    *.avi) selector=4 ;;
  esac
  { printf "\\x0$selector"; cat "$file"; } > "corpus/video/$(basename "$file")"
done
for file in ../tests/fixtures/small.png ../tests/fixtures/strip.jpg ../tests/fixtures/bomb-tiff.tiff; do
  { printf '\x4c'; base64 -w 76 "$file"; } > "corpus/upload_body/$(basename "$file").b64"
  { printf '\x07data:image/png;base64,'; base64 -w 0 "$file"; } > "corpus/upload_body/$(basename "$file").uri"
done
printf '\x07{"data": "iVBORw0KGgo=", "media_type": "image/png", "name": "a.png"}' \
  > corpus/upload_body/envelope.json
printf '\x03 {"name": null, "x": [1, {"y": "}"}], "media_type": "image/gif", "data": "R0lG\\/\\u004fODlh\\n"} ' \
  > corpus/upload_body/envelope-members.json

# Forms: two files and fields, a late field, and one that ends early.
form_part() { printf -- '--fuzzboundary\r\nContent-Disposition: form-data; name="%s"%s\r\n\r\n' "$1" "$2"; }
{ form_part sizes ''; printf '32x32\r\n'
  form_part image '; filename="a.png"'; cat ../tests/fixtures/small.png; printf '\r\n'
  form_part image '; filename="b.jpg"'; cat ../tests/fixtures/strip.jpg; printf '\r\n'
  form_part fit ''; printf 'cover\r\n--fuzzboundary--\r\n'; } > corpus/form/two-files
{ for i in 1 2 3 4 5 6; do form_part image "; filename=\"$i\""; printf 'x\r\n'; done
  printf -- '--fuzzboundary--\r\n'; } > corpus/form/tiny-parts
head -c 300 corpus/form/two-files > corpus/form/cut
# Sources: whole answers, chunked, cut, redirects, lies.
{ printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %s\r\n\r\n' \
    "$(stat -c %s ../tests/fixtures/small.png)"; cat ../tests/fixtures/small.png; } > corpus/source/png
{ printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n'
  head -c 16 ../tests/fixtures/strip.jpg; printf '\r\n0\r\n\r\n'; } > corpus/source/chunked
printf 'HTTP/1.1 302 Found\r\nLocation: /other\r\nContent-Length: 0\r\n\r\n' > corpus/source/redirect
printf 'HTTP/1.1 304 Not Modified\r\nLocation: /x\r\n\r\n' > corpus/source/not-modified
printf 'HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nGIF89a' > corpus/source/huge
# JPEG XL files, whole and cut.
for file in ../tests/fixtures/*.jxl; do
  cp "$file" corpus/jxl_header/
  head -c 3000 "$file" > "corpus/jxl_header/cut-$(basename "$file")"
done
# ICC profiles: those Debian ships (when installed), and the regression replays' own.
for file in /usr/share/color/icc/*.icc /usr/share/color/icc/*/*.icc \
            ../tests/fuzz-regressions/icc_profile/*; do
  [ -f "$file" ] || continue
  grey=0
  case $file in *[Gg]ray*|*gray*) grey=1 ;; esac
  { printf "\\x0$grey"; cat "$file"; } > "corpus/icc_profile/$(basename "$file")"
done

for target in "${targets[@]}"; do
  echo "== fuzzing $target for $seconds s"
  # -detect_leaks=0: jpeg-decoder's worker threads outlive a decode with their thread-local
  # state, which LeakSanitizer reports as a leak of ~100 bytes; memory errors, panics,
  # timeouts and memory blow-ups are still caught.
  cargo fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=1048576 -rss_limit_mb=2048 -timeout=20 \
    -detect_leaks=0 -print_final_stats=1
done
