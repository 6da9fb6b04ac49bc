"""AIPerf's own overhead: the throughput it reports against an instant endpoint vs what wrk measures, in one run.

    python3 bench/aiperf/bench.py [--image wtaiperf/evals/aiperf:latest] [--concurrency 64] [--requests 3000]

One nginx (bench/proxy/processes.py: a fixed chat answer at once), then, at the same concurrency: wrk directly,
the aiperf image (`run_eval --eval_type aiperf_chat`, the adapter proxy off: AIPerf straight to nginx), wrk through
our adapter proxy with the aiperf image's chain (response_stats, endpoint), the aiperf image with its default proxy
on, and wrk directly again (the machine may have changed meanwhile). Writes bench/aiperf/RESULTS.md and
RESULTS.json. Standard library only; needs nginx with the echo module and wrk (bash bench/proxy/run.sh installs
them), docker and the image. Every process it starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "proxy"))

from cpu import machine_busy_ticks  # type: ignore[import-not-found]  # noqa: E402
from processes import HOST, Process, free_port, nginx_config, wait_for_line, wait_for_port  # type: ignore[import-not-found]  # noqa: E402

PATH = "/v1/chat/completions"
CHAIN = "interceptors:\n  - {name: response_stats}\n  - {name: endpoint}\n"


def wrk(url: str, *, concurrency: int, seconds: int) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s", "-s",
            str(HERE.parent / "proxy" / "post.lua"), url, "--", f"aiperf-bench-{time.time_ns()}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 120).stdout
    summary: dict[str, float] = json.loads(next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
                                           .removeprefix("WRK_JSON "))
    return {"requests_per_second": summary["requests"] / (summary["duration_us"] / 1e6),
            "p50_ms": summary["p50_us"] / 1000, "p99_ms": summary["p99_us"] / 1000,
            "errors": summary["status"] + summary["timeout"] + summary["read"]}


def aiperf(image: str, url: str, out: Path, *, concurrency: int, requests: int, proxy: bool) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    overrides = (f"config.params.extra.concurrency=[{concurrency}],config.params.limit_samples={requests},"
                 "config.params.max_new_tokens=16,config.params.extra.input_tokens=32")
    if not proxy:
        overrides += ",target.api_endpoint.adapter_config.enabled=false"
    argv = ["docker", "run", "--rm", "--network", "host", "-u", f"{os.getuid()}:{os.getgid()}",
            "-v", f"{out}:/workspace/results", image, "run_eval", "--eval_type", "aiperf_chat", "--model_id",
            "bench-model", "--model_url", url, "--model_type", "chat", "--output_dir", "/workspace/results",
            "--offline", "--overrides", overrides]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"aiperf run failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
    data = json.loads((out / f"concurrency_{concurrency}" / "profile_export_aiperf.json").read_text())
    return {"requests_per_second": data["request_throughput"]["avg"], "p50_ms": data["request_latency"]["p50"],
            "p99_ms": data["request_latency"]["p99"], "errors": data.get("error_request_count", {}).get("avg", 0),
            "requests": data["request_count"]["avg"], "container_seconds": round(wall, 1)}


def busy_share(action: object) -> tuple[dict[str, float], float]:
    """Run ``action`` and return its result and the machine's busy share of all CPUs meanwhile."""
    ticks, clock = machine_busy_ticks(), time.monotonic()
    result = action()  # type: ignore[operator]
    seconds = time.monotonic() - clock
    hz, cpus = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    return result, round((machine_busy_ticks() - ticks) / hz / seconds / cpus, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--image", default="evals/aiperf:latest")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3000, help="AIPerf's requests (wrk runs for --seconds)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    args = parser.parse_args()
    work = args.work.resolve()
    (work / "nginx-body").mkdir(parents=True, exist_ok=True)
    processes: list[Process] = []
    rows: list[dict[str, Any]] = []
    try:
        port = free_port()
        nginx = Process("nginx", ["nginx", "-c", str(nginx_config(work, port, free_port())), "-p", str(work)],
                        work / "nginx.log")
        processes.append(nginx)
        wait_for_port(nginx, port)
        direct = f"http://{HOST}:{port}{PATH}"
        (work / "chain.yml").write_text(CHAIN)
        proxy_port = free_port()
        proxy = Process("proxy", [sys.executable, "-m", "orchestrator.runtime.proxy", "--upstream", direct, "--port",
                                  str(proxy_port), "--output-dir", str(work / "proxy"), "--config",
                                  str(work / "chain.yml")], work / "proxy.log",
                        env={**os.environ, "PYTHONPATH": str(REPO)})
        processes.append(proxy)
        wait_for_line(proxy, f"proxy listening on http://{HOST}:{proxy_port}")
        proxied = f"http://{HOST}:{proxy_port}{PATH}"
        c, n, s = args.concurrency, args.requests, args.seconds
        steps = [
            ("wrk", "direct", lambda: wrk(direct, concurrency=c, seconds=s)),
            ("aiperf (image)", "direct", lambda: aiperf(args.image, direct, work / "aiperf-direct", concurrency=c,
                                                        requests=n, proxy=False)),
            ("wrk", "our proxy", lambda: wrk(proxied, concurrency=c, seconds=s)),
            ("aiperf (image)", "its own proxy", lambda: aiperf(args.image, direct, work / "aiperf-proxy",
                                                               concurrency=c, requests=n, proxy=True)),
            ("wrk", "direct (again)", lambda: wrk(direct, concurrency=c, seconds=s)),
        ]
        for client, path, action in steps:
            print(f"bench: {client} via {path} ...", flush=True)
            result, busy = busy_share(action)
            rows.append({"client": client, "path": path, "concurrency": c, "busy": busy, **result})
            print(f"bench:   {rows[-1]}", flush=True)
    finally:
        for process in reversed(processes):
            process.stop()
    write_results(rows, args)
    return 0


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    machine = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
               "platform": platform.platform(), "image": args.image, "concurrency": args.concurrency,
               "aiperf requests": args.requests, "wrk seconds": args.seconds}
    (HERE / "RESULTS.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    wrk_direct = [float(r["requests_per_second"]) for r in rows if r["client"] == "wrk" and "direct" in str(r["path"])]
    lines = ["# AIPerf's overhead against an instant endpoint (bench/aiperf/bench.py)", "",
             ", ".join(f"{k}: {v}" for k, v in machine.items()), "",
             "| client | path | requests/s | p50 ms | p99 ms | errors | machine busy | vs wrk direct |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    best = max(wrk_direct) if wrk_direct else 0.0
    for r in rows:
        rps = float(r["requests_per_second"])
        share = f"{rps / best:.1%}" if best else "-"
        lines.append(f"| {r['client']} | {r['path']} | {rps:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['errors']:g} | {r['busy']:.0%} | {share} |")
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
