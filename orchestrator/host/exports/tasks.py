"""What an export reads: the finished tasks of a run (a run id) or of output directories, each with its results.yml.

A source is a run id (its record lists every task's output directory), a task's output directory or results.yml, or
a directory holding task output directories (``DIR/<harness>-<task>/`` of a run, ``DIR/<model>/<harness>-<task>/``
of a suite). A task whose results.yml is missing (it failed, or still runs) is left out with a note; a source with
no results at all is bad input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.host.records import store
from orchestrator.host.records.results import read_results
from orchestrator.schema.errors import InputError, ResultsParseError
from orchestrator.schema.record import RUN_ID, RunRecord, TaskRecord
from orchestrator.schema.results import ResultsFile

RESULTS_FILE = "results.yml"


@dataclass(frozen=True)
class TaskExport:
    """One finished task of one model, as every target exports it."""

    model: str
    task: str
    harness: str
    output_dir: Path
    results: ResultsFile
    results_sha256: str
    """sha256 of results.yml's bytes: what identifies this result in a tracking server across exports."""
    run_id: str | None = None
    suite: str | None = None


@dataclass
class Gathered:
    """The tasks of every source, and one line for each task left out."""

    tasks: list[TaskExport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def plural(count: int, noun: str) -> str:
    """``1 task``, ``2 tasks``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def gather(sources: list[str] | list[RunRecord]) -> Gathered:
    """The finished tasks ``sources`` name (see the module docstring), or of run records; InputError if none."""
    if not sources:
        raise InputError("no run to export", hint="give a run id (`evals runs` lists them) or output directories")
    found = Gathered()
    for source in sources:
        if isinstance(source, RunRecord):
            _from_record(source, found)
        elif not Path(source).exists() and RUN_ID.fullmatch(source):
            _from_record(store.load(source), found)  # an unknown id: the error names close ones
        else:
            for directory in _result_dirs(source):
                found.tasks.append(_task(directory.resolve(), results_file=directory / RESULTS_FILE))
    if not found.tasks:
        named = ", ".join(source.id if isinstance(source, RunRecord) else source for source in sources)
        raise InputError(f"nothing to export: no task of {named} has a results.yml",
                         hint="export a run whose tasks finished (`evals status RUN_ID`)")
    return found


def _from_record(record: RunRecord, found: Gathered) -> None:
    suite = record.suite.name if record.suite is not None else None
    for entry in record.tasks:
        results_file = Path(entry.output_dir) / RESULTS_FILE
        if not results_file.is_file():
            found.skipped.append(f"run {record.id} task {entry.index} ({entry.harness}.{entry.task}, {entry.state}): "
                                 f"no {results_file}")
            continue
        found.tasks.append(_task(Path(entry.output_dir), results_file=results_file, record=record, entry=entry,
                                 suite=suite))


def _result_dirs(source: str) -> list[Path]:
    path = Path(source)
    if path.is_file():
        return [path.parent]
    if path.is_dir():
        if (path / RESULTS_FILE).is_file():
            return [path]
        children = sorted({p.parent for pattern in (f"*/{RESULTS_FILE}", f"*/*/{RESULTS_FILE}")
                           for p in path.glob(pattern)})
        if children:
            return children
        raise InputError(f"{path} holds no {RESULTS_FILE}, nor does any directory in it (two levels down)",
                         hint="give a run id, a task's output directory or a directory of them")
    raise InputError(f"{source!r} is no run id, output directory or results file",
                     hint="`evals runs` lists the run ids")


def _task(directory: Path, *, results_file: Path, record: RunRecord | None = None, entry: TaskRecord | None = None,
          suite: str | None = None) -> TaskExport:
    try:
        raw = results_file.read_bytes()
        results = read_results(results_file)
    except OSError as err:
        raise InputError(f"cannot read {results_file}: {err.strerror or type(err).__name__}") from None
    except ResultsParseError as err:
        raise InputError(err.message, hint=err.hint) from None
    recorded_model = entry.model if entry is not None else None  # a suite's model name
    return TaskExport(
        model=recorded_model or results.target.api_endpoint.model_id,
        task=entry.task if entry else results.config.type,
        harness=entry.harness if entry else results.framework_name,
        output_dir=directory, results=results, results_sha256=hashlib.sha256(raw).hexdigest(),
        run_id=record.id if record else None, suite=suite)
