"""Live progress of a run, read from disk: per task its state, samples done / total, rate, ETA, tokens and errors.

Everything comes from files any shell can read, so the same reading serves `evals run` and a follower:

- **state**: the run record.
- **done**: distinct prompts the model's proxy answered (``<output dir>/logs/requests.jsonl``, records of role
  ``model`` with a 2xx status and no error, counted once per prompt key; answers from the cache count, so a resumed
  task starts where it stopped). A harness that sends several requests per sample (a multiple-choice task asks one
  log-likelihood per choice) counts each of them: *done* counts requests, not samples.
- **total**: what the harness's progress bar says (``n/N`` of the last tqdm bar in ``logs/harness.log``: lm-eval's
  "Requesting API" bar counts requests, as *done* does), else ``config.params.limit_samples``, else unknown.
- **rate**: done per second over the last :data:`WINDOW` seconds; **ETA** = (total - done) / rate.
- **tokens**: prompt + completion tokens of every record (every role); **errors**: records with an error or a
  non-2xx status.

Files are read incrementally: each reader remembers how far it read and parses only complete new lines (a record
still being written, without its newline, is read on a later pass; a proxy that cut a killed proxy's partial line
off never cut anything read).
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from orchestrator.host.records.demand import Demand, task_demand
from orchestrator.schema.record import RunRecord, TaskRecord, TaskState
from orchestrator.schema.requests import REQUESTS_FILE, RequestRecord

WINDOW = 30.0
"""Seconds over which the rate is measured."""
HARNESS_LOG = "harness.log"
_BAR = re.compile(rb"\|\s*(\d+)/(\d+)\s*\[")
"""A tqdm bar's ``| n/N [``."""
_TAIL = 4096
"""Bytes of harness.log kept from one pass to the next, so a bar split across passes is still found."""


@dataclass(frozen=True, kw_only=True)
class TaskProgress:
    """One task's progress at one moment."""

    index: int
    name: str
    """``harness.task``."""
    model: str | None
    state: TaskState
    done: int
    total: int | None
    rate: float | None
    """Done per second over the last window (None until two readings apart)."""
    tokens: int
    errors: int

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when the total is known and the rate positive."""
        if self.total is None or not self.rate or self.done >= self.total or self.state != "running":
            return None
        return (self.total - self.done) / self.rate


@dataclass(frozen=True, kw_only=True)
class RunProgress:
    """The whole run at one moment, and its total line."""

    run_id: str
    tasks: list[TaskProgress]
    elapsed: float

    def count(self, *states: TaskState) -> int:
        """Tasks in any of ``states``."""
        return sum(1 for task in self.tasks if task.state in states)

    @property
    def done(self) -> int:
        """Done over every task."""
        return sum(task.done for task in self.tasks)

    @property
    def total(self) -> int | None:
        """Total over every task, when every task's is known."""
        totals = [task.total for task in self.tasks]
        return None if any(t is None for t in totals) else sum(t for t in totals if t is not None)

    @property
    def rate(self) -> float:
        """Done per second, summed over the running tasks."""
        return sum(task.rate or 0.0 for task in self.tasks if task.state == "running")

    @property
    def tokens(self) -> int:
        """Tokens over every task."""
        return sum(task.tokens for task in self.tasks)

    @property
    def errors(self) -> int:
        """Errors over every task."""
        return sum(task.errors for task in self.tasks)


@dataclass
class _RequestsFile:
    """Counts of one requests.jsonl, read from where the last pass stopped."""

    path: Path
    offset: int = 0
    answered: set[str] = field(default_factory=set)
    tokens: int = 0
    errors: int = 0

    def read(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(0, 2)
                if handle.tell() < self.offset:  # a new file in its place: count again
                    self.offset, self.answered, self.tokens, self.errors = 0, set(), 0, 0
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # only complete lines; a partial last one is read on a later pass
        for line in data[:end].splitlines():
            self._count(line)
        self.offset += end

    def _count(self, line: bytes) -> None:
        try:
            record = RequestRecord.model_validate_json(line)
        except ValidationError:
            return
        self.tokens += record.prompt_tokens + record.completion_tokens
        failed = record.error is not None or not 200 <= record.status < 300
        self.errors += failed
        if record.role == "model" and not failed:
            self.answered.add(record.prompt_key or record.id)


@dataclass
class _HarnessLog:
    """The last tqdm ``n/N`` of one harness.log, read from where the last pass stopped."""

    path: Path
    offset: int = 0
    tail: bytes = b""
    total: int | None = None

    def read(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(0, 2)
                if handle.tell() < self.offset:
                    self.offset, self.tail, self.total = 0, b"", None
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        self.offset += len(data)
        text = self.tail + data
        bars = _BAR.findall(text)
        if bars:
            self.total = int(bars[-1][1])
        self.tail = text[-_TAIL:]


@dataclass
class _TaskReader:
    demand: Demand
    requests: _RequestsFile
    harness: _HarnessLog
    samples: deque[tuple[float, int]] = field(default_factory=deque)


class ProgressReader:
    """Reads a run's progress from disk; keep one per run and call :meth:`read` as often as wanted."""

    def __init__(self) -> None:
        self._readers: dict[tuple[int, str], _TaskReader] = {}
        self._started = time.monotonic()

    def read(self, record: RunRecord, *, now: float | None = None) -> RunProgress:
        """Every task's progress now (``now``: a monotonic time, for tests)."""
        moment = time.monotonic() if now is None else now
        return RunProgress(run_id=record.id, tasks=[self._task(task, moment) for task in record.tasks],
                           elapsed=moment - self._started)

    def _task(self, task: TaskRecord, now: float) -> TaskProgress:
        logs = Path(task.output_dir) / "logs"
        key = (task.index, task.output_dir)
        if key not in self._readers:
            self._readers[key] = _TaskReader(task_demand(task), _RequestsFile(logs / REQUESTS_FILE),
                                             _HarnessLog(logs / HARNESS_LOG))
        reader = self._readers[key]
        if task.state != "pending":
            reader.requests.read()
            reader.harness.read()
        done = len(reader.requests.answered)
        reader.samples.append((now, done))
        while len(reader.samples) > 2 and now - reader.samples[1][0] >= WINDOW:
            reader.samples.popleft()
        first_time, first_done = reader.samples[0]
        rate = (done - first_done) / (now - first_time) if now - first_time > 0 else None
        demand = reader.demand
        return TaskProgress(index=task.index, name=f"{task.harness}.{task.task}", model=demand.model_id,
                            state=task.state, done=done, total=reader.harness.total or demand.limit_samples,
                            rate=rate, tokens=reader.requests.tokens, errors=reader.requests.errors)
