"""Run records on disk: one directory per run under the state directory, so any shell can find a run.

``$EVALS_STATE_DIR/runs/<id>/`` (default ``$XDG_STATE_HOME/evals``, i.e. ``~/.local/state/evals``)
holds ``run.yml`` (a :class:`~orchestrator.schema.record.RunRecord`), the rendered batch script of a
Slurm run and the console logs of a local run.
"""

from __future__ import annotations

import difflib
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.runtime.run import write_atomic
from orchestrator.schema.errors import InputError
from orchestrator.schema.loading import dump_yaml, load_model
from orchestrator.schema.record import RunRecord

RECORD_FILE = "run.yml"
CANCEL_FILE = "cancel-requested"
"""Created by `evals cancel` for a local run: the running `evals run` stops before its next task."""


def state_dir() -> Path:
    """Where evals keeps its state: $EVALS_STATE_DIR, else $XDG_STATE_HOME/evals, else ~/.local/state/evals."""
    explicit = os.environ.get("EVALS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "evals"


def runs_dir() -> Path:
    """The directory holding one subdirectory per run."""
    return state_dir() / "runs"


def record_dir(run_id: str) -> Path:
    """The directory of one run."""
    return runs_dir() / run_id


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def new_run_id() -> str:
    """A fresh, sortable run id whose directory does not exist yet (time, pid-derived suffix, counter)."""
    stem = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 10000:04d}"
    candidate, counter = stem, 1
    while record_dir(candidate).exists():
        candidate, counter = f"{stem}-{counter}", counter + 1
    return candidate


def create(record: RunRecord) -> Path:
    """Write a new run's record; its directory must not exist yet."""
    directory = record_dir(record.id)
    try:
        directory.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise InputError(f"run {record.id} already exists in {directory.parent}", hint="start the run again") from None
    except OSError as err:
        raise InputError(f"cannot create the run's state directory {directory}: {err.strerror}",
                         hint="set EVALS_STATE_DIR to a directory you can write") from None
    save(record)
    return directory


def save(record: RunRecord) -> RunRecord:
    """Write the record atomically (a reader sees the old or the new one); sets and returns it, updated_at set."""
    record.updated_at = now()
    write_atomic(record_dir(record.id) / RECORD_FILE, dump_yaml(record.model_dump(mode="json")))
    return record


def load(run_id: str) -> RunRecord:
    """Read one run's record; an unknown id lists close matches and how to list runs."""
    path = record_dir(run_id) / RECORD_FILE
    if not path.is_file():
        known = run_ids()
        close = difflib.get_close_matches(run_id, known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        hint += "list runs with `evals runs`" if known else "start one with `evals run`"
        raise InputError(f"no run {run_id!r} in {runs_dir()}", hint=hint)
    return load_model(RunRecord, path)


def run_ids() -> list[str]:
    """Ids of every recorded run, oldest first."""
    if not runs_dir().is_dir():
        return []
    return sorted(p.name for p in runs_dir().iterdir() if (p / RECORD_FILE).is_file())


def latest() -> str:
    """The most recent run's id (for `evals status` without an id)."""
    ids = run_ids()
    if not ids:
        raise InputError(f"no runs recorded in {runs_dir()}", hint="start one with `evals run`")
    return ids[-1]


def hostname() -> str:
    """This machine's name, as recorded with each run."""
    return socket.gethostname()


def request_cancel(run_id: str) -> None:
    """Leave the cancel marker for a local run."""
    (record_dir(run_id) / CANCEL_FILE).touch()


def cancel_requested(run_id: str) -> bool:
    """Whether `evals cancel` was asked for this run."""
    return (record_dir(run_id) / CANCEL_FILE).exists()


def clear_cancel(run_id: str) -> None:
    """Forget an earlier cancel request (when the run is resumed)."""
    (record_dir(run_id) / CANCEL_FILE).unlink(missing_ok=True)
