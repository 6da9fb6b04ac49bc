#!/usr/bin/env bash
# The proxy benchmark, end to end: installs nginx (+ echo module) and wrk from Debian if missing, creates the
# NeMo Evaluator 0.2.8 venv and the candidate stacks if missing, then measures direct / ours / the candidates /
# NeMo's proxy side by side and writes bench/proxy/RESULTS.md (+ RESULTS.json). Takes about 10 minutes.
# See bench/README.md.
#
#   bash bench/proxy/run.sh [bench.py options]     e.g. --duration 10, --concurrency 1 64
#
# Environment: PROXY_CMD    our proxy's command prefix (default: .venv/bin/python -m orchestrator.runtime.proxy)
#              OURS_LABEL   its name in the report
#              NEMO_VENV    where the NeMo venv lives (default: bench/.venv-nemo)
#              WAIT_IDLE    first wait up to this many seconds for other processes to leave the CPU idle (default 0)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
nemo_venv="${NEMO_VENV:-$repo/bench/.venv-nemo}"
proxy_cmd="${PROXY_CMD:-$repo/.venv/bin/python -m orchestrator.runtime.proxy}"

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null \
    || [[ ! -f /usr/lib/nginx/modules/ngx_http_echo_module.so ]]; then
  echo "installing nginx, its echo module and wrk from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nginx-light libnginx-mod-http-echo wrk >/dev/null
fi

bash "$repo/bench/setup-nemo-venv.sh" "$nemo_venv"

# shellcheck disable=SC2086  # PROXY_CMD is a command prefix: split it on purpose
if ! (cd "$repo" && $proxy_cmd --help >/dev/null 2>&1); then
  echo "our proxy does not start: '$proxy_cmd --help' failed." >&2
  echo "Install the project first (cd $repo && .venv/bin/pip install -e '.[host,dev]') or set PROXY_CMD." >&2
  exit 2
fi

# the candidate HTTP stacks (bench/proxy/stacks/) run on the same Python as ours
proxy_python="${proxy_cmd%% *}"
if ! "$proxy_python" -c "import aiohttp, granian, uvicorn, uvloop" 2>/dev/null; then
  echo "installing the candidate HTTP stacks (bench/requirements.txt) into $proxy_python"
  "$proxy_python" -m pip install -q -r "$repo/bench/requirements.txt"
fi

cd "$repo"
exec python3 "$here/bench.py" --proxy-cmd "$proxy_cmd" --ours-label "${OURS_LABEL:-orchestrator.runtime.proxy}" \
  --nemo-python "$nemo_venv/bin/python" --wait-idle "${WAIT_IDLE:-0}" "$@"
