#!/usr/bin/env bash
# Builds the benchmark corpus in target/bench-corpus (nothing of it is committed): real
# photographs from Debian's mate-backgrounds package, and every supported format derived from
# them with Pillow (installed from PyPI when absent). Idempotent: an existing corpus is kept.
# Usage: benches/corpus/make.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../target/bench-corpus"}
if [ -f "$out/.complete" ]; then
  exit 0
fi
python3 -c 'import PIL' 2>/dev/null || python3 -m pip install --quiet 'pillow>=10'
work=$(mktemp -d)
chmod 755 "$work"  # apt-get download runs as _apt
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download mate-backgrounds >/dev/null && dpkg -x mate-backgrounds_*.deb root)
mkdir -p "$out"
python3 "$here/make.py" "$work/root/usr/share/backgrounds/mate" "$out"
touch "$out/.complete"
