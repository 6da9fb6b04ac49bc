"""Showing a run's progress (:mod:`~orchestrator.host.records.progress`): a rich Live table when the console is a
terminal, else plain lines every :data:`PLAIN_EVERY` seconds (CI logs). Both show the same model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.host.records.progress import RunProgress, TaskProgress
from orchestrator.host.records.status import STATE_STYLE

PLAIN_EVERY = 10.0
"""Seconds between two plain reports (a state change reports at once)."""


class ProgressView(Protocol):
    """Shows progress readings; closed once with the last one."""

    def show(self, progress: RunProgress) -> None:
        """A new reading (the view decides whether and when to draw it)."""
        ...

    def close(self, progress: RunProgress) -> None:
        """The last reading: drawn, and the view released."""
        ...


def duration(seconds: float | None) -> str:
    """``1:02:03`` or ``2:03``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def count(value: int) -> str:
    """``950``, ``12.3k``, ``4.5M``."""
    if value < 10_000:
        return str(value)
    if value < 10_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


def done_text(done: int, total: int | None) -> str:
    """``40/100`` or ``40/?``."""
    return f"{done}/{'?' if total is None else total}"


def rate_text(rate: float | None) -> str:
    """``2.5/s``, ``-`` when unknown."""
    return "-" if rate is None else f"{rate:.1f}/s"


def task_line(task: TaskProgress) -> str:
    """One task, as a plain line."""
    model = f" ({task.model})" if task.model else ""
    return (f"#{task.index} {task.name}{model} {task.state}: {done_text(task.done, task.total)} done, "
            f"{rate_text(task.rate)}, ETA {duration(task.eta)}, tokens {count(task.tokens)}, errors {task.errors}")


def total_line(progress: RunProgress) -> str:
    """The run's total, as a plain line."""
    states = (f"{progress.count('succeeded')} succeeded, {progress.count('running')} running, "
              f"{progress.count('pending')} pending")
    others = progress.count("failed", "timeout", "cancelled", "interrupted")
    if others:
        states += f", {others} failed or stopped"
    return (f"total: {len(progress.tasks)} tasks ({states}); {done_text(progress.done, progress.total)} done, "
            f"{rate_text(progress.rate)}, tokens {count(progress.tokens)}, errors {progress.errors}, "
            f"elapsed {duration(progress.elapsed)}")


def progress_table(progress: RunProgress) -> Table:
    """The Live table: one row per task, then the total row."""
    table = Table(title=f"run {progress.run_id}", title_justify="left")
    for column in ("#", "task", "model", "state", "done", "rate", "ETA", "tokens", "errors"):
        table.add_column(column, justify="right" if column in ("done", "rate", "tokens", "errors") else "left")
    for task in progress.tasks:
        table.add_row(str(task.index), Text(task.name), Text(task.model or "-"),
                      Text(task.state, STATE_STYLE.get(task.state, "")), done_text(task.done, task.total),
                      rate_text(task.rate), duration(task.eta), count(task.tokens), str(task.errors))
    table.add_section()
    table.add_row("", Text(f"{len(progress.tasks)} tasks"), "", Text(f"{progress.count('running')} running"),
                  done_text(progress.done, progress.total), rate_text(progress.rate),
                  duration(progress.elapsed), count(progress.tokens), str(progress.errors))
    return table


class LiveView:
    """A rich Live table on a terminal, redrawn with every reading."""

    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, refresh_per_second=2, transient=False, auto_refresh=False)
        self._started = False

    def show(self, progress: RunProgress) -> None:
        """Redraw the table."""
        if not self._started:
            self._live.start()
            self._started = True
        self._live.update(progress_table(progress), refresh=True)

    def close(self, progress: RunProgress) -> None:
        """Draw the last reading and stop."""
        self.show(progress)
        self._live.stop()


class PlainView:
    """Plain lines: every task and the total, every ``every`` seconds and whenever a task changes state."""

    def __init__(self, write: Callable[[str], None], *, every: float = PLAIN_EVERY) -> None:
        self._write = write
        self._every = every
        self._last = float("-inf")
        self._states: list[str] = []
        self._printed: list[str] = []

    def show(self, progress: RunProgress) -> None:
        """Report if it is time, or a state changed."""
        states = [task.state for task in progress.tasks]
        if states == self._states and time.monotonic() - self._last < self._every:
            return
        self._report(progress)

    def close(self, progress: RunProgress) -> None:
        """Report the last reading (unless it is the report just printed)."""
        if self._lines(progress) != self._printed:
            self._report(progress)

    @staticmethod
    def _lines(progress: RunProgress) -> list[str]:
        return [*(task_line(task) for task in progress.tasks), total_line(progress)]

    def _report(self, progress: RunProgress) -> None:
        self._states = [task.state for task in progress.tasks]
        self._last = time.monotonic()
        self._printed = self._lines(progress)
        for line in self._printed:
            self._write(line)


def view_for(console: Console, *, every: float = PLAIN_EVERY) -> ProgressView:
    """A Live view on a terminal, else plain lines printed to the console."""
    if console.is_terminal:
        return LiveView(console)
    return PlainView(lambda line: console.print(Text(line), soft_wrap=True, highlight=False), every=every)
