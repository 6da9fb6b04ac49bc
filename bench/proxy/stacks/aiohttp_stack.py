"""Candidate ``aiohttp``: our proxy with aiohttp's low-level server and a pooled aiohttp ClientSession, on uvloop.

    python bench/proxy/stacks/aiohttp_stack.py --upstream URL --port P --output-dir DIR

Same chain, config, process count and SO_REUSEPORT arrangement as ours (see launch.py); only the HTTP
layer differs. The server is ``aiohttp.web.Server`` (no router, no middlewares: the least of aiohttp's
server), the client one ``ClientSession`` per process with a connector capped at the endpoint's
``max_connections`` (512 by default), like our pool. Limits kept: the request body (256 MiB) and the
answer (64 MiB when declared). Not kept: our server's slowloris timeouts and per-field limits (aiohttp has
its own).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from launch import close_later, run
from yarl import URL

from orchestrator.runtime.proxy.http import (
    MAX_RESPONSE_BYTES,
    Handler,
    HttpRequest,
    HttpResponse,
    ResponseTooLargeError,
    UpstreamError,
)
from orchestrator.runtime.proxy.http_server import MAX_REQUEST_BYTES


def listening_socket(port: int, *, reuse_port: bool) -> socket.socket:
    """A bound, listening, non-blocking socket on 127.0.0.1 (as ours: SO_REUSEPORT when shared)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def request_headers(items: Any) -> dict[str, str]:
    """Header fields with lower-case names, a repeated name's values joined (RFC 9110, 5.3)."""
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


class AiohttpServer:
    """``HttpServer``'s interface on ``aiohttp.web.Server``."""

    def __init__(self, handler: Handler, **_: object) -> None:
        self.handler = handler
        self.port = 0
        self._web: web.Server | None = None
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0, *, reuse_port: bool = False) -> None:
        """Listen on 127.0.0.1:``port``."""
        sock = listening_socket(port, reuse_port=reuse_port)
        loop = asyncio.get_running_loop()
        self._web = web.Server(self._handle, request_factory=self._request, access_log=None)
        self._server = await loop.create_server(self._web, sock=sock)
        self.port = int(sock.getsockname()[1])

    def _request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task, protocol._loop,
                               client_max_size=MAX_REQUEST_BYTES)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        answer = await self.handler(HttpRequest(request.method, request.raw_path,
                                                request_headers(request.headers.items()), body))
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let requests in flight finish, close every connection."""
        if self._server is not None:
            self._server.close()
        if self._web is not None:
            await self._web.shutdown(grace)
        if self._server is not None:
            await self._server.wait_closed()


class AiohttpPool:
    """``UpstreamPool``'s interface on one pooled ``aiohttp.ClientSession``."""

    def __init__(self, url: str, *, max_connections: int, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.host_header = parts.netloc
        self.max_response_bytes = max_response_bytes
        self.proxy = None  # no forward proxy (the benchmark's endpoint is on loopback)
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max, limit_per_host=0, ttl_dns_cache=None)
            self._session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
        return self._session

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes, *,
                      timeout: float) -> HttpResponse:
        """One exchange within ``timeout`` seconds; TimeoutError, UpstreamError or OSError when it fails."""
        url = self._urls.get(target)
        if url is None:
            url = self._urls[target] = URL(self.origin + target, encoded=True)
        limit = self._timeouts.get(timeout)
        if limit is None:
            limit = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._client().request(method, url, headers=headers, data=body, allow_redirects=False,
                                              timeout=limit) as answer:
                if (answer.content_length or 0) > self.max_response_bytes:
                    raise ResponseTooLargeError(f"the endpoint's answer declares {answer.content_length} bytes, "
                                                f"over the proxy's limit of {self.max_response_bytes}", answered=True)
                data = await answer.read()
                return HttpResponse(answer.status, request_headers(answer.headers.items()), data)
        except TimeoutError:
            raise
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as err:
            raise UpstreamError(f"the endpoint's answer failed: {err}", answered=True) from err
        except aiohttp.ClientError as err:
            raise UpstreamError(f"the endpoint's connection failed: {err}") from err

    def close(self) -> None:
        """Close the session (asynchronously; the launcher waits for it)."""
        if self._session is not None:
            close_later(self._session.close())
            self._session = None


if __name__ == "__main__":
    raise SystemExit(run(script=__file__, server_class=AiohttpServer, pool_class=AiohttpPool))
