"""``python -m orchestrator.runtime.proxy --upstream URL [--port P] --output-dir DIR [--config FILE]``.

Runs the adapter proxy in the foreground (for benchmarks and debugging) until SIGTERM/SIGINT.
With ``--process I/N`` it is one of the other processes of a proxy (started by the first): it reads
the config as one JSON line on stdin, prints ``ready`` once it listens, stops when stdin closes, and
then prints its totals as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from pathlib import Path

from orchestrator.runtime.proxy.http import new_event_loop
from orchestrator.runtime.proxy.server import Proxy
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.auxiliary import AUXILIARY_ROLES
from orchestrator.schema.errors import EvalsError
from orchestrator.schema.loading import load_model


async def _serve(proxy: Proxy, port: int, *, other_process: bool) -> None:
    await proxy.start(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if other_process:  # stop when the first process closes our stdin (or dies)
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), loop.call_soon_threadsafe(stop.set)),
                         daemon=True).start()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the first one stops us
        print("ready", flush=True)
    else:
        print(f"proxy listening on http://127.0.0.1:{proxy.port} -> {proxy.upstream_url}{proxy.via} "
              f"({proxy.processes} process{'es' if proxy.processes > 1 else ''})", flush=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.stop()
    if other_process:
        print(json.dumps(proxy.stats.snapshot()), flush=True)
    else:
        print(proxy.usage().model_dump_json(), file=sys.stderr)


def _process(value: str) -> tuple[int, int]:
    index, _, count = value.partition("/")
    try:
        parsed = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, got {value!r}") from None
    if not 0 < parsed[0] < parsed[1]:
        raise argparse.ArgumentTypeError(f"expected 0 < I < N, got {value!r}")
    return parsed


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run until stopped."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.runtime.proxy", description=__doc__)
    parser.add_argument("--upstream", required=True, help="full endpoint URL requests are forwarded to")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where cache/ and logs/ go")
    parser.add_argument("--config", type=Path, help="YAML adapter config ({enabled, processes, interceptors: [...]})")
    parser.add_argument("--processes", type=int, help="proxy processes (overrides the config's; default 2)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per attempt")
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("--role", choices=AUXILIARY_ROLES,
                        help="proxy an auxiliary endpoint (a judge, ...): cache/<role>/, "
                             "logs/proxy_<role>_*_bodies.jsonl, role <role> in logs/requests.jsonl")
    parser.add_argument("--process", type=_process, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.process:
            config = AdapterConfig.model_validate_json(sys.stdin.buffer.readline())
        else:
            config = load_model(AdapterConfig, args.config) if args.config else AdapterConfig()
            if args.processes is not None:
                config = AdapterConfig.model_validate({**config.model_dump(), "processes": args.processes})
    except EvalsError as err:
        print(f"proxy: error: {err}", file=sys.stderr)
        return err.exit_code
    except ValueError as err:
        print(f"proxy: error: {err}".splitlines()[0], file=sys.stderr)
        return 2
    proxy = Proxy(args.upstream, config, output_dir=args.output_dir, timeout=args.timeout,
                  max_retries=args.max_retries, process=args.process, role=args.role)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        try:
            runner.run(_serve(proxy, args.port, other_process=args.process is not None))
        except EvalsError as err:  # e.g. HTTPS_PROXY is not a proxy URL
            print(f"proxy: error: {err}", file=sys.stderr)
            return err.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
