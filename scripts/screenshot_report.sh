#!/bin/sh
# Render a run's report.html to a PNG with headless Chromium: scripts/screenshot_report.sh RUN_DIR OUT.png [WIDTH,HEIGHT]
set -eu
if [ "$#" -lt 2 ]; then
    echo "usage: $0 RUN_DIR OUT.png [WIDTH,HEIGHT]  (the report must exist: metricattack report RUN_DIR)" >&2
    exit 2
fi
report="$(cd "$1" && pwd)/report.html"
[ -f "$report" ] || { echo "$report: not found (run: metricattack report $1)" >&2; exit 2; }
out="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "chromium not found (apt-get install chromium)" >&2; exit 2; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --window-size="${3:-1200,3000}" --screenshot="$out" "file://$report" 2>/dev/null
echo "$out"
