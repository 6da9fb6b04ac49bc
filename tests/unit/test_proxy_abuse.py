"""The proxy's HTTP server under hostile clients, over real sockets on 127.0.0.1.

Limits (431, 414, 413 before the body), timeouts (a slow head or body, an idle keep-alive connection),
repeated header fields joined in linear time, an event loop never held long by one request (counted in
pieces of parsing, the server's work per turn, not in milliseconds), and a corpus of hostile byte
strings, each with the answers it must get. The server runs on its own event loop in a thread (the
proxy's, uvloop when installed, and for most tests also asyncio's own, the fallback: their transports
differ); a test talks to it with blocking sockets. Timeouts are set to fractions of a second, so every
test takes a second or two at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httptools
import pytest

from orchestrator.runtime.proxy.http import Handler, HttpRequest, HttpResponse, new_event_loop
from orchestrator.runtime.proxy.http_server import MAX_HEADER_BYTES, MAX_HEADERS, MAX_TARGET_BYTES, HttpServer
from orchestrator.runtime.proxy.request_reader import FEED_BYTES, RequestLimits, RequestReader

T = TypeVar("T")
LIMIT = 64 * 1024  # the body limit of the servers below
FAST: dict[str, Any] = {"header_timeout": 0.25, "body_timeout": 0.25, "idle_timeout": 0.4, "max_request_bytes": LIMIT}
OK = b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def echo(request: HttpRequest) -> HttpResponse:
    """The request as JSON: what the server made of it."""
    seen = {"method": request.method, "target": request.target, "headers": request.headers,
            "body": len(request.body)}
    return HttpResponse(200, {"content-type": "application/json"}, json.dumps(seen).encode())


class LiveServer:
    """An HttpServer on its own event loop in a thread.

    ``errors``: what reached the loop's exception handler (a protocol callback that raised: a traceback
    on stderr in production). ``longest_turn()``: the most CPU time the loop thread spent between two
    runs of a 2 ms ticker since ``reset_turns()``, outside the garbage collector; CPU time, so a busy
    machine does not inflate it. The collector is left out because a full collection walks the whole test
    process's heap (pytest's, with every test module: tens of ms) in whichever thread it happens to start,
    which says nothing about the server's own work.
    """

    def __init__(self, loop: str = "proxy's", handler: Handler = echo, **options: Any) -> None:
        self.loop = new_event_loop() if loop == "proxy's" else asyncio.new_event_loop()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        self.server = HttpServer(handler, **options)
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-server", daemon=True)
        self._longest = 0.0
        self._last = 0.0
        self._collecting = 0.0  # thread_time() when a collection in the loop thread started
        self._collected = 0.0  # CPU seconds the loop thread spent in the garbage collector

    def _collector(self, phase: str, _info: dict[str, Any]) -> None:
        if threading.get_ident() != self.thread.ident:
            return
        if phase == "start":
            self._collecting = time.thread_time()
        else:
            self._collected += time.thread_time() - self._collecting

    def __enter__(self) -> LiveServer:
        gc.callbacks.append(self._collector)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        self.reset_turns()
        self.loop.call_soon_threadsafe(self._ticker)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(grace=1), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        gc.callbacks.remove(self._collector)

    @property
    def port(self) -> int:
        return self.server.port

    def _tick(self) -> float:
        now = time.thread_time() - self._collected
        self._longest = max(self._longest, now - self._last)
        self._last = now
        return self._longest

    def _ticker(self) -> None:
        self._tick()
        self.loop.call_later(0.002, self._ticker)

    def reset_turns(self) -> None:
        def reset() -> None:
            self._last, self._longest = time.thread_time() - self._collected, 0.0
        self.call(reset)

    def longest_turn(self) -> float:
        return self.call(self._tick)

    def cpu(self) -> float:
        """CPU seconds the loop thread has used."""
        return self.call(time.thread_time)

    def call(self, function: Callable[[], T]) -> T:
        """``function()`` run on the server's loop."""
        async def run() -> T:
            return function()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)


@pytest.fixture(scope="module", params=["proxy's", "asyncio's"])
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """A server with short timeouts, on the proxy's event loop (uvloop) and on asyncio's own (the fallback)."""
    with LiveServer(request.param, **FAST) as server:
        yield server


def connect(port: int, timeout: float = 3.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes: after refusing, it may stop reading, which is its right."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything until the server closes (True) or 3 s of silence (False)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return received, False
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk


class Answers:
    """The answers in a byte stream, parsed by llhttp (so they are well framed): statuses and bodies."""

    def __init__(self, data: bytes) -> None:
        self.statuses: list[int] = []
        self.bodies: list[bytes] = []
        self._body: list[bytes] = []
        self._parser = httptools.HttpResponseParser(self)
        self._parser.feed_data(data)

    def on_headers_complete(self) -> None:
        self.statuses.append(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.bodies.append(b"".join(self._body))
        self._body = []

    def json(self, index: int = 0) -> Any:
        return json.loads(self.bodies[index])


def exchange(port: int, data: bytes) -> tuple[Answers, bool]:
    """Send ``data`` on a new connection; the answers until the server closes, and whether it did."""
    with connect(port) as sock:
        send(sock, data)
        received, closed = read_until_closed(sock)
    return Answers(received), closed


def assert_still_serving(port: int) -> None:
    answers, closed = exchange(port, OK)
    assert answers.statuses == [200] and closed


def get(target: bytes = b"/", *fields: bytes, close: bool = True) -> bytes:
    return (b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields)
            + (b"Connection: close\r\n" if close else b"") + b"\r\n")


# limits

def test_header_field_count_limit(live: LiveServer) -> None:
    fields = [b"X-F%d: v" % i for i in range(MAX_HEADERS - 2)]  # + Host and Connection: exactly the limit
    answers, _ = exchange(live.port, get(b"/", *fields))
    assert answers.statuses == [200] and len(answers.json()["headers"]) == MAX_HEADERS
    answers, closed = exchange(live.port, get(b"/", *fields, b"X-One-Too-Many: v"))
    assert answers.statuses == [431] and closed
    assert answers.json()["error"]["message"] == f"more than {MAX_HEADERS} header fields"


def test_header_block_size_limit(live: LiveServer) -> None:
    # name + value + 4 each: Host: x (9) + Connection: close (19) + X-Big: ... (9 + value) = the limit
    at_limit = b"X-Big: " + b"a" * (MAX_HEADER_BYTES - 9 - 19 - 9)
    answers, _ = exchange(live.port, get(b"/", at_limit))
    assert answers.statuses == [200]
    answers, closed = exchange(live.port, get(b"/", at_limit + b"a"))
    assert answers.statuses == [431] and closed
    assert answers.json()["error"]["message"] == f"header fields over {MAX_HEADER_BYTES} bytes"


def test_a_head_that_never_ends_is_refused_before_it_ends(live: LiveServer) -> None:
    with connect(live.port) as sock:
        send(sock, b"GET / HTTP/1.1\r\nX-Endless: " + b"a" * (4 * MAX_HEADER_BYTES))  # no end of line
        received, closed = read_until_closed(sock)
    assert Answers(received).statuses == [431] and closed


def test_target_length_limit(live: LiveServer) -> None:
    answers, _ = exchange(live.port, get(b"/" + b"t" * (MAX_TARGET_BYTES - 1)))
    assert answers.statuses == [200] and len(answers.json()["target"]) == MAX_TARGET_BYTES
    answers, closed = exchange(live.port, get(b"/" + b"t" * MAX_TARGET_BYTES))
    assert answers.statuses == [414] and closed


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(live: LiveServer) -> None:
    for expect in (b"", b"Expect: 100-continue\r\n"):  # no 100 Continue for a body that will be refused
        with connect(live.port) as sock:
            send(sock, b"POST / HTTP/1.1\r\nHost: x\r\n" + expect + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1))
            received, closed = read_until_closed(sock)  # the body is never sent
        answers = Answers(received)
        assert answers.statuses == [413] and closed
        assert "over 65536 bytes (Content-Length: 65537)" in answers.json()["error"]["message"]
    answers, _ = exchange(live.port, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                          % LIMIT + b"b" * LIMIT)
    assert answers.statuses == [200] and answers.json()["body"] == LIMIT


def test_chunked_body_growing_over_the_limit_is_refused_as_it_grows(live: LiveServer) -> None:
    chunk = b"4000\r\n" + b"c" * 0x4000 + b"\r\n"  # 16 KiB
    with connect(live.port) as sock:
        send(sock, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 5)  # no last chunk
        received, closed = read_until_closed(sock)
    assert Answers(received).statuses == [413] and closed
    within = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    answers, _ = exchange(live.port, within + chunk * 4 + b"0\r\n\r\n")
    assert answers.statuses == [200] and answers.json()["body"] == LIMIT


def test_tiny_chunks_are_gathered_into_one_body(live: LiveServer) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    answers, _ = exchange(live.port, head + b"1\r\nz\r\n" * 5000 + b"0\r\n\r\n")
    assert answers.statuses == [200] and answers.json()["body"] == 5000


# timeouts

def test_slow_loris_head_is_cut_off_and_others_are_served(live: LiveServer) -> None:
    with connect(live.port) as slow:
        slow.settimeout(0.05)
        send(slow, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started, received, served = time.monotonic(), b"", 0
        while time.monotonic() - started < 3:
            send(slow, b"a")  # one byte per 50 ms: the head is never complete
            with contextlib.suppress(TimeoutError):
                chunk = slow.recv(65536)
                received += chunk
                if not chunk:
                    break
            assert_still_serving(live.port)
            served += 1
        elapsed = time.monotonic() - started
    assert Answers(received).statuses == [408]
    assert 0.2 < elapsed < 1.5 and served >= 2
    assert b"the request's head did not arrive within 0.25 s" in received


def test_slow_body_is_cut_off(live: LiveServer) -> None:
    started = time.monotonic()
    answers, closed = exchange(live.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    assert answers.statuses == [408] and closed and time.monotonic() - started < 1.5


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(live: LiveServer) -> None:
    started = time.monotonic()
    answers, closed = exchange(live.port, b"")
    assert answers.statuses == [] and closed and 0.2 < time.monotonic() - started < 1.5


def test_idle_keep_alive_connection_is_closed_without_an_answer(live: LiveServer) -> None:
    with connect(live.port) as sock:
        send(sock, get(b"/", close=False))
        first = sock.recv(65536)
        idle_since = time.monotonic()
        rest, closed = read_until_closed(sock)
        idle = time.monotonic() - idle_since
    assert Answers(first).statuses == [200]
    assert rest == b"" and closed and 0.35 < idle < 1.5


def test_a_pause_between_requests_longer_than_the_head_timeout_is_fine() -> None:
    with LiveServer(header_timeout=0.3, idle_timeout=2.0) as server, connect(server.port) as sock:
        send(sock, get(b"/", close=False))
        assert Answers(sock.recv(65536)).statuses == [200]
        time.sleep(0.45)  # idle: the head timeout counts from a request's first byte
        send(sock, b"GET / HTTP/1.1\r\n")
        time.sleep(0.1)  # a head in two parts within its timeout
        send(sock, b"Host: x\r\n\r\n")
        assert Answers(sock.recv(65536)).statuses == [200]


# repeated fields, pipelining

def test_repeated_fields_are_joined_in_order(live: LiveServer) -> None:
    answers, _ = exchange(live.port, get(b"/", *(b"X-Tag: v%d" % i for i in range(50))))
    assert answers.statuses == [200]
    assert answers.json()["headers"]["x-tag"] == ", ".join(f"v{i}" for i in range(50))


def test_joining_repeated_fields_takes_linear_time() -> None:
    def server_cpu(server: LiveServer, copies: int) -> float:
        request = get(b"/", *[b"X-Rep: %032d" % i for i in range(copies)])
        best = float("inf")
        for _ in range(3):
            before = server.cpu()
            answers, _ = exchange(server.port, request)
            best = min(best, server.cpu() - before)
            assert answers.statuses == [200] and answers.json()["headers"]["x-rep"].count(", ") == copies - 1
        return best

    with LiveServer(max_headers=100_000, max_header_bytes=16 * 1024 * 1024) as server:
        small, large = server_cpu(server, 3000), server_cpu(server, 12000)
    # 4x the fields: about 4x the time when linear, 16x when each value is copied into a growing string
    assert large / small < 8, (small, large)


def test_pipelined_requests_are_answered_in_order_then_a_refusal(live: LiveServer) -> None:
    answers, closed = exchange(live.port, get(b"/1", close=False) + get(b"/2", close=False) + b"BAD / HTTP/1.1\r\n\r\n")
    assert answers.statuses == [200, 200, 400] and closed
    assert [answers.json(i)["target"] for i in (0, 1)] == ["/1", "/2"]


def test_a_pipelined_flood_is_answered_in_order(live: LiveServer) -> None:
    count = 5000  # about 90 KB: more than one piece of parsing, far more than the queue holds
    answers, closed = exchange(live.port, b"".join(get(b"/%d" % i, close=False) for i in range(count)) + OK)
    assert answers.statuses == [200] * (count + 1) and closed
    assert [answers.json(i)["target"] for i in range(count)] == [f"/{i}" for i in range(count)]


def test_a_client_that_does_not_read_its_answers_is_not_read_either() -> None:
    answered = 0

    async def large(request: HttpRequest) -> HttpResponse:
        nonlocal answered
        answered += 1
        return HttpResponse(200, {}, b"a" * (128 * 1024))

    with LiveServer(handler=large, idle_timeout=0.3) as server, connect(server.port) as sock:
        send(sock, get(b"/", close=False) * 1000)  # 128 MB of answers, if the server answered them all
        time.sleep(0.6)  # not reading: the socket buffers fill, the server stops answering, then cuts it off
        assert server.call(lambda: answered) < 300
        received, closed = read_until_closed(sock)
    assert closed and received.count(b"HTTP/1.1 200 OK") < 300


# the event loop

HEAVY = {
    "100 fields of 640 bytes": get(b"/", *(b"X-F%03d: " % i + b"f" * 632 for i in range(98))),
    "16,000 empty fields of one name": b"GET / HTTP/1.1\r\n" + b"a:\r\n" * 16000 + b"\r\n",
    "16,000 distinct fields": b"GET / HTTP/1.1\r\n" + b"".join(b"%x:\r\n" % i for i in range(16000)) + b"\r\n",
    "a 4 MiB field": get(b"/", b"X-Big: " + b"b" * (4 << 20)),
    "a 16 KiB target": get(b"/" + b"t" * (MAX_TARGET_BYTES - 1)),
    "14,000 pipelined requests": b"GET / HTTP/1.1\r\n\r\n" * 14000 + OK,
    "a 1 MiB body in 1-byte chunks": b"POST / HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     + b"1\r\nz\r\n" * (1 << 20) + b"0\r\n\r\n",
    "an 8 MiB body": b"POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (8 << 20)
                     + b"x" * (8 << 20),
    "a declared 1 TB body": b"POST / HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n",
}


PIECE = b"GET / HTTP/1.1\r\n\r\n" * (FEED_BYTES // 18)
"""One parser piece of the costliest kind to parse: a request (a Python callback each) every 18 bytes."""

PIECES_PER_TURN = 6
"""The longest turn of the event loop a request may cause, in units of one piece of parsing (the work the
server does in one turn by design), timed on the same loop just before. The cases above take 1 to 3.2 (a
ticker period of the loop's work included), up to 3.9 with both cores kept busy by other processes; a
handler holding the loop 12 ms once (on this machine: 6 pieces) makes 6.3 to 7.0, 20 ms 10.5 to 11.7;
parsing a whole read at once (no pieces) makes 10.7, keeping tiny chunks as one object each 36."""

ATTEMPTS = 3
"""Measurements of a case before it fails: other processes (on the same cores and caches) can stretch any
one turn now and then; a request that holds the loop does it every time."""


class NoSink:
    """A request reader's sink that does nothing: only the parsing is measured."""

    def head_begun(self) -> None:
        pass

    def head_complete(self, *, expects_continue: bool) -> None:
        pass

    def request_complete(self, request: HttpRequest, *, keep_alive: bool) -> None:
        pass


def one_piece() -> float:
    """CPU seconds the calling thread takes to parse :data:`PIECE`."""
    reader = RequestReader(NoSink(), RequestLimits())
    started = time.thread_time()
    assert reader.feed(PIECE) is None
    return time.thread_time() - started


def test_no_request_holds_the_event_loop_much_longer_than_a_piece_of_parsing() -> None:
    """Relative to a piece of parsing timed on the same loop just before, so a slower or busier machine
    moves both; CPU time, so a loop thread waiting for a core (or for the GIL) counts nothing."""
    pieces: dict[str, float] = {}
    with LiveServer(max_request_bytes=16 << 20) as server:
        for name, payload in HEAVY.items():
            for _ in range(ATTEMPTS):
                piece = min(server.call(one_piece) for _ in range(3))
                server.reset_turns()
                answers, closed = exchange(server.port, payload)
                assert answers.statuses and closed, name
                pieces[name] = round(server.longest_turn() / piece, 2)
                if pieces[name] < PIECES_PER_TURN:
                    break
        assert server.errors == []
    assert max(pieces.values()) < PIECES_PER_TURN, pieces


# the corpus: hostile bytes and the answers they must get before the server closes the connection

C = b"Connection: close\r\n"
CHUNKED = b"POST / HTTP/1.1\r\nHost: x\r\n" + C + b"Transfer-Encoding: chunked\r\n\r\n"
CORPUS: list[tuple[str, bytes, list[int]]] = [
    # not HTTP/1.1 at all
    ("garbage", b"NOT HTTP AT ALL\r\n\r\n", [400]),
    ("tls client hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)), [400]),
    ("http/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [400]),
    ("a long invalid method", b"A" * 100_000, [400]),
    ("lower-case method", b"get / HTTP/1.1\r\n\r\n", [400]),
    ("nul in method", b"G\x00T / HTTP/1.1\r\n\r\n", [400]),
    ("leading space", b" GET / HTTP/1.1\r\n\r\n", [400]),
    ("tabs as separators", b"GET\t/\tHTTP/1.1\r\n\r\n", [400]),
    ("crlf then garbage", b"\r\n" * 5 + b"GARBAGE\r\n\r\n", [400]),
    # the request line
    ("nul in target", b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", [400]),
    ("space in target", b"GET /a b HTTP/1.1\r\n\r\n", [400]),
    ("cr in target", b"GET /a\rb HTTP/1.1\r\n\r\n", [400]),
    ("del in target", b"GET /\x7f HTTP/1.1\r\n\r\n", [400]),
    ("utf-8 in target", b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", [400]),
    ("bad version", b"GET / HTTP/1.x\r\n\r\n", [400]),
    ("not http", b"GET / FOO/1.1\r\n\r\n", [400]),
    ("space after version", b"GET / HTTP/1.1 \r\n\r\n", [400]),
    ("bare lf", b"GET / HTTP/1.1\nHost: x\n\n", [400]),
    ("target too long", b"GET /" + b"t" * MAX_TARGET_BYTES + b" HTTP/1.1\r\n\r\n", [414]),
    ("target without end", b"GET /" + b"t" * 300_000, [414]),
    # header fields
    ("nul in value", b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", [400]),
    ("control char in value", b"GET / HTTP/1.1\r\nA: \x01\r\n\r\n", [400]),
    ("bare cr in value", b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", [400]),
    ("nul in name", b"GET / HTTP/1.1\r\nA\x00: x\r\n\r\n", [400]),
    ("utf-8 in name", b"GET / HTTP/1.1\r\n\xc3\xa9: x\r\n\r\n", [400]),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", [400]),
    ("empty name", b"GET / HTTP/1.1\r\n: x\r\n\r\n", [400]),
    ("obs-fold", b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", [400]),
    ("too many fields", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n", [431]),
    ("too many bytes of fields", b"GET / HTTP/1.1\r\nX: " + b"y" * MAX_HEADER_BYTES + b"\r\n\r\n", [431]),
    ("a field without end", b"GET / HTTP/1.1\r\nX: " + b"y" * 300_000, [431]),
    ("a name without end", b"GET / HTTP/1.1\r\n" + b"X" * 300_000, [431]),
    ("websocket upgrade", b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", [400]),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", [400]),
    # framing, request smuggling
    ("two content-lengths", b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", [400]),
    ("content-length and chunked",
     b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [400]),
    ("unknown transfer-encoding", b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", [400]),
    ("xchunked", b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", [400]),
    ("chunked twice", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", [400]),
    ("chunked, then identity", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", [400]),
    ("negative content-length", b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", [400]),
    ("signed content-length", b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", [400]),
    ("content-length with a space", b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", [400]),
    ("content-length overflow", b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", [400]),
    ("content-length over the limit", b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1), [413]),
    ("over the limit, expecting 100",
     b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (10**15), [413]),
    ("chunk size not hex", CHUNKED + b"zz\r\n", [400]),
    ("chunk size overflow", CHUNKED + b"FFFFFFFFFFFFFFFFFFFF\r\n", [400]),
    ("chunk without its crlf", CHUNKED + b"3\r\nabcX\r\n", [400]),
    ("chunked over the limit", CHUNKED + b"10001\r\n" + b"c" * (LIMIT + 1), [413]),
    ("too many trailer fields", CHUNKED + b"0\r\n" + b"T: v\r\n" * (MAX_HEADERS + 1) + b"\r\n", [431]),
    ("a trailer without end", CHUNKED + b"0\r\nT: " + b"v" * 300_000, [431]),
    # slow or incomplete: 408 once the head or body timeout passes; silence: closed without an answer
    ("nothing", b"", []),
    ("only empty lines", b"\r\n" * 3, []),
    ("half a request line", b"GET / HTT", [408]),
    ("a head without its end", b"GET / HTTP/1.1\r\nHost: x\r\n", [408]),
    ("a body without its end", b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", [408]),
    ("chunked without the last chunk", CHUNKED + b"3\r\nabc\r\n", [408]),
    # odd but valid: answered
    ("obs-text in a value", b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n" + C + b"\r\n", [200]),
    ("tab in a value", b"GET / HTTP/1.1\r\nX: a\tb\r\n" + C + b"\r\n", [200]),
    ("empty value", b"GET / HTTP/1.1\r\nX:\r\n" + C + b"\r\n", [200]),
    ("absolute form", b"GET http://elsewhere.example/ HTTP/1.1\r\n" + C + b"\r\n", [200]),
    ("asterisk form", b"OPTIONS * HTTP/1.1\r\n" + C + b"\r\n", [200]),
    ("percent-encoded nul", b"GET /%00 HTTP/1.1\r\n" + C + b"\r\n", [200]),
    ("http/0.9", b"GET /\r\n\r\n", [200]),
    ("http/1.0", b"GET / HTTP/1.0\r\n\r\n", [200]),
    ("http/1.0 keep-alive, then idle", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", [200]),
    ("many empty lines first", b"\r\n" * 100_000 + OK, [200]),
    ("a long chunk extension", CHUNKED + b"1;" + b"e" * 100_000 + b"\r\nz\r\n0\r\n\r\n", [200]),
    ("expect 100-continue", b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n" + C + b"\r\nz",
     [100, 200]),
    ("data after connection: close", OK + OK, [200]),
    ("pipelined, then garbage", get(b"/1", close=False) + b"\x00\x01\x02\r\n\r\n", [200, 400]),
]


@pytest.mark.parametrize(("payload", "expected"), [pytest.param(p, e, id=i) for i, p, e in CORPUS])
def test_hostile_input_gets_its_answer_and_no_traceback(live: LiveServer, capfd: pytest.CaptureFixture[str],
                                                        payload: bytes, expected: list[int]) -> None:
    answers, closed = exchange(live.port, payload)
    assert answers.statuses == expected and closed
    for status, body in zip(answers.statuses, answers.bodies, strict=True):
        if status >= 400:
            assert json.loads(body)["error"]["code"] == status
    assert_still_serving(live.port)
    assert live.errors == []
    assert "Traceback" not in capfd.readouterr().err


def test_the_corpus_is_large_and_its_cases_distinct() -> None:
    assert len(CORPUS) >= 40
    assert len({payload for _, payload, _ in CORPUS}) == len({name for name, _, _ in CORPUS}) == len(CORPUS)
