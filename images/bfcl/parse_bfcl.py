"""BFCL results and samples, read from the files BFCL and run_bfcl.py write (stdlib and orchestrator only).

Under the output directory (``run_bfcl.py run --output_dir D``; ``<model>`` is the model id with ``/`` as ``_``):

- ``score/<model>/BFCL_v3_<category>_score.json``: BFCL's score file, JSON lines; the first
  ``{"accuracy", "correct_count", "total_count"}``, then one line per entry scored wrong (``id``, ``error_type``...).
- ``result/<model>/BFCL_v3_<category>_result.json``: BFCL's per-entry answers (``id``, ``result``: the model's text
  when prompted, its calls ``[{name: arguments JSON}]`` with native calling, a list per turn and step in multi-turn;
  ``"Error during inference: ..."`` when the request failed).
- ``bfcl_entries.jsonl`` (run_bfcl.py): per entry its dataset document, the reference answer and the messages and
  tools of its first request.

Each category is a task with ``accuracy`` (BFCL's correct_count / total_count); the group ``bfcl`` holds the
accuracy over every entry run (micro average) and ``bfcl_live``, ``bfcl_non_live``, ``bfcl_multi_turn`` the same
for BFCL's three sections. BFCL's leaderboard CSVs (score/data_*.csv) are not read: they count every category not
run, the executable ones this image never runs included, as 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, GroupResult, MetricResult, Score, ScoreStats, TaskResult
from orchestrator.schema.samples import Message, SampleRecord, SampleStatus, sample_id

PREFIX = "BFCL_v3_"
ENTRIES_FILE = "bfcl_entries.jsonl"
INFERENCE_ERROR = "Error during inference"
METRIC = "accuracy"
UNSCORED_TYPES = ("decoder_failed", "wrong_output_format")
"""BFCL error types meaning no call could be read from the answer (in the AST categories): unscored, score 0."""


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        raise ResultsParseError(f"cannot read BFCL file {path}: {error}") from error
    if not all(isinstance(row, dict) for row in rows):
        raise ResultsParseError(f"{path}: expected one JSON object per line, as BFCL writes")
    return rows


def _category(path: Path, suffix: str) -> str:
    return path.name.removeprefix(PREFIX).removesuffix(suffix)


def _model_dir(output_dir: Path, kind: str) -> Path:
    folders = sorted(p for p in (output_dir / kind).glob("*") if p.is_dir()) if (output_dir / kind).is_dir() else []
    if len(folders) != 1:
        found = "none" if not folders else ", ".join(p.name for p in folders)
        raise ResultsParseError(f"expected one model folder under {output_dir / kind}, found {found}",
                                hint="BFCL's evaluation step may have failed (see logs/harness.log); "
                                     "run one model per output directory")
    return folders[0]


def _scores(output_dir: Path) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """category -> (BFCL's summary line, its lines for the entries scored wrong)."""
    found: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for path in sorted(_model_dir(output_dir, "score").glob(f"{PREFIX}*_score.json")):
        rows = _lines(path)
        if not rows or not {"accuracy", "correct_count", "total_count"} <= set(rows[0]):
            raise ResultsParseError(f"{path}: no summary line (accuracy, correct_count, total_count) first")
        found[_category(path, "_score.json")] = (rows[0], rows[1:])
    if not found:
        raise ResultsParseError(f"no BFCL score file under {output_dir / 'score'}",
                                hint="BFCL's evaluation step wrote none; see logs/harness.log")
    return found


def _section(category: str) -> str:
    if category.startswith("multi_turn"):
        return "bfcl_multi_turn"
    return "bfcl_live" if category.startswith("live_") else "bfcl_non_live"


def _score(correct: int, total: int) -> Score:
    return Score(value=correct / total if total else 0.0, stats=ScoreStats(count=total, sum=float(correct)))


def _metric(correct: int, total: int) -> dict[str, MetricResult]:
    return {METRIC: MetricResult(scores={METRIC: _score(correct, total)})}


def parse(output_dir: Path) -> EvaluationResult:
    """Each category's accuracy as BFCL scored it, and micro averages over all of them and per section."""
    tasks: dict[str, TaskResult] = {}
    totals: dict[str, list[int]] = {}
    for category, (summary, _) in _scores(output_dir).items():
        try:
            correct, total = int(summary["correct_count"]), int(summary["total_count"])
        except (TypeError, ValueError) as error:
            raise ResultsParseError(f"BFCL score of {category}: counts are not numbers: {error}") from error
        tasks[category] = TaskResult(metrics=_metric(correct, total))
        for group in ("bfcl", _section(category)):
            pair = totals.setdefault(group, [0, 0])
            pair[0] += correct
            pair[1] += total
    groups = {name: GroupResult(metrics=_metric(correct, total)) for name, (correct, total) in totals.items()}
    return EvaluationResult(tasks=tasks, groups=groups)


def _entries(output_dir: Path) -> dict[str, dict[str, Any]]:
    path = output_dir / ENTRIES_FILE
    return {str(row.get("id")): row for row in _lines(path)} if path.is_file() else {}


def _input(entry: dict[str, Any]) -> str | list[Message]:
    messages = entry.get("messages")
    if isinstance(messages, list) and all(
            isinstance(m, dict) and set(m) == {"role", "content"} and isinstance(m["content"], str)
            for m in messages):
        return [Message(role=str(m["role"]), content=m["content"]) for m in messages]
    return ""


def _status(result: Any, wrong: dict[str, Any] | None, category: str) -> tuple[SampleStatus, str | None]:
    if isinstance(result, str) and result.startswith(INFERENCE_ERROR):
        return "error", result
    if wrong is None:
        return "scored", None
    kind = str(wrong.get("error_type", ""))
    if kind == "multi_turn:inference_error":
        return "error", "; ".join(map(str, wrong.get("error", {}).get("error_message", []) or [kind]))
    if "relevance" not in category and any(t in kind for t in UNSCORED_TYPES):
        return "unscored", kind
    return "scored", None


def parse_samples(output_dir: Path) -> list[SampleRecord]:
    """One record per entry BFCL answered, scored 1 or 0 as BFCL scored it."""
    scores = _scores(output_dir)
    entries = _entries(output_dir)
    result_dir = _model_dir(output_dir, "result")
    records: list[SampleRecord] = []
    for category, (_, wrong_rows) in scores.items():
        wrong = {str(row.get("id")): row for row in wrong_rows}
        for row in _lines(result_dir / f"{PREFIX}{category}_result.json"):
            entry_id = str(row.get("id"))
            entry = entries.get(entry_id, {})
            result = row.get("result")
            status, error = _status(result, wrong.get(entry_id), category)
            records.append(SampleRecord(
                task=category,
                sample_id=sample_id(entry_id, entry.get("document", {"id": entry_id})),
                input=_input(entry),
                target=entry.get("target"),
                prediction=None if status == "error" else (result if isinstance(result, str) else json.dumps(result)),
                scores={} if status == "error" else {METRIC: 0.0 if entry_id in wrong else 1.0},
                status=status,
                error=error,
            ))
    return records
