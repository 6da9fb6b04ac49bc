"""What a report is made of: every task output directory its sources name, with its results, model and run.

A source is a run id (its record lists every task's output directory), a task's output directory (holding
results.yml) or a file in one, or a folder of them at any depth (a suite's ``<root>/<model>/<harness>-<task>/``).
A task's model is its run record's ``model`` (a suite's model name) where the record has one, else results.yml's
``target.api_endpoint.model_id``. Two sources giving the same model the same task (two runs of one model) are told
apart by naming each such model with its source: ``m (RUN_ID)``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from orchestrator.host.records import store
from orchestrator.host.records.results import read_results
from orchestrator.schema.errors import EvalsError, InputError, ResultsParseError
from orchestrator.schema.loading import load_model
from orchestrator.schema.record import RUN_ID, RunRecord, TaskRecord
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.summary import SUMMARY_FILE, Summary

RESULTS_FILE = "results.yml"
SOURCES_HINT = "give run ids (`evals runs` lists them), task output directories or folders holding them"


@dataclass(frozen=True)
class TaskOutput:
    """One task output directory of a report."""

    model: str
    """The model's name as the report shows it (a column)."""
    source: str
    """The source as the user named it."""
    output_dir: Path
    results: ResultsFile | None
    """None for a run's task that wrote no results.yml (it failed or never ran)."""
    record: TaskRecord | None = None
    run: RunRecord | None = None

    @property
    def tasks(self) -> list[str]:
        """The task names its results hold (the run record's task when it has none)."""
        if self.results is not None and self.results.results.tasks:
            return list(self.results.results.tasks)
        return [self.record.task] if self.record is not None else []


def gather(sources: list[str]) -> list[TaskOutput]:
    """Every task output directory of ``sources``, in the order given; bad input is one :class:`InputError`."""
    found: list[TaskOutput] = []
    for source in sources:
        found += _from_source(source)
    return _distinct(found)


def _from_source(source: str) -> list[TaskOutput]:
    path = Path(source)
    if path.is_dir():
        names = _suite_models(path)
        return [_from_dir(source, directory, model=names.get(directory.resolve())) for directory in _result_dirs(path)]
    if path.is_file() and (path.parent / RESULTS_FILE).is_file():  # results.yml, or a file beside it
        return [_from_dir(source, path.parent)]
    if RUN_ID.fullmatch(source) and not path.exists():
        return _from_run(store.load(source), source)
    raise InputError(f"{source!r} is no run id, output directory or results.yml", hint=SOURCES_HINT)


def _result_dirs(path: Path) -> list[Path]:
    if (path / RESULTS_FILE).is_file():
        return [path]
    found = sorted(file.parent for file in path.rglob(RESULTS_FILE) if file.is_file())
    if not found:
        raise InputError(f"{path} holds no {RESULTS_FILE}, nor does any directory in it", hint=SOURCES_HINT)
    return found


def _suite_models(root: Path) -> dict[Path, str]:
    """A suite's output root names its pairs' models in its summary.yml: output directory -> the suite's model name
    (empty when there is no summary, or it cannot be read: results.yml's model ids are used then)."""
    try:
        summary = load_model(Summary, root / SUMMARY_FILE)
    except (EvalsError, OSError):
        return {}
    return {Path(pair.output_dir).resolve(): pair.model for pair in summary.pairs if pair.model}


def _from_dir(source: str, directory: Path, *, model: str | None = None) -> TaskOutput:
    try:
        results = read_results(directory / RESULTS_FILE)
    except ResultsParseError as err:
        raise InputError(err.message, hint=err.hint) from None
    return TaskOutput(model=model or results.target.api_endpoint.model_id, source=source, output_dir=directory,
                      results=results)


def _from_run(run: RunRecord, source: str) -> list[TaskOutput]:
    found = []
    for task in run.tasks:
        directory = Path(task.output_dir)
        results = _results(directory / RESULTS_FILE)
        model = task.model or (results.target.api_endpoint.model_id if results else None)
        found.append(TaskOutput(model=model or _configured_model(task), source=source, output_dir=directory,
                                results=results, record=task, run=run))
    return found


def _results(path: Path) -> ResultsFile | None:
    if not path.is_file():
        return None
    try:
        return read_results(path)
    except ResultsParseError as err:
        raise InputError(err.message, hint=err.hint) from None


def _configured_model(task: TaskRecord) -> str:
    """The model id the task's resolved config names (for a task without results.yml)."""
    try:
        config = yaml.safe_load(task.resolved_config or "")
        model = config["target"]["api_endpoint"]["model_id"]
    except (yaml.YAMLError, TypeError, KeyError):
        return "unknown model"
    return str(model)


def _distinct(found: list[TaskOutput]) -> list[TaskOutput]:
    """Each model named with its source where another source gives the same model a task it has too."""
    pairs = Counter((entry.model, task, entry.source) for entry in found for task in entry.tasks)
    sources_of: dict[tuple[str, str], set[str]] = {}
    for model, task, source in pairs:
        sources_of.setdefault((model, task), set()).add(source)
    clashing = {model for (model, _), sources in sources_of.items() if len(sources) > 1}
    twice = [(model, task) for (model, task, _), count in pairs.items() if count > 1]
    if twice:
        model, task = twice[0]
        where = [str(entry.output_dir) for entry in found if entry.model == model and task in entry.tasks]
        raise InputError(f"model {model!r} has task {task!r} twice in one source: {', '.join(where[:2])}",
                         hint="name each run or output directory on its own")
    return [replace(entry, model=f"{entry.model} ({entry.source})") if entry.model in clashing else entry
            for entry in found]
