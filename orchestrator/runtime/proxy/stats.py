"""The response_stats interceptor: counts, tokens and latency; one JSONL record per request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

from orchestrator.runtime.proxy import jsoncodec
from orchestrator.runtime.proxy.types import Handler, ProxyRequest, ProxyResponse
from orchestrator.schema.results import LatencyStats, Usage


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


class Stats:
    """Everything the run asked of the endpoint; safe to read from another thread.

    The per-request records of one turn of the event loop are written together, at its end.
    """

    def __init__(self, records: Path | None) -> None:
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self._errors: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._file: IO[bytes] | None = records.open("ab", buffering=0) if records else None
        self._lines: list[bytes] = []

    def record(self, request: ProxyRequest, response: ProxyResponse, unfinished_reasoning: bool = False) -> None:
        """Account for one answered request (a streamed one once it has ended: usage from its final chunk)."""
        latency_ms = (time.monotonic() - request.started) * 1000
        stream = response.stream
        ttft_ms = round((stream.first_byte_at - request.started) * 1000, 3) if stream is not None else None
        if response.status != 200:
            usage = None
        elif stream is not None or response.content_type.startswith("text/event-stream"):
            usage = stream_usage(stream.raw if stream is not None else response.raw)
        else:
            usage = (response.json() or {}).get("usage")
        failed = response.status != 200 or (stream is not None and stream.error is not None)
        kinds = response.error_kinds if stream is None or stream.error is None else [*response.error_kinds,
                                                                                    stream.error]
        prompt = int(usage.get("prompt_tokens") or 0) if isinstance(usage, dict) else 0
        completion = int(usage.get("completion_tokens") or 0) if isinstance(usage, dict) else 0
        with self._lock:
            counts = self._counts  # item by item: Counter.update(**kwargs) is several times slower
            counts["requests"] += 1
            counts["cache_hits"] += response.cache_hit
            counts["upstream_attempts"] += response.attempts
            counts["retries"] += max(0, response.attempts - 1)
            counts["failed"] += failed
            counts["prompt_tokens"] += prompt
            counts["completion_tokens"] += completion
            counts["unfinished_reasoning"] += unfinished_reasoning
            if kinds:
                self._errors.update(kinds)
            self._latencies.append(latency_ms)
            if self._file is not None:
                record = {
                    "id": request.request_id, "path": request.path, "status": response.status,
                    "latency_ms": round(latency_ms, 3), "prompt_tokens": prompt, "completion_tokens": completion,
                    "cache_hit": response.cache_hit, "attempts": response.attempts, "errors": kinds,
                }
                if ttft_ms is not None:
                    record["ttft_ms"] = ttft_ms
                self._lines.append(jsoncodec.dumps(record) + b"\n")
                if len(self._lines) == 1:
                    asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the records not written yet."""
        with self._lock:
            if self._file is not None and self._lines:
                self._file.write(b"".join(self._lines))
            self._lines = []

    def snapshot(self) -> dict[str, Any]:
        """The raw totals, for another process to :meth:`merge`."""
        with self._lock:
            return {"counts": dict(self._counts), "errors": dict(self._errors), "latencies": list(self._latencies)}

    def merge(self, snapshot: dict[str, Any]) -> None:
        """Add another process's :meth:`snapshot`."""
        with self._lock:
            self._counts.update(snapshot["counts"])
            self._errors.update(snapshot["errors"])
            self._latencies.extend(snapshot["latencies"])

    def usage(self) -> Usage:
        """The totals so far."""
        with self._lock:
            ordered = sorted(self._latencies)
            counts, errors = dict(self._counts), dict(self._errors)
        latency = None
        if ordered:
            latency = LatencyStats(p50_ms=round(percentile(ordered, 0.50), 3),
                                   p95_ms=round(percentile(ordered, 0.95), 3),
                                   p99_ms=round(percentile(ordered, 0.99), 3),
                                   mean_ms=round(sum(ordered) / len(ordered), 3), max_ms=round(ordered[-1], 3))
        return Usage(requests=counts.get("requests", 0), cache_hits=counts.get("cache_hits", 0),
                     upstream_attempts=counts.get("upstream_attempts", 0), retries=counts.get("retries", 0),
                     errors=errors, failed_requests=counts.get("failed", 0),
                     prompt_tokens=counts.get("prompt_tokens", 0),
                     completion_tokens=counts.get("completion_tokens", 0),
                     unfinished_reasoning=counts.get("unfinished_reasoning", 0), latency=latency)

    def close(self) -> None:
        """Flush and close the per-request records."""
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def stream_usage(raw: bytes) -> dict[str, Any] | None:
    """The ``usage`` of a streamed answer (server-sent events): the last event that has one (the final chunk, when
    the request asked for ``stream_options: {include_usage: true}``); None if no event has one."""
    for line in reversed(raw.splitlines()):
        if not line.startswith(b"data:") or b'"usage"' not in line:
            continue
        try:
            event = jsoncodec.loads(line[5:].strip())
        except ValueError:
            continue
        usage = event.get("usage") if isinstance(event, dict) else None
        if isinstance(usage, dict):
            return usage
    return None


class ResponseStats:
    """Records every request that passes, whatever the inner links did (a streamed answer once it has ended)."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Forward, then account."""
        response = await call_next(request)
        if response.stream is not None:  # counted at its end (reasoning may be found unfinished on the way)
            response.stream.on_end(lambda _stream, _error: self.stats.record(
                request, response, unfinished_reasoning="unfinished_reasoning" in response.error_kinds))
        else:
            self.stats.record(request, response, unfinished_reasoning="unfinished_reasoning" in response.error_kinds)
        return response
