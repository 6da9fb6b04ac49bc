"""The proxy's HTTP/1.1 layer byte by byte: the server the harness talks to and the pool towards the endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from orchestrator.runtime.proxy.http import HttpRequest, HttpResponse, UpstreamError
from orchestrator.runtime.proxy.http_server import HttpServer
from orchestrator.runtime.proxy.upstream_pool import UpstreamPool

Answer = Callable[[bytes], Awaitable[bytes | None]]


async def echo(request: HttpRequest) -> HttpResponse:
    body = f"{request.method} {request.target} {len(request.body)} {request.headers.get('x-tag', '-')}".encode()
    return HttpResponse(200, {"content-type": "text/plain"}, body + b" " + request.body)


async def talk(port: int, data: bytes, *, until_close: bool = False, responses: int = 1) -> bytes:
    """Send raw bytes to 127.0.0.1:port; read ``responses`` answers (or everything until the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    received = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            received += chunk
            if not until_close and _complete(received.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b""), responses):
                break
    finally:
        writer.close()
    return received


def _complete(data: bytes, responses: int) -> bool:
    rest = data
    for _ in range(responses):
        head, sep, body = rest.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        if len(body) < length:
            return False
        rest = body[length:]
    return True


def serve(handler: Callable[[HttpRequest], Awaitable[HttpResponse]],
          client: Callable[[int], Awaitable[bytes]]) -> bytes:
    async def main() -> bytes:
        server = HttpServer(handler)
        await server.start()
        try:
            return await client(server.port)
        finally:
            await server.stop()
    return asyncio.run(main())


def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async def slow_first(request: HttpRequest) -> HttpResponse:
        if request.target == "/a":
            await asyncio.sleep(0.05)
        return await echo(request)

    data = (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /b?q=1 HTTP/1.1\r\nHost: x\r\nX-Tag: t\r\n\r\n")
    received = serve(slow_first, lambda port: talk(port, data, responses=2))
    first, second = received.split(b"HTTP/1.1 200 OK")[1:]
    assert first.endswith(b"POST /a 3 - abc") and second.endswith(b"GET /b?q=1 0 t ")


def test_chunked_request_body_and_expect_continue() -> None:
    data = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    received = serve(echo, lambda port: talk(port, data, responses=1))
    assert received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert received.endswith(b"POST /c 5 - abcde")


def test_http_1_0_and_connection_close_get_one_answer_then_close() -> None:
    for request in (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        received = serve(echo, lambda port, r=request: talk(port, r, until_close=True))  # type: ignore[misc]
        assert received.count(b"HTTP/1.1 200 OK") == 1 and b"connection: close" in received


def test_malformed_request_gets_400_and_the_connection_closes() -> None:
    received = serve(echo, lambda port: talk(port, b"NOT HTTP AT ALL\r\n\r\n", until_close=True))
    assert received.startswith(b"HTTP/1.1 400 Bad Request") and b"malformed HTTP request" in received


def test_a_body_over_the_limit_gets_413() -> None:
    async def main() -> bytes:
        server = HttpServer(echo, max_request_bytes=1000)
        await server.start()
        try:
            return await talk(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
                              + b"x" * 5000, until_close=True)
        finally:
            await server.stop()
    received = asyncio.run(main())
    assert received.startswith(b"HTTP/1.1 413 Request Entity Too Large") and b"over 1000 bytes" in received


def test_a_failing_handler_answers_500_and_the_server_goes_on() -> None:
    async def broken(request: HttpRequest) -> HttpResponse:
        if request.target == "/boom":
            raise RuntimeError("bug")
        return await echo(request)

    data = b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
    received = serve(broken, lambda port: talk(port, data, responses=2))
    assert received.startswith(b"HTTP/1.1 500 Internal Server Error") and received.endswith(b"GET /ok 0 - ")


class RawUpstream:
    """An endpoint scripted at the byte level: ``answer(request bytes)`` returns what to send (None: close
    without answering); it closes after an answer that says ``Connection: close``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> RawUpstream:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    body = await reader.readexactly(length)
                    reply = await self.answer(head + body)
                    if reply is None:
                        break
                    writer.write(reply)
                    await writer.drain()
                    if b"\r\nconnection: close\r\n" in reply.lower():
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()


def ok(body: bytes, *headers: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in headers) + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


def exchange(answer: Answer, *, requests: int = 1, timeout: float = 2.0,
             between: float = 0.0) -> tuple[list[HttpResponse | BaseException], int]:
    async def main() -> tuple[list[HttpResponse | BaseException], int]:
        async with RawUpstream(answer) as upstream:
            pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}/v1", max_connections=4)
            results: list[HttpResponse | BaseException] = []
            for _ in range(requests):
                try:
                    results.append(await pool.request("POST", "/v1/x", {"content-type": "application/json"},
                                                      b"{}", timeout=timeout))
                except (UpstreamError, TimeoutError, OSError) as err:
                    results.append(err)
                await asyncio.sleep(between)
            pool.close()
            return results, upstream.connections
    return asyncio.run(main())


def test_pool_reuses_one_connection_and_sends_host_and_length() -> None:
    seen: list[bytes] = []

    async def answer(request: bytes) -> bytes:
        seen.append(request)
        return ok(b'{"ok":1}', b"Content-Type: application/json")

    results, connections = exchange(answer, requests=3)
    assert all(isinstance(r, HttpResponse) and r.status == 200 and r.body == b'{"ok":1}' for r in results)
    assert connections == 1
    assert seen[0].startswith(b"POST /v1/x HTTP/1.1\r\n") and b"content-length: 2\r\n" in seen[0]
    assert b"host: 127.0.0.1:" in seen[0] and seen[0].endswith(b"\r\n\r\n{}")


def test_chunked_gzip_and_close_delimited_answers() -> None:
    packed = gzip.compress(b'{"a":"b"}')
    replies = iter([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n5\r\n:\"b\"}\r\n0\r\n\r\n",
        ok(packed, b"Content-Encoding: gzip"),
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    ])
    sent: list[bytes] = []

    async def answer(request: bytes) -> bytes | None:
        reply = next(replies)
        sent.append(reply)
        return reply

    results, connections = exchange(answer, requests=3)
    assert connections == 1
    assert [r.body for r in results if isinstance(r, HttpResponse)] == [b'{"a":"b"}', b'{"a":"b"}', b"until the end"]


def test_stale_keep_alive_connection_is_replaced_silently() -> None:
    count = 0

    async def answer(request: bytes) -> bytes | None:
        nonlocal count
        count += 1
        # the endpoint closes every connection right after its answer, without saying so
        return ok(b"{}") if count % 2 else None

    async def main() -> list[int]:
        async with RawUpstream(answer) as upstream:
            pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}/", max_connections=2)
            statuses = []
            for _ in range(2):
                statuses.append((await pool.request("POST", "/", {}, b"{}", timeout=2)).status)
            pool.close()
            return statuses
    assert asyncio.run(main()) == [200, 200]


@pytest.mark.parametrize(("reply", "answered"), [
    (None, False),                                                                      # closed, no answer
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 50\r\n\r\nshort", True),  # closed mid-answer
    (b"garbage that is not HTTP\r\n\r\n", True),                                       # not HTTP
])
def test_broken_answers_raise_upstream_error(reply: bytes | None, answered: bool) -> None:
    async def answer(request: bytes) -> bytes | None:
        return reply

    results, _ = exchange(answer)
    error = results[0]
    assert isinstance(error, UpstreamError) and error.answered == answered, error


def test_timeout_fires_and_the_connection_is_not_reused() -> None:
    async def answer(request: bytes) -> bytes | None:
        await asyncio.sleep(1.0)
        return ok(b"{}")

    results, _ = exchange(answer, requests=1, timeout=0.2)
    assert isinstance(results[0], TimeoutError)


def test_pool_limits_connections_and_queues_the_rest() -> None:
    async def answer(request: bytes) -> bytes:
        await asyncio.sleep(0.05)
        return ok(b"{}")

    async def main() -> tuple[list[int], int]:
        async with RawUpstream(answer) as upstream:
            pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}/", max_connections=2)
            answers = await asyncio.gather(*(pool.request("POST", "/", {}, b"{}", timeout=5) for _ in range(6)))
            pool.close()
            return [a.status for a in answers], upstream.connections
    statuses, connections = asyncio.run(main())
    assert statuses == [200] * 6 and connections == 2


def test_unreachable_endpoint_is_an_os_error() -> None:
    async def main() -> None:
        pool = UpstreamPool("http://127.0.0.1:9/", max_connections=1)
        await pool.request("POST", "/", {}, b"{}", timeout=2)
    with pytest.raises(OSError):
        asyncio.run(main())


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        UpstreamPool("ftp://example/", max_connections=1)


def test_https_endpoint_verified_against_the_trusted_cas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)

    async def main() -> tuple[int, bytes, BaseException | None]:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
                writer.write(ok(b'{"tls":true}'))
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        try:
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted: the pool's default context reads it
            trusting = UpstreamPool(f"https://127.0.0.1:{port}/v1", max_connections=1)
            answer = await trusting.request("POST", "/v1", {}, b"{}", timeout=5)
            trusting.close()
            monkeypatch.delenv("SSL_CERT_FILE")
            refusing = UpstreamPool(f"https://localhost:{port}/v1", max_connections=1)
            refused: BaseException | None = None
            try:
                await refusing.request("POST", "/v1", {}, b"{}", timeout=5)
            except (ssl.SSLError, OSError) as err:
                refused = err
            refusing.close()
            return answer.status, answer.body, refused
        finally:
            server.close()

    status, body, refused = asyncio.run(main())
    assert (status, body) == (200, b'{"tls":true}')
    assert isinstance(refused, ssl.SSLCertVerificationError)  # an unknown CA is not trusted
