"""Time to first token through the proxy, for streamed answers: direct to the endpoint vs through ours, at
concurrency 1, interleaved request by request; and the same for whole (not streamed) answers, as a yardstick.
Writes bench/proxy/TTFT.md (see bench/README.md).

    python3 bench/proxy/ttft.py [--requests 600] [--gap-ms 20]

The endpoint is one single-process nginx (echo module) on two ports: one answers every POST with a server-sent
event stream (the head and the first event at once, then, ``--gap-ms`` later, a second event and ``[DONE]``), the
other with one chat.completion JSON at once. Our proxy runs twice, in front of each, from the project's venv with
its default chain and processes. The client is a raw asyncio socket client on one keep-alive connection per
target; time to first token is from writing the request to receiving the first byte of the first event (for a
whole answer: the first byte of its body), time to the end until the whole answer. Every request body is distinct,
so the proxy's cache never answers; the first 200 requests of each proxy are written to its body logs (their
``max_records``), so the warm-up (default 250) covers them, as it does in the throughput benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from processes import ANSWER, HOST, Process, free_port, nginx_head, version_of, wait_for_line, wait_for_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIRST = 'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"The"}}]}'
SECOND = ('data: {"choices":[{"index":0,"delta":{"content":" answer is 4."},"finish_reason":"stop"}],'
          '"usage":{"prompt_tokens":60,"completion_tokens":5,"total_tokens":65}}')


def nginx_config(work: Path, port: int, gap_ms: int, whole_port: int | None = None) -> Path:
    """nginx streaming one SSE answer per POST: the first event at once, the rest ``gap_ms`` later; on
    ``whole_port``, one JSON answer at once."""
    def quoted(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "\\n\\n'"

    answer = ANSWER.replace("\\", "\\\\").replace("'", "\\'")
    whole = (f"server {{ listen {HOST}:{whole_port}; location / {{ default_type application/json; "
             f"return 200 '{answer}'; }} }}" if whole_port else "")
    config = nginx_head(work) + f"""
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
  {whole}
}}
"""
    path = work / "nginx-ttft.conf"
    path.write_text(config)
    return path


class Client:
    """One keep-alive connection; ``ask`` returns (seconds to the first event, seconds to the end)."""

    def __init__(self, port: int, *, stream: bool) -> None:
        self.port = port
        self.stream = stream
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def ask(self, number: int) -> tuple[float, float]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        body = json.dumps({"model": "bench-model", "stream": self.stream,
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
            head, _, body = received.partition(b"\r\n\r\n")
            if not first and (b"data:" in body if self.stream else body):
                first = time.perf_counter() - started
            if self.stream and received.endswith(b"0\r\n\r\n") and b"[DONE]" in received:
                break
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            if not self.stream and length and len(body) >= int(length[1]):
                break
        if not received.startswith(b"HTTP/1.1 200") or (self.stream and b"chunked" not in received.lower()):
            raise RuntimeError(f"unexpected answer: {received[:200]!r}")
        return first, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


async def measure(targets: dict[str, int], requests: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    clients = {name: Client(port, stream=name.endswith("streamed")) for name, port in targets.items()}
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
              f"the streaming endpoint sends the first event at once and the rest {args.gap_ms} ms later, the other "
              "its whole answer at once.", "",
              "| target | TTFT p50 | p90 | p99 | mean | to the end p50 |", "|---|---:|---:|---:|---:|---:|"]
    for name, values in results.items():
        first, end = values["first"], values["end"]
        lines.append(f"| {name} | {statistics.median(first):.3f} ms | {percentile(first, 0.9):.3f} ms | "
                     f"{percentile(first, 0.99):.3f} ms | {statistics.fmean(first):.3f} ms | "
                     f"{statistics.median(end):.3f} ms |")
    def p50(name: str) -> float:
        return statistics.median(results[name]["first"])

    added = p50("ours streamed") - p50("direct streamed")
    verdict = "PASS" if added < 1.0 else "FAIL"
    lines += ["", "## Goal (issue 13)", "", "| Goal | Measured | Result |", "|---|---|---|",
              f"| streaming adds < 1 ms to time to first token at concurrency 1 | TTFT p50 +{added:.3f} ms "
              f"(ours {p50('ours streamed'):.3f} vs direct {p50('direct streamed'):.3f} ms; a whole answer's first "
              f"byte: +{p50('ours whole') - p50('direct whole'):.3f} ms) | **{verdict}** |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="measured requests per target (default 600)")
    parser.add_argument("--warmup", type=int, default=250, help="unmeasured requests per target first (default 250)")
    parser.add_argument("--gap-ms", type=int, default=20, help="ms between the first event and the rest (default 20)")
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"), help="the Python running our proxy")
    parser.add_argument("--out", type=Path, default=HERE / "TTFT.md")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ttft-", dir=HERE / "work" if (HERE / "work").is_dir() else None))
    ports = {name: free_port() for name in ("direct streamed", "direct whole", "ours streamed", "ours whole")}
    processes: list[Process] = []
    try:
        config = nginx_config(work, ports["direct streamed"], args.gap_ms, ports["direct whole"])
        nginx = Process("nginx", ["nginx", "-c", str(config)], work / "nginx.log")
        processes.append(nginx)
        wait_for_port(nginx, ports["direct streamed"])
        for mode in ("streamed", "whole"):
            upstream = f"http://{HOST}:{ports['direct ' + mode]}/v1/chat/completions"
            proxy = Process(f"ours {mode}", [args.python, "-m", "orchestrator.runtime.proxy", "--upstream", upstream,
                                             "--port", str(ports["ours " + mode]), "--output-dir",
                                             str(work / f"ours-{mode}")], work / f"ours-{mode}.log", env={**os.environ})
            processes.append(proxy)
            wait_for_line(proxy, "proxy listening on")
        results = asyncio.run(measure(ports, args.requests, args.warmup))
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
