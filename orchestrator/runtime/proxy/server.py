"""The proxy's front: an HTTP server on 127.0.0.1 run in a background thread by run_eval, or standalone.

One Python process relays at most what one core can (a few thousand requests/s), so the proxy runs
as ``processes`` processes listening on the same port (SO_REUSEPORT: the kernel spreads the harness's
connections over them). The first is this one; it starts the others (``python -m
orchestrator.runtime.proxy --process I/N``), which get the config on stdin, share the cache, the
request records (logs/requests.jsonl, which every proxy of the run shares) and the logs' bounds, stop when
their stdin closes, and report their totals on stdout, which :meth:`Proxy.stop` adds to this process's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.runtime.proxy import jsoncodec
from orchestrator.runtime.proxy.chain import ChainContext, build_chain
from orchestrator.runtime.proxy.endpoint import Endpoint
from orchestrator.runtime.proxy.http import HttpRequest, HttpResponse, UpstreamError, new_event_loop
from orchestrator.runtime.proxy.http_server import HttpServer
from orchestrator.runtime.proxy.request_records import id_prefix
from orchestrator.runtime.proxy.stats import Stats
from orchestrator.runtime.proxy.types import Handler, ProxyRequest
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.auxiliary import MODEL_ROLE
from orchestrator.schema.requests import body_prompt_key
from orchestrator.schema.results import Usage

_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "accept-encoding",
               "expect", "te", "trailer", "upgrade", "proxy-connection", "proxy-authorization"}
"""Never forwarded to the endpoint, nor any header the request's ``Connection`` names (RFC 9110 7.6.1). Answers
go back with their content type only."""


class Proxy:
    """One proxy for one upstream endpoint URL."""

    def __init__(self, upstream_url: str, config: AdapterConfig, *, output_dir: Path, timeout: float = 60,
                 max_retries: int = 5, process: tuple[int, int] | None = None, role: str | None = None) -> None:
        """``process``: (index, count) when this is one of the other processes of a proxy. ``role``: that of an
        auxiliary endpoint (judge, ...), whose proxy has files of its own (``logs/proxy_<role>_*_bodies.jsonl``,
        ``cache/<role>/``) and whose request records say so."""
        parts = urlsplit(upstream_url)
        self.upstream_url = upstream_url
        self.path = parts.path or "/"
        self.output_dir = output_dir
        self.timeout, self.max_retries = timeout, max_retries
        self.role = role
        (output_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        index, count = process or (0, config.processes or default_processes())
        self.processes = count
        self._spawns = process is None and count > 1
        self._ctx = ChainContext(upstream_url, output_dir, timeout, max_retries, self.stats, process=index,
                                 processes=count, role=role)
        self._config = config
        self._id_prefix = id_prefix(role or MODEL_ROLE, index)  # unique across the processes and the run's proxies
        self._ids = itertools.count(1)
        self._handler: Handler | None = None
        self._endpoint: Endpoint | None = None
        self._server = HttpServer(self._handle)
        self._others: list[subprocess.Popen[bytes]] = []

    @property
    def port(self) -> int:
        """The port it listens on (0 before start)."""
        return self._server.port

    @property
    def via(self) -> str:
        """How the endpoint is reached, for the start-up line: `` via proxy URL (VARIABLE)`` or nothing."""
        proxy = self._endpoint.pool.proxy if self._endpoint is not None else None
        return f" via proxy {proxy.url} ({proxy.variable})" if proxy is not None else ""

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: the harness uses this with the endpoint's own path."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Build the chain and listen on 127.0.0.1:``port`` (0: a free port); start the other processes."""
        self._handler, self._endpoint = build_chain(self._config, self._ctx)
        await self._server.start(port, reuse_port=self.processes > 1)
        if self._spawns:
            children = [self._spawn(index) for index in range(1, self.processes)]
            loop = asyncio.get_running_loop()
            ready = await asyncio.gather(*(asyncio.wait_for(loop.run_in_executor(None, _ready, child), 30)
                                           for child in children), return_exceptions=True)
            for index, (child, line) in enumerate(zip(children, ready, strict=True), start=1):
                if line == "ready":
                    self._others.append(child)
                    continue
                why = "no answer within 30 s" if isinstance(line, BaseException) else line or "no output"
                print(f"adapter proxy: process {index}/{self.processes} did not start ({why}); the others carry on",
                      file=sys.stderr)
                child.kill()
                child.communicate()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "orchestrator.runtime.proxy", "--upstream", self.upstream_url,
                "--port", str(self.port), "--output-dir", str(self.output_dir), "--timeout", repr(self.timeout),
                "--max-retries", str(self.max_retries), "--process", f"{index}/{self.processes}",
                *(["--role", self.role] if self.role else [])]
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # stderr: ours
        assert child.stdin is not None
        try:
            child.stdin.write(self._config.model_dump_json().encode() + b"\n")
            child.stdin.flush()  # stdin stays open: closing it tells the process to stop
        except BrokenPipeError:
            pass  # it died at once: the start check reports it with its exit code
        return child

    async def stop(self) -> None:
        """Stop listening (requests in flight finish); stop the other processes and add their totals;
        close the pool, the caches and the records."""
        await self._server.stop()
        if self._others:
            loop = asyncio.get_running_loop()
            reports = await asyncio.gather(*(loop.run_in_executor(None, _finish, child) for child in self._others))
            for index, report in enumerate(reports, start=1):
                if report is None:
                    print(f"adapter proxy: process {index}/{self.processes} ended without its totals; "
                          "usage leaves its requests out", file=sys.stderr)
                else:
                    self.stats.merge(report)
            self._others = []
        if self._endpoint is not None:
            await self._endpoint.close()
        for cache in self._ctx.caches:
            cache.close()
        if self._ctx.records is not None:
            self._ctx.records.close()

    def usage(self) -> Usage:
        """What the run asked of the endpoint so far."""
        return self.stats.usage()

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        named = {token.strip().lower() for token in request.headers.get("connection", "").split(",")}
        headers = {k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP and k not in named}
        if request.method != "POST" or request.path != self.path:
            return await self._pass_through(request, headers)
        raw = request.body
        try:
            body = jsoncodec.loads(raw) if raw else None
        except ValueError:  # not JSON (or nested too deeply): forwarded as it is
            body = None
        body = body if isinstance(body, dict) else None
        key = body_prompt_key(body) if self._ctx.records is not None else None  # before any interceptor changes it
        request_id = f"{self._id_prefix}{next(self._ids)}"
        proxied = ProxyRequest(request.path, raw, body, headers, time.monotonic(), request_id, key)
        assert self._handler is not None
        response = await self._handler(proxied)
        return HttpResponse(response.status, {"content-type": response.content_type}, response.raw, response.stream)

    async def _pass_through(self, request: HttpRequest, headers: dict[str, str]) -> HttpResponse:
        """Other paths (tokenizer routes, /v1/models, ...) go to the endpoint's server as they are."""
        assert self._endpoint is not None
        try:
            upstream = await self._endpoint.pool.request(request.method, request.target, headers, request.body,
                                                         timeout=self._endpoint.timeout)
        except (TimeoutError, UpstreamError, OSError) as err:
            where = f"{self._endpoint.pool.host_header}{request.target}"
            message = json.dumps({"error": {"message": f"proxy could not reach {where}: {err}", "code": 502}})
            return HttpResponse(502, {"content-type": "application/json"}, message.encode())
        return HttpResponse(upstream.status,
                            {"content-type": upstream.headers.get("content-type", "application/json")}, upstream.body)


def default_processes() -> int:
    """2, or 1 when this process may use only one CPU."""
    return 2 if len(os.sched_getaffinity(0)) > 1 else 1


def _ready(child: subprocess.Popen[bytes]) -> str:
    """The first line one of the proxy's other processes prints ('ready'), or why there is none."""
    assert child.stdout is not None
    line = child.stdout.readline().decode(errors="replace").strip()
    if not line and child.wait() != 0:
        return f"exit code {child.returncode}"
    return line


def _finish(child: subprocess.Popen[bytes]) -> dict[str, object] | None:
    """Stop one of the proxy's other processes; its totals (None if it failed)."""
    try:
        out, _ = child.communicate(timeout=60)  # closes its stdin, which stops it
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return None
    lines = out.decode(errors="replace").strip().splitlines()
    if child.returncode != 0 or not lines:
        return None
    try:
        report = json.loads(lines[-1])
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


class ProxyThread:
    """A proxy on its own event loop in a daemon thread, for the duration of a run."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="adapter-proxy", daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(timeout=30)
        except BaseException:  # e.g. a proxy variable that is not a proxy URL: nothing is left running
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            raise
        return self.proxy

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
