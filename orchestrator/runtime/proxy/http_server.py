"""The adapter proxy's HTTP/1.1 server for the harness: listening, timeouts, stopping.

Keep-alive, pipelining, Content-Length and chunked request bodies; nothing else of HTTP's breadth (no
upgrades, no CONNECT). It holds under hostile clients: every limit and timeout (431, 414, 413, 408) says
what it is for, no request holds the event loop more than a few ms, and a refused request gets one JSON
error line and a closed connection, never a traceback (tests/unit/test_proxy_abuse.py). In three parts:
this module, the server's life; :mod:`~orchestrator.runtime.proxy.server_connection`, one connection's
protocol (flow, answers in order, refusals); :mod:`~orchestrator.runtime.proxy.request_reader`, reading
requests under the limits (httptools' parser, llhttp). The client towards the endpoint:
:mod:`orchestrator.runtime.proxy.upstream_pool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from orchestrator.runtime.proxy.http import Handler
from orchestrator.runtime.proxy.request_reader import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_REQUEST_BYTES,
    MAX_TARGET_BYTES,
    RequestLimits,
)
from orchestrator.runtime.proxy.server_connection import LINGER_SECONDS, ServerConnection

__all__ = ["BODY_TIMEOUT", "HEADER_TIMEOUT", "IDLE_TIMEOUT", "MAX_HEADERS", "MAX_HEADER_BYTES", "MAX_REQUEST_BYTES",
           "MAX_TARGET_BYTES", "HttpServer"]

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

_ServerConnection = ServerConnection
"""The protocol of each accepted connection (the split-anywhere tests build one over a transport test double)."""


class HttpServer:
    """Listens on 127.0.0.1 and hands every request to ``handler``; limits and timeouts: the constants of the
    same names (the limits' in :mod:`~orchestrator.runtime.proxy.request_reader`)."""

    def __init__(self, handler: Handler, *, max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_headers: int = MAX_HEADERS, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_target_bytes: int = MAX_TARGET_BYTES, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.handler = handler
        self.limits = RequestLimits(max_request_bytes=max_request_bytes, max_headers=max_headers,
                                    max_header_bytes=max_header_bytes, max_target_bytes=max_target_bytes)
        self.header_timeout, self.body_timeout, self.idle_timeout = header_timeout, body_timeout, idle_timeout
        self.connections: set[_ServerConnection] = set()
        self.workers: set[asyncio.Task[None]] = set()
        self.closing = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        # deadlines are checked by one sweep for all connections (a timer per request costs more);
        # a timeout fires up to a quarter of the shortest one late, at most a second
        self._tick = min(1.0, max(0.01, min(header_timeout, body_timeout, idle_timeout, LINGER_SECONDS) / 4))
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
            connection.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=grace)
