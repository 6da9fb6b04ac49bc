"""The proxy's HTTP/1.1 plumbing: asyncio protocols with httptools' parser (llhttp, the parser of Node.js).

The request and answer types and errors shared by both sides. The server for the harness is
:mod:`orchestrator.runtime.proxy.http_server`; the client towards the endpoint is
:mod:`orchestrator.runtime.proxy.upstream_pool` (the pool and streamed answers) on
:mod:`orchestrator.runtime.proxy.client_connection` (one connection's protocol). All are small on purpose: the
proxy relays one request and one answer per exchange, with Content-Length, chunked or close-delimited bodies, and
nothing else of HTTP's breadth (no upgrades). Answers are buffered whole, except streamed ones
(``UpstreamPool.open_stream``), whose chunks are relayed as they arrive. aiohttp, which the proxy used before,
spent more CPU per relayed request (server and client side) than the whole interceptor chain; see
docs/decisions/0001-proxy-http-stack.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class HttpRequest:
    """A request as the harness sent it; header names in lower case."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query."""
        return self.target.split("?", 1)[0]


class BodyStream(Protocol):
    """A body sent as it becomes available (chunked): the server reads it to its end and then finishes it."""

    async def read(self) -> bytes:
        """The next piece; b"" at the end."""
        ...

    def finish(self, error: str | None = None) -> None:
        """The server is done with it: ``error`` says why it stopped early (None: it was sent whole)."""
        ...


@dataclass(slots=True)
class HttpResponse:
    """An answer; header names in lower case (framing headers are the writer's business). With ``stream``,
    the body is sent chunked as the stream yields it, and ``body`` is ignored."""

    status: int
    headers: dict[str, str]
    body: bytes
    stream: BodyStream | None = None


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]

FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


def add_header(headers: dict[str, str], repeated: dict[str, list[str]], name: bytes, value: bytes) -> None:
    """Add one field. A repeated name's values wait in ``repeated`` until :func:`join_repeated`:
    joining them as they come would copy the value so far each time (quadratic in the count)."""
    key, text = name.decode("latin-1").lower(), value.decode("latin-1")
    if key not in headers:
        headers[key] = text
    elif key in repeated:
        repeated[key].append(text)
    else:
        repeated[key] = [headers[key], text]


def join_repeated(headers: dict[str, str], repeated: dict[str, list[str]]) -> None:
    """Each repeated field's values as one comma-separated value (RFC 9110, 5.3), in one pass."""
    for key, values in repeated.items():
        headers[key] = ", ".join(values)
    repeated.clear()


MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""An endpoint's answer larger than this (decompressed size not counted) is refused: answers are buffered whole,
and no chat or completions answer comes near it (a 4,096-token answer with 20 top logprobs per token is a few MB)."""


class UpstreamError(Exception):
    """The endpoint's connection failed or its answer was not HTTP."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class ResponseTooLargeError(UpstreamError):
    """The endpoint's answer is over the size limit (asking again would not make it smaller)."""


class ProxyRefusedError(UpstreamError):
    """The forward proxy refused for good (407: credentials; 403: policy): asking again would not change it."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (about twice as fast for this work), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415  (optional)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
