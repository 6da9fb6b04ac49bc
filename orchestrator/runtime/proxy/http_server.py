"""The adapter proxy's HTTP/1.1 server for the harness: an asyncio protocol with httptools' parser (llhttp).

Keep-alive, pipelining, Content-Length and chunked request bodies; nothing else of HTTP's breadth (no
upgrades, no CONNECT). It holds under hostile clients: every limit and timeout below (431, 414, 413, 408)
says what it is for, no request holds the event loop more than a few ms, and a refused request gets one
JSON error line and a closed connection, never a traceback (tests/unit/test_proxy_abuse.py). The types and
the client towards the endpoint in :mod:`orchestrator.runtime.proxy.upstream_pool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import sys
from collections import deque
from http import HTTPStatus
from typing import Literal, cast

import httptools

from orchestrator.runtime.proxy.http import (
    FRAMING,
    BodyStream,
    Handler,
    HttpRequest,
    HttpResponse,
    ResponseTooLargeError,
    add_header,
    join_repeated,
)

MAX_REQUEST_BYTES = 256 * 1024 * 1024
"""A request body larger than this (base64 images included) is refused with 413: at once when its
Content-Length says so, before any of it is read; as soon as a chunked body grows past it."""

MAX_HEADERS = 100
"""Header fields per request (trailers included); more is refused with 431. Clients send 10-20 (the
OpenAI SDK about 15); each field costs a Python callback, so this bounds a request's parsing work."""

MAX_HEADER_BYTES = 64 * 1024
"""Bytes of a request's header fields, counted as name + value + 4 per field (trailers included); more is
refused with 431. An API key or a cookie is a few KiB; nginx refuses heads over 32 KiB by default.

Fields are counted once the head is complete, and only when the head could be that large (the bytes read
since it began say so), so a usual request pays nothing per field. An unfinished head is refused once the
bytes read since it began pass the target's and the fields' limits by one parser piece (_FEED_BYTES): no
head makes the proxy parse more than about 150 KiB (some 37,000 fields, a few ms a turn) before it is
refused."""

MAX_TARGET_BYTES = 16 * 1024
"""Bytes of the request target (path and query); longer is refused with 414. The proxy's routes are short
(nginx refuses targets over 8 KiB by default); the cap bounds what one request line can make us buffer."""

HEADER_TIMEOUT = 30.0
"""Seconds a client has to send a request's head, counted from the connection's accept for its first
request and from the first byte of each later one; then 408 and close: a client that trickles its head
byte by byte cannot hold a connection (slowloris)."""

BODY_TIMEOUT = 60.0
"""Seconds from the end of a request's head until all of its body has arrived (256 MiB over loopback
takes a second or two); then 408 and close, for the same reason."""

IDLE_TIMEOUT = 75.0
"""Seconds a keep-alive connection may stay idle after its last answer; then it is closed (without an
answer: none is owed). Longer than the clients' own pool expiry (httpx 5 s, aiohttp 15 s), so clients
normally close first and never send a request into a connection that is being closed. Also how long a
client may leave its answers unread (the proxy stops answering and reading meanwhile); then it is cut off."""

_LINGER_SECONDS = 2.0
"""After a refusal the proxy sends its answer, half-closes, and reads and drops what the client still
sends for up to this long: closing with unread data resets the connection, which can destroy the answer
in the client's buffers before the client reads it."""

_LINE_SLACK = 1024
"""Bytes of a request line besides its target (method, version), allowed for in the raw head limit."""

_FEED_BYTES = 32 * 1024
"""Bytes handed to the parser at once. The rest of a larger read (up to 256 KiB) is parsed in later turns
of the event loop, reading paused meanwhile, so a read full of tiny pipelined requests, fields or chunks
holds the loop a few ms at most; between pieces the head limit is checked."""

_MAX_QUEUED = 16
"""Pipelined requests waiting for their answers before the connection stops reading from the client;
it reads again at 4 or fewer."""

_MAX_BODY_PIECES = 64
"""Body pieces kept as they come; past this (a chunked body in tiny chunks) they are gathered in one
buffer, so a body's memory stays its size, not 40 bytes of object per chunk."""

_REASONS = {status.value: status.phrase for status in HTTPStatus}


def _serialize(response: HttpResponse, *, keep_alive: bool, head_only: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}"]
    lines.extend(f"{name}: {value}" for name, value in response.headers.items() if name not in FRAMING)
    if response.stream is not None:
        lines.append("transfer-encoding: chunked")
    else:
        lines.append(f"content-length: {len(response.body)}")
    if not keep_alive:
        lines.append("connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


class _RefusedError(Exception):
    """Raised in a parser callback to stop parsing: the request is answered with ``status``, then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_Wait = Literal["", "first", "head", "body", "idle", "drain", "linger"]
"""What a connection's deadline is for: nothing; its first request (nothing received yet); the rest of a
head; the rest of a body; its next request; the client reading its answers; the end of its lingering
after a refusal."""


class _ServerConnection(asyncio.Protocol):
    """One harness connection: parses requests, answers them in order (pipelining included).

    Limits are checked while a request arrives, and a read is parsed one piece (_FEED_BYTES) per turn of
    the event loop, so no request, however hostile, holds the loop for long (a few ms at most). A refused
    request is answered (in order, after the answers still owed) with ``connection: close``.
    """

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._time = self._loop.time
        self._url = b""
        self._headers: dict[str, str] = {}
        self._repeated: dict[str, list[str]] = {}
        self._read = 0  # bytes handed to the parser on this connection
        self._piece_start = 0  # ... before the piece being parsed
        self._in_head = False  # in a head or a trailer section
        self._head_start = 0  # _piece_start when it began: _read - _head_start bounds its size
        self._chunked = False
        self._body: list[bytes] = []
        self._gathered: bytearray | None = None
        self._size = 0
        self._queue: deque[tuple[HttpRequest, bool, bool]] = deque()  # (request, keep-alive, 100 Continue owed)
        self._continue = False  # the request arriving expects 100 Continue, owed after the answers before it
        self._refusal: HttpResponse | None = None  # sent after the answers to the queued requests
        self._backlog: memoryview | None = None  # the rest of a read, parsed in later turns of the loop
        self._scheduled = False  # _feed_next is scheduled
        self._worker: asyncio.Task[None] | None = None
        self._paused = False  # reading
        self._writes_paused = False  # the client does not read its answers
        self._drained: asyncio.Future[None] | None = None  # the answering waits for resume_writing
        self._rejected = False
        self.closed = False
        self.waiting: _Wait = ""
        self.deadline = math.inf

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self._server.connections.add(self)
        self._expect("first", self._server.header_timeout)

    def data_received(self, data: bytes | memoryview) -> None:
        if self._rejected:
            return  # lingering after a refusal: dropped
        if len(data) > _FEED_BYTES:  # the rest in later turns of the loop (_flow), reading paused meanwhile
            view = memoryview(data)
            self._backlog, data = view[_FEED_BYTES:], view[:_FEED_BYTES]
        self._piece_start = self._read
        self._read += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            refused = err.__context__
            if not isinstance(refused, _RefusedError):
                raise  # a bug in a callback: keep its traceback
            self._reject(refused.status, str(refused))
        except httptools.HttpParserUpgrade:  # on_headers_complete refuses upgrades first; just in case
            self._reject(400, "the proxy does not support protocol upgrades or CONNECT")
        except httptools.HttpParserError as err:
            self._reject(400, f"malformed HTTP request: {err}")
        else:
            if self._in_head and self._read - self._head_start > self._server.max_head_bytes + _FEED_BYTES:
                self._reject(431, f"header fields over {self._server.max_header_bytes} bytes")
        if self._backlog is not None:
            self._flow()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._backlog = None
        self._server.connections.discard(self)
        self._wake()

    def pause_writing(self) -> None:
        self._writes_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self._writes_paused = False
        self._wake()
        self._flow()

    def _wake(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = b"", {}, [], 0
        self._in_head, self._head_start = True, self._piece_start
        if self.waiting == "first":
            self.waiting = "head"  # the deadline still counts from the accept
        else:
            self.waiting, self.deadline = "head", self._time() + self._server.header_timeout

    def on_url(self, url: bytes) -> None:
        url = self._url + url
        if len(url) > self._server.max_target_bytes:
            raise _RefusedError(414, f"request target over {self._server.max_target_bytes} bytes")
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        add_header(self._headers, self._repeated, name, value)  # limits: on_headers_complete

    def on_headers_complete(self) -> None:
        self._in_head = False
        if (len(self._headers) > self._server.max_headers or self._repeated
                or self._read - self._head_start > self._server.max_header_bytes):
            self._check_fields()
        self.waiting, self.deadline = "body", self._time() + self._server.body_timeout
        if self._parser.should_upgrade():
            raise _RefusedError(400, "the proxy does not support protocol upgrades or CONNECT")
        length = self._headers.get("content-length")  # digits only (the parser checks them)
        if length is not None and len(length) >= self._server.max_request_digits:  # else below the limit
            self._check_length(length)
        if self._headers.get("expect", "").lower() == "100-continue":
            # in its turn: sent now it would read as an interim answer to a pipelined request still answered
            if self._worker is None:
                self._send_continue()
            else:
                self._continue = True

    def on_chunk_header(self) -> None:
        # the last chunk's header is followed by trailer fields (no body): a head of sorts
        self._in_head, self._head_start, self._chunked = True, self._piece_start, True

    def on_body(self, body: bytes) -> None:
        self._in_head = False
        self._size += len(body)
        if self._size > self._server.max_request_bytes:
            raise _RefusedError(413, f"request body over {self._server.max_request_bytes} bytes")
        if self._gathered is not None:
            self._gathered += body
        elif len(self._body) < _MAX_BODY_PIECES:
            self._body.append(body)
        else:
            self._gathered = bytearray().join(self._body)
            self._gathered += body
            self._body = []

    def on_message_complete(self) -> None:
        self._in_head = False
        if self._chunked:  # trailer fields count too
            self._chunked = False
            self._check_fields()
        self.waiting, self.deadline = "", math.inf
        if self._repeated:
            join_repeated(self._headers, self._repeated)
        if self._gathered is None:
            body = b"".join(self._body)
        else:
            body, self._gathered = bytes(self._gathered), None
        method = self._parser.get_method().decode("latin-1")
        request = HttpRequest(method, self._url.decode("latin-1"), self._headers, body)
        self._queue.append((request, self._parser.should_keep_alive(), self._continue))
        self._continue = False
        if len(self._queue) >= _MAX_QUEUED and not self._paused:
            self._flow()
        if self._worker is None:
            self._worker = self._loop.create_task(self._serve())
            self._server.workers.add(self._worker)

    # parsing
    def _feed_next(self) -> None:
        """Parse the next piece of the backlog (one per turn of the loop, while the client is not ahead)."""
        self._scheduled = False
        if self._backlog is None or self._rejected or self.closed or self._ahead():
            return  # _flow schedules it again once the client has caught up
        view, self._backlog = self._backlog, None
        self.data_received(view)  # its first piece; the rest becomes the backlog again
        self._flow()

    def _check_length(self, length: str) -> None:
        """Refuse (413) a declared body over the limit, before any of it is read."""
        try:
            declared = int(length)
        except ValueError:  # more digits than int() takes (leading zeros)
            raise _RefusedError(400, "malformed HTTP request: Content-Length too long") from None
        if declared > self._server.max_request_bytes:
            raise _RefusedError(413, f"request body over {self._server.max_request_bytes} bytes "
                                f"(Content-Length: {declared})")

    def _check_fields(self) -> None:
        """Refuse (431) a head (trailers included) with too many fields or too many bytes of them."""
        repeated = self._repeated
        count = len(self._headers) + sum(len(values) - 1 for values in repeated.values())
        if count > self._server.max_headers:
            raise _RefusedError(431, f"more than {self._server.max_headers} header fields")
        size = sum(len(key) + len(value) + 4 for key, value in self._headers.items() if key not in repeated)
        size += sum((len(key) + 4) * len(values) + sum(map(len, values)) for key, values in repeated.items())
        if size > self._server.max_header_bytes:
            raise _RefusedError(431, f"header fields over {self._server.max_header_bytes} bytes")

    def _ahead(self) -> bool:
        """Whether the client is too far ahead: it does not read its answers, or too many requests wait
        (_MAX_QUEUED; once reading has stopped, until at most 4 are left)."""
        return self._writes_paused or len(self._queue) > (4 if self._paused else _MAX_QUEUED - 1)

    def _flow(self) -> None:
        """Read from the client only while nothing of its last read is left to parse and it is not
        ahead; parse that rest one piece per turn of the loop. After a refusal: read (and drop)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        ahead = not self._rejected and self._ahead()
        if self._backlog is not None and not ahead and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._feed_next)
        pause = ahead or self._backlog is not None
        if pause != self._paused:
            self._paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # answering
    async def _serve(self) -> None:
        try:
            while self._queue:
                request, keep_alive, expects = self._queue.popleft()
                if expects:
                    self._send_continue()
                response = await self._answer(request)
                transport = self._transport
                if self.closed or transport is None or transport.is_closing():
                    # the client went away: its answer is still cached and counted, the rest is not worth it
                    self._queue.clear()
                    break
                keep_alive = keep_alive and not self._server.closing
                if response.stream is not None:
                    if not await self._relay(transport, response, response.stream, keep_alive=keep_alive):
                        self._queue.clear()
                        break
                else:
                    transport.write(_serialize(response, keep_alive=keep_alive, head_only=request.method == "HEAD"))
                if self._writes_paused and keep_alive:
                    await self._drain()
                if not keep_alive:
                    self._queue.clear()
                    transport.close()
                elif self._queue:
                    if self._paused:
                        self._flow()
                    await asyncio.sleep(0)  # pipelined answers that need no waiting still let others run
            if self._refusal is not None:
                self._refuse(self._refusal)
        finally:
            self._served()

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._server.handler(request)
        except Exception as err:  # a bug in the chain must not hang the harness
            print(f"adapter proxy: internal error on {request.method} {request.target}: "
                  f"{type(err).__name__}: {err}", file=sys.stderr)
            return HttpResponse(500, {"content-type": "application/json"},
                                b'{"error":{"message":"adapter proxy internal error","code":500}}')

    async def _relay(self, transport: asyncio.Transport, response: HttpResponse, stream: BodyStream, *,
                     keep_alive: bool) -> bool:
        """Send a streamed answer chunk by chunk as the stream yields them. When the stream breaks (the endpoint
        stops sending, or fails) the connection is aborted, so the client sees an incomplete answer, never a
        complete-looking one; when the client goes away the stream is dropped. False: the connection is gone."""
        error: str | None = "cancelled"
        head = _serialize(response, keep_alive=keep_alive)  # sent with the first chunk: one write, one segment
        try:
            while True:
                chunk = await stream.read()
                if self.closed or transport.is_closing():
                    error = "client_gone"
                    return False
                if not chunk:
                    transport.write(head + b"0\r\n\r\n")
                    error = None
                    return True
                transport.write(b"%b%x\r\n%b\r\n" % (head, len(chunk), chunk))
                head = b""
                if self._writes_paused:
                    await self._drain()  # the client reads slowly: so does the stream (cut off after IDLE_TIMEOUT)
        except TimeoutError:
            error = "stream_idle_timeout"
            return False
        except ResponseTooLargeError:
            error = "response_too_large"
            return False
        except Exception as err:  # the endpoint's connection broke (UpstreamError, OSError)
            print(f"adapter proxy: a streamed answer broke off: {type(err).__name__}: {err}", file=sys.stderr)
            error = "stream_broken"
            return False
        finally:
            stream.finish(error)
            if error is not None:
                transport.abort()

    def _served(self) -> None:
        """The worker is done: the connection is idle now, unless a request is arriving or was refused."""
        if self._worker is not None:
            self._server.workers.discard(self._worker)
        self._worker = None
        if self._continue:  # the request arriving expects it, and the answers before it are sent
            self._continue = False
            self._send_continue()
        if not self.waiting and not self._rejected:
            self.waiting, self.deadline = "idle", self._time() + self._server.idle_timeout
        if self._paused:
            self._flow()

    async def _drain(self) -> None:
        """Wait until the client has read enough of its answers (cut off after IDLE_TIMEOUT by expire)."""
        waiting, deadline = self.waiting, self.deadline
        self._expect("drain", self._server.idle_timeout)
        self._drained = self._loop.create_future()
        try:
            await self._drained
        finally:
            self._drained = None
        self.waiting, self.deadline = waiting, deadline

    def _send_continue(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _reject(self, status: int, message: str) -> None:
        """Refuse the request being read: answer after the answers still owed, then close."""
        self._rejected = True
        self._backlog = None
        self._continue = False
        self.waiting, self.deadline = "", math.inf
        body = json.dumps({"error": {"message": message, "code": status}}).encode()
        response = HttpResponse(status, {"content-type": "application/json"}, body)
        if self._worker is None:
            self._refuse(response)
        else:
            self._refusal = response  # after the answers owed before it

    def _refuse(self, response: HttpResponse) -> None:
        """Send a refusal, half-close, and linger (reading and dropping) until the client closes."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(_serialize(response, keep_alive=False))
        try:
            transport.write_eof()
        except OSError:  # the client is gone already
            transport.abort()
            return
        self._flow()  # reads again (and drops) if it had stopped
        self._expect("linger", _LINGER_SECONDS)

    def _expect(self, waiting: _Wait, seconds: float) -> None:
        self.waiting, self.deadline = waiting, self._time() + seconds

    def expire(self) -> None:
        """Called once the deadline has passed: 408 for a request still arriving, else close."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._worker is not None and self.waiting != "drain":
            return  # a request being answered: the handler's own timeouts apply
        waiting, self.waiting, self.deadline = self.waiting, "", math.inf
        if waiting in ("head", "body"):
            timeout = self._server.header_timeout if waiting == "head" else self._server.body_timeout
            self._reject(408, f"the request's {waiting} did not arrive within {timeout:g} s")
        elif waiting in ("drain", "linger") or transport.get_write_buffer_size():
            transport.abort()  # a client that does not read what it is sent
        else:
            transport.close()  # idle, or nothing received: no answer is owed

    def close_if_idle(self) -> None:
        """Close the connection unless a request is being answered."""
        if self._worker is None and self._transport is not None:
            self._transport.close()


class HttpServer:
    """Listens on 127.0.0.1 and hands every request to ``handler``; limits and timeouts: the module's
    constants of the same names."""

    def __init__(self, handler: Handler, *, max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_headers: int = MAX_HEADERS, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_target_bytes: int = MAX_TARGET_BYTES, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.handler = handler
        self.max_request_bytes = max_request_bytes
        self.max_request_digits = len(str(max_request_bytes))
        self.max_headers, self.max_header_bytes = max_headers, max_header_bytes
        self.max_target_bytes = max_target_bytes
        self.max_head_bytes = max_target_bytes + max_header_bytes + _LINE_SLACK
        self.header_timeout, self.body_timeout, self.idle_timeout = header_timeout, body_timeout, idle_timeout
        self.connections: set[_ServerConnection] = set()
        self.workers: set[asyncio.Task[None]] = set()
        self.closing = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        # deadlines are checked by one sweep for all connections (a timer per request costs more);
        # a timeout fires up to a quarter of the shortest one late, at most a second
        self._tick = min(1.0, max(0.01, min(header_timeout, body_timeout, idle_timeout, _LINGER_SECONDS) / 4))
        self.port = 0

    async def start(self, port: int = 0, *, reuse_port: bool = False) -> None:
        """Listen on 127.0.0.1:``port`` (0: a free port); ``reuse_port``: share it with other processes."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        loop = asyncio.get_running_loop()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(1024)
            sock.setblocking(False)
            self._server = await loop.create_server(lambda: _ServerConnection(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self._sweeper = loop.call_later(self._tick, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in [c for c in self.connections if c.deadline <= now]:
            connection.expire()
        self._sweeper = loop.call_later(self._tick, self._sweep, loop)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish (up to ``grace`` s), cancel the rest and wait for them
        to end (up to ``grace`` s again), close every connection."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close_if_idle()
        if self.workers:
            await asyncio.wait(list(self.workers), timeout=grace)
        for task in list(self.workers):
            task.cancel()
        if self.workers:  # ... and ended, their handlers' cleanup included: no task outlives stop()
            await asyncio.wait(list(self.workers), timeout=grace)
        for connection in list(self.connections):
            if connection._transport is not None:
                connection._transport.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=grace)


