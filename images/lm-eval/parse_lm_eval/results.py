"""lm-evaluation-harness results: read the harness's own results JSON (stdlib only) into an :class:`EvaluationResult`.

lm-eval 0.4.x writes ``<output_path>/<model_name_sanitized>/results_<YYYY-MM-DDTHH-MM-SS.ffffff>.json``
(``<stem>_<timestamp>.json`` beside it when ``--output_path`` ends in ``.json``) and, with ``--log_samples``,
``samples_<task>_<timestamp>.jsonl``. In a results file, ``results`` maps every task *and* group to entries
such as ``{"alias": "mmlu", "acc,none": 0.5, "acc_stderr,none": 0.1}``; ``groups`` repeats the groups that
aggregate metrics; ``group_subtasks`` lists every group's members; ``n-samples.<task>.effective`` is the
number of samples a task was scored on, and a group entry's ``sample_count`` the same per metric.

Metric ``X,none`` becomes ``X`` and ``X,<filter>`` becomes ``X__<filter>`` (NVIDIA's naming); its
``X_stderr,<filter>`` becomes ``stats.stderr`` (``"N/A"`` -> None). Values stay as lm-eval reports them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, GroupResult, MetricResult, Score, ScoreStats, TaskResult

Entry = Mapping[str, object]

_TIMESTAMP = re.compile(r"_(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)\.json$")
_LAYOUT = "<output_path>/<model>/results_<timestamp>.json"


def parse(output_dir: Path) -> EvaluationResult:
    """Parse the newest lm-eval results file below ``output_dir`` (the run's ``--output_path``)."""
    path = newest_results_file(output_dir)
    data = load_results(path)
    results = _section(data, "results", path, required=True)
    if not results:
        raise ResultsParseError(
            f"{path}: the 'results' section is empty", hint="lm-eval ran no task; see the harness log"
        )
    group_entries = _section(data, "groups", path)
    group_names = set(group_entries) | set(_section(data, "group_subtasks", path))
    n_samples = _section(data, "n-samples", path)
    tasks = {
        name: TaskResult(metrics=_metrics(entry, count=_as_int(n_samples.get(name, {}).get("effective"))))
        for name, entry in results.items()
        if name not in group_names
    }
    groups = {name: GroupResult(metrics=_metrics(entry, count=None)) for name, entry in group_entries.items()}
    if not groups:
        # A run without groups reports each task as its own group too, as NVIDIA's parser does.
        groups = {name: GroupResult(metrics=task.metrics) for name, task in tasks.items()}
    return EvaluationResult(tasks=tasks, groups=groups)


# ---- finding and reading the results file ------------------------------------------------------


def newest_results_file(output_dir: Path) -> Path:
    """The results file of the newest run below ``output_dir``: the one :func:`parse` reads."""
    return _newest(_results_files(output_dir), output_dir)


def run_timestamp(path: Path) -> str | None:
    """The timestamp lm-eval put in a results file's name; the run's samples files carry the same one."""
    match = _TIMESTAMP.search(path.name)
    return match.group(1) if match else None


def _results_files(output_dir: Path) -> list[Path]:
    """Every lm-eval results file below ``output_dir`` (samples files are ``.jsonl`` and never match)."""
    if not output_dir.is_dir():
        raise ResultsParseError(f"lm-eval output directory {output_dir} does not exist")
    return sorted(
        path
        for path in output_dir.rglob("*.json")
        if path.is_file() and (path.name.startswith("results") or _TIMESTAMP.search(path.name))
    )


def _newest(files: list[Path], output_dir: Path) -> Path:
    """The file written last: by the timestamp lm-eval puts in its name, else by modification time."""
    if not files:
        raise ResultsParseError(
            f"no lm-eval results file under {output_dir}",
            hint=f"expected {_LAYOUT}; the harness may have failed before writing results, see the harness log",
        )
    return max(files, key=lambda path: (_written_at(path), str(path)))


def _written_at(path: Path) -> datetime:
    match = _TIMESTAMP.search(path.name)
    if match:
        stamp = match.group(1)
        try:
            return datetime.strptime(stamp, "%Y-%m-%dT%H-%M-%S.%f" if "." in stamp else "%Y-%m-%dT%H-%M-%S")
        except ValueError:
            pass  # not a real date: fall back to the file's modification time
    return datetime.fromtimestamp(path.stat().st_mtime)


def load_results(path: Path) -> Entry:
    """A results file's JSON object; an unreadable file is a :class:`ResultsParseError`."""
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:  # ValueError: JSON, UTF-8, an integer too long
        raise ResultsParseError(
            f"{path}: cannot read lm-eval results: {err}",
            hint="the file may be truncated (harness killed while writing?); rerun the evaluation",
        ) from err
    if not isinstance(data, dict):
        raise ResultsParseError(
            f"{path}: expected a JSON object, found {type(data).__name__}", hint=f"expected {_LAYOUT}"
        )
    return data


def _section(data: Entry, name: str, path: Path, *, required: bool = False) -> dict[str, Entry]:
    """``data[name]`` as ``{task or group: entry}``; an optional section may be missing or null."""
    section = data.get(name)
    if section is None and not required:
        return {}
    if not isinstance(section, dict):
        raise ResultsParseError(
            f"{path}: the '{name}' section is missing or not a JSON object",
            hint=f"not an lm-eval results file? expected {_LAYOUT}",
        )
    return {key: (value if isinstance(value, dict) else {}) for key, value in section.items()}


# ---- metrics ------------------------------------------------------------------------------------


def _metrics(entry: Entry, *, count: int | None) -> dict[str, MetricResult]:
    """Numeric ``metric,filter`` entries as metrics; ``alias``, ``name``, ``sample_len`` and stderr keys are skipped.

    ``count`` is the task's sample count; a group entry carries its own per-metric ``sample_count``.
    """
    per_metric = entry.get("sample_count")
    counts: Entry = per_metric if isinstance(per_metric, dict) else {}
    metrics: dict[str, MetricResult] = {}
    for key, raw in entry.items():
        metric, comma, filter_name = key.rpartition(",")
        value = _as_float(raw)
        if not comma or metric.endswith("_stderr") or value is None:
            continue
        name = metric if filter_name == "none" else f"{metric}__{filter_name}"
        stats = ScoreStats(
            count=_as_int(counts.get(key)) if key in counts else count,
            # lm-eval writes "N/A" when it cannot compute a standard error (e.g. from one sample).
            stderr=_as_float(entry.get(f"{metric}_stderr,{filter_name}")),
        )
        metrics[name] = MetricResult(scores={name: Score(value=value, stats=stats)})
    return metrics


def _as_float(value: object) -> float | None:
    """A JSON number as float; strings such as "N/A", null, booleans and containers are None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
