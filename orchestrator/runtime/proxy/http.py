"""The proxy's HTTP/1.1 plumbing: asyncio protocols with httptools' parser (llhttp, the parser of Node.js).

The request and answer types, and a pooled keep-alive client for the endpoint; the server for the harness is
:mod:`orchestrator.runtime.proxy.http_server`. Both are small on purpose: the proxy relays one request and one
answer per exchange, with Content-Length, chunked or close-delimited bodies, and nothing else of HTTP's breadth (no
upgrades). Answers are buffered whole, except streamed ones (:meth:`UpstreamPool.open_stream`), whose chunks are
relayed as they arrive. aiohttp, which the proxy used before, spent more CPU per relayed request
(server and client side) than the whole interceptor chain; see bench/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import httptools

from orchestrator.runtime.proxy.upstream_proxy import UpstreamProxy, open_tunnel, proxy_for, refusal, refusal_is_final


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


_STREAM_BUFFER = 1024 * 1024
"""Bytes of a streamed answer received but not yet relayed before the connection stops reading from the
endpoint (the harness reads slowly); it reads again once they are relayed."""


class ProxyRefusedError(UpstreamError):
    """The forward proxy refused for good (407: credentials; 403: policy): asking again would not change it."""


class _ClientConnection(asyncio.Protocol):
    """One pooled connection to the endpoint; one exchange at a time.

    Interim answers (1xx but 101: ``100 Continue``, ``103 Early Hints``) are read and dropped, as RFC 9110
    (15.2) asks, however they are split into segments; the exchange ends with the final answer. Bytes that
    arrive when no exchange is waiting (a second answer, garbage) mean the connection can no longer be
    trusted to pair answers with requests: it is closed, never reused, so an answer cannot reach the next
    request.
    """

    def __init__(self, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.repeated: dict[str, list[str]] = {}
        self.body: list[bytes] = []
        self.received = False
        self.headers_done = False
        self.head_only = False
        self.keep_alive = True
        self.lost = False
        self.interim = False
        # a streamed answer: its body is read as it arrives, after the waiter resolved with its head
        self.streaming = False
        self.reading = False  # its body is arriving
        self.complete = False  # ... and has arrived whole
        self.error: BaseException | None = None  # ... or broke
        self.buffered = 0
        self.paused = False
        self.readable: asyncio.Future[None] | None = None

    def send(self, data: bytes, *, head_only: bool, streaming: bool = False) -> asyncio.Future[None]:
        """Write one request; the future resolves when its whole answer has arrived (``streaming``: its head)."""
        assert self.transport is not None
        self.status, self.headers, self.body, self.size = 0, {}, [], 0
        self.repeated.clear()
        self.received = self.headers_done = self.interim = False
        self.head_only, self.streaming = head_only, streaming
        self.reading = self.complete = False
        self.error, self.buffered = None, 0
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def _finish(self, error: BaseException | None = None) -> None:
        if self.waiter is not None and not self.waiter.done():
            if error is None:
                self.waiter.set_result(None)
            else:
                self.waiter.set_exception(error)
        elif self.reading:  # the end of a streamed body, whole or broken
            self.reading = False
            self.complete, self.error = error is None, error
            self._wake()

    def _wake(self) -> None:
        if self.readable is not None and not self.readable.done():
            self.readable.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def _waiting(self) -> bool:
        return self.reading or (self.waiter is not None and not self.waiter.done())

    def _stray(self) -> None:
        """Bytes no request asked for: this connection cannot be trusted any more."""
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self._waiting():
            self._stray()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self.keep_alive = False
            self._finish(UpstreamError(f"the endpoint's answer is not valid HTTP: {err}", answered=True))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self._waiting():  # (a streamed answer is still arriving after its waiter resolved)
            return
        framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")
        if self.headers_done and not framed:  # an answer delimited by closing the connection
            self.keep_alive = False
            self._finish()
            return
        reason = f": {exc}" if exc else ""
        what = "in the middle of its answer" if self.received else "before answering"
        self._finish(UpstreamError(f"the endpoint closed the connection {what}{reason}", answered=self.received))

    def on_message_begin(self) -> None:
        if not self._waiting():  # a second answer in the same segment as the first
            self._stray()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._waiting():  # (after the answer is complete: the stray bytes of a closing connection)
            add_header(self.headers, self.repeated, name, value)

    def on_headers_complete(self) -> None:
        if not self._waiting():
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # interim: dropped, the final answer follows
            self.headers, self.interim = {}, True
            self.repeated.clear()
            return
        if self.repeated:
            join_repeated(self.headers, self.repeated)
        self.status = status
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes and not self.head_only:
            self._finish(ResponseTooLargeError(f"the endpoint's answer declares {declared} bytes, over the proxy's "
                                               f"limit of {self.max_bytes} for one answer", answered=True))
            self._stray()
            return
        if status == 101:  # never asked for (the proxy sends no Upgrade): not HTTP any more
            self.keep_alive = False
            self._finish(UpstreamError("the endpoint switched protocols (101) though no upgrade was asked for",
                                       answered=True))
            self._stray()
            return
        self.headers_done = True
        if self.head_only:  # the parser cannot know a HEAD answer has no body: finish here, do not reuse
            self.keep_alive = False
            self._finish()
        elif self.streaming and self.waiter is not None:  # the head is here; the body is read as it comes
            self.reading = True
            self.waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        if not self._waiting():
            return
        self.size += len(body)
        if self.size > self.max_bytes:
            self.body = []
            self._finish(ResponseTooLargeError(f"the endpoint's answer is over {self.max_bytes} bytes, the proxy's "
                                               "limit for one answer", answered=True))
            self._stray()
            return
        self.body.append(body)
        if self.reading:
            self.buffered += len(body)
            if self.buffered > _STREAM_BUFFER and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
            self._wake()

    def take(self) -> bytes:
        """A streamed body's bytes received since the last call (reading resumes if it had stopped)."""
        data = b"".join(self.body)
        self.body, self.buffered = [], 0
        if self.paused and self.transport is not None and not self.lost:
            self.paused = False
            self.transport.resume_reading()
        return data

    def on_message_complete(self) -> None:
        if not self._waiting():
            return
        if self.interim:  # the end of a 1xx: keep waiting for the final answer
            self.interim = False
            return
        if self.repeated:  # trailer fields
            join_repeated(self.headers, self.repeated)
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        self._finish()

    def response(self) -> HttpResponse:
        """The answer just received (decompressed if the endpoint compressed it)."""
        body = b"".join(self.body)
        encoding = self.headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "x-gzip", "deflate") and body:
            try:
                body = zlib.decompress(body, 47)  # 32 + 15: gzip or zlib header, detected
            except zlib.error as err:
                raise UpstreamError(f"the endpoint's {encoding} body does not decompress: {err}",
                                    answered=True) from err
            self.headers.pop("content-encoding", None)
        return HttpResponse(self.status, self.headers, body)


_SWEEP_SECONDS = 0.05
"""How often timeouts are checked: a timeout fires up to this much late (one timer per request costs more)."""


_OWN_HEADERS = FRAMING | {"host", "proxy-authorization"}
"""Headers the pool writes itself, never the caller's."""


class UpstreamPool:
    """Keep-alive connections to one origin (``http[s]://host[:port]``), at most ``max_connections``.

    Through the forward proxy the environment names (:func:`~orchestrator.runtime.proxy.upstream_proxy.proxy_for`),
    if any: an http endpoint's requests go to the proxy in absolute form (``POST http://host/path``) on keep-alive
    connections to it; an https endpoint is reached through a ``CONNECT`` tunnel, TLS with the endpoint inside it,
    pooled like a direct connection. ``Proxy-Authorization`` (from the proxy URL) goes to the proxy only.
    Raises InputError when the proxy variable is not an http(s) proxy URL.
    """

    def __init__(self, url: str, *, max_connections: int, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        parts = urlsplit(url)
        self.max_response_bytes = max_response_bytes
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        self.host_header = (f"[{self.host}]" if ":" in self.host else self.host) + (
            "" if default_port else f":{self.port}")
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self.proxy: UpstreamProxy | None = proxy_for(parts.scheme, self.host, self.port)
        self._proxy_ssl = ssl.create_default_context() if self.proxy is not None and self.proxy.tls else None
        forwarding = self.proxy is not None and self._ssl is None  # absolute-form requests to the proxy
        self._absolute = f"http://{self.host_header}" if forwarding else ""
        self._proxy_auth = (f"proxy-authorization: {self.proxy.authorization}"
                            if forwarding and self.proxy is not None and self.proxy.authorization else None)
        self._max = max_connections
        self._busy = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._idle: list[_ClientConnection] = []
        self._open: set[_ClientConnection] = set()
        self._deadlines: dict[asyncio.Future[None], tuple[float, float]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes, *,
                      timeout: float) -> HttpResponse:
        """One exchange within ``timeout`` seconds (connecting and waiting for a connection included).

        Raises TimeoutError, or UpstreamError / OSError when the connection fails. A reused connection
        that the endpoint had closed before it received the request is replaced once, silently.
        """
        connection = await self._exchange(method, target, headers, body, timeout=timeout, streaming=False)
        try:
            response = connection.response()
        except BaseException:
            self._release(connection, reuse=False)
            raise
        self._release(connection, reuse=True)
        return response

    async def open_stream(self, method: str, target: str, headers: dict[str, str], body: bytes, *,
                          timeout: float, idle_timeout: float) -> StreamedAnswer:
        """Send a request and return once its answer's head has arrived (within ``timeout``); its body is then
        read as it arrives with :meth:`StreamedAnswer.read`, at most ``idle_timeout`` s apart. The answer holds
        its connection (and a place in the pool) until :meth:`StreamedAnswer.close`."""
        connection = await self._exchange(method, target, headers, body, timeout=timeout, streaming=True)
        return StreamedAnswer(self, connection, idle_timeout)

    async def _exchange(self, method: str, target: str, headers: dict[str, str], body: bytes, *, timeout: float,
                        streaming: bool) -> _ClientConnection:
        """Send one request; return its connection once the answer (``streaming``: its head) has arrived. The
        caller gives the connection and its place in the pool back with :meth:`_release`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = self._encode(method, target, headers, body)
        if self._busy >= self._max:
            await self._wait_for_slot(loop, deadline, timeout)
        self._busy += 1
        try:
            while True:
                connection = self._take_idle()
                reused = connection is not None
                if connection is None:
                    connection = await self._connect(max(0.0, deadline - loop.time()))
                waiter = connection.send(data, head_only=method == "HEAD", streaming=streaming)
                self._watch(loop, waiter, deadline, timeout)
                try:
                    await waiter
                except UpstreamError as err:
                    self._discard(connection)
                    if reused and not err.answered and loop.time() < deadline:
                        continue  # a stale keep-alive connection, not the endpoint's doing
                    raise
                except BaseException:
                    self._discard(connection)
                    raise
                finally:
                    self._deadlines.pop(waiter, None)
                if connection.status == 407 and self._absolute and self.proxy is not None:
                    # to an absolute-form request: the forward proxy's answer, not the endpoint's
                    self._discard(connection)
                    raise ProxyRefusedError(refusal(self.proxy, 407, "Proxy Authentication Required",
                                                    f"{self._absolute}{target}"), answered=True)
                return connection
        except BaseException:
            self._free_slot()
            raise

    def _release(self, connection: _ClientConnection, *, reuse: bool) -> None:
        """An exchange is over: keep its connection for the next one (if it can be), free its place."""
        if reuse and connection.keep_alive and not connection.lost and not connection.reading:
            self._idle.append(connection)
        else:
            self._discard(connection)
        self._free_slot()

    def _free_slot(self) -> None:
        self._busy -= 1
        self._wake_next()

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop, deadline: float, timeout: float) -> None:
        while self._busy >= self._max:
            slot = loop.create_future()
            self._queue.append(slot)
            self._watch(loop, slot, deadline, timeout)
            try:
                await slot
            except BaseException:
                if slot.done() and not slot.cancelled() and slot.exception() is None:
                    self._wake_next()  # cancelled just as its turn came: the turn goes to the next in line
                raise
            finally:
                self._deadlines.pop(slot, None)

    def _wake_next(self) -> None:
        while self._queue:
            waiting = self._queue.popleft()
            if not waiting.done():
                waiting.set_result(None)
                break

    def _watch(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], deadline: float,
               timeout: float) -> None:
        self._deadlines[waiter] = (deadline, timeout)
        if self._sweeper is None:
            self._sweeper = loop.call_later(_SWEEP_SECONDS, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        expired = [(waiter, timeout) for waiter, (deadline, timeout) in self._deadlines.items() if deadline <= now]
        for waiter, timeout in expired:
            del self._deadlines[waiter]
            if not waiter.done():
                waiter.set_exception(TimeoutError(f"no answer within {timeout:g} s"))
        self._sweeper = loop.call_later(_SWEEP_SECONDS, self._sweep, loop) if self._deadlines else None

    def _encode(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        absolute = self._absolute if target.startswith("/") else ""
        lines = [f"{method} {absolute}{target} HTTP/1.1", f"host: {self.host_header}"]
        if self._proxy_auth is not None:
            lines.append(self._proxy_auth)
        lines.extend(f"{name}: {value}" for name, value in headers.items() if name not in _OWN_HEADERS)
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(f"content-length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _take_idle(self) -> _ClientConnection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.lost and connection.transport is not None and not connection.transport.is_closing():
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self, timeout: float) -> _ClientConnection:
        connection = await asyncio.wait_for(self._open_connection(), timeout)
        sock: Any = connection.transport.get_extra_info("socket") if connection.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open.add(connection)
        return connection

    async def _open_connection(self) -> _ClientConnection:
        loop = asyncio.get_running_loop()
        if self.proxy is None:
            _, connection = await loop.create_connection(
                lambda: _ClientConnection(self.max_response_bytes), self.host, self.port,
                ssl=self._ssl, server_hostname=self.host if self._ssl else None)
            return connection
        if self._ssl is None:
            try:
                _, connection = await loop.create_connection(
                    lambda: _ClientConnection(self.max_response_bytes), self.proxy.host, self.proxy.port,
                    ssl=self._proxy_ssl, server_hostname=self.proxy.host if self._proxy_ssl else None)
            except OSError as err:
                raise ConnectionError(f"the proxy {self.proxy.url} ({self.proxy.variable}) cannot be reached: "
                                      f"{err}") from err
            return connection
        return await self._tunnel(loop, self.proxy, self._ssl)

    async def _tunnel(self, loop: asyncio.AbstractEventLoop, proxy: UpstreamProxy,
                      tls: ssl.SSLContext) -> _ClientConnection:
        """CONNECT through the proxy, then TLS with the endpoint (its name verified) inside the tunnel."""
        raw, status, reason = await open_tunnel(proxy, self.host, self.port, self._proxy_ssl)
        try:
            if status != 200:
                error = ProxyRefusedError if refusal_is_final(status) else UpstreamError
                raise error(refusal(proxy, status, reason, f"{self.host}:{self.port}"), answered=True)
            connection = _ClientConnection(self.max_response_bytes)
            transport = await loop.start_tls(raw, connection, tls, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
        if transport is None:  # (start_tls returns None only when the loop closed meanwhile)
            raise ConnectionError("the event loop closed while TLS was set up through the proxy")
        connection.connection_made(transport)
        return connection

    def _discard(self, connection: _ClientConnection) -> None:
        self._open.discard(connection)
        if connection.transport is not None:
            connection.transport.close()

    def close(self) -> None:
        """Close every connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self._open):
            self._discard(connection)
        self._idle.clear()


class StreamedAnswer:
    """An answer whose body is read as it arrives (:meth:`UpstreamPool.open_stream`); close it when done."""

    def __init__(self, pool: UpstreamPool, connection: _ClientConnection, idle_timeout: float) -> None:
        self.status = connection.status
        self.headers = connection.headers
        self.idle_timeout = idle_timeout
        self._pool = pool
        self._connection = connection
        encoding = connection.headers.get("content-encoding", "").lower()
        self._decoder = zlib.decompressobj(47) if encoding in ("gzip", "x-gzip", "deflate") else None
        if self._decoder is not None:
            connection.headers.pop("content-encoding", None)
        self.closed = False

    async def read(self, *, timeout: float | None = None) -> bytes:
        """The bytes that arrived since the last read, waiting up to ``timeout`` (default: the idle timeout)
        for some; b"" once the body has ended. Raises TimeoutError, or UpstreamError if the body breaks."""
        connection = self._connection
        while True:
            if connection.body:
                data = connection.take()
                if self._decoder is None:
                    return data
                try:
                    data = self._decoder.decompress(data)
                except zlib.error as err:
                    raise UpstreamError(f"the endpoint's compressed stream does not decompress: {err}",
                                        answered=True) from err
                if data:
                    return data
                continue
            if connection.error is not None:
                raise connection.error
            if connection.complete:
                if self._decoder is not None:
                    tail, self._decoder = self._decoder.flush(), None
                    if tail:
                        return tail
                return b""
            if self.closed or connection.lost:
                raise UpstreamError("the endpoint's stream was closed", answered=True)
            await self._wait(self.idle_timeout if timeout is None else timeout)

    async def _wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        readable = self._connection.readable = loop.create_future()
        self._pool._watch(loop, readable, loop.time() + timeout, timeout)
        try:
            await readable
        finally:
            self._pool._deadlines.pop(readable, None)
            self._connection.readable = None

    async def read_all(self) -> bytes:
        """The rest of the body, whole (then the answer is closed)."""
        parts: list[bytes] = []
        try:
            while chunk := await self.read():
                parts.append(chunk)
        except BaseException:
            self.close(complete=False)
            raise
        self.close(complete=True)
        return b"".join(parts)

    def close(self, *, complete: bool) -> None:
        """Give the connection back to the pool (``complete``: the body was read to its end) or drop it."""
        if self.closed:
            return
        self.closed = True
        self._pool._release(self._connection, reuse=complete and self._connection.complete)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (about twice as fast for this work), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415  (optional)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
