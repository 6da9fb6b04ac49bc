"""The HTTP server: a ThreadingHTTPServer on 127.0.0.1 that serves the repositories under a root directory.

``serve()`` scans the root, starts the server on a background thread and returns a :class:`HubServer`.
Point ``HF_ENDPOINT`` at ``HubServer.url``.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from tests.hub.layout import RepoType, scan
from tests.hub.recording import RecordedRequest, Recorder
from tests.hub.routes import Reply, Request, Settings, answer

HOST = "127.0.0.1"
MAX_BODY_BYTES = 1024 * 1024


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, settings: Settings, *, quiet: bool) -> None:
        super().__init__((HOST, port), _Handler)
        self.settings = settings
        self.recorder = Recorder()
        self.quiet = quiet


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        try:
            reply = answer(self.server.settings, self._request(url.path, url.query))
        except Exception as error:  # a bug in the hub must not kill the server
            traceback.print_exc(file=sys.stderr)
            reply = Reply(500, f"test hub failed: {error!r}".encode(), {"Content-Type": "text/plain"})
        self.server.recorder.add(
            method=self.command,
            path=url.path,
            query=url.query,
            authorized=self.headers.get("Authorization") is not None,
            status=reply.status,
        )
        self._send(reply)

    def _request(self, path: str, query: str) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError(f"bad Content-Length {length}")
        return Request(
            method=self.command,
            path=path,
            query=query,
            body=self.rfile.read(length) if length else b"",
            content_type=self.headers.get("Content-Type", ""),
            authorization=self.headers.get("Authorization"),
            range=self.headers.get("Range"),
        )

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


class HubServer:
    """A running hub: its URL, what it has received, and how to stop it."""

    def __init__(self, httpd: _HTTPServer) -> None:
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The TCP port it listens on (on 127.0.0.1)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``HF_ENDPOINT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def repos(self) -> list[str]:
        """The repositories served, as ``<type>/<org>/<name>`` (e.g. ``dataset/openai/gsm8k``)."""
        return [f"{repo_type}/{repo_id}" for repo_type, repo_id in self._httpd.settings.repos]

    def sha(self, repo_id: str, *, repo_type: RepoType = "dataset") -> str:
        """The commit sha a repository is served at (KeyError if it is not served)."""
        return self._httpd.settings.repos[(repo_type, repo_id)].sha

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        return self._httpd.recorder.snapshot()

    def shutdown(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()


def serve(
    root: Path, *, port: int = 0, gated: Iterable[str] = (), token: str | None = None, quiet: bool = True
) -> HubServer:
    """Serve the repositories under ``root`` on 127.0.0.1:``port`` (0 picks a free port), in the background.

    ``gated`` names repository ids (``org/name``) whose files need ``Authorization: Bearer <token>``.
    The repositories are scanned once, here. ``quiet=False`` logs each request to stderr.
    """
    repos = scan(root)
    gated_ids = frozenset(gated)
    known = {repo_id for _, repo_id in repos}
    if gated_ids - known:
        raise ValueError(f"gated repositories not under {root}: {sorted(gated_ids - known)}; served: {sorted(known)}")
    if gated_ids and not token:
        raise ValueError("gated repositories need a token (nobody could open them otherwise)")
    httpd = _HTTPServer(port, Settings(repos=repos, gated=gated_ids, token=token), quiet=quiet)
    return HubServer(httpd)
