#!/usr/bin/env bash
# Minify the website script: tracker/assets/tracker.js -> tracker/static/js/tracker.js.
# tracker/assets/tracker.js.sha256 records the source's hash; a test fails when the build is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
src=tracker/assets/tracker.js
out=tracker/static/js/tracker.js
hash=$(sha256sum "$src" | cut -c1-16)
npx --yes terser@5.51.4 "$src" --compress passes=2 --mangle --ecma 5 \
    --output "$out"
# Which source the build came from; a test compares it with the source (kept out of
# the served file, where every byte counts against the size budget).
echo "$hash" >tracker/assets/tracker.js.sha256
raw=$(wc -c <"$out")
gz=$(gzip -9c "$out" | wc -c)
echo "$out: $raw bytes, $gz bytes gzipped (budget 2048)"
