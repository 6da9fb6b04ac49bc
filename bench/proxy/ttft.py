"""Time to first token through the proxy, for streamed answers: direct to the endpoint vs through ours, at
concurrency 1, interleaved request by request. Writes bench/proxy/TTFT.md (see bench/README.md).

    python3 bench/proxy/ttft.py [--requests 400] [--gap-ms 20]

The endpoint is one single-process nginx whose answer is a server-sent event stream (echo module): the head and
the first event at once, then, ``--gap-ms`` later, a second event and ``[DONE]``. The client is a raw asyncio
socket client on one keep-alive connection per target; time to first token is from writing the request to
receiving the first byte of the first event, time to the end until the chunked body's terminator. Every request
body is distinct, so the proxy's cache never answers. Standard library only; our proxy runs from the project's
venv with its default chain and processes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from processes import HOST, Process, free_port, version_of, wait_for_line, wait_for_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIRST = 'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"The"}}]}'
SECOND = ('data: {"choices":[{"index":0,"delta":{"content":" answer is 4."},"finish_reason":"stop"}],'
          '"usage":{"prompt_tokens":60,"completion_tokens":5,"total_tokens":65}}')


def nginx_config(work: Path, port: int, gap_ms: int) -> Path:
    """nginx streaming one SSE answer per POST: the first event at once, the rest ``gap_ms`` later."""
    def quoted(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "\\n\\n'"

    config = f"""
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{
    listen {HOST}:{port};
    location / {{
      default_type text/event-stream;
      echo_read_request_body;
      echo -n {quoted(FIRST)};
      echo_flush;
      echo_sleep {gap_ms / 1000:.3f};
      echo -n {quoted(SECOND)};
      echo -n {quoted('data: [DONE]')};
    }}
  }}
}}
"""
    path = work / "nginx-ttft.conf"
    path.write_text(config)
    return path


class Client:
    """One keep-alive connection; ``ask`` returns (seconds to the first event, seconds to the end)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def ask(self, number: int) -> tuple[float, float]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        body = json.dumps({"model": "bench-model", "stream": True,
                           "messages": [{"role": "user", "content": f"ttft request {number}: what is 2+2?"}]}).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {HOST}:{self.port}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n").encode()
        started = time.perf_counter()
        self.writer.write(head + body)
        received = b""
        first = 0.0
        while True:
            data = await self.reader.read(65536)
            if not data:
                raise RuntimeError("connection closed mid-answer")
            received += data
            if not first and b"data:" in received:
                first = time.perf_counter() - started
            if received.endswith(b"0\r\n\r\n") and b"[DONE]" in received:
                break
        if not received.startswith(b"HTTP/1.1 200") or b"chunked" not in received.lower():
            raise RuntimeError(f"unexpected answer: {received[:200]!r}")
        return first, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


async def measure(targets: dict[str, int], requests: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    clients = {name: Client(port) for name, port in targets.items()}
    results: dict[str, dict[str, list[float]]] = {name: {"first": [], "end": []} for name in targets}
    for number in range(warmup + requests):
        order = list(clients.items()) if number % 2 == 0 else list(reversed(clients.items()))
        for name, client in order:  # interleaved, alternating who goes first
            first, end = await client.ask(number * 10 + len(name))
            if number >= warmup:
                results[name]["first"].append(first * 1000)
                results[name]["end"].append(end * 1000)
    for client in clients.values():
        if client.writer is not None:
            client.writer.close()
    return results


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace, info: dict[str, str]) -> str:
    lines = ["# Time to first token through the proxy (streamed answers)", "",
             "Written by `python3 bench/proxy/ttft.py` (bench/README.md explains the method). One run; compare "
             "within it.",
             "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in info.items()]
    lines += ["", f"Concurrency 1, {args.requests} requests per target after {args.warmup} warm-up ones, interleaved; "
              f"the endpoint sends the first event at once and the rest {args.gap_ms} ms later.", "",
              "| target | TTFT p50 | p90 | p99 | mean | to the end p50 |", "|---|---:|---:|---:|---:|---:|"]
    for name, values in results.items():
        first, end = values["first"], values["end"]
        lines.append(f"| {name} | {statistics.median(first):.3f} ms | {percentile(first, 0.9):.3f} ms | "
                     f"{percentile(first, 0.99):.3f} ms | {statistics.fmean(first):.3f} ms | "
                     f"{statistics.median(end):.3f} ms |")
    added = statistics.median(results["ours"]["first"]) - statistics.median(results["direct"]["first"])
    verdict = "PASS" if added < 1.0 else "FAIL"
    lines += ["", "## Goal (issue 13)", "", "| Goal | Measured | Result |", "|---|---|---|",
              f"| streaming adds < 1 ms to time to first token at concurrency 1 | TTFT p50 +{added:.3f} ms "
              f"(ours {statistics.median(results['ours']['first']):.3f} vs direct "
              f"{statistics.median(results['direct']['first']):.3f} ms) | **{verdict}** |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per target (default 400)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests per target first (default 50)")
    parser.add_argument("--gap-ms", type=int, default=20, help="ms between the first event and the rest (default 20)")
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"), help="the Python running our proxy")
    parser.add_argument("--out", type=Path, default=HERE / "TTFT.md")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ttft-", dir=HERE / "work" if (HERE / "work").is_dir() else None))
    endpoint_port, proxy_port = free_port(), free_port()
    processes: list[Process] = []
    try:
        nginx = Process("nginx", ["nginx", "-c", str(nginx_config(work, endpoint_port, args.gap_ms))],
                        work / "nginx.log")
        processes.append(nginx)
        wait_for_port(nginx, endpoint_port)
        proxy = Process("ours", [args.python, "-m", "orchestrator.runtime.proxy", "--upstream",
                                 f"http://{HOST}:{endpoint_port}/v1/chat/completions", "--port", str(proxy_port),
                                 "--output-dir", str(work / "ours")], work / "ours.log", env={**os.environ})
        processes.append(proxy)
        wait_for_line(proxy, "proxy listening on")
        results = asyncio.run(measure({"direct": endpoint_port, "ours": proxy_port}, args.requests, args.warmup))
    finally:
        for process in reversed(processes):
            process.stop()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    info = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
            "our proxy": f"orchestrator.runtime.proxy, default chain and processes, repository {commit or '?'}",
            "nginx": version_of(["nginx", "-v"]), "load at start (1 min)": f"{os.getloadavg()[0]:.2f}"}
    text = report(results, args, info)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
