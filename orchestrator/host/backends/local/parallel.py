"""A local run's tasks several at once: up to ``max_parallel`` containers, within the run's endpoint limits.

One thread per running container blocks in the launcher; this (main) thread is the record's only writer: it
starts tasks as slots free up (:mod:`~orchestrator.host.backends.local.slots`), records each end, and shows the
progress read from disk. A container's output goes to its task's log only.

Ctrl-C (SIGINT, which Python delivers to the main thread) kills every container of the run (label
``evals.run.id``), records the running tasks as ``interrupted`` and those never started as ``cancelled`` (both are
resumed by `evals run --resume`), saves the record and raises again (`evals` exits 130). `evals cancel` from
another shell kills the containers and leaves the marker: no further task starts, the stopped ones are recorded
``cancelled``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.host.backends.container import ContainerControl, Launcher, LaunchSpec
from orchestrator.host.backends.executor import finish, write_resolved_config
from orchestrator.host.backends.local.slots import Slots
from orchestrator.host.records import store
from orchestrator.host.records.progress import ProgressReader
from orchestrator.host.records.progress_view import ProgressView
from orchestrator.schema.container import RUN_LABEL_PREFIX
from orchestrator.schema.record import RunRecord, TaskRecord

JOIN_WAIT = 30.0
"""Seconds to wait, after Ctrl-C, for the launchers to remove their killed containers."""


@dataclass(frozen=True)
class _Ended:
    index: int
    code: int | None
    error: BaseException | None


def _launch(launcher: Launcher, spec: LaunchSpec, task: TaskRecord, ended: queue.Queue[_Ended]) -> None:
    """A worker thread: run one container, its output to the task's log; report how it ended."""
    try:
        write_resolved_config(task)
        log = Path(task.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:
            def to_log(chunk: bytes) -> None:
                handle.write(chunk)
                handle.flush()

            code = launcher.run(spec, output=to_log)
        ended.put(_Ended(task.index, code, None))
    except BaseException as err:  # reported to the main thread, which records it
        ended.put(_Ended(task.index, None, err))


@dataclass
class ParallelRun:
    """Runs a record's pending tasks, ``slots`` deciding when each may start."""

    record: RunRecord
    launcher: Launcher
    containers: ContainerControl
    slots: Slots
    spec_of: Callable[[str, TaskRecord], LaunchSpec]
    view: ProgressView | None = None
    interval: float = 1.0

    def run(self) -> RunRecord:
        """Until every pending task has ended (or was cancelled); Ctrl-C stops them all."""
        record = self.record
        record.pid = os.getpid()
        pending = [task for task in record.tasks if task.state == "pending"]
        ended: queue.Queue[_Ended] = queue.Queue()
        threads: dict[int, threading.Thread] = {}
        reader = ProgressReader()
        try:
            while pending or self.slots.running:
                if pending and store.cancel_requested(record.id):
                    for task in pending:
                        task.state, task.reason = "cancelled", "cancelled before it started"
                    pending = []
                    store.save(record)
                while (starting := self.slots.next_task(pending)) is not None:
                    pending.remove(starting)
                    self._start(starting, ended, threads)
                with contextlib.suppress(queue.Empty):
                    self._ended(ended.get(timeout=self.interval))
                    while True:
                        self._ended(ended.get_nowait())
                if self.view is not None:
                    self.view.show(reader.read(record))
        except KeyboardInterrupt:
            self._interrupt(pending, threads)
            raise
        finally:
            if self.view is not None:
                self.view.close(reader.read(record))
        return record

    def _start(self, task: TaskRecord, ended: queue.Queue[_Ended], threads: dict[int, threading.Thread]) -> None:
        task.state, task.started_at, task.finished_at = "running", store.now(), None
        task.attempts += 1
        task.exit_code = task.reason = None
        self.slots.take(task.index, self.slots.demand(task))
        store.save(self.record)
        thread = threading.Thread(target=_launch, args=(self.launcher, self.spec_of(self.record.id, task), task,
                                                        ended), name=f"evals-task-{task.index}", daemon=True)
        threads[task.index] = thread
        thread.start()

    def _ended(self, end: _Ended) -> None:
        task = self.record.tasks[end.index]
        self.slots.give(end.index)
        task.finished_at = store.now()
        if end.error is not None:
            task.state, task.reason = "failed", str(end.error) or repr(end.error)
        elif store.cancel_requested(self.record.id):
            task.state, task.exit_code, task.reason = "cancelled", end.code, "cancelled with `evals cancel`"
        else:
            finish(task, end.code if end.code is not None else 1)
        store.save(self.record)

    def _interrupt(self, pending: list[TaskRecord], threads: dict[int, threading.Thread]) -> None:
        """Ctrl-C: kill the run's containers, record what ran and what never started, let the launchers clean up."""
        label = f"{RUN_LABEL_PREFIX}.id={self.record.id}"
        with contextlib.suppress(Exception):
            self.containers.stop(label)
        for index in list(self.slots.running):
            task = self.record.tasks[index]
            task.state, task.reason, task.finished_at = "interrupted", "evals was interrupted (Ctrl-C)", store.now()
        for task in pending:
            task.state, task.reason = "cancelled", "not started: evals was interrupted (Ctrl-C)"
        store.save(self.record)
        for index in list(self.slots.running):
            thread = threads.get(index)  # none if Ctrl-C came between taking the slots and starting it
            if thread is not None and thread.is_alive():
                thread.join(timeout=JOIN_WAIT)
        with contextlib.suppress(Exception):
            self.containers.remove(label)
