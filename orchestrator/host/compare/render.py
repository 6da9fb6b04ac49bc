"""Showing a comparison: a rich table (the terminal), Markdown (a pull-request comment) or JSON (everything).

Names and texts come from files anything may have written: the table shows them :func:`literal` (no markup, control
characters escaped), Markdown escapes what would break a table cell. Inputs and predictions are cut to one short line
in the table and in Markdown; --json has them whole.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from orchestrator.host.compare.report import Comparison, Flip, Report, Row
from orchestrator.host.records.report import literal
from orchestrator.schema.errors import printable
from orchestrator.schema.samples import ImageRef, Message

FLIPS_SHOWN = 50
"""Flips listed per comparison in the table and in Markdown (all of them in --json)."""
INPUT_WIDTH = 60
PREDICTION_WIDTH = 40
HEADERS = ("task", "metric", "{a}", "{b}", "{b} - {a}", "95% CI", "test", "p", "p Holm", "MDE 80%", "n",
           "only {a} / {b}", "errors {a} / {b}")


def number(value: float | None, *, signed: bool = False) -> str:
    """Four decimals (signed: with + or -); n/a for None."""
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def p_value(value: float | None) -> str:
    """A p-value: four decimals, <0.0001 below that."""
    if value is None:
        return "n/a"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def cells(row: Row) -> list[str]:
    """The row's values as the table and Markdown show them (names excluded)."""
    ci = "n/a" if row.ci_lower is None or row.ci_upper is None else \
        f"[{number(row.ci_lower, signed=True)}, {number(row.ci_upper, signed=True)}]"
    test = {"mcnemar": "McNemar", "permutation": "perm.", None: "n/a"}[row.test]
    return [number(row.baseline_mean), number(row.candidate_mean), number(row.difference, signed=True), ci, test,
            p_value(row.p_value), p_value(row.p_holm), number(row.detectable), str(row.n),
            f"{row.only_baseline} / {row.only_candidate}", f"{row.errors_baseline} / {row.errors_candidate}"]


def one_line(value: str | list[Message] | None, width: int) -> str:
    """A prompt or prediction on one line of at most ``width`` characters (chat messages as ``role: text``)."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " | ".join(f"{message.role}: {_content(message)}" for message in value)
    text = printable(" ".join(value.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def _content(message: Message) -> str:
    if isinstance(message.content, str):
        return message.content
    return " ".join(f"[image {part.sha256[:8]}]" if isinstance(part, ImageRef) else part.text
                    for part in message.content)


def _title(report: Report, comparison: Comparison) -> str:
    sources = {run.label: run.source for run in report.runs}
    return (f"{comparison.baseline} (baseline): {sources[comparison.baseline]}  vs  "
            f"{comparison.candidate}: {sources[comparison.candidate]}")


def _headers(comparison: Comparison) -> list[str]:
    return [header.format(a=comparison.baseline, b=comparison.candidate) for header in HEADERS]


def table(report: Report) -> Group:
    """One rich table per comparison (significant rows after Holm in colour), then its flips."""
    parts: list[Table | Text] = []
    for comparison in report.comparisons:
        result = Table(title=literal(_title(report, comparison)), caption=_caption(report))
        for index, header in enumerate(_headers(comparison)):
            result.add_column(header, justify="left" if index < 2 else "right")
        for row in comparison.rows:
            style = ""
            if row.p_holm is not None and row.p_holm < 0.05 and row.difference:
                style = "green" if row.difference > 0 else "red"
            result.add_row(literal(row.task), literal(row.metric), *cells(row), style=style)
        parts.append(result)
        if comparison.flips is not None:
            parts += _flips_table(comparison)
    return Group(*parts)


def _caption(report: Report) -> str:
    count = sum(len(comparison.rows) for comparison in report.comparisons)
    return (f"difference: candidate - baseline; CI: paired bootstrap ({report.method.resamples:,} resamples, seed "
            f"{report.method.seed}); p Holm: over all {count} rows; MDE: 80% power, alpha 0.05")


def _flips_table(comparison: Comparison) -> list[Table | Text]:
    flips = comparison.flips or []
    a, b = comparison.baseline, comparison.candidate
    result = Table("task", "metric", "sample", "change", "input", f"{a} prediction", f"{b} prediction",
                   title=f"{len(flips)} flips of 0/1 scores, {a} -> {b}")
    for flip in flips[:FLIPS_SHOWN]:
        result.add_row(*(literal(text) for text in _flip_cells(flip)), style="green" if flip.change == "gained"
                       else "red")
    more = [Text(f"... and {len(flips) - FLIPS_SHOWN} more (all of them, whole, with --json)")] \
        if len(flips) > FLIPS_SHOWN else []
    return [result, *more]


def _flip_cells(flip: Flip) -> list[str]:
    sample = flip.sample_id if flip.repeat == 0 else f"{flip.sample_id} (repeat {flip.repeat})"
    return [flip.task, flip.metric, sample, flip.change, one_line(flip.input, INPUT_WIDTH),
            one_line(flip.baseline_prediction, PREDICTION_WIDTH), one_line(flip.candidate_prediction,
                                                                           PREDICTION_WIDTH)]


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes, backslashes and HTML made literal."""
    text = printable(" ".join(text.split()))
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("`", "\\`"), ("*", "\\*"),
                          ("_", "\\_"), ("[", "\\[")):
        text = text.replace(char, escaped)
    return text


def markdown_table(headers: list[str], rows: list[list[str]], *, right_from: int) -> list[str]:
    align = ["---" if i < right_from else "--:" for i in range(len(headers))]
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(row) + " |" for row in rows)]


def markdown(report: Report) -> str:
    """GitHub-flavoured Markdown: a section per comparison, warnings, flips folded in a <details>."""
    lines: list[str] = []
    for comparison in report.comparisons:
        lines += [f"### evals compare: {cell(_title(report, comparison))}", ""]
        rows = [[cell(row.task), cell(row.metric), *cells(row)] for row in comparison.rows]
        lines += markdown_table(_headers(comparison), rows, right_from=2)
        lines += ["", f"_{_caption(report)}._", ""]
        if comparison.flips is not None:
            flips = comparison.flips
            lines += [f"<details><summary>{len(flips)} flips of 0/1 scores, {comparison.baseline} -&gt; "
                      f"{comparison.candidate}</summary>", ""]
            a, b = comparison.baseline, comparison.candidate
            lines += markdown_table(["task", "metric", "sample", "change", "input", f"{a} prediction",
                                      f"{b} prediction"], [[cell(c) for c in _flip_cells(f)]
                                                           for f in flips[:FLIPS_SHOWN]], right_from=99)
            if len(flips) > FLIPS_SHOWN:
                lines += ["", f"... and {len(flips) - FLIPS_SHOWN} more (`evals compare --flips --json` has all)"]
            lines += ["", "</details>", ""]
    lines += [f"> **warning:** {cell(warning)}" for warning in report.warnings]
    return "\n".join(lines).rstrip() + "\n"


def json_text(report: Report) -> str:
    """The whole report as JSON (every flip, inputs and predictions whole)."""
    return report.model_dump_json(indent=2) + "\n"
