"""A gate in front of the test endpoint: answers the first N model calls, holds the rest until released.

Jobs that must still be running when a test acts on them (cancel, a time limit) talk to the
endpoint through a gate. Held requests never reach the endpoint, so ``endpoint.requests`` lists
exactly the calls that were answered.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

HOLD_SECONDS = 900.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, answer_first: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.answer_first = answer_first
        self.passed = 0
        self.held = 0
        self.lock = threading.Lock()
        self.opened = threading.Event()
        self.drop_held = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "POST" and self.path.rstrip("/").endswith("completions"):
            with self.server.lock:
                wait = self.server.passed >= self.server.answer_first and not self.server.opened.is_set()
                if wait:
                    self.server.held += 1
                else:
                    self.server.passed += 1
            if wait:
                self.server.opened.wait(HOLD_SECONDS)
                if self.server.drop_held:  # its client is gone (the job was killed): do not answer it late
                    self.close_connection = True
                    return
        connection = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        connection.request(self.command, self.path, body=body, headers=headers)
        reply = connection.getresponse()
        data = reply.read()
        connection.close()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.getheader("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Gate:
    """``with Gate(endpoint.url, answer_first=2) as gate:`` then point the harness at ``gate.url``."""

    def __init__(self, upstream: str, *, answer_first: int) -> None:
        self._server = _Server(upstream, answer_first)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, like the endpoint's."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def held(self) -> int:
        """Model calls that arrived after the first N and were held."""
        return self._server.held

    def open(self, *, drop_held: bool = False) -> None:
        """Let later calls through; held ones too, unless ``drop_held`` (their callers were killed)."""
        self._server.drop_held = drop_held
        self._server.opened.set()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.open(drop_held=True)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
