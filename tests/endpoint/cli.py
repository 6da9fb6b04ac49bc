"""``python -m tests.endpoint --port N [--record FILE]``: run the endpoint until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tests.endpoint.script import load_script
from tests.endpoint.server import serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.endpoint", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port; default 0)")
    parser.add_argument("--model", default="test-model", help="the one model id served (default: test-model)")
    parser.add_argument("--record", type=Path, help="append every request to this JSONL file")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    parser.add_argument("--script", type=Path, help="scripted replies: a JSON file of rules (tests/endpoint/script.py)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds each chat/completions request waits before its answer is sent (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve in the foreground; prints ``listening on http://127.0.0.1:PORT`` once ready."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        script = load_script(args.script) if args.script else None
    except (OSError, ValueError) as error:
        print(f"error: --script: {error}", file=sys.stderr)
        return 2
    if args.delay < 0:
        print(f"error: --delay must be >= 0 seconds, not {args.delay}", file=sys.stderr)
        return 2
    server = serve(port=args.port, model=args.model, record=args.record, quiet=args.quiet, script=script,
                   delay=args.delay)
    try:
        print(f"listening on {server.url}", flush=True)
        stop.wait()
    finally:
        server.shutdown()
    return 0
