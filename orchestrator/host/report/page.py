"""One report page: sources gathered, tables, charts, comparisons and the sample browser, rendered by the jinja
template ``page.html.j2`` (autoescaped) into one self-contained HTML file."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from orchestrator import __version__
from orchestrator.host.compare import render
from orchestrator.host.compare.compare import compare
from orchestrator.host.compare.load import Run, load_files
from orchestrator.host.compare.report import Report
from orchestrator.host.report import browser, charts
from orchestrator.host.report.gather import TaskOutput, gather
from orchestrator.host.report.tables import ScoreRow, Usage, provenance_of, score_rows, usage_of
from orchestrator.runtime.run import write_atomic
from orchestrator.schema.errors import InputError
from orchestrator.schema.samples import SAMPLES_FILE

TEMPLATES = Path(__file__).parent


@dataclass(frozen=True)
class TaskSection:
    """One task's charts: scores across models, and the usage of the output directories that ran it."""

    task: str
    scores: Markup
    latency: Markup | None
    tokens: Markup | None
    usage: list[Usage | None]


def build(sources: list[str], *, baseline: str | None = None, when: datetime | None = None) -> str:
    """The report of ``sources`` (run ids, output directories, folders of them) as one HTML page."""
    outputs = gather(sources)
    models = _ordered(list(dict.fromkeys(output.model for output in outputs)), baseline)
    rows = score_rows(outputs, models)
    samples = browser.read_all(outputs)
    comparison = _comparison(outputs, models)
    template = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True).get_template("page.html.j2")
    return template.render(
        title=f"evals report: {', '.join(sources)}", sources=sources, models=models,
        colours=[charts.colour(index) for index in range(len(models))], rows=rows,
        sections=_sections(outputs, models, rows), comparison=comparison,
        comparison_headers=render.HEADERS, cells=render.cells, number=render.number,
        provenance=[provenance_of(output) for output in outputs],
        samples=Markup(browser.script_json(browser.browser_data(samples, models))),  # escaped for a script element
        sample_tasks=[(task, len(found.answers)) for task, found in sorted(samples.items())],
        missing=[str(path) for path in browser.samples_missing(outputs)], max_samples=browser.MAX_SAMPLES,
        max_text=browser.MAX_TEXT,
        version=__version__, made=(when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC"))


def _ordered(models: list[str], baseline: str | None) -> list[str]:
    """The models in the order first seen, ``baseline`` first."""
    if baseline is None:
        return models
    if baseline not in models:
        close = difflib.get_close_matches(baseline, models, n=3, cutoff=0.5)
        raise InputError(f"--baseline {baseline!r} is none of the report's models",
                         hint=f"{'did you mean ' + ', '.join(close) + '? ' if close else ''}models: "
                              f"{', '.join(models)}")
    return [baseline, *[model for model in models if model != baseline]]


def _task_of(output: TaskOutput) -> str:
    """The task an output directory ran (its config's type)."""
    if output.results is not None:
        return output.results.config.type
    return output.record.task if output.record is not None else output.output_dir.name


def _sections(outputs: Sequence[TaskOutput], models: list[str], rows: list[ScoreRow]) -> list[TaskSection]:
    sections = []
    by_task: dict[str, dict[str, TaskOutput]] = {}
    for output in outputs:
        by_task.setdefault(_task_of(output), {})[output.model] = output
    tasks = sorted({row.task for row in rows} | set(by_task))
    for task in tasks:
        ran = by_task.get(task, {})
        usage = [usage_of(ran[model]) if model in ran else None for model in models]
        answered = any(found and found.requests for found in usage)
        task_rows = [row for row in rows if row.task == task]
        sections.append(TaskSection(
            task=task, scores=Markup(charts.scores_chart(task_rows, models)) if task_rows else Markup(""),
            latency=Markup(charts.latency_chart(usage, models)) if answered else None,
            tokens=Markup(charts.tokens_chart(usage, models)) if answered else None,
            usage=usage))
    return sections


def _comparison(outputs: Sequence[TaskOutput], models: list[str]) -> Report | None:
    """`evals compare` of each model against the first, over the samples they share (None for fewer than two
    models with samples)."""
    runs: list[Run] = []
    for model in models:
        files = [output.output_dir / SAMPLES_FILE for output in outputs
                 if output.model == model and (output.output_dir / SAMPLES_FILE).is_file()]
        if files:
            runs.append(load_files(model, files))
    if len(runs) < 2:
        return None
    return compare(runs, allow_partial=True)


def check_writable(path: Path) -> None:
    """Refuse, before any work, a report path whose directory is missing or not writable, or that is a directory."""
    parent = path.parent
    if path.is_dir():
        raise InputError(f"-o {path} is a directory", hint="name the HTML file to write, e.g. -o report.html")
    if not parent.is_dir():
        raise InputError(f"-o {path}: no directory {parent}", hint="create it or write the report elsewhere")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"-o {path}: {parent} is not writable", hint="write the report to a directory you can write")


def write(html: str, path: Path) -> None:
    """Write the page whole or not at all (readable as a new file would be); an unwritable path is bad input."""
    check_writable(path)
    try:
        write_atomic(path, html)
        umask = os.umask(0)
        os.umask(umask)
        path.chmod(0o666 & ~umask)
    except OSError as err:
        raise InputError(f"-o {path}: cannot write it ({err.strerror or type(err).__name__})",
                         hint="write the report to a directory you can write") from None
