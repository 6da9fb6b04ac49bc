"""Which pending task may start now: at most ``max_parallel`` containers, and never more requests to one endpoint
than the run's ``endpoint_limits`` allow across all of that endpoint's running tasks.

A running task holds ``config.params.parallelism`` request slots of its endpoint. A task whose parallelism alone
exceeds its endpoint's limit starts only when no other task of that endpoint runs (so it never waits forever).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from orchestrator.host.records.demand import Demand, task_demand
from orchestrator.schema.record import RunRecord, TaskRecord

DEFAULT_MAX_PARALLEL = 4
"""The local default is min(4, CPU cores, tasks): each container's harness and proxy need a core to start."""


def max_parallel(record: RunRecord, *, tasks: int) -> int:
    """Containers at once for ``tasks`` tasks: the record's ``max_parallel``, else min(4, CPU cores); at most
    ``tasks`` and at least 1."""
    wanted = record.max_parallel or min(DEFAULT_MAX_PARALLEL, os.cpu_count() or 1)
    return max(1, min(wanted, tasks))


@dataclass
class Slots:
    """Running tasks and the request slots they hold per endpoint."""

    limit: int
    endpoint_limits: dict[str, int]
    demands: dict[int, Demand] = field(default_factory=dict)
    """Each task's demand, read once (:meth:`demand`)."""
    held: Counter[str] = field(default_factory=Counter)
    running: dict[int, Demand] = field(default_factory=dict)

    def fits(self, demand: Demand) -> bool:
        """Whether a task with ``demand`` may start now."""
        if len(self.running) >= self.limit:
            return False
        cap = self.endpoint_limits.get(demand.url) if demand.url is not None else None
        if cap is None:
            return True
        used = self.held[demand.url] if demand.url is not None else 0
        return used == 0 or used + demand.parallelism <= cap

    def take(self, index: int, demand: Demand) -> None:
        """Task ``index`` starts: it holds its slots."""
        self.running[index] = demand
        if demand.url is not None:
            self.held[demand.url] += demand.parallelism

    def give(self, index: int) -> None:
        """Task ``index`` ended: its slots are free."""
        demand = self.running.pop(index)
        if demand.url is not None:
            self.held[demand.url] -= demand.parallelism

    def demand(self, task: TaskRecord) -> Demand:
        """The task's demand (read from its resolved config the first time)."""
        if task.index not in self.demands:
            self.demands[task.index] = task_demand(task)
        return self.demands[task.index]

    def next_task(self, pending: list[TaskRecord]) -> TaskRecord | None:
        """The first pending task (index order) that fits now, if any: a later task may pass one that waits for
        its endpoint's slots."""
        for task in pending:
            if self.fits(self.demand(task)):
                return task
        return None
