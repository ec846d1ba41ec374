#!/usr/bin/env bash
# How long a newcomer's first `scripts/run` takes: with an empty crate cache (CARGO_HOME) and
# target directory, from the command's start to the first 200 of /healthz. Prints the time,
# how many crates were downloaded, and cargo's own build time. Uses /tmp/first-run-* and
# removes them after.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/first-run-XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
start=$(date +%s)
CARGO_HOME="$work/cargo" CARGO_TARGET_DIR="$work/target" THUMBNAILIFY_LISTEN=127.0.0.1:18111 \
  THUMBNAILIFY_DATA_DIR="$work/data" scripts/run > "$work/log" 2>&1 &
pid=$!
until curl -sf http://127.0.0.1:18111/healthz >/dev/null 2>&1; do
  kill -0 $pid 2>/dev/null || { cat "$work/log"; exit 1; }
  sleep 1
done
echo "first answer after $(( $(date +%s) - start )) s;" \
  "$(grep -c Downloaded "$work/log") crates downloaded;" \
  "$(grep Finished "$work/log" | sed 's/^ *//')"
