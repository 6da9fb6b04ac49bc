"""A loopback stand-in for a corporate forward proxy (HTTP/1.1, keep-alive), for the adapter proxy's tests.

It forwards absolute-form requests (``POST http://endpoint.test:PORT/v1``, what a client sends to its
``HTTP_PROXY``) and opens ``CONNECT`` tunnels, like squid. Every host name is taken to be 127.0.0.1, so a test
can name its endpoint ``endpoint.test`` (a name nothing else resolves, RFC 6761): the request reaches it only
through this proxy, and no other address is ever reached. With ``credentials`` it answers 407 to requests
without the matching ``Proxy-Authorization``; with ``tls`` it speaks TLS to its clients (an https:// proxy).
Each request is recorded (its credentials only as matching or not); ``Proxy-Authorization`` is not forwarded.
"""

from __future__ import annotations

import base64
import http.client
import io
import itertools
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

_HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive", "transfer-encoding",
               "content-length"}


@dataclass(frozen=True)
class Seen:
    """One request the proxy got: on which client connection (1, 2, ...), its line, what it answered."""

    connection: int
    method: str
    target: str
    credentials: str  # "none", "match" or "wrong"
    status: int


@dataclass
class ForwardProxy:
    """A running proxy: ``url`` to put in ``HTTPS_PROXY``; ``seen`` so far; ``connections`` accepted."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    refuse_connect: int | None = None  # answer CONNECT with this status instead of opening the tunnel
    _server: socketserver.ThreadingTCPServer | None = None
    _sockets: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _credentials(headers: http.client.HTTPMessage, expected: str | None) -> str:
    given = headers.get("Proxy-Authorization")
    if given is None:
        return "none"
    return "match" if given == expected else "wrong"


def _answer(out: io.BufferedIOBase, status: int, reason: str, body: bytes, headers: list[tuple[str, str]]) -> None:
    head = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers), f"Content-Length: {len(body)}"]
    out.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    out.flush()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Bytes both ways until either side closes (TLS records already decrypted count as readable)."""
    pair = [client, upstream]
    while True:
        ready: list[socket.socket] = [s for s in pair if isinstance(s, ssl.SSLSocket) and s.pending()]
        if not ready:
            ready, _, _ = select.select(pair, [], [], 30)
            if not ready:
                return
        for sock in ready:
            try:
                data = sock.recv(65536)
            except (OSError, ValueError):
                return
            if not data:
                return
            (upstream if sock is client else client).sendall(data)


def start(*, credentials: tuple[str, str] | None = None, tls: ssl.SSLContext | None = None) -> ForwardProxy:
    """Start a proxy on 127.0.0.1 (an ephemeral port) in a thread; stop it with ``shutdown()``."""
    state = ForwardProxy()
    expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode() if credentials else None
    numbers = itertools.count(1)

    class Handler(socketserver.StreamRequestHandler):
        def setup(self) -> None:
            if tls is not None:  # the handshake here, not in the accepting thread
                self.request = tls.wrap_socket(self.request, server_side=True)
            super().setup()

        def handle(self) -> None:
            number = next(numbers)
            with state._lock:
                state.connections += 1
                state._sockets.add(self.connection)
            origins: dict[int, http.client.HTTPConnection] = {}
            try:
                while self._one(number, origins):
                    pass
            except (OSError, ValueError, http.client.HTTPException):
                pass
            finally:
                for origin in origins.values():
                    origin.close()
                with state._lock:
                    state._sockets.discard(self.connection)

        def _one(self, number: int, origins: dict[int, http.client.HTTPConnection]) -> bool:
            line = self.rfile.readline(65537).decode("latin-1")
            if not line.strip():
                return False
            method, target, _ = line.split()
            headers = http.client.parse_headers(self.rfile)
            body = self.rfile.read(int(headers.get("Content-Length", "0")))
            given = _credentials(headers, expected)
            if expected is not None and given != "match":
                state.record(Seen(number, method, target, given, 407))
                _answer(self.wfile, 407, "Proxy Authentication Required", b"proxy authentication required\n",
                        [("Proxy-Authenticate", 'Basic realm="stand-in"')])
                return True
            if method == "CONNECT":
                return self._connect(number, target, given)
            parts = urlsplit(target)
            if parts.scheme != "http" or parts.port is None:
                state.record(Seen(number, method, target, given, 400))
                _answer(self.wfile, 400, "Bad Request", b"absolute-form with a port expected\n", [])
                return False
            origin = origins.get(parts.port) or http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
            origins[parts.port] = origin
            forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            origin.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, forwarded)
            response = origin.getresponse()
            data = response.read()
            state.record(Seen(number, method, target, given, response.status))
            _answer(self.wfile, response.status, response.reason, data,
                    [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP])
            return True

        def _connect(self, number: int, target: str, given: str) -> bool:
            if state.refuse_connect is not None:
                state.record(Seen(number, "CONNECT", target, given, state.refuse_connect))
                _answer(self.wfile, state.refuse_connect, HTTPStatus(state.refuse_connect).phrase,
                        b"not allowed here\n", [])
                return True
            _, _, port = target.rpartition(":")
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
            state.record(Seen(number, "CONNECT", target, given, 200))
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            with upstream:
                _relay(self.connection, upstream)
            return False

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            return  # e.g. a client that did not trust its certificate: the client's test says so

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    scheme = "https" if tls is not None else "http"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    state._server = server
    return state


@contextmanager
def running(*, credentials: tuple[str, str] | None = None,
            tls: ssl.SSLContext | None = None) -> Iterator[ForwardProxy]:
    """:func:`start` for a ``with`` block."""
    proxy = start(credentials=credentials, tls=tls)
    try:
        yield proxy
    finally:
        proxy.shutdown()
