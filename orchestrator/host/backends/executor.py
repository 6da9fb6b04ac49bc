"""Executors run the tasks of a recorded run somewhere: a small Protocol, two implementations.

``local`` runs the containers one after another on this machine's engine (in the foreground);
``slurm`` submits one batch job per task (a job array for several) and returns. Both keep the
run's record (:mod:`orchestrator.host.records.store`) current, so `evals status|logs|cancel|resubmit`
work the same for either.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from orchestrator.host.backends.container import Output
from orchestrator.host.records.results import read_results
from orchestrator.runtime.run import RUN_CONFIG_FILE, keep_or_write, prepare_output_dir
from orchestrator.schema.deployment import ServedDeployment
from orchestrator.schema.errors import EvalsError, InputError
from orchestrator.schema.record import RESUMABLE_STATES, RunRecord, TaskRecord

Target = Literal["local", "slurm", "kubernetes"]
TARGETS: tuple[Target, ...] = ("local", "slurm", "kubernetes")
"""What ``--executor`` takes: the two executors, and ``kubernetes``, which only renders Job manifests (--dry_run)."""


class Executor(Protocol):
    """Starts, observes, stops and resumes the tasks of a run; every method returns the saved record."""

    def check(self) -> None:
        """Refuse, with the remedy, when the executor cannot run anything (before anything is written)."""
        ...

    def start(self, record: RunRecord, *, output: Output) -> RunRecord:
        """Start every pending task (local: run them to the end; slurm: submit them)."""
        ...

    def refresh(self, record: RunRecord) -> RunRecord:
        """Bring the tasks' states up to date (results are validated when a task ends)."""
        ...

    def cancel(self, record: RunRecord) -> RunRecord:
        """Stop every unfinished task; no container is left running."""
        ...

    def resume(self, record: RunRecord, *, output: Output) -> RunRecord:
        """Start the failed, cancelled, timed-out and interrupted tasks again (answered requests are cached)."""
        ...


@runtime_checkable
class ServesModels(Protocol):
    """An executor that can start a run's model server (``deployment:``) before its tasks and stop it after."""

    def check_deployment(self, served: ServedDeployment) -> None:
        """Refuse, before anything is written, what would keep the server from starting (bad input, exit 2)."""
        ...


def check_deployment(executor: Executor, served: ServedDeployment) -> None:
    """The executor's checks of the run's server; an executor that cannot start one is bad input."""
    if not isinstance(executor, ServesModels):
        raise InputError(f"this executor cannot start a {served.deployment.type} server yet",
                         hint="run it locally (--executor local), or start the server yourself and pass --model_url")
    executor.check_deployment(served)


def check_executor(name: str) -> Target:
    """An ``--executor`` value, or bad input listing the known ones."""
    for known in TARGETS:
        if name == known:
            return known
    close = difflib.get_close_matches(name, TARGETS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise InputError(f"unknown executor {name!r}", hint=f"{hint}known: {', '.join(TARGETS)}")


def finish(task: TaskRecord, code: int) -> None:
    """Record how a task ended: exit 0 with a valid results.yml is success; anything else fails with a reason."""
    task.exit_code = code
    if code != 0:
        task.state, task.reason = "failed", f"exited with code {code}"
        return
    try:
        read_results(Path(task.output_dir) / "results.yml")
    except EvalsError as err:
        task.state, task.reason = "failed", str(err)
        return
    task.state, task.reason = "succeeded", None


def write_resolved_config(task: TaskRecord) -> None:
    """Before a task starts (again): its output dir exists and holds the run the host resolved, byte for byte (the
    record's copy: a resubmitted task runs the same file even if it was removed or edited since)."""
    if task.resolved_config is None:  # recorded before the host resolved for the container: its args resolve
        return
    output_dir = Path(task.output_dir)
    prepare_output_dir(output_dir)
    keep_or_write(output_dir / RUN_CONFIG_FILE, task.resolved_config)


def resumable(record: RunRecord) -> list[TaskRecord]:
    """The tasks a resume starts again; bad input when there are none or some still run."""
    busy = [t for t in record.tasks if t.state in ("pending", "running")]
    if busy:
        names = ", ".join(f"{t.index} ({t.task}: {t.state})" for t in busy)
        raise InputError(f"run {record.id} still has unfinished tasks: {names}",
                         hint=f"wait for them (`evals status {record.id}`) or `evals cancel {record.id}` first")
    again = [t for t in record.tasks if t.state in RESUMABLE_STATES]
    if not again:
        raise InputError(f"nothing to resume in run {record.id}: every task succeeded",
                         hint=f"see the scores with `evals status {record.id}`")
    return again


def log_tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log file (empty if it does not exist yet)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except (OSError, ValueError):  # ValueError: a NUL byte in a recorded path
        return []
    return text.splitlines()[-lines:]
