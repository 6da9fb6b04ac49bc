"""The proxy's client towards the endpoint: interim (1xx) answers are dropped however they are segmented, and an
answer can never reach another request (RFC 9110 15.2; issue: a lone `100 Continue` segment used to end the
exchange with an empty body and glue the real answer onto the next request)."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable

import pytest

from orchestrator.runtime.proxy.http import ResponseTooLargeError, UpstreamError
from orchestrator.runtime.proxy.upstream_pool import UpstreamPool

Script = Callable[[int, bytes], list[bytes]]
"""(request number on this server, request target) -> the segments to send back, in order."""


def final(body: bytes, *, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body)


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nLink: </a.js>; rel=preload\r\n\r\n"


class Endpoint:
    """A loopback endpoint stand-in that answers each request with scripted segments (a pause between them, so
    each is its own TCP segment)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests = 0
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                target = head.split(b" ")[1]
                self.requests += 1
                for index, segment in enumerate(self.script(self.requests, target)):
                    if index:
                        await asyncio.sleep(0.01)
                    writer.write(segment)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:  # ends the handlers waiting for a next request
            writer.close()
        await self.server.wait_closed()


def exchange(script: Script, targets: list[str], *, max_connections: int = 1) -> tuple[list[tuple[int, bytes]], int]:
    """Send each target in turn through one pool; returns (status, body) per request and the connections made."""
    async def main() -> tuple[list[tuple[int, bytes]], int]:
        endpoint = Endpoint(script)
        url = await endpoint.start()
        pool = UpstreamPool(url, max_connections=max_connections)
        try:
            answers = []
            for target in targets:
                response = await pool.request("POST", target, {"content-type": "application/json"}, b"{}",
                                              timeout=5)
                answers.append((response.status, response.body))
            return answers, endpoint.connections
        finally:
            pool.close()
            await endpoint.stop()
    return asyncio.run(main())


def body_of(target: bytes) -> bytes:
    return b'{"for": "' + target + b'"}'


@pytest.mark.parametrize(("name", "segments"), [
    ("100 alone, then the answer", lambda t: [CONTINUE, final(body_of(t))]),
    ("103 alone, then the answer", lambda t: [HINTS, final(body_of(t))]),
    ("100 and 103 alone, then the answer", lambda t: [CONTINUE, HINTS, final(body_of(t))]),
    ("100, 103 and the answer together", lambda t: [CONTINUE + HINTS + final(body_of(t))]),
    ("the answer's head with the 1xx, its body later", lambda t: [CONTINUE + final(body_of(t))[:40],
                                                                  final(body_of(t))[40:]]),
    ("a 1xx of a code not yet defined", lambda t: [b"HTTP/1.1 199 Whatever\r\nX: y\r\n\r\n", final(body_of(t))]),
])
def test_interim_answers_are_dropped_and_each_answer_meets_its_request(
        name: str, segments: Callable[[bytes], list[bytes]]) -> None:
    targets = [f"/v1/chat/completions?n={i}" for i in range(5)]
    answers, connections = exchange(lambda _n, target: segments(target), targets)
    assert answers == [(200, body_of(t.encode())) for t in targets], name
    assert connections == 1  # kept alive and reused


def test_split_at_every_offset_parses_the_same() -> None:
    stream = CONTINUE + HINTS + final(b'{"ok": true}')
    for offset in range(1, len(stream)):
        def split(_n: int, _target: bytes, cut: int = offset) -> list[bytes]:
            return [stream[:cut], stream[cut:]]

        answers, _ = exchange(split, ["/x", "/y"])
        assert answers == [(200, b'{"ok": true}')] * 2, offset


def test_random_segmentation_never_crosses_answers() -> None:
    rng = random.Random(1234)

    def script(_n: int, target: bytes) -> list[bytes]:
        stream = (CONTINUE if rng.random() < 0.5 else b"") + (HINTS if rng.random() < 0.5 else b"") + \
            final(body_of(target))
        cuts = sorted(rng.sample(range(1, len(stream)), k=min(3, len(stream) - 1)))
        return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

    targets = [f"/r/{i}" for i in range(60)]
    answers, _ = exchange(script, targets)
    assert answers == [(200, body_of(t.encode())) for t in targets]


def test_a_second_answer_in_the_same_segment_is_never_handed_to_the_next_request() -> None:
    def script(n: int, target: bytes) -> list[bytes]:
        if n == 1:  # the answer, and an answer nobody asked for, together
            return [final(body_of(target)) + final(b'{"stray": 1}')]
        return [final(body_of(target))]

    answers, connections = exchange(script, ["/first", "/second"])
    assert answers == [(200, body_of(b"/first")), (200, body_of(b"/second"))]
    assert connections == 2  # the first connection could no longer be trusted


def test_bytes_arriving_on_an_idle_connection_retire_it() -> None:
    def script(n: int, target: bytes) -> list[bytes]:
        if n == 1:  # the answer, then later (the connection idle in the pool) another one
            return [final(body_of(target)), final(b'{"late": 1}')]
        return [final(body_of(target))]

    async def main() -> tuple[list[bytes], int]:
        endpoint = Endpoint(script)
        url = await endpoint.start()
        pool = UpstreamPool(url, max_connections=1)
        try:
            first = await pool.request("POST", "/first", {}, b"{}", timeout=5)
            await asyncio.sleep(0.1)  # the late answer arrives while nothing waits
            second = await pool.request("POST", "/second", {}, b"{}", timeout=5)
            return [first.body, second.body], endpoint.connections
        finally:
            pool.close()
            await endpoint.stop()

    bodies, connections = asyncio.run(main())
    assert bodies == [body_of(b"/first"), body_of(b"/second")]
    assert connections == 2


def test_an_unrequested_protocol_switch_is_an_error() -> None:
    with pytest.raises(UpstreamError, match="switched protocols"):
        exchange(lambda _n, _t: [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"], ["/x"])


def exchange_capped(script: Script, cap: int) -> BaseException | tuple[int, bytes]:
    async def main() -> BaseException | tuple[int, bytes]:
        endpoint = Endpoint(script)
        url = await endpoint.start()
        pool = UpstreamPool(url, max_connections=1, max_response_bytes=cap)
        try:
            response = await pool.request("POST", "/x", {}, b"{}", timeout=5)
            return response.status, response.body
        except UpstreamError as err:
            return err
        finally:
            pool.close()
            await endpoint.stop()
    return asyncio.run(main())


def chunked(*pieces: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
        f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces) + b"0\r\n\r\n"


def test_an_answer_over_the_size_limit_is_refused_declared_or_chunked() -> None:
    declared = exchange_capped(lambda _n, _t: [final(b"x" * 2000)], 1000)
    assert isinstance(declared, ResponseTooLargeError) and "declares 2000 bytes" in str(declared)
    growing = exchange_capped(lambda _n, _t: [chunked(b"y" * 600, b"z" * 600)], 1000)
    assert isinstance(growing, ResponseTooLargeError) and "over 1000 bytes" in str(growing)
    assert exchange_capped(lambda _n, _t: [final(b"x" * 1000)], 1000) == (200, b"x" * 1000)
