#!/usr/bin/env bash
# Regenerate the README's pictures: the HTML report in headless Chromium and page 4
# (findings) of the PDF. From the fixture scan by default; RESULT=path/to/result.json
# renders a saved result instead (a host-sized one: `make docs RESULT=out/result.json`).
# Run after `make setup`: `make docs`.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${RESULT:-}" ]; then
  .venv/bin/flightcheck report "$RESULT" -o "$work" --format html,pdf
else
  root=$(.venv/bin/python fixtures/build_rpmroot.py)
  .venv/bin/flightcheck scan "$root" -o "$work" -q --format html,pdf || true
fi
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$work/profile" --window-size=1280,1500 \
  --virtual-time-budget=5000 \
  --screenshot="docs/report-html.png" "file://$work/report.html" 2>/dev/null
pdftoppm -r 70 -png -f 4 -l 4 -singlefile "$work/report.pdf" docs/report-pdf-page
echo "docs/report-html.png docs/report-pdf-page.png"
