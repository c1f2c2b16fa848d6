#!/usr/bin/env bash
# Copies the dashboard's third-party browser code (uPlot: a 50 KB canvas chart
# library, fast enough to redraw every second) from a clean, locked npm install
# into api/dashboard/static/vendor/, which the API serves. Run by .ci/setup.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
mkdir -p ../static/vendor
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css ../static/vendor/
cp node_modules/uplot/LICENSE ../static/vendor/uPlot.LICENSE
echo "dashboard vendor: $(ls ../static/vendor | tr '\n' ' ')"
