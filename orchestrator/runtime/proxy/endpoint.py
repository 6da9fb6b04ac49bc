"""The endpoint interceptor: the end of the chain, where requests reach the real endpoint.

Pooled connections; per-attempt timeouts; retries with exponential backoff and full jitter on
429, 5xx, timeouts, dropped connections and malformed answers, honouring Retry-After, bounded
in count and in total time. Any other 4xx is final: the harness gets the endpoint's message; so is a
forward proxy's refusal (407: its credentials; 403: its policy), which names the proxy.

Streamed answers (``stream: true`` and a ``text/event-stream`` answer) are handed on as soon as their first
bytes arrive (within ``first_byte_timeout``), so the harness sees its first token when the endpoint sends it;
until then an attempt is retried like any other, afterwards nothing can be: chunks must come at most
``idle_timeout`` apart, else the answer is cut off (the server aborts the harness's connection).
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from orchestrator.runtime.proxy.http import ProxyRefusedError, ResponseTooLargeError, UpstreamError
from orchestrator.runtime.proxy.types import AnswerStream, ProxyRequest, ProxyResponse, error_response
from orchestrator.runtime.proxy.upstream_pool import UpstreamPool
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
        self.first_byte_timeout = config.first_byte_timeout or self.timeout
        self.idle_timeout = config.idle_timeout or self.timeout
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
        streamed = _is_stream(request)
        for attempt in range(self.max_retries + 1):
            last, kind, final, retry_after = await self._attempt(request, headers, streamed)
            if kind is not None:
                kinds.append(kind)
            if kind is None or final:
                last.attempts, last.error_kinds = attempt + 1, kinds
                return last
            wait = self._backoff(attempt, retry_after)
            if attempt == self.max_retries or time.monotonic() + wait > deadline:
                break
            await asyncio.sleep(wait)
        if last.status == 200:  # a malformed answer that never got better
            last = error_response(502, "endpoint answered with a body that is not JSON", kind="malformed_body")
        last.attempts, last.error_kinds = len(kinds), kinds
        return last

    async def _attempt(self, request: ProxyRequest, headers: dict[str, str],
                       streamed: bool) -> tuple[ProxyResponse, str | None, bool, float | None]:
        """One attempt: (the answer, its error kind (None: a good answer), whether that error is final, how long
        the endpoint asked to wait before the next attempt)."""
        try:
            if streamed:
                status, upstream_headers, raw, stream = await self._stream(request, headers)
            else:
                upstream = await self.pool.request("POST", self.target, headers, request.raw, timeout=self.timeout)
                status, upstream_headers, raw, stream = upstream.status, upstream.headers, upstream.body, None
        except ResponseTooLargeError as err:  # it would be as large again: not retried
            return error_response(502, str(err), kind="response_too_large"), "response_too_large", True, None
        except ProxyRefusedError as err:  # the forward proxy's credentials or policy: not retried either
            return error_response(502, str(err), kind="proxy_refused"), "proxy_refused", True, None
        except TimeoutError:
            waited = self.first_byte_timeout if streamed else self.timeout
            return error_response(504, f"endpoint did not answer within {waited:g} s", kind="timeout"), "timeout", \
                False, None
        except (UpstreamError, OSError) as err:
            message = f"endpoint connection failed: {type(err).__name__}: {err}"
            return error_response(502, message, kind="connection_error"), "connection_error", False, None
        answer = ProxyResponse(status=status, raw=raw, stream=stream,
                               content_type=upstream_headers.get("content-type", "application/json"))
        if status == 200 and (streamed or answer.json() is not None):
            return answer, None, False, None
        if 300 <= status < 400:  # following it would take the harness's requests elsewhere
            where = upstream_headers.get("location", "an address it does not give")
            return error_response(502, f"the endpoint {self.url} redirects (HTTP {status}) to {where}: use that URL "
                                  "as the endpoint", kind="redirect"), "redirect", True, None
        if status == 200:
            return answer, "malformed_body", False, None
        retry_after = retry_after_seconds(upstream_headers.get("retry-after"))
        return answer, f"http_{status}", status not in RETRY_STATUS, retry_after

    async def _stream(self, request: ProxyRequest,
                      headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, AnswerStream | None]:
        """One attempt at a streamed answer: (status, headers, body, stream). A 200 event stream comes back as a
        stream once its first bytes are here; any other answer (an error, or JSON from an endpoint that does not
        stream) whole, as ``body``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await self.pool.open_stream("POST", self.target, headers, request.raw,
                                             timeout=self.first_byte_timeout, idle_timeout=self.idle_timeout)
        try:
            if answer.status != 200 or not answer.headers.get("content-type", "").startswith("text/event-stream"):
                return answer.status, answer.headers, await answer.read_all(), None
            first = await answer.read(timeout=max(0.0, started + self.first_byte_timeout - loop.time()))
        except BaseException:
            answer.close(complete=False)
            raise
        if not first:  # an empty stream
            answer.close(complete=True)
            return 200, answer.headers, b"", None
        return 200, answer.headers, b"", AnswerStream(first, answer)


def _is_stream(request: ProxyRequest) -> bool:
    return bool(request.body and request.body.get("stream"))
