"""One harness connection to the proxy's HTTP server: an asyncio protocol that answers requests in order.

It reads (through :class:`~orchestrator.runtime.proxy.request_reader.RequestReader`) one piece per turn of the
event loop, pauses reading while the client is ahead (answers unread, too many pipelined requests waiting),
answers each request with the server's handler, streamed answers chunk by chunk, and refuses a request that
breaks a limit or a timeout with one JSON error line and ``connection: close``, after the answers still owed,
never with a traceback. The server that owns the connections: :mod:`orchestrator.runtime.proxy.http_server`.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, Literal, cast

from orchestrator.runtime.proxy.http import FRAMING, BodyStream, HttpRequest, HttpResponse, ResponseTooLargeError
from orchestrator.runtime.proxy.request_reader import FEED_BYTES, RequestReader

if TYPE_CHECKING:
    from orchestrator.runtime.proxy.http_server import HttpServer

LINGER_SECONDS = 2.0
"""After a refusal the proxy sends its answer, half-closes, and reads and drops what the client still
sends for up to this long: closing with unread data resets the connection, which can destroy the answer
in the client's buffers before the client reads it."""

_MAX_QUEUED = 16
"""Pipelined requests waiting for their answers before the connection stops reading from the client;
it reads again at 4 or fewer."""

_REASONS = {status.value: status.phrase for status in HTTPStatus}


def serialize(response: HttpResponse, *, keep_alive: bool, head_only: bool = False) -> bytes:
    """An answer's head and (unless ``head_only``, or streamed) its body, as sent."""
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


Wait = Literal["", "first", "head", "body", "idle", "drain", "linger"]
"""What a connection's deadline is for: nothing; its first request (nothing received yet); the rest of a
head; the rest of a body; its next request; the client reading its answers; the end of its lingering
after a refusal."""


class ServerConnection(asyncio.Protocol):
    """One harness connection: reads requests, answers them in order (pipelining included).

    Limits are checked while a request arrives, and a read is parsed one piece (FEED_BYTES) per turn of
    the event loop, so no request, however hostile, holds the loop for long (a few ms at most). A refused
    request is answered (in order, after the answers still owed) with ``connection: close``.
    """

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._reader = RequestReader(self, server.limits)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._time = self._loop.time
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
        self.waiting: Wait = ""
        self.deadline = math.inf

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self._server.connections.add(self)
        self._expect("first", self._server.header_timeout)

    def data_received(self, data: bytes | memoryview) -> None:
        if self._rejected:
            return  # lingering after a refusal: dropped
        if len(data) > FEED_BYTES:  # the rest in later turns of the loop (_flow), reading paused meanwhile
            view = memoryview(data)
            self._backlog, data = view[FEED_BYTES:], view[:FEED_BYTES]
        refusal = self._reader.feed(data)
        if refusal is not None:
            self._reject(*refusal)
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

    # RequestSink: what the reader reports
    def head_begun(self) -> None:
        """A request's first byte: its head must arrive within the header timeout."""
        if self.waiting == "first":
            self.waiting = "head"  # the deadline still counts from the accept
        else:
            self.waiting, self.deadline = "head", self._time() + self._server.header_timeout

    def head_complete(self, *, expects_continue: bool) -> None:
        """Its body must arrive within the body timeout; 100 Continue when asked, in its turn."""
        self.waiting, self.deadline = "body", self._time() + self._server.body_timeout
        if expects_continue:
            # in its turn: sent now it would read as an interim answer to a pipelined request still answered
            if self._worker is None:
                self._send_continue()
            else:
                self._continue = True

    def request_complete(self, request: HttpRequest, *, keep_alive: bool) -> None:
        """Queue it for an answer (answering starts if it was idle)."""
        self.waiting, self.deadline = "", math.inf
        self._queue.append((request, keep_alive, self._continue))
        self._continue = False
        if len(self._queue) >= _MAX_QUEUED and not self._paused:
            self._flow()
        if self._worker is None:
            self._worker = self._loop.create_task(self._serve())
            self._server.workers.add(self._worker)

    # reading
    def _feed_next(self) -> None:
        """Parse the next piece of the backlog (one per turn of the loop, while the client is not ahead)."""
        self._scheduled = False
        if self._backlog is None or self._rejected or self.closed or self._ahead():
            return  # _flow schedules it again once the client has caught up
        view, self._backlog = self._backlog, None
        self.data_received(view)  # its first piece; the rest becomes the backlog again
        self._flow()

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
                    transport.write(serialize(response, keep_alive=keep_alive, head_only=request.method == "HEAD"))
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
        head = serialize(response, keep_alive=keep_alive)  # sent with the first chunk: one write, one segment
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

    # refusing, timing out, closing
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
        transport.write(serialize(response, keep_alive=False))
        try:
            transport.write_eof()
        except OSError:  # the client is gone already
            transport.abort()
            return
        self._flow()  # reads again (and drops) if it had stopped
        self._expect("linger", LINGER_SECONDS)

    def _expect(self, waiting: Wait, seconds: float) -> None:
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

    def abort(self) -> None:
        """Close the connection at once (the server is stopping)."""
        if self._transport is not None:
            self._transport.abort()
