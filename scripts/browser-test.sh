#!/usr/bin/env bash
# Opens the demo's report in headless Chromium (Debian's `chromium`, installed here if missing), moves the frame
# player, and checks that the picture and the values change. Run by .ci/run after the Rust tests.
set -euo pipefail
cd "$(dirname "$0")/.."
xrl=${CARGO_TARGET_DIR:-target}/release/xrl

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium and chromium-driver for the browser test"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1; then
    echo "browser test: skipped (chromium could not be installed here)"
    exit 0
  fi
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$xrl" demo --out "$out/demo" --frames 0..6 >/dev/null
report="file://$out/demo/report.html"
dom() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$out/profile" \
    --virtual-time-budget=2000 --dump-dom "$1" 2>/dev/null
}
first=$(dom "$report#frame=0")
later=$(dom "$report#frame=4")
label() { grep -o 'id="label">[^<]*' <<<"$1" | head -1; }
src() { grep -o 'id="frame"[^>]*src="data:image/png;base64,[A-Za-z0-9+/]\{2000\}' <<<"$1" | head -1 || true; }
values() { grep -o 'id="values">.*</table>' <<<"$1" | head -1; }
fail=0
[[ "$(label "$first")" == *"frame 0 ·"* ]] || { echo "browser test: the player does not open at frame 0"; fail=1; }
[[ "$(label "$later")" == *"frame 4 ·"* ]] || { echo "browser test: moving the player did not reach frame 4"; fail=1; }
[[ -n "$(src "$later")" && "$(src "$first")" != "$(src "$later")" ]] || { echo "browser test: the picture did not change"; fail=1; }
[[ -n "$(values "$later")" && "$(values "$first")" != "$(values "$later")" ]] || { echo "browser test: the values did not change"; fail=1; }
evaluation() { grep -o '<table id="evaluation-table">.*</table>' <<<"$1" | head -1; }
[[ "$(evaluation "$first")" == *"random-map"* && "$(evaluation "$first")" == *"<th>ig</th>"* ]] \
  || { echo "browser test: the evaluation section has no table of methods beside the random map"; fail=1; }
[[ "$(grep -c 'alt="deletion.png" src="data:image/png;base64,' <<<"$first")" -ge 1 ]] \
  || { echo "browser test: the evaluation section shows no deletion plot"; fail=1; }
if [ "$fail" -ne 0 ]; then
  echo "browser: 0 passed, 1 failed"
  exit 1
fi
echo "browser: 1 passed, 0 failed"
