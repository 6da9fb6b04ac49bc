"""The one thread that runs the model: requests queue in arrival order and none is dropped.

llama.cpp's context is not thread-safe and two cores gain nothing from interleaving requests, so every
model call goes through a single-thread executor; its queue is unbounded, so a burst of requests waits
instead of failing. The event loop stays free for health checks, tokenizing and OCR meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ModelWorker:
    """Runs callables one at a time, first come first served, off the event loop."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Requests queued or running."""
        return self._waiting

    async def run(self, fn: Callable[[], T]) -> T:
        self._waiting += 1
        try:
            return await asyncio.wrap_future(self._executor.submit(fn))
        finally:
            self._waiting -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
