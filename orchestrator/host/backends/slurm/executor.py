"""The Slurm executor: one batch job per task (a job array for several, throttled to the run's ``max_parallel``
with ``%N``), submitted and left to run.

The batch script is rendered into the record directory and submitted with ``sbatch --parsable``; a run with a
deployment is one job for every task (the server, then the tasks against it).
State comes from ``scontrol show job`` while the controller remembers the job, then from the exit
code the script leaves in ``<run dir>/exit/``; results.yml is validated as for a local run when a
task ends. Cancelling uses scancel and, for the docker runtime, also removes the run's containers
on this machine (the Epilog does it on every node).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.host.backends.container import ContainerControl, Output
from orchestrator.host.backends.executor import finish, resumable, write_resolved_config
from orchestrator.host.backends.slurm.commands import JobInfo, SlurmCli
from orchestrator.host.backends.slurm.script import array_spec, exit_file, render_batch_script, task_log
from orchestrator.host.deploy.checks import check_inputs
from orchestrator.host.records import store
from orchestrator.schema.container import RUN_LABEL_PREFIX
from orchestrator.schema.deployment import ServedDeployment
from orchestrator.schema.errors import EvalsError
from orchestrator.schema.record import FINAL_STATES, RunRecord, SlurmRecord, Submission, TaskRecord, TaskState

_STATES: dict[str, TaskState] = {
    "PENDING": "pending", "CONFIGURING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending",
    "REQUEUE_FED": "pending", "RESV_DEL_HOLD": "pending", "SUSPENDED": "pending",
    "RUNNING": "running", "COMPLETING": "running", "SIGNALING": "running", "STAGE_OUT": "running",
    "RESIZING": "running",
    "FAILED": "failed", "OUT_OF_MEMORY": "failed", "BOOT_FAIL": "failed", "DEADLINE": "failed",
    "CANCELLED": "cancelled", "TIMEOUT": "timeout",
    "PREEMPTED": "interrupted", "NODE_FAIL": "interrupted",
}
"""Slurm job states (scontrol's JobState) -> task states; COMPLETED is decided by the results."""


def _exit_code(path: Path) -> int | None:
    """The exit code the batch script recorded, if it did: a number of at most 10 digits on a line."""
    try:
        with path.open("rb") as handle:
            text = handle.read(16).decode("ascii", "replace").strip()
    except (OSError, ValueError):
        return None
    return int(text) if re.fullmatch(r"-?[0-9]{1,10}", text) else None


def _slurm(record: RunRecord) -> SlurmRecord:
    if record.slurm is None:
        raise EvalsError(f"run {record.id} has no Slurm details in its record")
    return record.slurm


@dataclass
class SlurmExecutor:
    """Submits and observes batch jobs through the Slurm CLI."""

    cli: SlurmCli
    containers: Callable[[], ContainerControl]

    def check(self) -> None:
        """A Slurm controller must answer."""
        self.cli.check()

    def check_deployment(self, served: ServedDeployment) -> None:
        """The server's checkpoint (on shared storage) and variables; the job checks GPUs and the port on its node."""
        check_inputs(served.deployment)

    def start(self, record: RunRecord, *, output: Output) -> RunRecord:
        """Render the script into the record dir and submit every task."""
        self.cli.check()
        self._write_script(record)
        return self._submit(record, record.tasks, output)

    def _write_script(self, record: RunRecord) -> None:
        slurm = _slurm(record)
        if record.deployment is not None:
            slurm.array = False  # one job: the server, then every task against it
        deployment = record.deployment.deployment if record.deployment is not None else None
        Path(slurm.script).write_text(render_batch_script(run_id=record.id, run_dir=slurm.run_dir,
                                                          tasks=record.tasks, config=slurm.config,
                                                          deployment=deployment, max_parallel=record.max_parallel),
                                                          encoding="utf-8")
        (Path(slurm.run_dir) / "logs").mkdir(parents=True, exist_ok=True)

    def _submit(self, record: RunRecord, tasks: list[TaskRecord], output: Output) -> RunRecord:
        slurm = _slurm(record)
        indices = [t.index for t in tasks]
        for task in tasks:
            write_resolved_config(task)
            Path(exit_file(slurm.run_dir, task.index)).unlink(missing_ok=True)
        whole = indices == [t.index for t in record.tasks]
        array = array_spec(indices, max_parallel=record.max_parallel) if slurm.array and not whole else None
        job_id, argv = self.cli.submit(Path(slurm.script), array=array)
        for task in tasks:
            task.job_id = f"{job_id}_{task.index}" if slurm.array else job_id
            task.state, task.exit_code, task.reason = "pending", None, None
            task.started_at = task.finished_at = None
            task.attempts += 1
            task.log = task_log(slurm.run_dir, task.index)
        slurm.submissions.append(Submission(job_id=job_id, argv=argv, tasks=indices, submitted_at=store.now()))
        shown = array or array_spec(indices, max_parallel=record.max_parallel)
        output(f"submitted job {job_id}{' (array ' + shown + ')' if slurm.array else ''}"
               f": {', '.join(t.task for t in tasks)}\n".encode())
        return store.save(record)

    def refresh(self, record: RunRecord) -> RunRecord:
        """Ask the scheduler about every unfinished task; validate results of the finished ones."""
        changed = False
        for task in record.tasks:
            if task.state in FINAL_STATES or task.job_id is None:
                continue
            before = (task.state, task.reason)
            self._update(record, task, self.cli.job(task.job_id))
            changed = changed or before != (task.state, task.reason)
        return store.save(record) if changed else record

    def _update(self, record: RunRecord, task: TaskRecord, info: JobInfo | None) -> None:
        code_file = Path(exit_file(_slurm(record).run_dir, task.index))
        if record.deployment is not None and _exit_code(code_file) is not None:
            info = None  # one job runs every task: each one's exit code says how it ended, not the job's state
        if info is None or info.state == "COMPLETED":
            code = _exit_code(code_file)
            if code is not None:
                finish(task, code)
            elif info is not None:
                finish(task, info.exit_code or 0)
            else:
                task.state = "interrupted"
                task.reason = f"job {task.job_id} is no longer known to Slurm and left no exit code"
            if info is not None and info.started is not None:
                task.started_at = info.started
            task.finished_at = (info.ended if info is not None else None) or task.finished_at or store.now()
            return
        state = _STATES.get(info.state.split("+")[0], "running")
        task.state = state
        if state != "pending" and info.started is not None:
            task.started_at = info.started
        if state in ("pending", "running"):
            task.reason = info.reason if state == "pending" else None
            return
        task.exit_code = info.exit_code
        task.finished_at = info.ended or store.now()
        task.reason = {
            "failed": f"job {task.job_id} exited with code {info.exit_code}" if info.state == "FAILED"
                      else f"job {task.job_id} ended {info.state.lower()}",
            "cancelled": f"job {task.job_id} was cancelled",
            "timeout": f"job {task.job_id} reached its time limit",
        }.get(state, f"job {task.job_id} ended {info.state.lower()}")

    def cancel(self, record: RunRecord) -> RunRecord:
        """scancel the unfinished jobs; for docker, remove the run's containers here as well."""
        record = self.refresh(record)
        live = [t for t in record.tasks if t.state not in FINAL_STATES and t.job_id]
        self.cli.cancel([t.job_id for t in live if t.job_id])
        for task in live:
            task.state, task.reason, task.finished_at = "cancelled", "cancelled with `evals cancel`", store.now()
        if _slurm(record).config.container_runtime == "docker":
            # Containers on this machine; on the compute nodes the Epilog removes them.
            with contextlib.suppress(EvalsError):
                self.containers().remove(f"{RUN_LABEL_PREFIX}.id={record.id}")
        return store.save(record)

    def resume(self, record: RunRecord, *, output: Output) -> RunRecord:
        """Resubmit the failed, cancelled, timed-out and interrupted tasks (same output dirs).

        The script is rendered again from the record, so a changed setting (e.g. a longer time limit)
        applies to the new jobs.
        """
        record = self.refresh(record)
        again = resumable(record)
        self.cli.check()
        self._write_script(record)
        return self._submit(record, again, output)
