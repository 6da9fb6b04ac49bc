"""Printing a log file as it grows (`evals logs --follow`), and a task's log until the task ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.host.backends.executor import Executor
from orchestrator.host.records import store
from orchestrator.schema.errors import InputError
from orchestrator.schema.record import FINAL_STATES, RunRecord


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
        except (OSError, ValueError) as err:  # a directory, no permission, a NUL byte in a recorded path
            reason = err.strerror if isinstance(err, OSError) and err.strerror else "not a file name"
            raise InputError(f"cannot read the log {path}: {reason}",
                             hint="the run record names a log that cannot be read") from None
        if chunk:
            write(chunk)
            position += len(chunk)
        if done:
            return position
        time.sleep(interval)


def follow_task(record: RunRecord, index: int, executor: Executor, *, write: Callable[[bytes], None],
                until_done: bool) -> RunRecord:
    """Write task ``index``'s log; with ``until_done``, as it grows, until the record (refreshed by ``executor``) says
    the task ended. Returns the record as last read."""
    def ended() -> bool:
        nonlocal record
        if not until_done:
            return True
        record = executor.refresh(store.load(record.id))
        return record.tasks[index].state in FINAL_STATES

    follow(Path(record.tasks[index].log), write=write, finished=ended)
    return record
