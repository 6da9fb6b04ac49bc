"""RULER results and samples, read from the files run_ruler.py writes (stdlib and orchestrator only).

Under the output directory, per context length ``<L>`` (tokens) that was run:

- ``ruler/<L>/data/<task>/validation.jsonl``: the samples RULER's generators wrote (``index``, ``input``,
  ``outputs`` = the references, ``length`` = tokens with the answer budget).
- ``ruler/<L>/pred/<task>.jsonl``: one line per sample, the package's prediction line (``index``, ``input``,
  ``outputs``, ``pred`` = the model's text or null when its request failed) plus ``mode`` (``chat``: ``input``
  was sent as the one user message; ``completion``: as the prompt), ``score`` (the package's per-sample metric, in
  [0, 1]; null for a failed request) and ``error``.

Each (task, length) is a task ``<task>_<L>`` (e.g. ``niah_single_1_4000``) with metric ``score``, score ``score``:
the mean over its answered samples of RULER's ``string_match_all`` (the share of the references found in the
answer, case-insensitive; ``string_match_part`` for qa_1 and qa_2: 1 if any reference is found), as a fraction
(RULER prints percent). The group ``ruler_<L>`` holds the mean of its tasks' scores (RULER's average).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, GroupResult, MetricResult, Score, ScoreStats, TaskResult
from orchestrator.schema.samples import Message, SampleRecord, sample_id

METRIC = "score"


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        raise ResultsParseError(f"cannot read RULER file {path}: {error}") from error
    if not all(isinstance(row, dict) and {"index", "input", "outputs", "score"} <= set(row) for row in rows):
        raise ResultsParseError(f"{path}: expected one prediction object per line (index, input, outputs, score)")
    return rows


def _pred_files(output_dir: Path) -> dict[str, Path]:
    """``<task>_<L>`` -> its prediction file, lengths in increasing order."""
    found: dict[str, Path] = {}
    root = output_dir / "ruler"
    lengths = sorted((p for p in root.glob("*") if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)) \
        if root.is_dir() else []
    for folder in lengths:
        for path in sorted((folder / "pred").glob("*.jsonl")):
            found[f"{path.stem}_{folder.name}"] = path
    if not found:
        raise ResultsParseError(f"no RULER prediction file under {root}/<length>/pred",
                                hint="run_ruler.py wrote none; see logs/harness.log")
    return found


def _score(values: list[float]) -> Score:
    return Score(value=sum(values) / len(values) if values else 0.0,
                 stats=ScoreStats(count=len(values), sum=float(sum(values))))


def parse(output_dir: Path) -> EvaluationResult:
    """Each task's mean score at each length, and each length's mean over its tasks (see the module docstring)."""
    tasks: dict[str, TaskResult] = {}
    per_length: dict[str, list[float]] = {}
    for name, path in _pred_files(output_dir).items():
        values = [float(row["score"]) for row in _lines(path) if row["score"] is not None]
        score = _score(values)
        tasks[name] = TaskResult(metrics={METRIC: MetricResult(scores={METRIC: score})})
        per_length.setdefault(f"ruler_{path.parent.parent.name}", []).append(score.value)
    groups = {
        group: GroupResult(metrics={METRIC: MetricResult(scores={METRIC: Score(value=sum(means) / len(means))})})
        for group, means in per_length.items()
    }
    return EvaluationResult(tasks=tasks, groups=groups)


def _input(row: dict[str, Any]) -> str | list[Message]:
    """What was sent: the chat message holding the sample's input, or the input as the completions prompt."""
    text = str(row["input"])
    return [Message(role="user", content=text)] if row.get("mode") == "chat" else text


def parse_samples(output_dir: Path) -> list[SampleRecord]:
    """One record per generated sample, with the prompt as sent and RULER's per-sample score."""
    records: list[SampleRecord] = []
    for name, path in _pred_files(output_dir).items():
        for row in _lines(path):
            failed = row["score"] is None
            document = {"index": row["index"], "input": row["input"], "outputs": row["outputs"]}
            records.append(SampleRecord(
                task=name,
                sample_id=sample_id(str(row["index"]), document),
                input=_input(row),
                target=row["outputs"],
                prediction=None if failed else row.get("pred"),
                scores={} if failed else {METRIC: float(row["score"])},
                status="error" if failed else "scored",
                error=(row.get("error") or "the request failed") if failed else None,
            ))
    return records
