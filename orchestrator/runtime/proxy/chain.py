"""Building the interceptor chain from the config: an explicit registry, outermost first."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.runtime.proxy.adjust import (
    BodyLog,
    PayloadModifier,
    Reasoning,
    RequestLogging,
    ResponseLogging,
    SystemMessage,
    masked_values,
)
from orchestrator.runtime.proxy.cache import Caching, ResponseCache
from orchestrator.runtime.proxy.endpoint import Endpoint
from orchestrator.runtime.proxy.request_records import RequestRecords
from orchestrator.runtime.proxy.stats import ResponseStats, Stats
from orchestrator.runtime.proxy.types import Handler, Interceptor
from orchestrator.schema import adapter
from orchestrator.schema.auxiliary import MODEL_ROLE
from orchestrator.schema.requests import REQUESTS_FILE


@dataclass
class ChainContext:
    """What interceptors may need: where to write, the run's defaults, shared state."""

    upstream_url: str
    output_dir: Path
    timeout: float
    max_retries: int
    stats: Stats
    caches: list[ResponseCache] = field(default_factory=list)
    process: int = 0
    processes: int = 1
    role: str | None = None
    """An auxiliary endpoint's role (judge, ...): its files are its own (:func:`proxy_file`, cache/<role>/)."""
    records: RequestRecords | None = None
    """Where response_stats writes its request records (logs/requests.jsonl, shared by every proxy of the run)."""


def proxy_file(role: str | None, name: str) -> str:
    """``proxy_<name>``, or ``proxy_<role>_<name>`` for an auxiliary endpoint's proxy (its files under logs/)."""
    return f"proxy_{role}_{name}" if role else f"proxy_{name}"


Builder = Callable[[adapter.Interceptor, ChainContext], Interceptor]


def _caching(spec: adapter.Interceptor, ctx: ChainContext) -> Interceptor:
    assert isinstance(spec, adapter.CachingInterceptor)
    default = ctx.output_dir / "cache" / ctx.role if ctx.role else ctx.output_dir / "cache"
    cache = ResponseCache(Path(spec.config.cache_dir) if spec.config.cache_dir else default,
                          process=ctx.process, processes=ctx.processes)
    ctx.caches.append(cache)
    return Caching(cache)


def _logging(spec: adapter.Interceptor, ctx: ChainContext) -> Interceptor:
    assert isinstance(spec, adapter.RequestLoggingInterceptor | adapter.ResponseLoggingInterceptor)
    name = proxy_file(ctx.role, f"{spec.name.removesuffix('_logging')}_bodies.jsonl")
    log = BodyLog(ctx.output_dir / "logs" / name, spec.config, secrets=masked_values())
    return RequestLogging(log) if spec.name == "request_logging" else ResponseLogging(log)


def _system_message(spec: adapter.Interceptor, ctx: ChainContext) -> Interceptor:
    assert isinstance(spec, adapter.SystemMessageInterceptor)
    return SystemMessage(spec.config)


def _payload_modifier(spec: adapter.Interceptor, ctx: ChainContext) -> Interceptor:
    assert isinstance(spec, adapter.PayloadModifierInterceptor)
    return PayloadModifier(spec.config)


def _reasoning(spec: adapter.Interceptor, ctx: ChainContext) -> Interceptor:
    assert isinstance(spec, adapter.ReasoningInterceptor)
    return Reasoning(spec.config)


def _response_stats(spec: adapter.Interceptor, ctx: ChainContext) -> Interceptor:
    assert isinstance(spec, adapter.ResponseStatsInterceptor)
    if spec.config.request_records:
        ctx.records = RequestRecords(ctx.output_dir / "logs" / REQUESTS_FILE, first=ctx.process == 0)
    return ResponseStats(ctx.stats, ctx.records, role=ctx.role or MODEL_ROLE)


BUILDERS: dict[str, Builder] = {
    "caching": _caching,
    "request_logging": _logging,
    "response_logging": _logging,
    "system_message": _system_message,
    "payload_modifier": _payload_modifier,
    "reasoning": _reasoning,
    "response_stats": _response_stats,
}
"""Interceptor name -> how to build it (``endpoint`` is built by :func:`build_chain` itself)."""


def build_chain(config: adapter.AdapterConfig, ctx: ChainContext) -> tuple[Handler, Endpoint]:
    """The chain as one handler, and its endpoint (whose pool must be closed)."""
    specs = [spec for spec in config.interceptors if spec.enabled and spec.name != "endpoint"]
    endpoint_spec = next(s for s in config.interceptors if isinstance(s, adapter.EndpointInterceptor))
    endpoint = Endpoint(ctx.upstream_url, endpoint_spec.config, timeout=ctx.timeout, max_retries=ctx.max_retries)
    handler: Handler = endpoint
    for spec in reversed(specs):
        handler = _link(BUILDERS[spec.name](spec, ctx), handler)
    return handler, endpoint


def _link(interceptor: Interceptor, inner: Handler) -> Handler:
    return functools.partial(interceptor.__call__, call_next=inner)  # no coroutine frame of its own
