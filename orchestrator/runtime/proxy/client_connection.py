"""One keep-alive connection to the endpoint: an asyncio protocol on httptools' response parser (llhttp).

The pool (:mod:`orchestrator.runtime.proxy.upstream_pool`) sends one request at a time on it and reads the answer
whole, or, for a streamed answer, its head and then its body as it arrives.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import cast

import httptools

from orchestrator.runtime.proxy.http import (
    MAX_RESPONSE_BYTES,
    HttpResponse,
    ResponseTooLargeError,
    UpstreamError,
    add_header,
    join_repeated,
)

_STREAM_BUFFER = 1024 * 1024
"""Bytes of a streamed answer received but not yet relayed before the connection stops reading from the
endpoint (the harness reads slowly); it reads again once they are relayed."""



class ClientConnection(asyncio.Protocol):
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
