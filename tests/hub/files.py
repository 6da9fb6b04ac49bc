"""A loopback stand-in for plain file servers (VLMEvalKit's dataset host, a mirror) and for a forward proxy.

:func:`serve` answers ``GET`` for files under ``root`` by their URL path. The same server also acts as an
HTTP forward proxy: a request in absolute form (``GET http://any.host/path``, what a client sends to its
``HTTP_PROXY``) is answered with ``root/path`` as if the proxy had fetched it from ``any.host``, so tests can
prove traffic went through a proxy without any other host existing. Each request is recorded with its target
as sent and whether ``Proxy-Authorization`` carried the expected credentials (their value is never kept).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class FileRequest:
    """One request: its target as sent (``/a/b`` or ``http://host/a/b``), proxy form or not, the status sent."""

    target: str
    proxied: bool
    proxy_user_ok: bool
    status: int


@dataclass
class FileServer:
    """A running server: ``url`` to use as a mirror or as ``HTTP_PROXY``; ``requests`` so far."""

    url: str
    requests: list[FileRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve_forever(root: Path, *, proxy_credentials: tuple[str, str] | None = None) -> FileServer:
    """Start serving ``root`` on 127.0.0.1 (an ephemeral port) in a thread; stop it with ``shutdown()``."""
    lock = threading.Lock()
    expected = ("Basic " + base64.b64encode(":".join(proxy_credentials).encode()).decode()
                if proxy_credentials else None)
    state = FileServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            proxied = "://" in self.path
            path = unquote(urlsplit(self.path).path if proxied else self.path.split("?", 1)[0])
            ok = expected is not None and self.headers.get("Proxy-Authorization") == expected
            file = (root / path.lstrip("/")).resolve()
            if proxied and expected is not None and not ok:
                status, body = 407, b"proxy authentication required\n"
            elif file.is_file() and file.is_relative_to(root.resolve()):
                status, body = 200, file.read_bytes()
            else:
                status, body = 404, b"not found\n"
            with lock:
                state.requests.append(FileRequest(self.path, proxied, ok, status))
            self.send_response(status)
            if status == 407:
                self.send_header("Proxy-Authenticate", 'Basic realm="stand-in"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    state._server = server
    return state


@contextmanager
def serve(root: Path, *, proxy_credentials: tuple[str, str] | None = None) -> Iterator[FileServer]:
    """:func:`serve_forever` for a ``with`` block."""
    server = serve_forever(root, proxy_credentials=proxy_credentials)
    try:
        yield server
    finally:
        server.shutdown()
