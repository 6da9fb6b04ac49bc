"""Reading requests from one harness connection: httptools' parser (llhttp) under the server's limits.

Content-Length and chunked bodies, pipelined requests one after another. Every limit is checked while a
request arrives (431, 414, 413 before the body is read), so a hostile request is refused before it costs
much; the connection (:mod:`orchestrator.runtime.proxy.server_connection`) hands the reader one piece
(:data:`FEED_BYTES`) per turn of the event loop and hears of each request's progress through a
:class:`RequestSink`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import httptools

from orchestrator.runtime.proxy.http import HttpRequest, add_header, join_repeated

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
bytes read since it began pass the target's and the fields' limits by one parser piece (FEED_BYTES): no
head makes the proxy parse more than about 150 KiB (some 37,000 fields, a few ms a turn) before it is
refused."""

MAX_TARGET_BYTES = 16 * 1024
"""Bytes of the request target (path and query); longer is refused with 414. The proxy's routes are short
(nginx refuses targets over 8 KiB by default); the cap bounds what one request line can make us buffer."""

FEED_BYTES = 32 * 1024
"""Bytes handed to the parser at once. The rest of a larger read (up to 256 KiB) is parsed in later turns
of the event loop, reading paused meanwhile, so a read full of tiny pipelined requests, fields or chunks
holds the loop a few ms at most; between pieces the head limit is checked."""

_LINE_SLACK = 1024
"""Bytes of a request line besides its target (method, version), allowed for in the raw head limit."""

_MAX_BODY_PIECES = 64
"""Body pieces kept as they come; past this (a chunked body in tiny chunks) they are gathered in one
buffer, so a body's memory stays its size, not 40 bytes of object per chunk."""


@dataclass(frozen=True)
class RequestLimits:
    """What one request may be (the module's constants of the same names by default)."""

    max_request_bytes: int = MAX_REQUEST_BYTES
    max_headers: int = MAX_HEADERS
    max_header_bytes: int = MAX_HEADER_BYTES
    max_target_bytes: int = MAX_TARGET_BYTES
    max_request_digits: int = field(init=False)
    """Digits of the largest body allowed: a shorter Content-Length is below the limit without parsing it."""
    max_head_bytes: int = field(init=False)
    """Bytes a head may take on the wire (request line and fields), before the unfinished-head check's slack."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_request_digits", len(str(self.max_request_bytes)))
        object.__setattr__(self, "max_head_bytes", self.max_target_bytes + self.max_header_bytes + _LINE_SLACK)


Refusal = tuple[int, str]
"""Why the request being read is refused: (status, message)."""


class RefusedError(Exception):
    """Raised in a parser callback to stop parsing: the request is answered with ``status``, then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RequestSink(Protocol):
    """What the connection hears from its reader, in the order a request arrives."""

    def head_begun(self) -> None:
        """A request's first byte was read."""
        ...

    def head_complete(self, *, expects_continue: bool) -> None:
        """Its head was read and is within the limits (``expects_continue``: it asks for 100 Continue)."""
        ...

    def request_complete(self, request: HttpRequest, *, keep_alive: bool) -> None:
        """All of it was read."""
        ...


class RequestReader:
    """The parser's callbacks: one request after another from a connection's bytes, within ``limits``."""

    def __init__(self, sink: RequestSink, limits: RequestLimits) -> None:
        self._sink = sink
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
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

    def feed(self, data: bytes | memoryview) -> Refusal | None:
        """Parse one piece (at most FEED_BYTES); why the request being read is refused, if it is."""
        self._piece_start = self._read
        self._read += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            refused = err.__context__
            if not isinstance(refused, RefusedError):
                raise  # a bug in a callback: keep its traceback
            return refused.status, str(refused)
        except httptools.HttpParserUpgrade:  # on_headers_complete refuses upgrades first; just in case
            return 400, "the proxy does not support protocol upgrades or CONNECT"
        except httptools.HttpParserError as err:
            return 400, f"malformed HTTP request: {err}"
        if self._in_head and self._read - self._head_start > self._limits.max_head_bytes + FEED_BYTES:
            return 431, f"header fields over {self._limits.max_header_bytes} bytes"
        return None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = b"", {}, [], 0
        self._in_head, self._head_start = True, self._piece_start
        self._sink.head_begun()

    def on_url(self, url: bytes) -> None:
        url = self._url + url
        if len(url) > self._limits.max_target_bytes:
            raise RefusedError(414, f"request target over {self._limits.max_target_bytes} bytes")
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        add_header(self._headers, self._repeated, name, value)  # limits: on_headers_complete

    def on_headers_complete(self) -> None:
        self._in_head = False
        limits = self._limits
        if (len(self._headers) > limits.max_headers or self._repeated
                or self._read - self._head_start > limits.max_header_bytes):
            self._check_fields()
        if self._parser.should_upgrade():
            raise RefusedError(400, "the proxy does not support protocol upgrades or CONNECT")
        length = self._headers.get("content-length")  # digits only (the parser checks them)
        if length is not None and len(length) >= limits.max_request_digits:  # else below the limit
            self._check_length(length)
        self._sink.head_complete(expects_continue=self._headers.get("expect", "").lower() == "100-continue")

    def on_chunk_header(self) -> None:
        # the last chunk's header is followed by trailer fields (no body): a head of sorts
        self._in_head, self._head_start, self._chunked = True, self._piece_start, True

    def on_body(self, body: bytes) -> None:
        self._in_head = False
        self._size += len(body)
        if self._size > self._limits.max_request_bytes:
            raise RefusedError(413, f"request body over {self._limits.max_request_bytes} bytes")
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
        if self._repeated:
            join_repeated(self._headers, self._repeated)
        if self._gathered is None:
            body = b"".join(self._body)
        else:
            body, self._gathered = bytes(self._gathered), None
        method = self._parser.get_method().decode("latin-1")
        request = HttpRequest(method, self._url.decode("latin-1"), self._headers, body)
        self._sink.request_complete(request, keep_alive=self._parser.should_keep_alive())

    # limits
    def _check_length(self, length: str) -> None:
        """Refuse (413) a declared body over the limit, before any of it is read."""
        try:
            declared = int(length)
        except ValueError:  # more digits than int() takes (leading zeros)
            raise RefusedError(400, "malformed HTTP request: Content-Length too long") from None
        if declared > self._limits.max_request_bytes:
            raise RefusedError(413, f"request body over {self._limits.max_request_bytes} bytes "
                               f"(Content-Length: {declared})")

    def _check_fields(self) -> None:
        """Refuse (431) a head (trailers included) with too many fields or too many bytes of them."""
        limits, repeated = self._limits, self._repeated
        count = len(self._headers) + sum(len(values) - 1 for values in repeated.values())
        if count > limits.max_headers:
            raise RefusedError(431, f"more than {limits.max_headers} header fields")
        size = sum(len(key) + len(value) + 4 for key, value in self._headers.items() if key not in repeated)
        size += sum((len(key) + 4) * len(values) + sum(map(len, values)) for key, values in repeated.items())
        if size > limits.max_header_bytes:
            raise RefusedError(431, f"header fields over {limits.max_header_bytes} bytes")
