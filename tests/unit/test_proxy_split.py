"""Split-anywhere tests of the proxy's HTTP/1.1 layer: the client towards the endpoint and the server for the harness.

Every valid byte stream below, cut at every offset and at random sets of offsets, parses as it does whole: the
same answers (status, headers, body, whether the connection is kept) on the client side; the same requests handed
to the handler and the same bytes sent back on the server side. Every-offset cutting drives the protocols
directly through a transport test double (thousands of parses a second); a few cases go over real loopback
sockets, the peer writing its segments with pauses between them. Then the leaks: a harness hanging up
mid-request, a caller cancelled mid-exchange, a server stopped with requests in flight leave no task, connection
or socket behind (on asyncio's event loop and on the proxy's, uvloop when installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import os
import random
import re
import socket
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, TypeVar

import pytest

from orchestrator.runtime.proxy.client_connection import ClientConnection
from orchestrator.runtime.proxy.http import HttpRequest, HttpResponse, new_event_loop
from orchestrator.runtime.proxy.http_server import HttpServer, _ServerConnection
from orchestrator.runtime.proxy.upstream_pool import StreamedAnswer, UpstreamPool

T = TypeVar("T")
RANDOM_SPLITS = 100  # random sets of 2 to 8 cuts per stream, besides every single cut and every byte alone
LOOPS = ["asyncio's", "proxy's"]


class TransportDouble:
    """A test double of asyncio.Transport: keeps what is written; closing reports the loss to the protocol on
    the loop's next turn, as asyncio's transports do. ``late``: what was written after closing or write_eof
    (lost, or a RuntimeError, with a real transport)."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.protocol = protocol
        self.written = bytearray()
        self.closing = False
        self.reading = True
        self.eof = False
        self.late: list[bytes] = []

    def write(self, data: bytes) -> None:
        if self.closing or self.eof:
            self.late.append(data)
        else:
            self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def cut_sets(length: int, seed: int) -> Iterable[tuple[int, ...]]:
    """The cuts to try in a stream of ``length`` bytes: none, each offset alone, every byte alone, random sets."""
    yield ()
    yield from ((offset,) for offset in range(1, length))
    yield tuple(range(1, length))
    rng = random.Random(seed)
    for _ in range(RANDOM_SPLITS):
        yield tuple(sorted(rng.sample(range(1, length), k=min(length - 1, rng.randint(2, 8)))))


def pieces(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    offsets = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(offsets)]


async def settle(done: Callable[[], bool], seconds: float = 3.0) -> None:
    """Run the loop until ``done()`` (the caller asserts it again: this only waits)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for _ in range(20):  # what needs only callbacks already scheduled
        if done():
            return
        await asyncio.sleep(0)
    while not done() and loop.time() < deadline:
        await asyncio.sleep(0.002)


def run(main: Callable[[], Coroutine[Any, Any, T]], loop: str = "asyncio's") -> T:
    with asyncio.Runner(loop_factory=new_event_loop if loop == "proxy's" else None) as runner:
        return runner.run(main())


# The client: the endpoint's answers

def ok(body: bytes, *fields: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(f + b"\r\n" for f in fields) + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


def chunked(pieces_: Iterable[bytes], *fields: bytes, trailer: bytes = b"") -> bytes:
    """A chunked answer; each chunk with an extension (RFC 9112 7.1.1), which must be ignored."""
    chunks = b"".join(b"%x;n=%d;q=\"a;b\"\r\n" % (len(p), i) + p + b"\r\n" for i, p in enumerate(pieces_))
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + b"".join(f + b"\r\n" for f in fields) + \
        b"\r\n" + chunks + b"0;last\r\n" + trailer + b"\r\n"


BODY = b'{"choices": [{"message": {"content": "split anywhere"}}]}'
PACKED = gzip.compress(BODY, mtime=0)
LENGTH = b"Content-Length: %d" % len(BODY)  # of the body a HEAD or a 304 does not carry
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nLink: </b.js>; rel=preload\r\n\r\n"


@dataclass(frozen=True)
class Answers:
    """What the endpoint sends for each request on one connection, and what the client must make of it:
    (status, body, fields the headers must hold, whether the connection may be reused) per answer."""

    name: str
    exchanges: tuple[tuple[str, bytes], ...]  # (the request's method, the endpoint's bytes)
    expected: tuple[tuple[int, bytes, dict[str, str], bool], ...]
    closes: bool = False  # the endpoint closes the connection after its last byte

    @property
    def stream(self) -> bytes:
        return b"".join(answer for _, answer in self.exchanges)


ANSWERS = [
    Answers("content-length, repeated fields", (("POST", ok(BODY, b"Content-Type: application/json",
                                                             b"X-Dup: a", b"x-dup: b")),),
            ((200, BODY, {"content-type": "application/json", "x-dup": "a, b"}, True),)),
    Answers("chunked, extensions and trailers", (("POST", chunked(
        [BODY[:7], BODY[7:8], BODY[8:]], b"Trailer: X-Checksum", b"X-Dup: a",
        trailer=b"X-Checksum: c0ffee\r\nX-Dup: t\r\n")),),
        ((200, BODY, {"x-checksum": "c0ffee", "x-dup": "a, t"}, True),)),
    Answers("close-delimited", (("POST", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                                 + BODY),), ((200, BODY, {"content-type": "text/plain"}, False),), closes=True),
    Answers("close-delimited HTTP/1.0", (("POST", b"HTTP/1.0 200 OK\r\n\r\n" + BODY),), ((200, BODY, {}, False),),
            closes=True),
    Answers("gzip, content-length", (("POST", ok(PACKED, b"Content-Encoding: gzip")),), ((200, BODY, {}, True),)),
    Answers("gzip, chunked", (("POST", chunked([PACKED[:10], PACKED[10:]], b"Content-Encoding: gzip")),),
            ((200, BODY, {}, True),)),
    Answers("answer to HEAD", (("HEAD", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + LENGTH
                                + b"\r\n\r\n"),),
            ((200, b"", {"content-length": str(len(BODY))}, False),)),  # not reused: see on_headers_complete
    Answers("204, 304 and 200 in turn", (("POST", b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
                                         ("GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n" + LENGTH
                                                 + b"\r\n\r\n"),
                                         ("POST", ok(BODY))),
            ((204, b"", {"x-a": "1"}, True), (304, b"", {"etag": '"e"'}, True), (200, BODY, {}, True))),
    Answers("100 and 103 before the answer", (("POST", CONTINUE + HINTS + ok(BODY, b"X-Final: yes")),),
            ((200, BODY, {"x-final": "yes"}, True),)),
    Answers("two answers in turn, kept alive", (("POST", ok(b'{"n": 1}')), ("POST", chunked([b'{"n": 2}']))),
            ((200, b'{"n": 1}', {}, True), (200, b'{"n": 2}', {}, True))),
]

Parsed = tuple[int, list[tuple[str, str]], bytes, bool] | str


def parse_answers(case: Answers, cuts: tuple[int, ...]) -> list[Parsed]:
    """Feed ``case`` to a client connection in the segments ``cuts`` makes (an answer never arrives before its
    request is sent, so segments also end where answers do); (status, headers, body, reusable) per answer."""
    connection = ClientConnection()
    connection.connection_made(TransportDouble(connection))  # type: ignore[arg-type]
    results: list[Parsed] = []
    start = 0
    for index, (method, answer) in enumerate(case.exchanges):
        end = start + len(answer)
        waiter = connection.send(f"{method} /v1 HTTP/1.1\r\n\r\n".encode(), head_only=method == "HEAD")
        for segment in pieces(answer, [cut - start for cut in cuts if start < cut < end]):
            connection.data_received(segment)
        if case.closes and index == len(case.exchanges) - 1:
            connection.connection_lost(None)
        if not waiter.done():
            results.append("no answer")
        elif waiter.exception() is not None:
            results.append(repr(waiter.exception()))
        else:
            response = connection.response()
            results.append((response.status, list(response.headers.items()), response.body,
                            connection.keep_alive and not connection.lost))
        start = end
    return results


@pytest.mark.parametrize("case", ANSWERS, ids=[case.name for case in ANSWERS])
def test_client_parses_an_answer_cut_anywhere_as_it_does_whole(case: Answers) -> None:
    async def main() -> None:
        whole = parse_answers(case, ())
        for parsed, (status, body, fields, reusable) in zip(whole, case.expected, strict=True):
            assert not isinstance(parsed, str), parsed
            assert (parsed[0], parsed[2], parsed[3]) == (status, body, reusable)
            assert fields.items() <= dict(parsed[1]).items()
        for cuts in cut_sets(len(case.stream), seed=len(case.stream)):
            assert parse_answers(case, cuts) == whole, cuts
    asyncio.run(main())


async def parse_streamed(case: Answers, cuts: tuple[int, ...]) -> list[Parsed]:
    """:func:`parse_answers` with each answer's body read as it arrives (``UpstreamPool.open_stream``'s way): a
    reader reads the :class:`StreamedAnswer` while the segments come in, the loop turning between them."""
    pool = UpstreamPool("http://127.0.0.1:9", max_connections=len(case.exchanges))
    connection = ClientConnection()
    connection.connection_made(TransportDouble(connection))  # type: ignore[arg-type]
    results: list[Parsed] = []
    start = 0

    async def read(streamed: StreamedAnswer) -> bytes:
        body = b""
        while chunk := await streamed.read():
            body += chunk
        return body

    for index, (method, answer) in enumerate(case.exchanges):
        end = start + len(answer)
        pool._busy += 1  # as _exchange does before sending
        waiter = connection.send(f"{method} /v1 HTTP/1.1\r\n\r\n".encode(), head_only=False, streaming=True)
        streamed: StreamedAnswer | None = None
        reader: asyncio.Task[bytes] | None = None
        segments = pieces(answer, [cut - start for cut in cuts if start < cut < end])
        for number, segment in enumerate(segments):
            connection.data_received(segment)
            if case.closes and index == len(case.exchanges) - 1 and number == len(segments) - 1:
                connection.connection_lost(None)
            if reader is None and waiter.done() and waiter.exception() is None:
                streamed = StreamedAnswer(pool, connection, idle_timeout=1.0)
                reader = asyncio.create_task(read(streamed))
            for _ in range(3):
                await asyncio.sleep(0)
        if reader is None or streamed is None:
            results.append(repr(waiter.exception()) if waiter.done() else "no answer")
        else:
            try:
                body = await reader
            except Exception as err:  # compared as text with the whole parse
                results.append(repr(err))
            else:
                results.append((streamed.status, list(streamed.headers.items()), body,
                                connection.keep_alive and not connection.lost))
            streamed.close(complete=True)
        start = end
    return results


STREAMED = [case for case in ANSWERS if all(method != "HEAD" for method, _ in case.exchanges)]


@pytest.mark.parametrize("case", STREAMED, ids=[case.name for case in STREAMED])
def test_client_reads_a_streamed_answer_cut_anywhere_as_it_does_whole(case: Answers) -> None:
    async def main() -> None:
        whole = parse_answers(case, ())  # the buffered client's parse (bodies decompressed)
        for parsed in whole:
            assert not isinstance(parsed, str), parsed
        for cuts in cut_sets(len(case.stream), seed=len(case.stream)):
            assert await parse_streamed(case, cuts) == whole, cuts
    asyncio.run(main())


class SegmentedEndpoint:
    """A loopback endpoint stand-in that sends each answer in given segments, draining and pausing between
    them so each is its own TCP segment; it closes the connection after an answer marked so. A target in
    ``holds`` waits for its event before its second segment."""

    def __init__(self, script: dict[str, tuple[list[bytes], bool]],
                 holds: dict[str, asyncio.Event] | None = None) -> None:
        self.script = script  # target -> (segments, close after)
        self.holds = holds or {}
        self.requests = 0
        self.connections = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        self.writers.append(writer)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                target = head.split(b" ")[1].decode()
                self.requests += 1
                segments, close = self.script[target]
                for index, segment in enumerate(segments):
                    if index == 1 and target in self.holds:
                        await self.holds[target].wait()
                    elif index:
                        await asyncio.sleep(0.003)
                    writer.write(segment)
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for event in self.holds.values():  # the answers held back go to connections closed by now
            event.set()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=3)


def test_client_over_loopback_parses_segmented_answers_as_it_does_whole() -> None:
    chosen = [case for case in ANSWERS if case.name in (
        "chunked, extensions and trailers", "close-delimited", "gzip, chunked", "answer to HEAD",
        "204, 304 and 200 in turn", "100 and 103 before the answer")]
    rng = random.Random(7)
    script: dict[str, tuple[list[bytes], bool]] = {}
    plan: list[tuple[str, str]] = []  # (method, target), in the order sent
    for case in chosen:
        for attempt in range(3):
            for index, (method, answer) in enumerate(case.exchanges):
                cuts = sorted(rng.sample(range(1, len(answer)), k=3))
                target = f"/{chosen.index(case)}/{attempt}/{index}"
                script[target] = (pieces(answer, cuts), case.closes and index == len(case.exchanges) - 1)
                plan.append((method, target))

    async def main() -> tuple[list[Parsed], list[Parsed]]:
        expected = [parsed for case in chosen for _ in range(3) for parsed in parse_answers(case, ())]  # whole
        endpoint = SegmentedEndpoint(script)
        pool = UpstreamPool(await endpoint.start(), max_connections=1)
        received: list[Parsed] = []
        try:
            for method, target in plan:
                response = await pool.request(method, target, {}, b"", timeout=5)
                received.append((response.status, list(response.headers.items()), response.body,
                                  bool(pool._idle)))
        finally:
            pool.close()
            await endpoint.stop()
        return received, expected

    received, expected = asyncio.run(main())
    assert received == expected


# The server: the harness's requests

def post(target: bytes, body: bytes, *fields: bytes) -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(f + b"\r\n" for f in fields) + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


def post_chunked(target: bytes, chunks: Iterable[bytes], *fields: bytes, trailer: bytes = b"") -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n" + \
        b"".join(f + b"\r\n" for f in fields) + b"\r\n" + \
        b"".join(b"%x;n=%d\r\n" % (len(c), i) + c + b"\r\n" for i, c in enumerate(chunks)) + \
        b"0;last=\"yes\"\r\n" + trailer + b"\r\n"


REQUEST = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
CHAT = b"/v1/chat/completions"
GET = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n"


@dataclass(frozen=True)
class Requests:
    """What the harness sends on one connection, the (method, target, body, fields the headers must hold) the
    handler must see for each request, and the statuses the harness gets, in order (100: a ``100 Continue``)."""

    name: str
    stream: bytes
    expected: tuple[tuple[str, str, bytes, dict[str, str]], ...]
    statuses: tuple[int, ...]


REQUESTS = [
    Requests("content-length, repeated fields", post(CHAT + b"?a=1&b=%20", REQUEST, b"Content-Type: application/json",
                                                     b"X-Dup: a", b"x-dup: b"),
             (("POST", "/v1/chat/completions?a=1&b=%20", REQUEST, {"x-dup": "a, b"}),), (200,)),
    Requests("chunked, extensions and trailers", post_chunked(CHAT, [REQUEST[:9], REQUEST[9:10], REQUEST[10:]],
                                                              b"Trailer: X-Checksum",
                                                              trailer=b"X-Checksum: c0ffee\r\n"),
             (("POST", "/v1/chat/completions", REQUEST, {"x-checksum": "c0ffee"}),), (200,)),
    Requests("pipelined, the last closing", GET + post(CHAT, REQUEST) + post_chunked(CHAT, [b"{}"])
             + b"GET /v1/models?last HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             (("GET", "/v1/models", b"", {}), ("POST", "/v1/chat/completions", REQUEST, {}),
              ("POST", "/v1/chat/completions", b"{}", {}), ("GET", "/v1/models?last", b"", {"connection": "close"})),
             (200, 200, 200, 200)),
    Requests("expect 100-continue, content-length", post(CHAT, REQUEST, b"Expect: 100-continue"),
             (("POST", "/v1/chat/completions", REQUEST, {"expect": "100-continue"}),), (100, 200)),
    Requests("expect 100-continue, chunked", post_chunked(CHAT, [REQUEST], b"Expect: 100-continue"),
             (("POST", "/v1/chat/completions", REQUEST, {}),), (100, 200)),
    Requests("HEAD, then GET", b"HEAD /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + GET,
             (("HEAD", "/v1/models", b"", {}), ("GET", "/v1/models", b"", {})), (200, 200)),
    Requests("HTTP/1.0", b"POST /v1/completions HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
             (("POST", "/v1/completions", b"{}", {}),), (200,)),
    # its 100 Continue after the first answer: before it, it would read as an interim answer to the first request
    Requests("pipelined, the second expecting 100-continue", GET + post(CHAT, REQUEST, b"Expect: 100-continue"),
             (("GET", "/v1/models", b"", {}), ("POST", "/v1/chat/completions", REQUEST, {})), (200, 100, 200)),
]


class Recorder:
    """The handler: keeps each request and answers with all of it, so the bytes back show what it saw."""

    def __init__(self) -> None:
        self.seen: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        await asyncio.sleep(0)  # as a real handler would, before answering
        body = json.dumps([request.method, request.target, request.headers, request.body.decode()]).encode()
        return HttpResponse(200, {"content-type": "application/json", "x-n": str(len(self.seen))}, body)


async def serve_requests(case: Requests, cuts: tuple[int, ...]) -> tuple[list[HttpRequest], bytes]:
    """Feed ``case`` to a server connection in the segments ``cuts`` makes, letting the loop run between them
    as between reads; the requests the handler saw and the bytes sent back."""
    recorder = Recorder()
    server = HttpServer(recorder)
    connection = _ServerConnection(server)
    transport = TransportDouble(connection)
    connection.connection_made(transport)  # type: ignore[arg-type]
    for segment in pieces(case.stream, cuts):
        await settle(lambda: transport.reading)  # a transport delivers nothing while reading is paused
        assert transport.reading
        connection.data_received(segment)
        await asyncio.sleep(0)
    await settle(lambda: not server.workers and len(recorder.seen) == len(case.expected))
    assert not server.workers
    if not connection.closed:
        transport.close()
        await asyncio.sleep(0)
    assert not server.connections and not transport.late
    return recorder.seen, bytes(transport.written)


@pytest.mark.parametrize("case", REQUESTS, ids=[case.name for case in REQUESTS])
def test_server_parses_requests_cut_anywhere_as_it_does_whole(case: Requests) -> None:
    async def main() -> None:
        seen, sent = await serve_requests(case, ())
        assert [(r.method, r.target, r.body) for r in seen] == [e[:3] for e in case.expected]
        for request, (*_, fields) in zip(seen, case.expected, strict=True):
            assert fields.items() <= request.headers.items()
        assert tuple(int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", sent)) == case.statuses
        for cuts in cut_sets(len(case.stream), seed=len(case.stream)):
            assert await serve_requests(case, cuts) == (seen, sent), cuts
    asyncio.run(main())


def test_a_pipelined_request_expecting_100_continue_and_refused_gets_no_100_continue() -> None:
    """Refused (413) before its turn came: no 100 Continue, and nothing written after the refusal's end."""
    async def main() -> tuple[bytes, list[bytes]]:
        release = asyncio.Event()

        async def slow(request: HttpRequest) -> HttpResponse:
            await release.wait()
            return HttpResponse(200, {}, b"{}")

        connection = _ServerConnection(HttpServer(slow, max_request_bytes=1000))
        transport = TransportDouble(connection)
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.data_received(GET)
        await asyncio.sleep(0)  # the first request is being answered
        connection.data_received(post_chunked(CHAT, [b"x" * 2000], b"Expect: 100-continue"))  # over the limit
        release.set()
        await settle(lambda: transport.eof and not connection._worker)
        return bytes(transport.written), transport.late

    sent, late = asyncio.run(main())
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", sent) == [b"200", b"413"] and late == []


def test_server_parses_large_requests_cut_anywhere_as_it_does_whole() -> None:
    """Bodies over the parser's piece (a read parsed over several turns of the loop): random cuts."""
    big = Requests("large", post(CHAT, b"x" * 100_000) + post_chunked(CHAT, [b"y" * 40_000, b"z" * 40_000]),
                   (("POST", "/v1/chat/completions", b"x" * 100_000, {}),
                    ("POST", "/v1/chat/completions", b"y" * 40_000 + b"z" * 40_000, {})), (200, 200))
    rng = random.Random(5)

    async def main() -> None:
        seen, sent = await serve_requests(big, ())
        assert [(r.method, r.target, r.body) for r in seen] == [e[:3] for e in big.expected]
        for _ in range(30):
            cuts = tuple(sorted(rng.sample(range(1, len(big.stream)), k=rng.randint(1, 8))))
            assert await serve_requests(big, cuts) == (seen, sent), cuts
    asyncio.run(main())


def test_server_over_loopback_parses_segmented_requests_as_it_does_whole() -> None:
    rng = random.Random(11)

    async def main() -> None:
        recorder = Recorder()
        server = HttpServer(recorder)
        await server.start()
        try:
            for case in REQUESTS:
                seen, sent = await serve_requests(case, ())
                for _ in range(3):
                    recorder.seen.clear()
                    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for index, segment in enumerate(pieces(case.stream, sorted(rng.sample(range(1, len(
                            case.stream)), k=3)))):
                        if index:
                            await asyncio.sleep(0.003)
                        writer.write(segment)
                        await writer.drain()
                    received = b""
                    while len(received) < len(sent):
                        more = await asyncio.wait_for(reader.read(65536), 5)
                        if not more:
                            break
                        received += more
                    writer.close()
                    assert (recorder.seen, received) == (seen, sent), case.name
        finally:
            await server.stop()
    asyncio.run(main())


# Leaks: hanging up, cancelling, stopping

def open_sockets() -> int:
    """Sockets this process holds (Linux: /proc/self/fd)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (the listing's own descriptor, closed by now)
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def other_tasks(ignored: Iterable[asyncio.Task[Any]] = ()) -> set[asyncio.Task[Any]]:
    """Tasks still pending besides the test's own (and ``ignored``)."""
    return asyncio.all_tasks() - {asyncio.current_task(), *ignored}


async def no_leaks(sockets: int) -> None:
    """Assert that nothing is left: no task but the test's, no socket opened since ``sockets`` were counted."""
    await settle(lambda: open_sockets() == sockets and not other_tasks())
    assert other_tasks() == set()
    assert open_sockets() == sockets


@pytest.mark.parametrize("loop", LOOPS)
def test_a_harness_hanging_up_mid_request_leaves_nothing_behind(loop: str) -> None:
    request = post(CHAT, REQUEST)

    async def main() -> None:
        sockets = open_sockets()
        release = asyncio.Event()
        endpoint = SegmentedEndpoint({"/v1": ([b"", ok(b'{"late": 1}')], False)}, holds={"/v1": release})
        pool = UpstreamPool(await endpoint.start(), max_connections=2)

        async def relay(request: HttpRequest) -> HttpResponse:
            answer = await pool.request("POST", "/v1", {}, request.body, timeout=5)
            return HttpResponse(answer.status, {}, answer.body)

        server = HttpServer(relay)
        await server.start()
        for cut, waiting in ((len(b"POST /v1/ch"), "head"), (request.index(b"\r\n\r\n"), "head"),
                             (len(request) - 5, "body")):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request[:cut])
            await writer.drain()
            await settle(lambda w=waiting: [c.waiting for c in server.connections] == [w])  # type: ignore[misc]
            assert [c.waiting for c in server.connections] == [waiting], cut
            writer.close()
            await writer.wait_closed()
            await settle(lambda: not server.connections)
            assert (server.connections, server.workers, other_tasks(endpoint.tasks)) == (set(), set(), set()), cut
        # hanging up while the handler awaits the endpoint: the exchange goes on (its answer is cached and
        # counted), the connection is gone at once
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        await writer.drain()
        await settle(lambda: endpoint.requests == 1)
        writer.close()
        await writer.wait_closed()
        await settle(lambda: not server.connections)
        assert not server.connections and len(server.workers) == 1
        release.set()
        await settle(lambda: not server.workers)
        assert (server.workers, other_tasks(endpoint.tasks), pool._busy) == (set(), set(), 0)
        await server.stop()
        pool.close()
        await endpoint.stop()
        await no_leaks(sockets)
    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_caller_cancelled_mid_answer_leaves_the_pool_clean(loop: str) -> None:
    first = ok(b'{"first": 1}')

    async def main() -> None:
        sockets = open_sockets()
        endpoint = SegmentedEndpoint({"/first": ([first[:30], first[30:]], False),  # the rest never comes
                                      "/second": ([ok(b'{"second": 2}')], False)}, holds={"/first": asyncio.Event()})
        pool = UpstreamPool(await endpoint.start(), max_connections=1)
        caller = asyncio.create_task(pool.request("POST", "/first", {}, b"{}", timeout=5))
        await settle(lambda: any(connection.received for connection in pool._open))
        (connection,) = pool._open
        assert connection.received and not caller.done()  # in the middle of the answer
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert (pool._busy, pool._open, pool._idle, pool._queue, pool._deadlines) == (0, set(), [], deque(), {})
        assert connection.transport is not None and connection.transport.is_closing()
        assert connection.waiter is not None and connection.waiter.cancelled()
        await settle(lambda: pool._sweeper is None)
        assert pool._sweeper is None  # the timeout sweep stops once nothing waits
        second = await pool.request("POST", "/second", {}, b"{}", timeout=5)
        assert second.body == b'{"second": 2}' and endpoint.connections == 2  # the first connection was not reused
        pool.close()
        await endpoint.stop()
        await no_leaks(sockets)
    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_caller_cancelled_at_any_point_leaves_the_pool_clean(loop: str) -> None:
    """Cancelled after 0, 1, 2, ... turns of the loop, on a new connection or a kept one: while connecting,
    sending, waiting, reading, or done."""
    async def main() -> dict[tuple[bool, bool], int]:
        sockets = open_sockets()
        endpoint = SegmentedEndpoint({"/x": ([ok(b"{}")], False)})
        pool = UpstreamPool(await endpoint.start(), max_connections=2)
        outcomes: dict[tuple[bool, bool], int] = {}  # (kept connection, cancelled) -> times
        for turns, kept in itertools.product(range(16), (False, True)):
            if not kept:
                pool.close()
            elif not pool._idle:
                await pool.request("POST", "/x", {}, b"{}", timeout=5)
            caller = asyncio.create_task(pool.request("POST", "/x", {}, b"{}", timeout=5))
            for _ in range(turns):
                await asyncio.sleep(0)
            caller.cancel()
            try:
                assert (await caller).body == b"{}"
            except asyncio.CancelledError:
                outcomes[kept, True] = outcomes.get((kept, True), 0) + 1
            else:
                outcomes[kept, False] = outcomes.get((kept, False), 0) + 1
            assert (pool._busy, pool._deadlines, pool._queue) == (0, {}, deque()), turns
            assert pool._open == set(pool._idle), turns  # what is open is idle, ready for the next request
            assert all(c.waiter is not None and c.waiter.done() for c in pool._open), turns
        pool.close()
        await endpoint.stop()
        await no_leaks(sockets)
        return outcomes

    outcomes = run(main, loop)
    assert sorted(outcomes) == [(False, False), (False, True), (True, False), (True, True)], outcomes


def test_a_caller_cancelled_as_its_turn_comes_hands_the_turn_on() -> None:
    async def main() -> tuple[list[HttpResponse | BaseException], int, int]:
        release = asyncio.Event()
        endpoint = SegmentedEndpoint({t: ([b"", ok(t.encode())], False) for t in ("/1", "/2", "/3")},
                                     holds={"/1": release})
        pool = UpstreamPool(await endpoint.start(), max_connections=1)
        callers: list[asyncio.Task[HttpResponse]] = []

        async def first() -> HttpResponse:
            answer = await pool.request("POST", "/1", {}, b"{}", timeout=5)
            callers[1].cancel()  # the second's turn has just come: it is woken but has not run yet
            return answer

        callers.append(asyncio.create_task(first()))
        await settle(lambda: endpoint.requests == 1)
        callers += [asyncio.create_task(pool.request("POST", t, {}, b"{}", timeout=1)) for t in ("/2", "/3")]
        await settle(lambda: len(pool._queue) == 2)
        release.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
        pool.close()
        await endpoint.stop()
        return results, pool._busy, len(pool._queue)

    results, busy, queued = asyncio.run(main())
    assert isinstance(results[0], HttpResponse) and isinstance(results[1], asyncio.CancelledError)
    assert isinstance(results[2], HttpResponse) and results[2].body == b"/3", results[2]  # not a TimeoutError
    assert (busy, queued) == (0, 0)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it closes (a reset: what came before it)."""
    received = b""
    with contextlib.suppress(ConnectionError):
        while more := await asyncio.wait_for(reader.read(65536), 5):
            received += more
    return received


@pytest.mark.parametrize("loop", LOOPS)
def test_stop_lets_requests_in_flight_finish_then_closes_everything(loop: str) -> None:
    async def main() -> None:
        sockets = open_sockets()
        release = asyncio.Event()

        async def handler(request: HttpRequest) -> HttpResponse:
            if request.target == "/slow":
                await release.wait()
            return HttpResponse(200, {}, request.body)

        server = HttpServer(handler)
        await server.start()
        busy, idle, arriving = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        idle[1].write(post(b"/fast", b"{}"))
        assert (await asyncio.wait_for(idle[0].readuntil(b"{}"), 5)).startswith(b"HTTP/1.1 200 OK")
        busy[1].write(post(b"/slow", b'{"n": 1}'))
        arriving[1].write(post(b"/fast", b"{}")[:20])
        await settle(lambda: len(server.workers) == 1 and any(c.waiting == "head" for c in server.connections))
        stopping = asyncio.create_task(server.stop(grace=5))
        assert await read_all(idle[0]) == b"" and await read_all(arriving[0]) == b""  # closed, nothing owed
        assert not stopping.done() and len(server.workers) == 1
        release.set()
        await stopping
        answer = await read_all(busy[0])
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close" in answer, answer
        assert answer.endswith(b'{"n": 1}')
        assert (server.connections, server.workers) == (set(), set())
        assert other_tasks() == set()
        for _, writer in (busy, idle, arriving):
            writer.close()
        await no_leaks(sockets)
    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_stop_cuts_off_a_request_that_outlasts_the_grace_and_waits_for_it_to_end(loop: str) -> None:
    async def main() -> None:
        sockets = open_sockets()
        ended: list[str] = []

        async def stuck(request: HttpRequest) -> HttpResponse:
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0.01)  # its own cleanup awaits something, as closing a connection would
                ended.append(request.target)
            raise AssertionError("not reached")

        server = HttpServer(stuck)
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(post(b"/stuck", b"{}"))
        await settle(lambda: len(server.workers) == 1)
        await server.stop(grace=0.1)
        assert ended == ["/stuck"]  # cancelled, and its cleanup done before stop() returned
        assert (server.connections, server.workers) == (set(), set())
        assert other_tasks() == set()
        assert await read_all(reader) == b""  # no answer: cut off
        writer.close()
        await no_leaks(sockets)
    run(main, loop)
