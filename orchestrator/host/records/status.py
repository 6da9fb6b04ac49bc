"""Showing a run: per-task state, the log tail of failed tasks, the scores of finished ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.host.backends.executor import Executor, log_tail
from orchestrator.host.records.report import literal, results_table
from orchestrator.host.records.results import read_results
from orchestrator.schema.errors import EvalsError, HarnessError, printable
from orchestrator.schema.record import RunRecord, TaskRecord

STATE_STYLE = {"succeeded": "green", "failed": "red", "timeout": "red", "cancelled": "yellow",
               "interrupted": "yellow", "running": "cyan", "pending": "dim"}


def status_table(record: RunRecord) -> Table:
    """One row per task; what the record says is shown :func:`~orchestrator.host.records.report.literal`."""
    images = ", ".join(record.images)
    table = Table(title=literal(f"run {record.id} ({record.executor}, {images})"), title_justify="left")
    for column in ("#", "task", "state", "job", "exit", "output dir"):
        table.add_column(column)
    for task in record.tasks:
        state = literal(task.state, STATE_STYLE.get(task.state, ""))
        if task.reason and task.state == "pending":
            state.append(literal(f" ({task.reason})"))
        table.add_row(str(task.index), literal(f"{task.harness}.{task.task}"), state, literal(task.job_id or "-"),
                      "" if task.exit_code is None else str(task.exit_code), literal(task.output_dir))
    return table


def failure_text(task: TaskRecord, *, lines: int = 20) -> str:
    """What went wrong with a task: its reason and the tail of its log (the log's lines as the harness wrote them)."""
    tail = log_tail(Path(task.log), lines)
    text = printable(f"task {task.index} ({task.harness}.{task.task}) {task.state}: "
                     f"{task.reason or 'no reason recorded'}") + "\n"
    if tail:
        text += f"last {len(tail)} lines of {printable(task.log)}:\n" + "\n".join(f"  | {line}" for line in tail) + "\n"
    return text


def show_run(record: RunRecord, console: Console, errors: Console, *, table: bool = True, tails: bool = True) -> None:
    """The status table, then each finished task's scores, then each failure with its log tail."""
    if table:
        console.print(status_table(record))
    for task in record.tasks:
        if task.state == "succeeded":
            results = read_results(Path(task.output_dir) / "results.yml")
            console.print(results_table(results, title=f"{task.harness} / {task.task}"))
            console.print(literal(f"results: {Path(task.output_dir) / 'results.yml'}"))
        elif tails and task.state in ("failed", "timeout", "cancelled", "interrupted"):
            errors.print(escape(failure_text(task)), end="", highlight=False, soft_wrap=True)


def outcome(record: RunRecord) -> None:
    """Raise for the first task that did not succeed (a failed harness's exit code, else 1), naming its log; a suite
    that did not fully succeed exits 1, naming every pair that did not (the others ran)."""
    bad = [task for task in record.tasks if task.state != "succeeded"]
    if not bad:
        return
    if record.suite is not None:
        pairs = ", ".join(f"{t.model} x {t.harness}.{t.task}: {t.state}" for t in bad)
        raise HarnessError(f"suite {record.suite.name} (run {record.id}) is incomplete: {len(bad)} of "
                           f"{len(record.tasks)} pairs did not succeed ({pairs})", exit_code=1,
                           hint=f"the others ran; see {record.suite.output_root}/summary.yml and `evals show "
                                f"{record.id}`; resume with `evals resubmit {record.id}`")
    task = bad[0]
    count = f"{len(bad)} of {len(record.tasks)} tasks did not succeed; " if len(record.tasks) > 1 else ""
    raise HarnessError(f"run {record.id}: {count}task {task.index} ({task.harness}.{task.task}) {task.state}: "
                       f"{task.reason or 'no reason recorded'}",
                       exit_code=task.exit_code if task.state == "failed" and task.exit_code else 1,
                       hint=f"see {task.log} and `evals status {record.id}`; resume with `evals resubmit {record.id}`")


def wait(record: RunRecord, executor: Executor, *, interval: float = 2.0,
         report: Callable[[str], None]) -> RunRecord:
    """Poll until every task has ended, reporting each state change."""
    seen = {task.index: task.state for task in record.tasks}
    while True:
        try:
            record = executor.refresh(record)
        except EvalsError as err:
            report(f"status unavailable ({err}); retrying")
        for task in record.tasks:
            if seen[task.index] != task.state:
                seen[task.index] = task.state
                report(printable(f"task {task.index} ({task.harness}.{task.task}): {task.state}"
                                 + (f" ({task.reason})" if task.reason else "")))
        if record.done:
            return record
        time.sleep(interval)
