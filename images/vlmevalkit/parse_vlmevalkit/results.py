"""VLMEvalKit results: read the harness's own score files (stdlib only) into an :class:`EvaluationResult`.

``vlmeval.run --work-dir D`` scores each dataset into ``D/<model>/T<date>_G<commit>/`` and symlinks the
files into ``D/<model>/``. The score file is ``<model>_<DATASET>[_<judge>]_score.json|.csv`` or
``<model>_<DATASET>_acc.csv`` (``_acc.json`` when newer VLMEvalKit runs with ``EVAL_FORMAT=json``).
Scales differ per dataset and are fixed here from the harness source; every score returned is on 0..1.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, GroupResult, MetricResult, Score, ScoreStats, TaskResult

Row = Mapping[str, object]

_PATTERNS = ("*_score.json", "*_score.csv", "*_acc.csv", "*_acc.json")
_LAYOUT = "<model>/[T<date>_G<commit>/]<model>_<DATASET>[_<judge>]_score.json|.csv or _acc.csv|.json"


def parse(output_dir: Path) -> EvaluationResult:
    """Parse the one VLMEvalKit score file under ``output_dir`` (the run's ``--work-dir``)."""
    dataset, path = _select(output_dir, _score_files(output_dir))
    data = _load(path)
    try:
        return _PARSERS[dataset](data)
    except (KeyError, ValueError) as err:
        raise ResultsParseError(
            f"{path}: not a {dataset} score file as VLMEvalKit writes it: {err}",
            hint="the file may come from an unsupported VLMEvalKit version; check it against the harness source",
        ) from err


# ---- finding the score file -------------------------------------------------------------------


def _score_files(output_dir: Path) -> list[Path]:
    """Score files below ``output_dir``; a symlink and its target count once, broken symlinks not at all."""
    if not output_dir.is_dir():
        raise ResultsParseError(f"VLMEvalKit output directory {output_dir} does not exist")
    found: dict[Path, Path] = {}
    for pattern in _PATTERNS:
        for path in sorted(output_dir.rglob(pattern)):
            if path.is_file() and (path.resolve() not in found or found[path.resolve()].is_symlink()):
                found[path.resolve()] = path
    return sorted(found.values())


def _dataset_of(path: Path, output_dir: Path) -> str | None:
    """The supported dataset a score file belongs to, from its name below the model directory.

    A judge named ``org/model`` puts a ``/`` into the file name, so the dataset may sit in a directory name.
    """
    parts = path.relative_to(output_dir).parts
    model, below = (parts[0], parts[1:]) if len(parts) > 1 else ("", parts)
    text = "/".join("_" + (p[len(model) + 1 :] if model and p.startswith(f"{model}_") else p) for p in below)
    matches = [name for name in _PARSERS if f"_{name}_" in text]
    return max(matches, key=len, default=None)


def _select(output_dir: Path, files: list[Path]) -> tuple[str, Path]:
    """The dataset and its newest score file; several datasets or an unsupported one are errors."""
    if not files:
        raise ResultsParseError(
            f"no VLMEvalKit score file under {output_dir}",
            hint=f"expected {_LAYOUT}; the evaluation step may have failed, see the harness log",
        )
    by_dataset: dict[str, list[Path]] = {}
    for path in files:
        by_dataset.setdefault(_dataset_of(path, output_dir) or path.name, []).append(path)
    if len(by_dataset) > 1:
        listing = "; ".join(
            f"{name}: {', '.join(str(p.relative_to(output_dir)) for p in paths)}"
            for name, paths in sorted(by_dataset.items())
        )
        raise ResultsParseError(
            f"score files for several datasets under {output_dir} ({listing})",
            hint="run one dataset per output directory",
        )
    [(dataset, paths)] = by_dataset.items()
    if dataset not in _PARSERS:
        raise ResultsParseError(
            f"unsupported VLMEvalKit dataset in {paths[0]}",
            hint=f"supported datasets: {', '.join(_PARSERS)}",
        )
    return dataset, max(paths, key=lambda p: (p.stat().st_mtime_ns, str(p)))


def _load(path: Path) -> object:
    """A JSON document, or a CSV file as a list of rows (pandas ``to_csv``, all cells quoted)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if path.suffix == ".json":
                return json.load(handle)
            return list(csv.DictReader(handle))
    except (OSError, ValueError, RecursionError, csv.Error) as err:  # ValueError: JSON, UTF-8; RecursionError: depth
        raise ResultsParseError(f"cannot read VLMEvalKit score file {path}: {err}") from err


# ---- cells, rows and scores ---------------------------------------------------------------------


def _rows(data: object) -> list[Row]:
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ValueError("expected a table (CSV rows or a JSON list of records)")
    return data


def _keyed(rows: list[Row], column: str) -> dict[str, Row]:
    """Rows by the value of their ``column`` (the row label)."""
    if any(column not in row for row in rows):
        raise ValueError(f"missing column {column!r}")
    return {str(row[column]): row for row in rows}


def _number(row: Row, column: str) -> float | None:
    """A cell as a float; ``None`` when empty (pandas writes NaN as an empty cell, JSON as null)."""
    if column not in row:
        raise ValueError(f"missing column {column!r}")
    value = row[column]
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{column!r} holds {value!r}, not a number") from None
    return None if math.isnan(number) else number


def _required(row: Row, column: str) -> float:
    value = _number(row, column)
    if value is None:
        raise ValueError(f"{column!r} is empty")
    return value


def _score(value: float, *, count: float | None = None, total: float | None = None) -> Score:
    return Score(value=value, stats=ScoreStats(count=None if count is None else int(count), sum=total))


def _ratio(total: float, count: float) -> Score:
    return _score(total / count, count=count, total=total)


def _metrics(**scores: Score) -> dict[str, MetricResult]:
    """One metric per score, named alike: ``metrics.accuracy.scores.accuracy``."""
    return {name: MetricResult(scores={name: score}) for name, score in scores.items()}


def task_name(name: str) -> str:
    """The results.yml task name of a VLMEvalKit sub-category (split, category, task or skill): lower-case, dashes."""
    slug = re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-")
    if not slug:
        raise ValueError(f"sub-category {name!r} has no usable name")
    return slug


def _add_task(tasks: dict[str, TaskResult], name: str, metrics: dict[str, MetricResult]) -> None:
    key = task_name(name)
    if key in tasks:
        raise ValueError(f"two sub-categories map to the task name {key!r}")
    tasks[key] = TaskResult(metrics=metrics)


# ---- per-dataset formats ------------------------------------------------------------------------

_OCRBENCH_TOTALS = ("Final Score", "Final Score Norm", "Text Recognition")
# Upstream VLMEvalKit writes correct-answer counts only; OCRBench's fixed composition (1000 questions)
# gives the denominators, as upstream's own "Final Score Norm" (= Final Score / 10) assumes.
_OCRBENCH_SIZES = {
    "Text Recognition": 300,
    "Scene Text-centric VQA": 200,
    "Doc-oriented VQA": 200,
    "Key Information Extraction": 200,
    "Handwritten Mathematical Expression Recognition": 100,
}


def _parse_ocrbench(data: object) -> EvaluationResult:
    """``OCRBench.evaluate``: NVIDIA's build writes ``{sum, count}`` per category, upstream plain counts."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if isinstance(data.get("Final Score"), dict):
        return _ocrbench_sums(data)
    return _ocrbench_counts(data)


def _sum_count(data: Row, name: str) -> tuple[float, float]:
    entry = data.get(name)
    if not isinstance(entry, dict):
        raise ValueError(f"{name!r} is not a {{'sum': ..., 'count': ...}} object")
    return _required(entry, "sum"), _required(entry, "count")


def _ocrbench_sums(data: Row) -> EvaluationResult:
    total, count = _sum_count(data, "Final Score")
    if not count:
        raise ValueError("'Final Score' counts no samples")
    tasks: dict[str, TaskResult] = {}
    for name in data:
        if name in _OCRBENCH_TOTALS:
            continue
        category_total, category_count = _sum_count(data, name)
        if category_count:  # 0 when the run was limited to fewer samples
            _add_task(tasks, name, _metrics(accuracy=_ratio(category_total, category_count)))
    recognised, recognition_count = _sum_count(data, "Text Recognition")
    nested = None
    if recognition_count:
        nested = {"text-recognition": GroupResult(metrics=_metrics(accuracy=_ratio(recognised, recognition_count)))}
    group = GroupResult(metrics=_metrics(accuracy=_ratio(total, count)), groups=nested)
    return EvaluationResult(tasks=tasks, groups={"ocrbench": group})


def _ocrbench_counts(data: Row) -> EvaluationResult:
    tasks: dict[str, TaskResult] = {}
    for name, size in _OCRBENCH_SIZES.items():
        _add_task(tasks, name, _metrics(accuracy=_ratio(_required(data, name), size)))
    accuracy = _ratio(_required(data, "Final Score"), sum(_OCRBENCH_SIZES.values()))
    group = GroupResult(metrics=_metrics(accuracy=accuracy))
    return EvaluationResult(tasks=tasks, groups={"ocrbench": group})


def _parse_chartqa(data: object) -> EvaluationResult:
    """``ImageVQADataset.evaluate``: one row, ``Overall`` and one column per split, in percent."""
    rows = _rows(data)
    if len(rows) != 1:
        raise ValueError(f"expected one row, found {len(rows)}")
    [row] = rows
    group = GroupResult(metrics=_metrics(accuracy=_score(_required(row, "Overall") / 100)))
    tasks: dict[str, TaskResult] = {}
    for column in row:
        if column != "Overall" and (value := _number(row, column)) is not None:
            _add_task(tasks, column, _metrics(accuracy=_score(value / 100)))
    return EvaluationResult(tasks=tasks, groups={"chartqa": group})


_SPLIT_SCORES = {"validation": "val"}  # NVIDIA's score names for MMMU splits


def _parse_mcq(data: object, *, group: str) -> EvaluationResult:
    """``report_acc``: one row per split (``none`` without splits), ``Overall`` and categories, on 0..1.

    ``accuracy`` is the only split, or ``validation`` (MMMU's headline); with several splits each is
    also a score of its own.
    """
    rows = _keyed(_rows(data), "split")
    if len(rows) == 1:
        [headline] = rows
    elif "validation" in rows:
        headline = "validation"
    else:
        raise ValueError(f"splits {sorted(rows)} include no 'validation'")
    tasks: dict[str, TaskResult] = {}
    for column in next(iter(rows.values())):
        if column not in ("split", "Overall") and (metrics := _split_metrics(rows, column, headline)):
            _add_task(tasks, column, metrics)
    _required(rows[headline], "Overall")
    overall = _split_metrics(rows, "Overall", headline)
    return EvaluationResult(tasks=tasks, groups={group: GroupResult(metrics=overall)})


def _split_metrics(rows: dict[str, Row], column: str, headline: str) -> dict[str, MetricResult]:
    values = {split: _number(row, column) for split, row in rows.items()}
    scores: dict[str, Score] = {}
    if (value := values[headline]) is not None:
        scores["accuracy"] = _score(value)
    if len(values) > 1:
        scores |= {_SPLIT_SCORES.get(split, split): _score(v) for split, v in values.items() if v is not None}
    return {"accuracy": MetricResult(scores=scores)} if scores else {}


def _judged(row: Row) -> dict[str, MetricResult]:
    """A ``tot, prefetch, hit, prefetch_rate, acc`` row (rates in percent)."""
    count = _required(row, "tot")
    return _metrics(
        accuracy=_score(_required(row, "acc") / 100, count=count, total=_required(row, "hit")),
        prefetch_rate=_score(_required(row, "prefetch_rate") / 100, count=count, total=_required(row, "prefetch")),
    )


def _parse_mathvista(data: object) -> EvaluationResult:
    """``MathVista_acc``: one row per task and per skill under ``Task&Skill``, plus ``Overall``."""
    rows = _keyed(_rows(data), "Task&Skill")
    if "Overall" not in rows:
        raise ValueError("no 'Overall' row")
    overall = rows.pop("Overall")
    tasks: dict[str, TaskResult] = {}
    for name, row in rows.items():
        _add_task(tasks, name, _judged(row))
    return EvaluationResult(tasks=tasks, groups={"mathvista": GroupResult(metrics=_judged(overall))})


def _parse_ocr_reasoning(data: object) -> EvaluationResult:
    """``OcrR_acc``: judged rows per ``Task``; ``<task>_RP`` rows carry the judge's reasoning score in ``acc``."""
    rows = _keyed(_rows(data), "Task")
    reasoning = {name.removesuffix("_RP"): row for name, row in rows.items() if name.endswith("_RP")}
    judged = {name: row for name, row in rows.items() if not name.endswith("_RP")}
    if "Overall" not in judged:
        raise ValueError("no 'Overall' row")
    metrics = {name: _judged(row) | _reasoning(reasoning.get(name)) for name, row in judged.items()}
    tasks: dict[str, TaskResult] = {}
    for name in judged:
        if name != "Overall":
            _add_task(tasks, name, metrics[name])
    return EvaluationResult(tasks=tasks, groups={"ocr_reasoning": GroupResult(metrics=metrics["Overall"])})


def _reasoning(row: Row | None) -> dict[str, MetricResult]:
    """The reasoning score: the judge's 1..10 rating / 10, averaged, in percent (``hit`` is a dummy 0)."""
    if row is None:
        return {}
    return _metrics(reasoning_score=_score(_required(row, "acc") / 100, count=_required(row, "tot")))


_SLIDEVQA_METRICS = {"anls": "anls", "EM": "exact_match", "F1": "f1"}


def _parse_slidevqa(data: object) -> EvaluationResult:
    """``SlideVQA_acc``: rows ``anls``, ``EM``, ``F1`` with ``num`` samples and the mean ``avg`` on 0..1."""
    rows = _keyed(_rows(data), "category")
    scores = {
        metric: _score(_required(rows[name], "avg"), count=_required(rows[name], "num"))
        for name, metric in _SLIDEVQA_METRICS.items()
    }
    return EvaluationResult(groups={"slidevqa": GroupResult(metrics=_metrics(**scores))})


# Dataset name as it appears in the file name -> parser. The longest matching name wins.
_PARSERS: dict[str, Callable[[object], EvaluationResult]] = {
    "OCRBench": _parse_ocrbench,
    "ChartQA_TEST": _parse_chartqa,
    "AI2D_TEST": lambda data: _parse_mcq(data, group="ai2d"),
    "AI2D_TEST_NO_MASK": lambda data: _parse_mcq(data, group="ai2d"),
    "MMMU_DEV_VAL": lambda data: _parse_mcq(data, group="mmmu"),
    "MathVista_MINI": _parse_mathvista,
    "OCR_Reasoning": _parse_ocr_reasoning,
    "SLIDEVQA": _parse_slidevqa,
    "SLIDEVQA_MINI": _parse_slidevqa,
}
