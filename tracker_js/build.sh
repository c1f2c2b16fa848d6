#!/usr/bin/env bash
# Builds tracker_js/dist/attimo.js (one minified IIFE) from a clean, locked install.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run build
