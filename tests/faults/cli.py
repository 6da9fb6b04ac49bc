"""``python -m tests.faults --port N --plan SPEC``: run the fault-injecting endpoint until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tests.faults.plan import DEFAULT_PLAN, FaultPlan, PlanError
from tests.faults.server import serve_faulty


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port; default 0)")
    parser.add_argument(
        "--plan",
        default=DEFAULT_PLAN,
        help=f"faults per attempt and the fraction of requests they hit (default: {DEFAULT_PLAN}); 'none' for none",
    )
    parser.add_argument("--seed", type=int, default=0, help="which requests fall into which scenario (default 0)")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429 (default 1)")
    parser.add_argument(
        "--delay", type=float, default=10.0, help="seconds a 'timeout' attempt holds its answer (default 10)"
    )
    parser.add_argument("--match", help="fault only requests with this text in a JSON string of their body")
    parser.add_argument("--model", default="test-model", help="the one model id served (default: test-model)")
    parser.add_argument("--all-routes", action="store_true", help="fault every route, not only the inference ones")
    parser.add_argument("--record", type=Path, help="append every request (key, attempt, fault) to this JSONL file")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve in the foreground; prints ``listening on http://127.0.0.1:PORT`` once ready."""
    args = _parser().parse_args(argv)
    try:
        plan = FaultPlan.parse(args.plan, seed=args.seed, retry_after=args.retry_after, delay=args.delay,
                               match=args.match)
    except PlanError as error:
        print(f"error: --plan: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = serve_faulty(
        plan, port=args.port, model=args.model, all_routes=args.all_routes, record=args.record, quiet=args.quiet
    )
    try:
        only = "" if plan.match is None else f", only requests holding {plan.match!r}"
        print(f"listening on {server.url} (fault plan {plan.spec}, seed {plan.seed}{only})", flush=True)
        stop.wait()
    finally:
        server.shutdown()
    return 0
