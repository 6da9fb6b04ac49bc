"""The report's charts: matplotlib figures rendered to SVG, inlined in the page (no script, no font, no network).

Text stays text (``svg.fonttype: none``: selectable, and the page's font); matplotlib's SVG writer escapes it, and
:func:`_svg` keeps only the ``<svg>`` element. Why matplotlib and not plotly or Vega-Lite: docs/reports.md.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.typing import RcKeyType

from orchestrator.host.report.tables import ScoreRow, Usage

COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD")
MAX_METRICS = 8
"""Metrics per task chart (the table has them all)."""
STYLE: dict[RcKeyType, Any] = {"svg.fonttype": "none", "font.family": "sans-serif", "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": None}


def colour(index: int) -> str:
    """The colour of the model at ``index`` (the same in every chart)."""
    return COLOURS[index % len(COLOURS)]


def scores_chart(rows: Sequence[ScoreRow], models: list[str]) -> str:
    """One task's scores as bars per metric, one bar per model, with its 95% CI as an error bar."""
    rows = list(rows)[:MAX_METRICS]
    width = 0.8 / max(len(models), 1)
    with rc_context(STYLE):
        figure = Figure(figsize=(max(4.0, 1.2 + 0.9 * len(rows) * max(len(models), 1) * 0.6), 2.8))
        axes = figure.add_subplot()
        for index, model in enumerate(models):
            xs, values, below, above = [], [], [], []
            for position, row in enumerate(rows):
                cell = row.cells[index]
                if cell is None:
                    continue
                xs.append(position + (index - (len(models) - 1) / 2) * width)
                values.append(cell.value)
                below.append(cell.value - cell.lower if cell.lower is not None else 0.0)
                above.append(cell.upper - cell.value if cell.upper is not None else 0.0)
            axes.bar(xs, values, width * 0.95, yerr=[below, above], capsize=3, color=colour(index), label=model,
                     error_kw={"elinewidth": 1, "ecolor": "#333333"})
        axes.set_xticks(range(len(rows)), [_short(row.metric) for row in rows])
        axes.set_ylabel("score (95% CI)")
        _legend(axes, len(models))
        return _svg(figure)


def latency_chart(usages: Sequence[Usage | None], models: list[str]) -> str:
    """The distribution of one task's request latencies, per model (log-spaced bins)."""
    found = [(index, usage.latencies_ms) for index, usage in enumerate(usages) if usage and usage.latencies_ms]
    with rc_context(STYLE):
        figure = Figure(figsize=(4.6, 2.6))
        axes = figure.add_subplot()
        values = [value for _, latencies in found for value in latencies]
        if values:
            low, high = max(min(values), 0.1), max(*values, 0.2)
            edges = [low * (high / low) ** (step / 30) for step in range(31)] if high > low * 1.01 else 10
            for index, latencies in found:
                axes.hist([max(value, 0.1) for value in latencies], bins=edges, histtype="step", linewidth=1.5,
                          color=colour(index), label=models[index])
            if high > low * 1.01:
                axes.set_xscale("log")
                axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
                axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("latency (ms)")
        axes.set_ylabel("requests")
        _legend(axes, len(found))
        return _svg(figure)


def tokens_chart(usages: Sequence[Usage | None], models: list[str]) -> str:
    """One task's prompt and completion tokens per model (stacked bars)."""
    with rc_context(STYLE):
        figure = Figure(figsize=(max(3.2, 1.2 + 0.7 * len(models)), 2.6))
        axes = figure.add_subplot()
        prompt = [usage.prompt_tokens if usage else 0 for usage in usages]
        completion = [usage.completion_tokens if usage else 0 for usage in usages]
        positions = range(len(models))
        axes.bar(positions, prompt, 0.6, color=[colour(i) for i in positions], alpha=0.45, label="prompt")
        axes.bar(positions, completion, 0.6, bottom=prompt, color=[colour(i) for i in positions], label="completion")
        axes.set_xticks(positions, [_short(model) for model in models])
        axes.set_ylabel("tokens (light: prompt)")
        return _svg(figure)


def _legend(axes: Axes, entries: int) -> None:
    if entries:
        axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _svg(figure: Figure) -> str:
    """The figure as one ``<svg>`` element (no XML declaration, no DOCTYPE, no metadata)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]

