"""Candidate ``granian``: our proxy served by Granian (Rust: hyper on tokio) through RSGI, aiohttp client, uvloop.

    python bench/proxy/stacks/granian_stack.py --upstream URL --port P --output-dir DIR

Granian parses and writes HTTP in Rust, in a thread of its own, and hands the Python side one call per
request with the head already parsed: of the maintained servers it leaves the least per-request work to
the GIL, which is what limits a Python proxy here. RSGI rather than ASGI: no per-message dicts and
``send`` round trips. It runs embedded (``granian.server.embed``, one worker on the proxy's own event
loop) in each of our processes; on Linux every Granian listener binds with SO_REUSEPORT, so the
processes share the port as ours do. The client is the aiohttp candidate's pool (aiohttp_stack.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from aiohttp_stack import AiohttpPool, request_headers
from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server
from launch import run

from orchestrator.runtime.proxy.http import Handler, HttpRequest


def free_port() -> int:
    """A port on 127.0.0.1 that is free right now (Granian binds by number)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GranianServer:
    """``HttpServer``'s interface on Granian's embedded server (RSGI)."""

    def __init__(self, handler: Handler, **_: object) -> None:
        self.handler = handler
        self.port = 0
        self._granian: Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, port: int = 0, *, reuse_port: bool = False) -> None:
        """Listen on 127.0.0.1:``port`` (Granian's listeners always allow SO_REUSEPORT on Linux)."""
        self.port = port or free_port()
        self._granian = Server(self, address="127.0.0.1", port=self.port, interface=Interfaces.RSGI,
                               http=HTTPModes.http1, websockets=False, backlog=1024, log_enabled=False)
        self._task = asyncio.get_running_loop().create_task(self._granian.serve())
        for _ in range(600):  # the worker binds once its task runs
            await asyncio.sleep(0.01)
            if self._task.done():
                self._task.result()
                raise RuntimeError("granian stopped while starting")
            if self._granian.wrks and all(worker.is_alive() for worker in self._granian.wrks):  # type: ignore[no-untyped-call]
                break
        await asyncio.sleep(0.1)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        body = await proto()
        target = scope.path + ("?" + scope.query_string if scope.query_string else "")
        answer = await self.handler(HttpRequest(scope.method, target, request_headers(scope.headers.items()), body))
        proto.response_bytes(answer.status, list(answer.headers.items()), answer.body)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the worker (Granian lets requests in flight finish)."""
        if self._granian is not None and self._task is not None:
            self._granian.signal_handler_interrupt()  # type: ignore[no-untyped-call]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, grace)


if __name__ == "__main__":
    raise SystemExit(run(script=__file__, server_class=GranianServer, pool_class=AiohttpPool))
