#!/usr/bin/env bash
# Builds tracker_js/dist/attimo.js (the tracker) and dist/attimo-widgets.js
# (popups and strips, loaded by the tracker on demand), each one minified
# IIFE, from a clean, locked install; prints their gzipped sizes.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run build
for f in dist/attimo.js dist/attimo-widgets.js; do
  echo "$f: $(wc -c <"$f") bytes, $(gzip -9c "$f" | wc -c) gzipped"
done
