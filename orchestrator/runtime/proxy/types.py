"""What flows through the interceptor chain."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.runtime.proxy import jsoncodec


@dataclass
class ProxyRequest:
    """A request from the harness to the endpoint's path. ``body`` is the parsed JSON (None if not JSON)."""

    path: str
    raw: bytes
    body: dict[str, Any] | None
    headers: dict[str, str]
    started: float
    request_id: str
    prompt_key: str | None = None
    """The key of its ``messages`` or ``prompt`` as the harness sent them (:func:`~orchestrator.schema.requests.
    body_prompt_key`), when the proxy writes request records."""

    def replace_body(self, body: dict[str, Any]) -> None:
        """Swap in a modified body (and its bytes)."""
        self.body = body
        self.raw = jsoncodec.dumps(body)


class ChunkSource(Protocol):
    """Where a streamed answer's chunks come from (the endpoint's connection)."""

    async def read(self) -> bytes:
        """The next chunk; b"" at the end. Raises TimeoutError or UpstreamError when the stream breaks."""
        ...

    def close(self, *, complete: bool) -> None:
        """Give the connection back (``complete``: the whole answer was read), or drop it."""
        ...


class StreamTransform(Protocol):
    """Changes a streamed answer as it passes (e.g. strips reasoning), keeping what it must until it can decide."""

    def feed(self, data: bytes) -> bytes:
        """What to relay now of ``data`` (and of what was kept before)."""
        ...

    def flush(self) -> bytes:
        """What is left to relay at the end of the stream."""
        ...


class AnswerStream:
    """A streamed answer (``stream: true``: server-sent events), relayed chunk by chunk as it arrives.

    The server reads it with :meth:`read` and ends it with :meth:`finish`; interceptors that need the whole
    answer (caching, stats, logging) register :meth:`on_end` and get it, once, when it has ended, with why
    it ended early (None: it is complete); ``raw`` is what the endpoint sent, whatever transforms
    (:meth:`add_transform`) made of it for the harness.
    """

    def __init__(self, first: bytes, source: ChunkSource) -> None:
        self.chunks: list[bytes] = [first] if first else []
        self.first_byte_at = time.monotonic()
        self._pending = first
        self._source = source
        self._callbacks: list[Callable[[AnswerStream, str | None], None]] = []
        self._transforms: list[StreamTransform] = []
        self._drained = False
        self.ended = False
        self.error: str | None = None

    def add_transform(self, transform: StreamTransform) -> None:
        """Pass what is relayed through ``transform`` (after the transforms added before it)."""
        self._transforms.append(transform)

    def on_end(self, callback: Callable[[AnswerStream, str | None], None]) -> None:
        """Call ``callback(stream, error)`` when the stream has ended."""
        self._callbacks.append(callback)

    @property
    def raw(self) -> bytes:
        """Everything relayed so far."""
        return b"".join(self.chunks)

    async def read(self) -> bytes:
        """The next chunk to relay; b"" at the end (raises when the endpoint's stream breaks)."""
        while not self._drained:
            if self._pending:
                chunk, self._pending = self._pending, b""
            else:
                chunk = await self._source.read()
                if chunk:
                    self.chunks.append(chunk)
            if not self._transforms:
                return chunk
            if chunk:
                for transform in self._transforms:
                    chunk = transform.feed(chunk)
                if chunk:
                    return chunk
                continue  # all kept for now: never an empty chunk, which would end the answer
            self._drained = True
            rest = b""
            for transform in self._transforms:
                rest = transform.feed(rest) + transform.flush() if rest else transform.flush()
            return rest
        return b""

    def finish(self, error: str | None = None) -> None:
        """End the stream (``error``: why it ended early, e.g. ``stream_idle_timeout``, ``client_gone``)."""
        if self.ended:
            return
        self.ended, self.error = True, error
        self._source.close(complete=error is None)
        for callback in self._callbacks:
            try:
                callback(self, error)
            except Exception as err:  # one interceptor's failure must not skip the others' accounting
                print(f"adapter proxy: after a streamed answer: {type(err).__name__}: {err}", file=sys.stderr)


@dataclass
class ProxyResponse:
    """The answer handed back to the harness: ``raw`` whole, or ``stream`` (then ``raw`` is empty)."""

    status: int
    raw: bytes
    content_type: str = "application/json"
    cache_hit: bool = False
    attempts: int = 0
    error_kinds: list[str] = field(default_factory=list)
    stream: AnswerStream | None = None
    _json: dict[str, Any] | None = None
    _parsed: bool = False

    def json(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None (parsed once)."""
        if not self._parsed:
            self._parsed = True
            try:
                value = jsoncodec.loads(self.raw)
            except ValueError:
                value = None
            self._json = value if isinstance(value, dict) else None
        return self._json

    def replace_json(self, body: dict[str, Any]) -> None:
        """Swap in a modified JSON body."""
        self._json, self._parsed = body, True
        self.raw = jsoncodec.dumps(body)


Handler = Callable[[ProxyRequest], Awaitable[ProxyResponse]]


class Interceptor(Protocol):
    """One link of the chain: may change the request, answer it, or change the response."""

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Handle ``request``, usually by awaiting ``call_next(request)``."""
        ...


def error_response(status: int, message: str, *, kind: str) -> ProxyResponse:
    """An OpenAI-style error body."""
    body = {"error": {"message": message, "type": kind, "code": status}}
    return ProxyResponse(status=status, raw=jsoncodec.dumps(body), error_kinds=[kind])
