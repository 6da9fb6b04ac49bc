"""Candidate ``uvicorn``: our proxy served by uvicorn (httptools, ASGI) with the aiohttp client, on uvloop.

    python bench/proxy/stacks/uvicorn_stack.py --upstream URL --port P --output-dir DIR

uvicorn's httptools protocol is the maintained counterpart of ours (same parser, same loop) with ASGI
on top, so it shows what ASGI's per-request messages cost. It serves on the socket ours would have
(SO_REUSEPORT when shared). The client is the aiohttp candidate's pool (aiohttp_stack.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import uvicorn
from aiohttp_stack import AiohttpPool, listening_socket, request_headers
from launch import run

from orchestrator.runtime.proxy.http import Handler, HttpRequest


class UvicornServer:
    """``HttpServer``'s interface on uvicorn's Server (httptools, no lifespan, no access log)."""

    def __init__(self, handler: Handler, **_: object) -> None:
        self.handler = handler
        self.port = 0
        self._uvicorn: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, port: int = 0, *, reuse_port: bool = False) -> None:
        """Listen on 127.0.0.1:``port``."""
        sock = listening_socket(port, reuse_port=reuse_port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self._asgi, http="httptools", loop="none", interface="asgi3", lifespan="off",
                                access_log=False, proxy_headers=False, server_header=False, log_level="warning",
                                backlog=1024, timeout_keep_alive=75)
        self._uvicorn = uvicorn.Server(config)
        # _serve, not serve: serve would take over SIGTERM/SIGINT, which the proxy's command line handles
        self._task = asyncio.get_running_loop().create_task(self._uvicorn._serve(sockets=[sock]))
        while not self._uvicorn.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn stopped while starting")
            await asyncio.sleep(0.01)

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode("latin-1")
        target = scope["raw_path"].decode("latin-1") + ("?" + query if query else "")
        headers = request_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        answer = await self.handler(HttpRequest(scope["method"], target, headers, b"".join(chunks)))
        fields = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
        fields.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": fields})
        await send({"type": "http.response.body", "body": answer.body})

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let requests in flight finish, close every connection."""
        if self._uvicorn is not None and self._task is not None:
            self._uvicorn.should_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, grace + 1)


if __name__ == "__main__":
    raise SystemExit(run(script=__file__, server_class=UvicornServer, pool_class=AiohttpPool))
