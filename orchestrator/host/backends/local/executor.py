"""The local executor: the run's containers on this machine's engine, one after another or several at once.

`evals run` stays in the foreground and keeps the record current. It runs up to ``max_parallel`` containers at
once (the record's, else min(4, CPU cores); never more than the run's tasks) within the run's endpoint limits
(:mod:`~orchestrator.host.backends.local.slots`).

- One at a time (``max_parallel`` 1, or a single task): each task's console output goes to the terminal and to
  ``<record dir>/logs/task-<i>.log``; Ctrl-C records the running task ``interrupted``.
- Several at once (:mod:`~orchestrator.host.backends.local.parallel`): each container's output goes to its log
  only, and the terminal shows the live progress (when the executor has a view); Ctrl-C kills every container of
  the run, records the running tasks ``interrupted`` and the never-started ones ``cancelled``.

`evals cancel` (another shell) leaves a marker and kills the run's containers (labelled ``evals.run.id``); the
running `evals run` then records the stopped tasks as cancelled, removes the containers and starts no other task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.host.backends.container import ContainerControl, Launcher, LaunchSpec, Mount, Output, Servers
from orchestrator.host.backends.executor import finish, resumable, write_resolved_config
from orchestrator.host.backends.local.parallel import ParallelRun
from orchestrator.host.backends.local.server import check_server, with_server
from orchestrator.host.backends.local.slots import Slots, max_parallel
from orchestrator.host.records import store
from orchestrator.host.records.progress_view import ProgressView
from orchestrator.schema.container import RUN_LABEL_PREFIX
from orchestrator.schema.deployment import ServedDeployment
from orchestrator.schema.errors import InputError
from orchestrator.schema.record import FINAL_STATES, RunRecord, TaskRecord


def launch_spec(run_id: str, task: TaskRecord) -> LaunchSpec:
    """The launcher's spec for a recorded task, run as the caller."""
    container = task.container
    return LaunchSpec(
        image=container.image, args=list(container.args), name=f"evals-{run_id}-{task.index}",
        user=f"{os.getuid()}:{os.getgid()}", network_host=container.network_host,
        mounts=[Mount(source=Path(m.source), target=m.target, read_only=m.read_only) for m in container.mounts],
        secret_envs=list(container.secret_envs), environment=dict(container.environment),
        labels=dict(container.labels),
    )


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class LocalExecutor:
    """Runs tasks with a launcher (docker, or a fake in unit tests)."""

    launcher: Launcher
    containers: ContainerControl
    cancel_wait: float = 15.0
    servers: Servers | None = None
    """Starts a run's model server (``deployment:``); None: this executor runs no deployment."""
    progress: Callable[[], ProgressView] | None = None
    """Makes the view that shows a parallel run's progress (None: none is shown)."""
    interval: float = 1.0
    """Seconds between two progress readings of a parallel run."""

    def check(self) -> None:
        """Nothing to check up front: the image was found on the engine while planning."""

    def check_deployment(self, served: ServedDeployment) -> None:
        """What would keep the run's model server from starting: bad input before anything is written."""
        check_server(served, self._servers())

    def start(self, record: RunRecord, *, output: Output) -> RunRecord:
        """Run every pending task, up to max_parallel at once (its model server up around them, if it deploys one);
        stop early if the run is cancelled."""
        record.pid = os.getpid()
        if record.deployment is None or not any(task.state == "pending" for task in record.tasks):
            return self._run_tasks(record, output)
        return with_server(record, self._servers(), output=output, run=lambda: self._run_tasks(record, output))

    def _servers(self) -> Servers:
        if self.servers is None:
            raise InputError("this evals was built without a model server backend", hint="run evals itself")
        return self.servers

    def _run_tasks(self, record: RunRecord, output: Output) -> RunRecord:
        pending = sum(1 for task in record.tasks if task.state == "pending")
        limit = max_parallel(record, tasks=pending)
        if limit > 1:
            slots = Slots(limit=limit, endpoint_limits=dict(record.endpoint_limits))
            return ParallelRun(record, self.launcher, self.containers, slots, launch_spec,
                               view=self.progress() if self.progress is not None else None,
                               interval=self.interval).run()
        for task in record.tasks:
            if task.state != "pending":
                continue
            if store.cancel_requested(record.id):
                task.state, task.reason = "cancelled", "cancelled before it started"
                record = store.save(record)
                continue
            record = self._run_task(record, task, output)
        return record

    def _run_task(self, record: RunRecord, task: TaskRecord, output: Output) -> RunRecord:
        """One task in the foreground, its output to the terminal and its log."""
        task.state, task.started_at, task.finished_at = "running", store.now(), None
        task.attempts += 1
        task.exit_code = task.reason = None
        store.save(record)
        log = Path(task.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_resolved_config(task)
            with log.open("ab") as handle:
                def tee(chunk: bytes) -> None:
                    handle.write(chunk)
                    handle.flush()
                    output(chunk)

                code = self.launcher.run(launch_spec(record.id, task), output=tee)
        except BaseException as err:
            task.state = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            task.reason = "evals was interrupted" if isinstance(err, KeyboardInterrupt) else str(err) or repr(err)
            task.finished_at = store.now()
            store.save(record)
            raise
        task.finished_at = store.now()
        if store.cancel_requested(record.id):
            task.state, task.exit_code, task.reason = "cancelled", code, "cancelled with `evals cancel`"
        else:
            finish(task, code)
        return store.save(record)

    def refresh(self, record: RunRecord) -> RunRecord:
        """A run whose evals process is gone cannot progress: its unfinished tasks were interrupted."""
        if record.done or record.host != store.hostname() or _alive(record.pid):
            return record
        for task in record.tasks:
            if task.state not in FINAL_STATES:
                task.state, task.reason = "interrupted", f"the evals process ({record.pid}) ended before the task did"
        return store.save(record)

    def cancel(self, record: RunRecord) -> RunRecord:
        """Mark the run cancelled, kill its containers, wait for the running evals to record it."""
        store.request_cancel(record.id)
        self.containers.stop(f"{RUN_LABEL_PREFIX}.id={record.id}")
        deadline = time.monotonic() + self.cancel_wait
        while _alive(record.pid) and not record.done and time.monotonic() < deadline:
            time.sleep(0.2)
            record = store.load(record.id)
        if not record.done:
            for task in record.tasks:
                if task.state not in FINAL_STATES:
                    task.state, task.reason = "cancelled", "cancelled with `evals cancel`"
            record = store.save(record)
        self.containers.remove(f"{RUN_LABEL_PREFIX}.id={record.id}")
        return record

    def resume(self, record: RunRecord, *, output: Output) -> RunRecord:
        """Run the unfinished tasks again, in the same output dirs (lm-eval's cache answers what was asked)."""
        record = self.refresh(record)
        for task in resumable(record):
            task.state, task.reason = "pending", None
        store.clear_cancel(record.id)
        if record.deployment is not None:
            self.check_deployment(record.deployment)
        return self.start(store.save(record), output=output)
