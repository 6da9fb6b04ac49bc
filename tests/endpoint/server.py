"""The HTTP server: a ThreadingHTTPServer on 127.0.0.1 that answers by the rules in README.md.

``serve()`` starts it on a background thread and returns an :class:`EndpointServer`. Run as a file
(``python tests/endpoint/server.py --port N``) it behaves like ``python -m tests.endpoint``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

if not __package__:  # run as a file: make the `tests` package importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.endpoint.protocol import ApiError, parse_json_object
from tests.endpoint.recording import RecordedRequest, Recorder
from tests.endpoint.routes import Reply, Settings, find_route, json_reply, kind_of
from tests.endpoint.script import Rule, Script

HOST = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024 * 1024


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, settings: Settings, recorder: Recorder, *, quiet: bool) -> None:
        super().__init__((HOST, port), _Handler)
        self.settings = settings
        self.recorder = recorder
        self.quiet = quiet


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        path = urlsplit(self.path).path
        if len(path) > 1:
            path = path.rstrip("/")
        raw = b""
        try:
            raw = self._read_body()
            reply = self._reply(path, raw)
        except ApiError as error:
            reply = json_reply(error.body(), error.status)
        except Exception as error:  # a bug in the endpoint must not kill the server
            traceback.print_exc(file=sys.stderr)
            failure = ApiError(500, f"test endpoint failed: {error!r}", code="internal", error_type="server_error")
            reply = json_reply(failure.body(), 500)
        self.server.recorder.add(
            method=self.command,
            path=path,
            kind=kind_of(path),
            status=reply.status,
            headers=dict(self.headers.items()),
            body=_try_json(raw),
        )
        if self.server.settings.delay > 0 and kind_of(path) == "inference":
            time.sleep(self.server.settings.delay)
        self._send(reply)

    def _reply(self, path: str, raw: bytes) -> Reply:
        route = find_route(self.command, path)
        body = parse_json_object(raw) if route.method == "POST" else {}
        return route.handler(self.server.settings, body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(400, f"bad Content-Length {length_header!r}", code="invalid_request")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, "malformed chunked body", code="invalid_request") from None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return bytes(data)
            if len(data) + size > MAX_BODY_BYTES:
                self.close_connection = True
                raise ApiError(400, "request body too large", code="invalid_request")
            data += self.rfile.read(size)
            self.rfile.readline(1024)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def _try_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


class EndpointServer:
    """A running test endpoint: its port, what it has received, and how to stop it."""

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
        """``http://127.0.0.1:PORT``; the OpenAI base URL is this plus ``/v1``."""
        return f"http://{HOST}:{self.port}"

    @property
    def model(self) -> str:
        """The one model id it serves."""
        return self._httpd.settings.model

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        return self._httpd.recorder.snapshot()

    def shutdown(self) -> None:
        """Stop serving, close the socket and the record file. Safe to call twice."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self._httpd.recorder.close()

    def __enter__(self) -> EndpointServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()


def serve(
    *, port: int = 0, model: str = "test-model", record: Path | None = None, quiet: bool = True,
    script: Script | Sequence[Rule] | None = None, delay: float = 0.0,
) -> EndpointServer:
    """Start the endpoint on 127.0.0.1:``port`` (0 picks a free port) on a background thread.

    ``record`` appends every request as a JSONL line to that file. ``quiet=False`` logs each
    request to stderr. ``script`` gives scripted replies (tests/endpoint/script.py). ``delay``: seconds each
    inference request (chat, completions) waits before its whole answer is sent, streamed or not.
    """
    if delay < 0:
        raise ValueError(f"delay must be >= 0 seconds, not {delay}")
    rules = script if isinstance(script, Script) or script is None else Script(tuple(script))
    httpd = _HTTPServer(port, Settings(model=model, script=rules, delay=delay), Recorder(record), quiet=quiet)
    return EndpointServer(httpd)


if __name__ == "__main__":
    from tests.endpoint.cli import main

    raise SystemExit(main())
