"""Start NeMo Evaluator 0.2.8's adapter proxy with its default interceptor chain, in the foreground.

Runs inside the NeMo venv (bench/setup-nemo-venv.sh), never in the project's venv:

    ADAPTER_HOST=127.0.0.1 bench/.venv-nemo/bin/python bench/proxy/nemo_proxy.py UPSTREAM_URL PORT OUTPUT_DIR

The default chain is what ``AdapterConfig.get_validated_config`` returns for a run config without an
``adapter_config``: caching -> endpoint -> response_stats. It serves POST on any path with waitress
(128 threads) and forwards to the full upstream URL. SIGTERM runs its post-eval hooks and exits.
"""

from __future__ import annotations

import os
import sys

from nemo_evaluator.adapters.adapter_config import AdapterConfig
from nemo_evaluator.adapters.server import _run_adapter_server

MODEL = "bench-model"


def main(argv: list[str]) -> None:
    """Build the default config for ``UPSTREAM PORT OUTPUT_DIR`` and serve until SIGTERM."""
    if len(argv) != 3:
        raise SystemExit("usage: nemo_proxy.py UPSTREAM_URL PORT OUTPUT_DIR")
    upstream, port, output_dir = argv[0], int(argv[1]), argv[2]
    os.environ.setdefault("ADAPTER_HOST", "127.0.0.1")
    config = AdapterConfig.get_validated_config(
        {
            "config": {"output_dir": output_dir, "type": "bench"},
            "target": {"api_endpoint": {"url": upstream, "model_id": MODEL}},
        }
    )
    names = [interceptor.name for interceptor in config.interceptors if interceptor.enabled]
    print(f"nemo proxy chain: {' -> '.join(names)}", flush=True)
    _run_adapter_server(upstream, output_dir, config, port, MODEL)


if __name__ == "__main__":
    main(sys.argv[1:])
