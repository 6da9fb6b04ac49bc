"""The response_stats interceptor: counts, tokens and latency (results.yml ``usage``); one record per request
(logs/requests.jsonl, :mod:`orchestrator.runtime.proxy.request_records`)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from orchestrator.runtime.proxy import jsoncodec
from orchestrator.runtime.proxy.request_records import RequestRecords
from orchestrator.runtime.proxy.types import Handler, ProxyRequest, ProxyResponse
from orchestrator.schema.auxiliary import MODEL_ROLE
from orchestrator.schema.results import LatencyStats, Usage


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request came to, as counted."""

    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    failed: bool
    kinds: list[str]


class Stats:
    """Everything the run asked of the endpoint; safe to read from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self._errors: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()

    def record(self, request: ProxyRequest, response: ProxyResponse, unfinished_reasoning: bool = False) -> Outcome:
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
        return Outcome(latency_ms, ttft_ms, prompt, completion, failed, kinds)

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
    """Records every request that passes, whatever the inner links did (a streamed answer once it has ended): in the
    totals, and as one line of the request records when there are any."""

    def __init__(self, stats: Stats, records: RequestRecords | None = None, *, role: str = MODEL_ROLE) -> None:
        self.stats = stats
        self.records = records
        self.role = role

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Forward, then account."""
        response = await call_next(request)
        if response.stream is not None:  # counted at its end (reasoning may be found unfinished on the way)
            response.stream.on_end(lambda _stream, _error: self._account(request, response))
        else:
            self._account(request, response)
        return response

    def _account(self, request: ProxyRequest, response: ProxyResponse) -> None:
        outcome = self.stats.record(request, response, "unfinished_reasoning" in response.error_kinds)
        if self.records is None:
            return
        error = None
        if outcome.failed:
            error = outcome.kinds[-1] if outcome.kinds else f"http_{response.status}"
        record = {  # a RequestRecord's fields, as a dict: validating a model per request would cost more than the rest
            "id": request.request_id, "role": self.role, "prompt_key": request.prompt_key, "path": request.path,
            "status": response.status, "cache_hit": response.cache_hit, "attempts": response.attempts,
            "prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
            "latency_ms": round(outcome.latency_ms, 3), "error": error, "errors": outcome.kinds,
        }
        if outcome.ttft_ms is not None:
            record["ttft_ms"] = outcome.ttft_ms
        self.records.add(record)
