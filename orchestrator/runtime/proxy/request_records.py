"""Writing the per-request records (``logs/requests.jsonl``; the record: :mod:`orchestrator.schema.requests`).

The proxy's throughput is a headline figure, so a record costs one small JSON line in memory; the lines go to
disk together, at most :data:`FLUSH_SECONDS` apart or every :data:`FLUSH_RECORDS` records, and when the proxy
stops: a write per second at any rate, never one per request. Every proxy of the run and each of its processes
appends to the one file, each write whole lines (``O_APPEND``).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import IO, Any

from orchestrator.runtime.proxy import jsoncodec

FLUSH_SECONDS = 1.0
"""The longest a record waits in memory (a killed proxy loses at most this much of them)."""

FLUSH_RECORDS = 1024
"""Records that are written at once without waiting longer (about 300 KB)."""

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def id_prefix(role: str, process: int) -> str:
    """The start of the ids of one proxy process's records, ``<role><process>-<start>-r`` (then the request's
    number): unique within the run as long as the same role's same process does not start twice in the same
    millisecond (``<start>``: the time, base-36 milliseconds), so a resumed run's records never share one."""
    number, digits = time.time_ns() // 1_000_000, ""
    while number:
        number, digit = divmod(number, 36)
        digits = _DIGITS[digit] + digits
    return f"{role}{process}-{digits}-r"


class RequestRecords:
    """The records of one proxy process, buffered (used on its event loop only)."""

    def __init__(self, path: Path, *, first: bool) -> None:
        """``first``: the proxy's first process, which cuts off a partial line a killed proxy left (before it
        starts the others)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] | None = path.open("ab+", buffering=0)
        if first:
            _end_partial_line(self._file)
        self._lines: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, record: dict[str, Any]) -> None:
        """Keep one record (a :class:`~orchestrator.schema.requests.RequestRecord`'s fields) for the next write."""
        self._lines.append(jsoncodec.dumps(record) + b"\n")
        if len(self._lines) >= FLUSH_RECORDS:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write the records kept so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._lines = self._lines, []
        if lines and self._file is not None:
            self._file.write(b"".join(lines))

    def close(self) -> None:
        """Write what is kept and close the file."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


def _end_partial_line(file: IO[bytes]) -> None:
    """A file that does not end with a newline was left by a killed proxy: a complete record gets its newline,
    a partial one is cut off, so the records appended now start on a line of their own."""
    fd = file.fileno()
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = size
    while start > 0:  # back to the last newline, 64 KiB at a time
        block = os.pread(fd, min(start, 65536), max(0, start - 65536))
        start -= len(block)
        newline = block.rfind(b"\n")
        if newline >= 0:
            start += newline + 1
            break
    tail = os.pread(fd, size - start, start)
    try:
        complete = isinstance(jsoncodec.loads(tail), dict)
    except ValueError:
        complete = False
    if complete:
        file.write(b"\n")
    else:
        os.ftruncate(fd, start)
