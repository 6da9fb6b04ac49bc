"""Runs our proxy (same chain, config, processes, SO_REUSEPORT) with another HTTP layer put under it.

A stack is a server class and a client pool class shaped like ``http_server.HttpServer`` and
``upstream_pool.UpstreamPool`` (the only two places the proxy touches HTTP). :func:`run` puts them in place of
ours, makes the proxy start its other processes with the same stack, and then runs the proxy's own
command line (``--upstream URL --port P --output-dir DIR``, ``--process I/N`` for the other processes).
Bench code only: nothing in the product imports it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orchestrator.runtime.proxy.__main__ as cli
from orchestrator.runtime.proxy import endpoint, server

CLOSING: set[asyncio.Task[Any]] = set()
"""Closes a stack's pool started from its synchronous ``close()``; awaited before the proxy's loop ends."""


def close_later(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run an asynchronous close from a synchronous ``close()`` (ours is synchronous)."""
    task = asyncio.get_running_loop().create_task(coroutine)
    CLOSING.add(task)


def run(*, script: str, server_class: type, pool_class: type) -> int:
    """Put the stack in place of our HTTP layer and run the proxy's command line; ``script``: the
    stack's file, which the other processes run too."""
    launcher = Path(script).resolve()

    class StackProxy(server.Proxy):
        """Our Proxy; only its other processes run the stack's launcher instead of ``-m ...proxy``."""

        def _spawn(self, index: int) -> subprocess.Popen[bytes]:
            # Proxy._spawn's argv and config hand-over, with the launcher in place of -m (keep them alike)
            argv = [sys.executable, str(launcher), "--upstream", self.upstream_url,
                    "--port", str(self.port), "--output-dir", str(self.output_dir), "--timeout", repr(self.timeout),
                    "--max-retries", str(self.max_retries), "--process", f"{index}/{self.processes}"]
            child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert child.stdin is not None
            try:
                child.stdin.write(self._config.model_dump_json().encode() + b"\n")
                child.stdin.flush()
            except BrokenPipeError:
                pass
            return child

        async def stop(self) -> None:
            await super().stop()
            if CLOSING:
                await asyncio.wait(CLOSING, timeout=5)

    server.HttpServer = server_class  # type: ignore[attr-defined,assignment]
    endpoint.UpstreamPool = pool_class  # type: ignore[attr-defined,assignment]
    cli.Proxy = StackProxy  # type: ignore[attr-defined]
    return cli.main()
