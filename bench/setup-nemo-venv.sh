#!/usr/bin/env bash
# Create the venv that holds NeMo Evaluator 0.2.8, used only by the proxy benchmark as the comparison point.
# Usage: bash bench/setup-nemo-venv.sh [VENV_DIR]   (default: bench/.venv-nemo; does nothing if it already works)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${NEMO_VENV:-$here/.venv-nemo}}"
version="0.2.8"
python="${PYTHON:-python3}"

check() {
  "$venv/bin/python" - "$version" <<'PY' 2>/dev/null
import importlib.metadata
import sys

assert importlib.metadata.version("nemo-evaluator") == sys.argv[1]
from nemo_evaluator.adapters.adapter_config import AdapterConfig  # noqa: F401
from nemo_evaluator.adapters.server import _run_adapter_server  # noqa: F401
PY
}

if [[ -x "$venv/bin/python" ]] && check; then
  echo "nemo-evaluator $version ready in $venv"
  exit 0
fi
echo "creating $venv with nemo-evaluator==$version (about a minute)"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
"$venv/bin/python" -m pip install --quiet "nemo-evaluator==$version" 2>&1 | grep -v "is ignored: it is neither" || true
check || { echo "nemo-evaluator $version installed but its adapter server cannot be imported" >&2; exit 1; }
echo "nemo-evaluator $version ready in $venv"
