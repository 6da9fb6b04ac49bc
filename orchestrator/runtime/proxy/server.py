"""The proxy's front: an HTTP server on 127.0.0.1 run in a background thread by run_eval, or standalone."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.runtime.proxy import jsoncodec
from orchestrator.runtime.proxy.chain import ChainContext, build_chain
from orchestrator.runtime.proxy.endpoint import Endpoint
from orchestrator.runtime.proxy.http import HttpRequest, HttpResponse, HttpServer, UpstreamError, new_event_loop
from orchestrator.runtime.proxy.stats import Stats
from orchestrator.runtime.proxy.types import Handler, ProxyRequest
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.results import Usage

_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "accept-encoding",
               "expect", "te", "trailer", "upgrade", "proxy-connection", "proxy-authorization"}


class Proxy:
    """One proxy for one upstream endpoint URL."""

    def __init__(self, upstream_url: str, config: AdapterConfig, *, output_dir: Path, timeout: float = 60,
                 max_retries: int = 5) -> None:
        parts = urlsplit(upstream_url)
        self.upstream_url = upstream_url
        self.path = parts.path or "/"
        (output_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.stats = Stats(output_dir / "logs" / "proxy_requests.jsonl")
        self._ctx = ChainContext(upstream_url, output_dir, timeout, max_retries, self.stats)
        self._config = config
        self._ids = itertools.count(1)
        self._handler: Handler | None = None
        self._endpoint: Endpoint | None = None
        self._server = HttpServer(self._handle)

    @property
    def port(self) -> int:
        """The port it listens on (0 before start)."""
        return self._server.port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: the harness uses this with the endpoint's own path."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Build the chain and listen on 127.0.0.1:``port`` (0: a free port)."""
        self._handler, self._endpoint = build_chain(self._config, self._ctx)
        await self._server.start(port)

    async def stop(self) -> None:
        """Stop listening (requests in flight finish); close the pool, the caches and the records."""
        await self._server.stop()
        if self._endpoint is not None:
            await self._endpoint.close()
        for cache in self._ctx.caches:
            cache.close()
        self.stats.close()

    def usage(self) -> Usage:
        """What the run asked of the endpoint so far."""
        return self.stats.usage()

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        headers = {k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP}
        if request.method != "POST" or request.path != self.path:
            return await self._pass_through(request, headers)
        raw = request.body
        try:
            body = jsoncodec.loads(raw) if raw else None
        except ValueError:
            body = None
        proxied = ProxyRequest(request.path, raw, body if isinstance(body, dict) else None, headers,
                               time.monotonic(), next(self._ids))
        assert self._handler is not None
        response = await self._handler(proxied)
        return HttpResponse(response.status, {"content-type": response.content_type}, response.raw)

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


class ProxyThread:
    """A proxy on its own event loop in a daemon thread, for the duration of a run."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="adapter-proxy", daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(timeout=30)
        return self.proxy

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
