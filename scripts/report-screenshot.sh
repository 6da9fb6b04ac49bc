#!/usr/bin/env bash
# A PNG of a report, as the README shows it: `evals report` of a run or directory, then headless chromium's
# screenshot of the page from disk (no network).
#
#   scripts/report-screenshot.sh RUN_ID_OR_DIR OUT.png     # env: WIDTH (default 1400), HEIGHT (default 2000),
#                                                          #      EVALS (default: evals on PATH, else the
#                                                          #      repository's .venv python -m orchestrator.host.cli)
set -euo pipefail

die() { echo "report-screenshot: error: $*" >&2; exit 2; }
[ $# -eq 2 ] || die "usage: scripts/report-screenshot.sh RUN_ID_OR_DIR OUT.png"
SOURCE=$1
OUT=$2
case "$OUT" in *.png) ;; *) die "OUT must be a .png file: $OUT" ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
bash "$HERE/chromium.sh" >/dev/null

if [ -n "${EVALS:-}" ]; then
    read -r -a evals <<<"$EVALS"
elif command -v evals >/dev/null 2>&1; then
    evals=(evals)
else
    python=$HERE/../.venv/bin/python
    [ -x "$python" ] || python=python3
    evals=(env "PYTHONPATH=$HERE/..${PYTHONPATH:+:$PYTHONPATH}" "$python" -m orchestrator.host.cli)
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"${evals[@]}" report "$SOURCE" -o "$WORK/report.html" >/dev/null
OUT_ABS=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
# --no-sandbox: chromium refuses to start as root without it (CI runs as root).
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --disable-background-networking \
    --window-size="${WIDTH:-1400},${HEIGHT:-2000}" --screenshot="$OUT_ABS" "file://$WORK/report.html" \
    >"$WORK/chromium.log" 2>&1 || { cat "$WORK/chromium.log" >&2; die "chromium failed"; }
[ -s "$OUT_ABS" ] || { cat "$WORK/chromium.log" >&2; die "chromium wrote no $OUT"; }
echo "$OUT"
