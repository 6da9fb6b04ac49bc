"""Printing a log file as it grows (`evals logs --follow`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def follow(path: Path, *, write: Callable[[bytes], None], finished: Callable[[], bool],
           interval: float = 0.5, start: int = 0) -> int:
    """Write the file from ``start`` on as it grows until ``finished()``; returns the position reached.

    ``finished`` is asked before each read, so what was written before the task ended is printed.
    """
    position = start
    while True:
        done = finished()
        try:
            with path.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            write(chunk)
            position += len(chunk)
        if done:
            return position
        time.sleep(interval)
