"""Reading runs for `evals compare` and `evals gate`: every task output directory's samples.jsonl and results.yml.

A run is named by an output directory (a task's, or one holding several tasks' directories), a results.yml or a
samples.jsonl in one, or a run id (its record lists every task's output directory). samples.jsonl is read strictly:
each line must be one JSON object (JSON has no NaN or infinity: such scores are refused) that validates, in pydantic's
strict mode (no strings for numbers), as a :class:`~orchestrator.schema.samples.SampleRecord`, and no (task,
sample_id, repeat) may appear twice; the first line that breaks a rule is an
:class:`~orchestrator.schema.errors.InputError` naming the file and the line.

What compare keeps of a run is columns: each sample's key, whether it ended in an error, its scores, and where its
line is; the few records `--flips` shows are read again from their lines.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import TypeAdapter, ValidationError

from orchestrator.host.records import store
from orchestrator.host.records.results import read_results
from orchestrator.schema.errors import InputError, ResultsParseError
from orchestrator.schema.loading import validation_error
from orchestrator.schema.record import RUN_ID
from orchestrator.schema.results import Provenance
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord

RESULTS_FILE = "results.yml"
Key = tuple[str, int]
"""A sample within its task: (sample_id, repeat)."""

_RECORDS = TypeAdapter(list[SampleRecord])
_DAMAGED = "one JSON sample record per line (orchestrator/schema/jsonschema/samples.schema.json); run the task again"


@dataclass
class TaskSamples:
    """One task's samples in one run as columns, in file order (scores NaN where a record has none of a metric)."""

    task: str
    index: dict[Key, int] = field(default_factory=dict)
    """Row of each sample."""
    errors: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    scores: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    origin: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    """Per row: the index of its file in ``files`` and its line (from 1)."""

    def __len__(self) -> int:
        return len(self.errors)

    def records(self, rows: Sequence[int]) -> list[SampleRecord]:
        """The whole records of some rows, read again from their lines."""
        found: dict[int, SampleRecord] = {}
        for number, path in enumerate(self.files):
            wanted = [row for row in rows if self.origin[row, 0] == number]
            if not wanted:
                continue
            lines = path.read_bytes().split(b"\n")
            for row in wanted:
                line = int(self.origin[row, 1])
                record = SampleRecord.model_validate_json(lines[line - 1], strict=True)
                if self.index.get((record.sample_id, record.repeat)) != row:
                    raise InputError(f"{path}:{line} changed while evals read it", hint="compare again")
                found[row] = record
        return [found[row] for row in rows]


@dataclass(frozen=True)
class Run:
    """One run as compare sees it."""

    source: str
    """As the user named it."""
    tasks: dict[str, TaskSamples]
    provenance: dict[str, Provenance | None]
    """Per task, the provenance of the results.yml beside its samples (None without one)."""


@dataclass
class _Part:
    """What the files of a run hold of one task, gathered before it becomes columns."""

    keys: list[Key] = field(default_factory=list)
    errors: list[bool] = field(default_factory=list)
    scores: list[dict[str, float]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    file_of: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def add(self, path: Path, records: list[SampleRecord], lines: list[int]) -> None:
        self.files.append(path)
        self.keys += [(record.sample_id, record.repeat) for record in records]
        self.errors += [record.status == "error" for record in records]
        self.scores += [record.scores for record in records]
        self.file_of += [len(self.files) - 1] * len(records)
        self.lines += lines


def load_run(source: str) -> Run:
    """Every task of the run ``source`` names (see the module docstring)."""
    return load_files(source, samples_files(source))


def load_files(source: str, files: Sequence[Path]) -> Run:
    """One run from the samples.jsonl files given (``source``: how it is named), e.g. one model's task directories of
    a suite, as :func:`load_run` reads them."""
    parts: dict[str, _Part] = {}
    provenance: dict[str, Provenance | None] = {}
    for samples in files:
        found = _provenance(samples.parent / RESULTS_FILE)
        records = read_samples(samples)
        names = [record.task for record in records]
        for task in dict.fromkeys(names):
            rows = list(range(len(records))) if len(set(names)) == 1 else \
                [i for i, name in enumerate(names) if name == task]
            parts.setdefault(task, _Part()).add(samples, [records[i] for i in rows], [i + 1 for i in rows])
            provenance.setdefault(task, found)
    return Run(source=source, tasks={task: _columns(task, parts[task]) for task in sorted(parts)},
               provenance=provenance)


def samples_files(source: str) -> list[Path]:
    """The samples.jsonl of every task output directory ``source`` names."""
    directories = output_dirs(source)
    for directory in directories:
        if not (directory / SAMPLES_FILE).is_file():
            raise InputError(f"{directory} has no {SAMPLES_FILE}", hint="the harness wrote no per-sample records (or "
                                                                        "the task never ended); run it again")
    return [directory / SAMPLES_FILE for directory in directories]


def output_dirs(source: str) -> list[Path]:
    """The task output directories ``source`` names."""
    path = Path(source)
    if path.is_file():
        return [path.parent]
    if path.is_dir():
        if (path / SAMPLES_FILE).is_file() or (path / RESULTS_FILE).is_file():
            return [path]
        children = sorted(p.parent for p in path.glob(f"*/{SAMPLES_FILE}"))
        if children:
            return children
        raise InputError(f"{path} holds no {SAMPLES_FILE}, nor does any directory in it",
                         hint="give a task's output directory, its results.yml, or a run id")
    if RUN_ID.fullmatch(source) and source in store.run_ids():
        return [Path(task.output_dir) for task in store.load(source).tasks]
    raise InputError(f"{source!r} is no output directory, results file or run id",
                     hint="give a task's output directory, its results.yml, or a run id (`evals runs` lists them)")


def _provenance(path: Path) -> Provenance | None:
    if not path.is_file():
        return None
    try:
        return read_results(path).provenance
    except ResultsParseError as err:
        raise InputError(err.message, hint=err.hint) from None


def read_samples(path: Path) -> list[SampleRecord]:
    """Every record of one samples.jsonl, validated; the first bad line is an InputError naming it."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or type(err).__name__}") from None
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    objects = []
    for number, line in enumerate(lines, start=1):
        try:
            objects.append(orjson.loads(line))
        except orjson.JSONDecodeError as err:
            what = "truncated record" if number == len(lines) and not raw.endswith(b"\n") else "not a JSON record"
            raise InputError(f"{path}:{number}: {what} ({err})", hint=_DAMAGED) from None
    try:
        return _RECORDS.validate_python(objects, strict=True)
    except ValidationError as err:
        number = int(err.errors()[0]["loc"][0]) + 1
        raise _record_error(objects[number - 1], where=f"{path}:{number}") from None


def _record_error(data: object, *, where: str) -> InputError:
    """The one-line error of the first thing wrong with one record (with close matches for an unknown key)."""
    if not isinstance(data, dict):
        return InputError(f"{where}: not a sample record (a JSON {type(data).__name__}, not an object)", hint=_DAMAGED)
    try:
        SampleRecord.model_validate(data, strict=True)
    except ValidationError as err:
        return validation_error(err, model=SampleRecord, doc=None, source=where)
    raise AssertionError("a record that failed in the list validates alone")


@contextmanager
def collection_paused() -> Iterator[None]:
    """No garbage collection while runs are read, and none over what the reading leaves (``gc.freeze``): for a
    command, which ends soon after, not for a library call (the frozen objects are never collected cyclically).

    The records are all referenced until their columns are built, so the cyclic collector finds nothing in them, yet
    its passes over the growing heap took most of the time (bench/compare/README.md).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _columns(task: str, part: _Part) -> TaskSamples:
    """One task's gathered records as columns; a sample twice is refused."""
    index = dict(zip(part.keys, range(len(part.keys)), strict=True))
    origin = np.array([part.file_of, part.lines], dtype=np.int64).T.reshape(-1, 2)
    if len(index) < len(part.keys):
        _refuse_duplicate(task, part, origin)
    columns = {metric: np.array([found.get(metric, math.nan) for found in part.scores], dtype=np.float64)
               for metric in sorted({metric for found in part.scores for metric in found})}
    return TaskSamples(task=task, index=index, errors=np.array(part.errors, dtype=bool), scores=columns,
                       files=part.files, origin=origin)


def _refuse_duplicate(task: str, part: _Part, origin: npt.NDArray[np.int64]) -> None:
    first: dict[Key, int] = {}
    for row, key in enumerate(part.keys):
        if key in first:
            (file, line), (first_file, first_line) = origin[row], origin[first[key]]
            raise InputError(f"{part.files[file]}:{line}: sample {key[0]!r} repeat {key[1]} of task {task!r} appears "
                             f"twice (first at {part.files[first_file]}:{first_line})", hint=_DAMAGED)
        first[key] = row
