"""The fault-injecting endpoint: tests/endpoint's answers, with faults injected by a FaultPlan.

A ThreadingHTTPServer on 127.0.0.1 (Nagle off). Each request to a faulty route (the two inference
routes, or every route with ``all_routes``) is keyed (``plan.request_key``) and counted; its attempt
number picks the fault from the plan. An ``ok`` attempt gets exactly what tests/endpoint answers.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

from tests.endpoint.protocol import ApiError, parse_json_object
from tests.endpoint.routes import Reply, Settings, find_route, json_reply
from tests.faults.plan import DEFAULT_PLAN, Fault, FaultPlan, request_key

HOST = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024 * 1024
INFERENCE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
_ERRORS: dict[int, tuple[str, str]] = {  # status -> (type, code) of the injected error body
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}


@dataclass(frozen=True)
class FaultRecord:
    """One request as received: its key, which attempt of that key it was, and the fault it got.

    ``fault`` is ``ok``, a status code (``"429"``) or ``timeout``/``drop``/``reset``/``malformed``;
    ``status`` is the status sent (None for ``drop`` and ``reset``; a ``timeout`` sends its answer late).
    Requests to routes that are never faulted have ``attempt`` 0.
    """

    seq: int
    method: str
    path: str
    key: str
    attempt: int
    fault: str
    status: int | None
    headers: dict[str, str]
    body: Any


class _Log:
    """Thread-safe attempt counters and records; optionally one JSON line per record."""

    def __init__(self, path: Path | None) -> None:
        self.lock = threading.Lock()
        self.records: list[FaultRecord] = []
        self.attempts: Counter[str] = Counter()
        self._file: IO[str] | None = path.open("a", encoding="utf-8") if path is not None else None

    def next_attempt(self, key: str) -> int:
        with self.lock:
            self.attempts[key] += 1
            return self.attempts[key]

    def add(self, **fields: Any) -> None:
        with self.lock:
            record = FaultRecord(seq=len(self.records), **fields)
            self.records.append(record)
            if self._file is not None:
                self._file.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
                self._file.flush()

    def close(self) -> None:
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self, port: int, *, plan: FaultPlan, settings: Settings, log: _Log, paths: frozenset[str] | None, quiet: bool
    ) -> None:
        super().__init__((HOST, port), _Handler)
        self.plan = plan
        self.settings = settings
        self.log = log
        self.paths = paths  # None: every path is faulty
        self.quiet = quiet
        self.stopping = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        path = urlsplit(self.path).path
        if len(path) > 1:
            path = path.rstrip("/")
        try:
            raw = self._read_body()
        except ApiError as error:
            self._send(json_reply(error.body(), error.status))
            return
        key = request_key(self.command, path, raw)
        faulty = self.server.paths is None or path in self.server.paths
        attempt = self.server.log.next_attempt(key) if faulty else 0
        fault = self.server.plan.fault_for(key, attempt) if faulty and self.server.plan.selects(raw) else Fault("ok")
        reply = self._fault_reply(fault) if fault.kind == "status" else _answer(self.server.settings, self, path, raw)
        if fault.kind == "malformed":
            reply = Reply(200, reply.body[: max(1, len(reply.body) // 2)], reply.content_type)
        self.server.log.add(
            method=self.command,
            path=path,
            key=key,
            attempt=attempt,
            fault=fault.label,
            status=None if fault.kind in ("drop", "reset") else reply.status,
            headers=dict(self.headers.items()),
            body=_try_json(raw),
        )
        if fault.kind == "drop":
            self.close_connection = True  # no response at all; the server closes the socket
        elif fault.kind == "reset":
            self._reset()
        elif fault.kind == "timeout" and self.server.stopping.wait(self.server.plan.delay):
            self.close_connection = True  # shutting down: give up on the late answer
        else:
            self._send(reply, retry_after=fault.status == 429)

    def _fault_reply(self, fault: Fault) -> Reply:
        status = fault.status or 500
        error_type, code = _ERRORS.get(status, ("invalid_request_error" if status < 500 else "server_error", "fault"))
        message = f"injected fault: HTTP {status} (tests/faults plan {self.server.plan.spec!r})"
        return json_reply(ApiError(status, message, code=code, error_type=error_type).body(), status)

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 makes close() send RST instead of FIN."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length_header = self.headers.get("Content-Length", "0")
        length = int(length_header) if length_header.isdigit() else -1
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

    def _send(self, reply: Reply, *, retry_after: bool = False) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            if retry_after and self.server.plan.retry_after is not None:
                self.send_header("Retry-After", f"{self.server.plan.retry_after:g}")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. after a timeout)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def _answer(settings: Settings, handler: _Handler, path: str, raw: bytes) -> Reply:
    """What tests/endpoint answers to this request (its routes, rules and error bodies)."""
    try:
        route = find_route(handler.command, path)
        body = parse_json_object(raw) if route.method == "POST" else {}
        return route.handler(settings, body)
    except ApiError as error:
        return json_reply(error.body(), error.status)
    except Exception as error:  # a bug in the endpoint must not kill the server
        traceback.print_exc(file=sys.stderr)
        failure = ApiError(500, f"test endpoint failed: {error!r}", code="internal", error_type="server_error")
        return json_reply(failure.body(), 500)


def _try_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


class FaultyServer:
    """A running fault-injecting endpoint: its URL, its plan, what it received, how to stop it."""

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
    def plan(self) -> FaultPlan:
        """The plan it injects faults by."""
        return self._httpd.plan

    @property
    def requests(self) -> list[FaultRecord]:
        """Every request received so far, in arrival order (a copy)."""
        with self._httpd.log.lock:
            return list(self._httpd.log.records)

    @property
    def attempts(self) -> dict[str, int]:
        """How many times each request key has arrived (faulty routes only)."""
        with self._httpd.log.lock:
            return dict(self._httpd.log.attempts)

    @property
    def counts(self) -> Counter[str]:
        """How many requests got each fault (``ok``, ``429``, ``timeout``, ...), faulty routes only."""
        return Counter(record.fault for record in self.requests if record.attempt > 0)

    def shutdown(self) -> None:
        """Stop serving (held ``timeout`` answers are dropped), close the socket and the record file."""
        self._httpd.stopping.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self._httpd.log.close()

    def __enter__(self) -> FaultyServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()


def serve_faulty(
    plan: FaultPlan | str = DEFAULT_PLAN,
    *,
    port: int = 0,
    seed: int = 0,
    retry_after: float | None = 1.0,
    delay: float = 10.0,
    match: str | None = None,
    model: str = "test-model",
    all_routes: bool = False,
    record: Path | None = None,
    quiet: bool = True,
) -> FaultyServer:
    """Start the fault-injecting endpoint on 127.0.0.1:``port`` (0: a free port) on a background thread.

    ``plan`` is a FaultPlan or its spec (``"429:0.2,drop:0.1"``; see tests/faults/plan.py); ``seed``,
    ``retry_after``, ``delay`` and ``match`` apply to a spec only. Only the inference routes are faulted unless
    ``all_routes``. ``record`` appends every request as a JSON line to that file.
    """
    if isinstance(plan, str):
        plan = FaultPlan.parse(plan, seed=seed, retry_after=retry_after, delay=delay, match=match)
    paths = None if all_routes else INFERENCE_PATHS
    httpd = _HTTPServer(port, plan=plan, settings=Settings(model=model), log=_Log(record), paths=paths, quiet=quiet)
    return FaultyServer(httpd)
