#!/usr/bin/env bash
# The embedded default, end to end: start the reference endpoint (SmolLM2-135M-Instruct on
# llama.cpp) with compose, run the demo suite (examples/demo-suite.yml) on it offline: HumanEval
# pass@1 and IFBench with the lm-eval image, and VLMEvalKit's OCRBench sample where that image is
# built; print the table tasks x models and write summary.yml; stop the endpoint. `make demo`
# builds what is missing first.
#
#   env: DEMO_LIMIT (samples per task, default 10), REFERENCE_PORT (default 8000),
#        DEMO_OUT (default results/demo), EVALS and PYTHON (default .venv/bin/evals, .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

START=$SECONDS
LIMIT=${DEMO_LIMIT:-10}
PORT=${REFERENCE_PORT:-8000}
OUT=${DEMO_OUT:-results/demo}
EVALS=${EVALS:-.venv/bin/evals}
PYTHON=${PYTHON:-.venv/bin/python}
say() { echo "demo: [$((SECONDS - START))s] $*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

if command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    [ "$(id -u)" -eq 0 ] || die "no docker-compose: install it (apt-get install docker-compose) and rerun"
    say "installing docker-compose (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    COMPOSE=(docker-compose)
fi

if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
    die "port $PORT is taken: stop what listens there or set REFERENCE_PORT"
fi

export REFERENCE_PORT=$PORT
say "starting the reference endpoint on 127.0.0.1:$PORT (${COMPOSE[*]} up -d reference-endpoint)"
"${COMPOSE[@]}" up -d --no-build reference-endpoint
stop() {
    say "stopping the reference endpoint"
    "${COMPOSE[@]}" down --timeout 5 >/dev/null 2>&1 || true
}
trap stop EXIT

deadline=$((SECONDS + 300))
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { "${COMPOSE[@]}" logs --tail 30 reference-endpoint; die "endpoint not healthy after 300 s"; }
    sleep 1
done
MODEL=$(python3 -c "import json, urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models'))['data'][0]['id'])")
say "endpoint healthy, serving $MODEL"

# The demo suite (examples/demo-suite.yml) with this endpoint's port and model id and DEMO_LIMIT samples per task;
# VLMEvalKit's OCRBench sample only where its image is built (the reference endpoint reads images with OCR).
SUITE="$OUT/demo-suite.yml"
mkdir -p "$OUT"
rm -rf "$OUT/suite"
WITH_VLM=1
docker image inspect "${EVALS_REGISTRY:+$EVALS_REGISTRY/}evals/vlmevalkit:latest" >/dev/null 2>&1 || WITH_VLM=0
"$PYTHON" - "$SUITE" "$PORT" "$MODEL" "$LIMIT" "$WITH_VLM" "$PWD" <<'EOF'
import sys
from pathlib import Path

import yaml

out, port, model, limit, with_vlm, repo = sys.argv[1:]
suite = yaml.safe_load(Path(repo, "examples", "demo-suite.yml").read_text())
suite["defaults"]["config"]["params"]["limit_samples"] = int(limit)
for entry in suite["models"]:
    entry["url"] = entry["url"].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    entry["model_id"] = model
for task in suite["tasks"]:
    if task.get("data_dir"):
        task["data_dir"] = str(Path(repo, "examples", task["data_dir"]).resolve())
if with_vlm != "1":
    suite["tasks"] = [t for t in suite["tasks"] if not t["eval_type"].startswith("vlmevalkit.")]
    suite["models"] = [m for m in suite["models"] if m["model_type"] != "vlm"]
Path(out).write_text(yaml.safe_dump(suite, sort_keys=False))
EOF
[ "$WITH_VLM" = 1 ] || say "the vlmevalkit image is not built: OCRBench left out (build it: scripts/build-image.sh vlmevalkit)"

say "suite $SUITE: HumanEval pass@1 (completions), IFBench (chat)$([ "$WITH_VLM" = 1 ] && echo ', OCRBench (vlm)'), $LIMIT samples each"
# Exit 1 when a pair failed: the table and summary.yml say which; the endpoint is stopped either way.
code=0
"$EVALS" run --suite "$SUITE" --output_dir "$OUT/suite" || code=$?
say "suite done in $((SECONDS - START)) s; summary: $OUT/suite/summary.yml"
rm -f "$OUT/report.html"
if "$EVALS" report "$OUT/suite" -o "$OUT/report.html" >/dev/null; then
    say "report: $OUT/report.html (one self-contained HTML file: open it in a browser, it needs no network)"
else
    say "no report was written (see the error above)"; code=1
fi
exit "$code"
