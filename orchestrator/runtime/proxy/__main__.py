"""``python -m orchestrator.runtime.proxy --upstream URL [--port P] --output-dir DIR [--config FILE]``.

Runs the adapter proxy in the foreground (for benchmarks and debugging) until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from orchestrator.runtime.proxy.http import new_event_loop
from orchestrator.runtime.proxy.server import Proxy
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.errors import EvalsError
from orchestrator.schema.loading import load_model


async def _serve(proxy: Proxy, port: int) -> None:
    await proxy.start(port)
    print(f"proxy listening on http://127.0.0.1:{proxy.port} -> {proxy.upstream_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.stop()
    print(proxy.usage().model_dump_json(), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run until stopped."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.runtime.proxy", description=__doc__)
    parser.add_argument("--upstream", required=True, help="full endpoint URL requests are forwarded to")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where cache/ and logs/ go")
    parser.add_argument("--config", type=Path, help="YAML adapter config ({enabled, interceptors: [...]})")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per attempt")
    parser.add_argument("--max-retries", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        config = load_model(AdapterConfig, args.config) if args.config else AdapterConfig()
    except EvalsError as err:
        print(f"proxy: error: {err}", file=sys.stderr)
        return err.exit_code
    proxy = Proxy(args.upstream, config, output_dir=args.output_dir, timeout=args.timeout,
                  max_retries=args.max_retries)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(proxy, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
