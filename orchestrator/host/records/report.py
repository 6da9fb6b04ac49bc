"""Showing results: a rich table of every score in a results.yml.

Names come from files (results.yml, run records) that anything may have written, so they are shown
as :func:`literal` text: never read as rich markup or emoji codes, control characters as escapes.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from orchestrator.schema.errors import printable
from orchestrator.schema.results import MetricResult, ResultsFile


def literal(value: str, style: str = "") -> Text:
    """``value`` as a terminal shows it verbatim: one line, no markup, escape sequences made visible."""
    return Text(printable(value), style=style)


def _rows(kind: str, name: str, metrics: dict[str, MetricResult]) -> list[tuple[str | Text, ...]]:
    rows: list[tuple[str | Text, ...]] = []
    for metric_name, metric in metrics.items():
        for score_name, score in metric.scores.items():
            label = metric_name if score_name == metric_name else f"{metric_name} / {score_name}"
            stderr = f"{score.stats.stderr:.4f}" if score.stats.stderr is not None else ""
            count = str(score.stats.count) if score.stats.count is not None else ""
            rows.append((kind, literal(name), literal(label), f"{score.value:.4f}", stderr, count))
    return rows


def results_table(results: ResultsFile, *, title: str | None = None) -> Table:
    """Groups first, then tasks; one row per score. Every name is shown :func:`literal`, the title too."""
    table = Table(title=literal(title or f"{results.framework_name} / {results.config.type}"))
    for column in ("", "name", "metric", "value", "stderr", "n"):
        table.add_column(column, justify="right" if column in ("value", "stderr", "n") else "left")
    for name, group in results.results.groups.items():
        for row in _rows("group", name, group.metrics):
            table.add_row(*row)
    for name, task in results.results.tasks.items():
        if name in results.results.groups and results.results.groups[name].metrics == task.metrics:
            continue
        for row in _rows("task", name, task.metrics):
            table.add_row(*row)
    return table
