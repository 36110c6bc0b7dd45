#!/usr/bin/env bash
# Regenerate the README's pictures from the fixture scan: the HTML report in headless
# Chromium and page 4 (findings) of the PDF. Run after `make setup`: `make docs`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(.venv/bin/python fixtures/build_rpmroot.py)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/flightcheck scan "$root" -o "$work" -q --format html,pdf || true
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$work/profile" --window-size=1280,1500 \
  --screenshot="docs/report-html.png" "file://$work/report.html" 2>/dev/null
pdftoppm -r 70 -png -f 4 -l 4 -singlefile "$work/report.pdf" docs/report-pdf-page
echo "docs/report-html.png docs/report-pdf-page.png"
