"""``python -m tests.hub --root DIR [--build] [--port N] [--gated ID --token-env VAR]``: serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from tests.hub.server import serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.hub", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="the directory holding datasets/<org>/<name>/...")
    parser.add_argument("--build", action="store_true", help="first write the test repositories (tests/hub/repos.py)")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port; default 0)")
    parser.add_argument("--gated", action="append", default=[], metavar="ORG/NAME", help="a gated repository (repeat)")
    parser.add_argument("--token-env", metavar="VAR", help="the environment variable holding the gated repos' token")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve in the foreground; prints ``listening on http://127.0.0.1:PORT`` once ready."""
    parser = _parser()
    args = parser.parse_args(argv)
    token = os.environ.get(args.token_env) if args.token_env else None
    if args.gated and not token:
        parser.error("--gated needs --token-env naming a set, non-empty environment variable")
    if args.build:
        from tests.hub.repos import build  # noqa: PLC0415 - needs pyarrow, so only with --build

        build(args.root)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server = serve(args.root, port=args.port, gated=args.gated, token=token, quiet=args.quiet)
    except ValueError as error:
        parser.error(str(error))
    try:
        print(f"listening on {server.url}", flush=True)
        stop.wait()
    finally:
        server.shutdown()
    return 0
