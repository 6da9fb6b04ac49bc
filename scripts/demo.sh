#!/usr/bin/env bash
# The embedded default, end to end: start the reference endpoint (SmolLM2-135M-Instruct on
# llama.cpp) with compose, evaluate it on real benchmark data offline with the lm-eval image
# (HumanEval pass@1, IFBench instruction following), print the scores and the results.yml
# paths, stop the endpoint. `make demo` builds what is missing first.
#
#   env: DEMO_LIMIT (samples per task, default 10), REFERENCE_PORT (default 8000),
#        DEMO_OUT (default results/demo)
set -euo pipefail
cd "$(dirname "$0")/.."

START=$SECONDS
LIMIT=${DEMO_LIMIT:-10}
PORT=${REFERENCE_PORT:-8000}
OUT=${DEMO_OUT:-results/demo}
EVALS=.venv/bin/evals
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

rm -rf "$OUT/humaneval" "$OUT/ifbench"
say "HumanEval pass@1 on $LIMIT problems (completions endpoint, lm-eval image)"
# --offline: both tasks' data ships in the image, so the demo needs no network at all.
"$EVALS" run --offline --eval_type humaneval_offline --model_type completions --model_id "$MODEL" \
    --model_url "http://127.0.0.1:$PORT/v1/completions" --output_dir "$OUT/humaneval" \
    --overrides "config.params.limit_samples=$LIMIT,config.params.parallelism=2,config.params.max_new_tokens=256"

say "IFBench instruction following on $LIMIT prompts (chat endpoint, lm-eval image)"
"$EVALS" run --offline --eval_type ifbench --model_type chat --model_id "$MODEL" \
    --model_url "http://127.0.0.1:$PORT/v1/chat/completions" --output_dir "$OUT/ifbench" \
    --overrides "config.params.limit_samples=$LIMIT,config.params.parallelism=2,config.params.max_new_tokens=256"

say "done in $((SECONDS - START)) s; results:"
"$EVALS" show "$OUT/humaneval/results.yml" "$OUT/ifbench/results.yml"
echo "$OUT/humaneval/results.yml"
echo "$OUT/ifbench/results.yml"
