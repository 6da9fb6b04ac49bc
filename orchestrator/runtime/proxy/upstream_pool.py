"""The pool of keep-alive connections to the endpoint, directly or through a forward proxy, and streamed answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import zlib
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from orchestrator.runtime.proxy.client_connection import ClientConnection
from orchestrator.runtime.proxy.http import (
    FRAMING,
    MAX_RESPONSE_BYTES,
    HttpResponse,
    ProxyRefusedError,
    UpstreamError,
)
from orchestrator.runtime.proxy.upstream_proxy import UpstreamProxy, open_tunnel, proxy_for, refusal, refusal_is_final

_SWEEP_SECONDS = 0.05
"""How often timeouts are checked: a timeout fires up to this much late (one timer per request costs more)."""


_OWN_HEADERS = FRAMING | {"host", "proxy-authorization"}
"""Headers the pool writes itself, never the caller's."""


class UpstreamPool:
    """Keep-alive connections to one origin (``http[s]://host[:port]``), at most ``max_connections``.

    Through the forward proxy the environment names (:func:`~orchestrator.runtime.proxy.upstream_proxy.proxy_for`),
    if any: an http endpoint's requests go to the proxy in absolute form (``POST http://host/path``) on keep-alive
    connections to it; an https endpoint is reached through a ``CONNECT`` tunnel, TLS with the endpoint inside it,
    pooled like a direct connection. ``Proxy-Authorization`` (from the proxy URL) goes to the proxy only.
    Raises InputError when the proxy variable is not an http(s) proxy URL.
    """

    def __init__(self, url: str, *, max_connections: int, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        parts = urlsplit(url)
        self.max_response_bytes = max_response_bytes
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        self.host_header = (f"[{self.host}]" if ":" in self.host else self.host) + (
            "" if default_port else f":{self.port}")
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self.proxy: UpstreamProxy | None = proxy_for(parts.scheme, self.host, self.port)
        self._proxy_ssl = ssl.create_default_context() if self.proxy is not None and self.proxy.tls else None
        forwarding = self.proxy is not None and self._ssl is None  # absolute-form requests to the proxy
        self._absolute = f"http://{self.host_header}" if forwarding else ""
        self._proxy_auth = (f"proxy-authorization: {self.proxy.authorization}"
                            if forwarding and self.proxy is not None and self.proxy.authorization else None)
        self._max = max_connections
        self._busy = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._idle: list[ClientConnection] = []
        self._open: set[ClientConnection] = set()
        self._deadlines: dict[asyncio.Future[None], tuple[float, float]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes, *,
                      timeout: float) -> HttpResponse:
        """One exchange within ``timeout`` seconds (connecting and waiting for a connection included).

        Raises TimeoutError, or UpstreamError / OSError when the connection fails. A reused connection
        that the endpoint had closed before it received the request is replaced once, silently.
        """
        connection = await self._exchange(method, target, headers, body, timeout=timeout, streaming=False)
        try:
            response = connection.response()
        except BaseException:
            self._release(connection, reuse=False)
            raise
        self._release(connection, reuse=True)
        return response

    async def open_stream(self, method: str, target: str, headers: dict[str, str], body: bytes, *,
                          timeout: float, idle_timeout: float) -> StreamedAnswer:
        """Send a request and return once its answer's head has arrived (within ``timeout``); its body is then
        read as it arrives with :meth:`StreamedAnswer.read`, at most ``idle_timeout`` s apart. The answer holds
        its connection (and a place in the pool) until :meth:`StreamedAnswer.close`."""
        connection = await self._exchange(method, target, headers, body, timeout=timeout, streaming=True)
        return StreamedAnswer(self, connection, idle_timeout)

    async def _exchange(self, method: str, target: str, headers: dict[str, str], body: bytes, *, timeout: float,
                        streaming: bool) -> ClientConnection:
        """Send one request; return its connection once the answer (``streaming``: its head) has arrived. The
        caller gives the connection and its place in the pool back with :meth:`_release`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = self._encode(method, target, headers, body)
        if self._busy >= self._max:
            await self._wait_for_slot(loop, deadline, timeout)
        self._busy += 1
        try:
            while True:
                connection = self._take_idle()
                reused = connection is not None
                if connection is None:
                    connection = await self._connect(max(0.0, deadline - loop.time()))
                waiter = connection.send(data, head_only=method == "HEAD", streaming=streaming)
                self._watch(loop, waiter, deadline, timeout)
                try:
                    await waiter
                except UpstreamError as err:
                    self._discard(connection)
                    if reused and not err.answered and loop.time() < deadline:
                        continue  # a stale keep-alive connection, not the endpoint's doing
                    raise
                except BaseException:
                    self._discard(connection)
                    raise
                finally:
                    self._deadlines.pop(waiter, None)
                if connection.status == 407 and self._absolute and self.proxy is not None:
                    # to an absolute-form request: the forward proxy's answer, not the endpoint's
                    self._discard(connection)
                    raise ProxyRefusedError(refusal(self.proxy, 407, "Proxy Authentication Required",
                                                    f"{self._absolute}{target}"), answered=True)
                return connection
        except BaseException:
            self._free_slot()
            raise

    def _release(self, connection: ClientConnection, *, reuse: bool) -> None:
        """An exchange is over: keep its connection for the next one (if it can be), free its place."""
        if reuse and connection.keep_alive and not connection.lost and not connection.reading:
            self._idle.append(connection)
        else:
            self._discard(connection)
        self._free_slot()

    def _free_slot(self) -> None:
        self._busy -= 1
        self._wake_next()

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop, deadline: float, timeout: float) -> None:
        while self._busy >= self._max:
            slot = loop.create_future()
            self._queue.append(slot)
            self._watch(loop, slot, deadline, timeout)
            try:
                await slot
            except BaseException:
                if slot.done() and not slot.cancelled() and slot.exception() is None:
                    self._wake_next()  # cancelled just as its turn came: the turn goes to the next in line
                raise
            finally:
                self._deadlines.pop(slot, None)

    def _wake_next(self) -> None:
        while self._queue:
            waiting = self._queue.popleft()
            if not waiting.done():
                waiting.set_result(None)
                break

    def _watch(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], deadline: float,
               timeout: float) -> None:
        self._deadlines[waiter] = (deadline, timeout)
        if self._sweeper is None:
            self._sweeper = loop.call_later(_SWEEP_SECONDS, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        expired = [(waiter, timeout) for waiter, (deadline, timeout) in self._deadlines.items() if deadline <= now]
        for waiter, timeout in expired:
            del self._deadlines[waiter]
            if not waiter.done():
                waiter.set_exception(TimeoutError(f"no answer within {timeout:g} s"))
        self._sweeper = loop.call_later(_SWEEP_SECONDS, self._sweep, loop) if self._deadlines else None

    def _encode(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        absolute = self._absolute if target.startswith("/") else ""
        lines = [f"{method} {absolute}{target} HTTP/1.1", f"host: {self.host_header}"]
        if self._proxy_auth is not None:
            lines.append(self._proxy_auth)
        lines.extend(f"{name}: {value}" for name, value in headers.items() if name not in _OWN_HEADERS)
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(f"content-length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _take_idle(self) -> ClientConnection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.lost and connection.transport is not None and not connection.transport.is_closing():
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self, timeout: float) -> ClientConnection:
        connection = await asyncio.wait_for(self._open_connection(), timeout)
        sock: Any = connection.transport.get_extra_info("socket") if connection.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open.add(connection)
        return connection

    async def _open_connection(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        if self.proxy is None:
            _, connection = await loop.create_connection(
                lambda: ClientConnection(self.max_response_bytes), self.host, self.port,
                ssl=self._ssl, server_hostname=self.host if self._ssl else None)
            return connection
        if self._ssl is None:
            try:
                _, connection = await loop.create_connection(
                    lambda: ClientConnection(self.max_response_bytes), self.proxy.host, self.proxy.port,
                    ssl=self._proxy_ssl, server_hostname=self.proxy.host if self._proxy_ssl else None)
            except OSError as err:
                raise ConnectionError(f"the proxy {self.proxy.url} ({self.proxy.variable}) cannot be reached: "
                                      f"{err}") from err
            return connection
        return await self._tunnel(loop, self.proxy, self._ssl)

    async def _tunnel(self, loop: asyncio.AbstractEventLoop, proxy: UpstreamProxy,
                      tls: ssl.SSLContext) -> ClientConnection:
        """CONNECT through the proxy, then TLS with the endpoint (its name verified) inside the tunnel."""
        raw, status, reason = await open_tunnel(proxy, self.host, self.port, self._proxy_ssl)
        try:
            if status != 200:
                error = ProxyRefusedError if refusal_is_final(status) else UpstreamError
                raise error(refusal(proxy, status, reason, f"{self.host}:{self.port}"), answered=True)
            connection = ClientConnection(self.max_response_bytes)
            transport = await loop.start_tls(raw, connection, tls, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
        if transport is None:  # (start_tls returns None only when the loop closed meanwhile)
            raise ConnectionError("the event loop closed while TLS was set up through the proxy")
        connection.connection_made(transport)
        return connection

    def _discard(self, connection: ClientConnection) -> None:
        self._open.discard(connection)
        if connection.transport is not None:
            connection.transport.close()

    def close(self) -> None:
        """Close every connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self._open):
            self._discard(connection)
        self._idle.clear()


class StreamedAnswer:
    """An answer whose body is read as it arrives (:meth:`UpstreamPool.open_stream`); close it when done."""

    def __init__(self, pool: UpstreamPool, connection: ClientConnection, idle_timeout: float) -> None:
        self.status = connection.status
        self.headers = connection.headers
        self.idle_timeout = idle_timeout
        self._pool = pool
        self._connection = connection
        encoding = connection.headers.get("content-encoding", "").lower()
        self._decoder = zlib.decompressobj(47) if encoding in ("gzip", "x-gzip", "deflate") else None
        if self._decoder is not None:
            connection.headers.pop("content-encoding", None)
        self.closed = False

    async def read(self, *, timeout: float | None = None) -> bytes:
        """The bytes that arrived since the last read, waiting up to ``timeout`` (default: the idle timeout)
        for some; b"" once the body has ended. Raises TimeoutError, or UpstreamError if the body breaks."""
        connection = self._connection
        while True:
            if connection.body:
                data = connection.take()
                if self._decoder is None:
                    return data
                try:
                    data = self._decoder.decompress(data)
                except zlib.error as err:
                    raise UpstreamError(f"the endpoint's compressed stream does not decompress: {err}",
                                        answered=True) from err
                if data:
                    return data
                continue
            if connection.error is not None:
                raise connection.error
            if connection.complete:
                if self._decoder is not None:
                    tail, self._decoder = self._decoder.flush(), None
                    if tail:
                        return tail
                return b""
            if self.closed or connection.lost:
                raise UpstreamError("the endpoint's stream was closed", answered=True)
            await self._wait(self.idle_timeout if timeout is None else timeout)

    async def _wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        readable = self._connection.readable = loop.create_future()
        self._pool._watch(loop, readable, loop.time() + timeout, timeout)
        try:
            await readable
        finally:
            self._pool._deadlines.pop(readable, None)
            self._connection.readable = None

    async def read_all(self) -> bytes:
        """The rest of the body, whole (then the answer is closed)."""
        parts: list[bytes] = []
        try:
            while chunk := await self.read():
                parts.append(chunk)
        except BaseException:
            self.close(complete=False)
            raise
        self.close(complete=True)
        return b"".join(parts)

    def close(self, *, complete: bool) -> None:
        """Give the connection back to the pool (``complete``: the body was read to its end) or drop it."""
        if self.closed:
            return
        self.closed = True
        self._pool._release(self._connection, reuse=complete and self._connection.complete)
