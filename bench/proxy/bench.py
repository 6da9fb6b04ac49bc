"""Proxy benchmark: direct vs our adapter proxy vs NeMo Evaluator 0.2.8's, side by side in one run.

Standard library only; started by bench/proxy/run.sh (see bench/README.md). Everything listens on
127.0.0.1. Processes are started in their own sessions and stopped by PID (SIGTERM, then SIGKILL).

For each endpoint (nginx: ``instant`` answers at once, ``slow`` after 50 ms), each concurrency and each
target (direct; our proxy; ``floor``, a bare aiohttp pass-through; candidates: our proxy on a maintained
HTTP stack, bench/proxy/stacks/; NeMo's proxy) it runs wrk (one
thread, its own process) for a warm-up and then a timed measurement, with every request body distinct
so no cache can answer. Per cell it records requests/s, p50/p95/p99 latency, errors, the proxy's CPU
time per request (utime+stime from /proc/<pid>/stat of the proxy and its children, before and after
the measurement) and the CPU other processes used meanwhile. The cells are interleaved per
concurrency so that a change in machine load hits all targets alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from cpu import CLOCK_TICKS, busy_processes, cpu_ticks, machine_busy_ticks, own_ticks, settle, wait_for_idle
from processes import HOST, Process, free_port, nginx_config, version_of, wait_for_line, wait_for_port
from report import Cell, against_baseline, goals, judge_candidates, markdown

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PATH = "/v1/chat/completions"
CANDIDATES = {
    "aiohttp": HERE / "stacks" / "aiohttp_stack.py",
    "granian": HERE / "stacks" / "granian_stack.py",
    "uvicorn": HERE / "stacks" / "uvicorn_stack.py",
    "granian-ourpool": HERE / "stacks" / "granian_ourpool_stack.py",
}
"""Our proxy (same chain, config and processes) on a maintained HTTP stack: target name -> its launcher
(``granian-ourpool``: Granian's server with our own client, to tell the two halves apart)."""
TARGETS = ("direct", "ours", "floor", *CANDIDATES, "nemo", "baseline")
"""``baseline``: our proxy as another command runs it (``--baseline-cmd``: e.g. the code before a change, from a
copy elsewhere), measured only when named, beside ``ours`` (before and after in one run)."""
ENDPOINTS = ("instant", "slow")


def run_wrk(url: str, *, concurrency: int, seconds: float, prefix: str, cpus: str | None) -> dict[str, float]:
    """One wrk run (one thread, ``concurrency`` connections); its JSON summary."""
    argv = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(HERE / "post.lua"),
        url,
        "--",
        prefix,
    ]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 120)
    for line in result.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            parsed: dict[str, float] = json.loads(line.removeprefix("WRK_JSON "))
            return parsed
    raise RuntimeError(f"wrk failed (exit {result.returncode}): {result.stdout[-1000:]} {result.stderr[-1000:]}")


def measure(
    cell: Cell, url: str, *, proxy_pid: int | None, own_pids: list[int], args: argparse.Namespace, run_id: str
) -> None:
    """Warm up, let the proxy go quiet, then measure one cell (and what other processes used meanwhile)."""
    prefix = f"{run_id}-{cell.endpoint}-{cell.target}-c{cell.concurrency}"
    run_wrk(url, concurrency=cell.concurrency, seconds=args.warmup, prefix=prefix + "-warmup", cpus=args.loadgen_cpus)
    if proxy_pid is not None:
        settle(proxy_pid)
    before = cpu_ticks(proxy_pid) if proxy_pid is not None else 0
    machine_before, own_before, started = machine_busy_ticks(), own_ticks(own_pids), time.monotonic()
    summary = run_wrk(url, concurrency=cell.concurrency, seconds=args.duration, prefix=prefix, cpus=args.loadgen_cpus)
    machine_after, own_after, elapsed = machine_busy_ticks(), own_ticks(own_pids), time.monotonic() - started
    after = cpu_ticks(proxy_pid) if proxy_pid is not None else 0
    other = (machine_after - machine_before) - (own_after - own_before)
    cell.other_cores = max(0.0, other / CLOCK_TICKS / elapsed)
    cell.busy = busy_processes()
    cell.seconds = summary["duration_us"] / 1e6
    cell.requests = int(summary["requests"])
    cell.errors = {
        kind: int(summary[kind]) for kind in ("connect", "read", "write", "status", "timeout") if summary[kind]
    }
    cell.ok = max(0, cell.requests - cell.errors.get("status", 0))
    cell.rps = cell.ok / cell.seconds if cell.seconds else 0.0
    cell.p50_ms, cell.p95_ms, cell.p99_ms = (summary[f"{p}_us"] / 1000 for p in ("p50", "p95", "p99"))
    if proxy_pid is not None and cell.ok:
        cell.proxy_cpu_us_per_request = (after - before) / CLOCK_TICKS / cell.ok * 1e6
    if proxy_pid is not None:
        settle(proxy_pid)


def python_of(command: str) -> str:
    """The Python of a proxy command prefix: its first word after an ``env`` and its ``NAME=value`` words."""
    words = shlex.split(command)
    if words and words[0] == "env":
        words = [word for word in words[1:] if "=" not in word]
    return words[0]


def machine_info(args: argparse.Namespace) -> dict[str, str]:
    """What the run was measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    commit = version_of(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "orchestrator/runtime/proxy"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    ours_python = python_of(args.proxy_cmd)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "kernel": platform.release(),
        "python (ours)": version_of([ours_python, "--version"]),
        "ours uses": version_of([ours_python, "-c", "import importlib.metadata as m; print(', '.join("
                                 "f'{n} {m.version(n)}' for n in ('httptools', 'uvloop', 'orjson')))"]),
        "our processes": version_of([ours_python, "-c", "from orchestrator.runtime.proxy.server import "
                                     "default_processes as d; print(d(), '(the default here)')"]),
        "floor uses": version_of([ours_python, "-c", "import aiohttp; print('aiohttp', aiohttp.__version__)"]),
        "candidates use": version_of([ours_python, "-c", "import importlib.metadata as m; print(', '.join("
                                      "f'{n} {m.version(n)}' for n in ('aiohttp', 'granian', 'uvicorn', 'uvloop')))"]),
        "our proxy": f"{args.ours_label} (`{args.proxy_cmd}`), repository {commit}"
        + (" + uncommitted proxy changes" if dirty else ""),
        **({"baseline": f"{args.baseline_label} (`{args.baseline_cmd}`)"} if "baseline" in args.targets else {}),
        "nemo-evaluator": version_of(
            [args.nemo_python, "-c", "import importlib.metadata as m; print(m.version('nemo-evaluator'))"]
        ),
        "nginx": version_of(["nginx", "-v"]),
        "wrk": version_of(["wrk", "-v"]),
        "load generator CPUs": args.loadgen_cpus or "not pinned",
        "server CPUs": args.server_cpus or "not pinned",
    }


def start_all(args: argparse.Namespace, work: Path,
              processes: list[Process]) -> tuple[dict[tuple[str, str], str], dict[str, int]]:
    """nginx, then the proxies in front of each endpoint, each added to ``processes`` as it starts (so the caller
    stops them even when a later one fails to start); returns URLs and proxy PIDs."""
    urls: dict[tuple[str, str], str] = {}
    pids: dict[str, int] = {}
    pin = ["taskset", "-c", args.server_cpus] if args.server_cpus else []
    ports = {"instant": free_port(), "slow": free_port()}
    (work / "nginx-body").mkdir(exist_ok=True)
    config = nginx_config(work, ports["instant"], ports["slow"])
    nginx = Process("nginx", [*pin, "nginx", "-c", str(config), "-p", str(work)], work / "nginx.log")
    processes.append(nginx)
    for endpoint, port in ports.items():
        wait_for_port(nginx, port)
        upstream = f"http://{HOST}:{port}{PATH}"
        urls[(endpoint, "direct")] = upstream
        python = python_of(args.proxy_cmd)
        commands = {
            "ours": shlex.split(args.proxy_cmd),
            "floor": [python, str(HERE / "passthrough.py")],
            "baseline": shlex.split(args.baseline_cmd or ""),
            **{name: [python, str(launcher)] for name, launcher in CANDIDATES.items()},
        }
        # the candidates import the proxy from this repository, as ``-m`` does for ours (run from it)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        for target, command in commands.items():
            if target not in args.targets:
                continue
            port_of_target = free_port()
            argv = [*pin, *command, "--upstream", upstream, "--port", str(port_of_target)]
            name = f"{target}-{endpoint}"
            proxy = Process(name, [*argv, "--output-dir", str(work / name)], work / f"{name}.log", env=env)
            processes.append(proxy)
            wait_for_line(proxy, f"proxy listening on http://{HOST}:{port_of_target}")
            urls[(endpoint, target)] = f"http://{HOST}:{port_of_target}{PATH}"
            pids[name] = proxy.pid
        if "nemo" in args.targets:
            nemo_port = free_port()
            argv = [*pin, args.nemo_python, str(HERE / "nemo_proxy.py"), upstream, str(nemo_port)]
            env = {**os.environ, "ADAPTER_HOST": HOST}
            nemo = Process(
                f"nemo proxy ({endpoint})",
                [*argv, str(work / f"nemo-{endpoint}")],
                work / f"nemo-{endpoint}.log",
                env=env,
            )
            processes.append(nemo)
            wait_for_port(nemo, nemo_port)
            urls[(endpoint, "nemo")] = f"http://{HOST}:{nemo_port}{PATH}"
            pids[f"nemo-{endpoint}"] = nemo.pid
    return urls, pids


def run(args: argparse.Namespace) -> tuple[list[Cell], dict[str, str], list[Cell]]:
    """Start everything, measure every cell, stop everything: the best round of each cell, the machine, and every
    round of every cell."""
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    info = machine_info(args)
    load = wait_for_idle(args.wait_idle)
    info["load at start"] = (
        f"{load:.2f} cores busy before anything started; {', '.join(busy_processes()) or 'no builds'}"
    )
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    best: dict[tuple[str, int, str], Cell] = {}
    measured: list[Cell] = []
    processes: list[Process] = []
    try:
        urls, pids = start_all(args, work, processes)
        own_pids = [process.pid for process in processes]
        for round_number in range(1, args.rounds + 1):
            for endpoint in args.endpoints:
                for concurrency in args.concurrency:
                    for target in args.targets:
                        cell = Cell(endpoint, concurrency, target, round=round_number)
                        measured.append(cell)
                        measure(
                            cell,
                            urls[(endpoint, target)],
                            proxy_pid=pids.get(f"{target}-{endpoint}"),
                            own_pids=own_pids,
                            args=args,
                            run_id=f"{run_id}r{round_number}",
                        )
                        for process in processes:
                            process.check_alive()
                        print(_progress(cell), flush=True)
                        previous = best.get((endpoint, concurrency, target))
                        if previous is None or cell.rps > previous.rps:
                            best[(endpoint, concurrency, target)] = cell
    finally:
        for process in reversed(processes):
            process.stop()
    return list(best.values()), info, measured


def _progress(cell: Cell) -> str:
    cpu = f"{cell.proxy_cpu_us_per_request:7.0f} us/req" if cell.proxy_cpu_us_per_request is not None else " " * 14
    errors = f" errors {cell.errors}" if cell.errors else ""
    return (
        f"{cell.endpoint:>7} c={cell.concurrency:<3} {cell.target:>15}: {cell.rps:8.0f} req/s  "
        f"p50 {cell.p50_ms:8.2f} ms  p95 {cell.p95_ms:8.2f}  p99 {cell.p99_ms:8.2f}  {cpu}"
        f"  other load {cell.other_cores:4.2f} cores{errors}"
    )


def _parser() -> argparse.ArgumentParser:
    default_cmd = f"{REPO / '.venv' / 'bin' / 'python'} -m orchestrator.runtime.proxy"
    parser = argparse.ArgumentParser(prog="bench/proxy/bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--proxy-cmd", default=default_cmd, help=f"our proxy's command prefix (default: {default_cmd})")
    parser.add_argument(
        "--ours-label", default="orchestrator.runtime.proxy", help="what to call our proxy in the report"
    )
    parser.add_argument("--nemo-python", default=str(REPO / "bench" / ".venv-nemo" / "bin" / "python"))
    parser.add_argument("--baseline-cmd", help="the `baseline` target's command prefix: our proxy as it was before "
                        "a change, e.g. 'env PYTHONSAFEPATH=1 PYTHONPATH=/tmp/before .venv/bin/python -m "
                        "orchestrator.runtime.proxy' (a copy of orchestrator/ in /tmp/before)")
    parser.add_argument("--baseline-label", default="before", help="what to call the baseline in the report")
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per cell (default 6)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell (default 2)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--rounds", type=int, default=1, help="measure every cell N times, keep the best (default 1)")
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, help="first wait up to N s for other processes to leave the CPU idle"
    )
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=[t for t in TARGETS if t != "baseline"])
    parser.add_argument("--endpoints", nargs="+", choices=ENDPOINTS, default=list(ENDPOINTS))
    parser.add_argument("--loadgen-cpus", help="taskset CPU list for wrk (default: not pinned)")
    parser.add_argument("--server-cpus", help="taskset CPU list for nginx and the proxies (default: not pinned)")
    parser.add_argument("--work", default=str(HERE / "work"), help="logs and proxy output dirs (emptied first)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"), help="the markdown report to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the report (markdown + JSON beside it)."""
    args = _parser().parse_args(argv)
    if "direct" not in args.targets:
        args.targets.insert(0, "direct")
    if args.baseline_cmd and "baseline" not in args.targets:
        args.targets.append("baseline")
    if "baseline" in args.targets and not args.baseline_cmd:
        print("bench/proxy/bench.py: the baseline target needs --baseline-cmd", file=sys.stderr)
        return 2
    cells, info, measured = run(args)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown(cells, info, args, measured))
    raw = {"info": info, "cells": [asdict(cell) for cell in cells], "rounds": [asdict(cell) for cell in measured]}
    output.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"wrote {output} and {output.with_suffix('.json')}")
    for goal in goals(cells):
        verdict = "n/a" if goal.passed is None else ("PASS" if goal.passed else "FAIL")
        print(f"{verdict:>4}  {goal.text}: {goal.measured}")
    for judged in judge_candidates(cells):
        print(f"{judged.verdict:>4}  candidate {judged.target}: {judged.summary}")
    for row in against_baseline(measured):
        print(f"ours / baseline, {row.endpoint} c={row.concurrency}: {row.rps:.1%} of the throughput, "
              f"{row.cpu:.1%} CPU per request (medians over {row.rounds} rounds)")
    return 0


if __name__ == "__main__":
    # SIGTERM (kill PID) unwinds like Ctrl-C, so the servers and proxies are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
