"""The endpoint interceptor: the end of the chain, where requests reach the real endpoint.

Pooled connections; per-attempt timeouts; retries with exponential backoff and full jitter on
429, 5xx, timeouts, dropped connections and malformed answers, honouring Retry-After, bounded
in count and in total time. Any other 4xx is final: the harness gets the endpoint's message.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from orchestrator.runtime.proxy.http import ResponseTooLargeError, UpstreamError, UpstreamPool
from orchestrator.runtime.proxy.types import ProxyRequest, ProxyResponse, error_response
from orchestrator.runtime.retries import endpoint_policy
from orchestrator.schema.adapter import EndpointConfig

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_FORWARD_HEADERS = ("authorization", "content-type", "accept", "openai-organization", "openai-project")


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Endpoint:
    """Sends requests to ``url`` with retries; owns the connection pool."""

    def __init__(self, url: str, config: EndpointConfig, *, timeout: float, max_retries: int) -> None:
        self.url = url
        self.config = config
        policy = endpoint_policy(config, timeout=timeout, max_retries=max_retries)
        self.timeout, self.max_retries = policy.timeout, policy.max_retries
        self.pool = UpstreamPool(url, max_connections=config.max_connections)
        parts = urlsplit(url)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def close(self) -> None:
        """Close the pool."""
        self.pool.close()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * 2**attempt)
        return random.uniform(0, ceiling)  # jitter, not cryptography

    async def __call__(self, request: ProxyRequest, _next: object = None) -> ProxyResponse:
        """Forward ``request`` until it succeeds, fails for good, or the retry budget is spent."""
        headers = {k: v for k, v in request.headers.items() if k in _FORWARD_HEADERS}
        headers.setdefault("content-type", "application/json")
        deadline = time.monotonic() + self.config.max_retry_seconds
        kinds: list[str] = []
        last = error_response(502, "no attempt made", kind="upstream_error")
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                upstream = await self.pool.request("POST", self.target, headers, request.raw, timeout=self.timeout)
                last = ProxyResponse(status=upstream.status, raw=upstream.body,
                                     content_type=upstream.headers.get("content-type", "application/json"))
                if upstream.status == 200 and (last.json() is not None or _is_stream(request)):
                    last.attempts, last.error_kinds = attempt + 1, kinds
                    return last
                if 300 <= upstream.status < 400:  # following it would take the harness's requests elsewhere
                    where = upstream.headers.get("location", "an address it does not give")
                    kinds.append("redirect")
                    last = error_response(502, f"the endpoint {self.url} redirects (HTTP {upstream.status}) to "
                                          f"{where}: use that URL as the endpoint", kind="redirect")
                    last.attempts, last.error_kinds = attempt + 1, kinds
                    return last
                kind = "malformed_body" if upstream.status == 200 else f"http_{upstream.status}"
                if upstream.status != 200 and upstream.status not in RETRY_STATUS:
                    kinds.append(kind)
                    last.attempts, last.error_kinds = attempt + 1, kinds
                    return last
                retry_after = retry_after_seconds(upstream.headers.get("retry-after"))
            except ResponseTooLargeError as err:  # it would be as large again: not retried
                kinds.append("response_too_large")
                last = error_response(502, str(err), kind="response_too_large")
                last.attempts, last.error_kinds = attempt + 1, kinds
                return last
            except TimeoutError:
                kind = "timeout"
                last = error_response(504, f"endpoint did not answer within {self.timeout:g} s", kind=kind)
            except (UpstreamError, OSError) as err:
                kind = "connection_error"
                last = error_response(502, f"endpoint connection failed: {type(err).__name__}: {err}", kind=kind)
            kinds.append(kind)
            wait = self._backoff(attempt, retry_after)
            if attempt == self.max_retries or time.monotonic() + wait > deadline:
                break
            await asyncio.sleep(wait)
        if last.status == 200:  # a malformed answer that never got better
            last = error_response(502, "endpoint answered with a body that is not JSON", kind="malformed_body")
        last.attempts, last.error_kinds = len(kinds), kinds
        return last


def _is_stream(request: ProxyRequest) -> bool:
    return bool(request.body and request.body.get("stream"))
