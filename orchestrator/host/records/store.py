"""Run records on disk: one directory per run under the state directory, so any shell can find a run.

``$EVALS_STATE_DIR/runs/<id>/`` (default ``$XDG_STATE_HOME/evals``, i.e. ``~/.local/state/evals``)
holds ``run.yml`` (a :class:`~orchestrator.schema.record.RunRecord`), the rendered batch script of a
Slurm run and the console logs of a local run.

A run id given by the user is checked (:data:`~orchestrator.schema.record.RUN_ID`: no ``/``, never ``..``,
at most 64 characters) and its directory must resolve inside the runs directory. A record is read within
:data:`~orchestrator.schema.limits.RECORD_LIMITS` and must name the run of its directory.
"""

from __future__ import annotations

import difflib
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.runtime.run import write_atomic
from orchestrator.schema.errors import ConfigError, InputError
from orchestrator.schema.limits import RECORD_LIMITS
from orchestrator.schema.loading import dump_yaml, load_model
from orchestrator.schema.record import RUN_ID, RunRecord

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


def shown(run_id: str) -> str:
    """A run id as quoted in a message: control characters escaped, at most 70 characters."""
    return repr(run_id) if len(run_id) <= 70 else f"{run_id[:60]!r}... ({len(run_id)} characters)"


def record_dir(run_id: str) -> Path:
    """The directory of one run; an id that is not one, or a directory that leads elsewhere, is refused."""
    if not RUN_ID.fullmatch(run_id):
        raise InputError(f"not a run id: {shown(run_id)}",
                         hint="run ids are letters, digits, '_', '.' and '-' (at most 64, not starting with '.'), "
                              "e.g. 20261128-101500-1234; list them with `evals runs`")
    directory = runs_dir() / run_id
    try:
        inside = directory.resolve().is_relative_to(runs_dir().resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise InputError(f"the directory of run {run_id} leads outside {runs_dir()}",
                         hint=f"{directory} is a link: remove it")
    return directory


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
    try:
        record = load_model(RunRecord, path, limits=RECORD_LIMITS)
    except ConfigError as err:
        raise InputError(f"run {run_id}: unreadable record {err.message}",
                         hint=f"damaged or not written by evals; remove {path.parent} to forget the run") from None
    if record.id != run_id:
        raise InputError(f"run {run_id}: its record {path} is of run {shown(record.id)}",
                         hint=f"it was copied or edited by hand; remove {path.parent} to forget the run")
    return record


def _entries() -> list[Path]:
    """Everything in the runs directory, by name."""
    try:
        return sorted(runs_dir().iterdir()) if runs_dir().is_dir() else []
    except OSError as err:
        raise InputError(f"cannot list {runs_dir()}: {err.strerror}",
                         hint="set EVALS_STATE_DIR to a directory you can read") from None


def run_ids() -> list[str]:
    """Ids of every recorded run, oldest first (entries that are not runs are left out)."""
    return [p.name for p in _entries() if RUN_ID.fullmatch(p.name) and (p / RECORD_FILE).is_file()]


def scan() -> tuple[list[RunRecord], list[str]]:
    """Every readable run record, oldest first, and a one-line reason for each entry of the runs directory that
    is not one (a foreign file, a damaged record); for `evals runs`, which skips those with a warning."""
    records: list[RunRecord] = []
    skipped: list[str] = []
    for entry in _entries():
        if not RUN_ID.fullmatch(entry.name) or not entry.is_dir():
            skipped.append(f"{shown(entry.name)} in {runs_dir()} is not a run directory")
        elif not (entry / RECORD_FILE).is_file():
            skipped.append(f"{entry} has no {RECORD_FILE}")
        else:
            try:
                records.append(load(entry.name))
            except InputError as err:
                skipped.append(str(err))
    return records, skipped


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
