"""simple-evals' output files -> results and samples.jsonl records (runs in the runtime's venv; never imports the
harness).

simple-evals writes, under ``<output_dir>/<task type>/`` (framework.yml's --out_dir): ``<eval_name>.json`` (its
metrics: ``score``, ``score:std``, ``score:stderr``, per-subset means such as ``en`` or ``stem`` with their stats,
``score_macro``, ``task_name``, ``n_repeats``), ``<eval_name>.html`` (its report) and, through our launcher,
``per_sample.jsonl`` (one line per example and repeat; see evals_simple_evals/run.py).

Results are named as NVIDIA's ``core_evals/simple_evals/output.py`` names them: group ``<task_name>`` with metric
``score`` and scores ``micro`` (``micro_avg_of_<n>`` with n repeats) and ``macro`` where the harness reports
``score_macro``; a task per subset (``<subset>`` -> ``score`` -> ``micro``), or, without subsets, the task
``<task_name>`` the same as the group. Each sample record scores that score name, so the runtime's ci95 applies.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, GroupResult, MetricResult, Score, ScoreStats, TaskResult
from orchestrator.schema.samples import Message, SampleRecord, SampleStatus, sample_id

SAMPLES_EXPORT = "per_sample.jsonl"
METRIC = "score"
_STAT_NAMES = {"std": "stddev", "stderr": "stderr", "min": "min", "max": "max", "mean": "mean"}


def run_dir(output_dir: Path) -> Path:
    """``<output_dir>/<config.type>`` (from run_config.yml, as NVIDIA's parser finds it), else the one subfolder
    holding a simple-evals results JSON."""
    config_file = output_dir / "run_config.yml"
    if config_file.is_file():
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        eval_type = (config.get("config") or {}).get("type")
        if isinstance(eval_type, str) and (output_dir / eval_type).is_dir():
            return output_dir / eval_type
    found = sorted({path.parent for path in output_dir.glob("*/*.json")})
    if len(found) != 1:
        raise ResultsParseError(f"no simple-evals results in {output_dir}" if not found else
                                f"more than one simple-evals results folder in {output_dir}: "
                                f"{', '.join(p.name for p in found)}",
                                hint="simple-evals writes <output_dir>/<task type>/<eval_name>.json; see logs/")
    return found[0]


def _metrics_file(folder: Path) -> dict[str, Any]:
    files = sorted(folder.glob("*.json"))
    if len(files) != 1:
        raise ResultsParseError(f"expected one simple-evals results JSON in {folder}, found {len(files)}",
                                hint="an output directory holds one evaluation; see logs/harness.log")
    try:
        data = json.loads(files[0].read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ResultsParseError(f"cannot read {files[0]}: {err}", hint="see logs/harness.log") from None
    if not isinstance(data, dict) or not isinstance(data.get("task_name"), str) or "score" not in data:
        raise ResultsParseError(f"{files[0]} is not a simple-evals results file (no task_name and score)",
                                hint="see logs/harness.log")
    return data


def score_names(n_repeats: int) -> tuple[str, str]:
    """The micro and macro score names, as output.py names them."""
    suffix = f"_avg_of_{n_repeats}" if n_repeats > 1 else ""
    return f"micro{suffix}", f"macro{suffix}"


def _number(value: Any, *, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultsParseError(f"{where} is not a finite number: {value!r}", hint="see logs/harness.log")
    return float(value)


def _score(data: dict[str, Any], name: str) -> Score:
    stats: dict[str, float] = {}
    for key, value in data.items():
        prefix, _, stat = key.partition(":")
        if prefix == name and stat in _STAT_NAMES:
            stats[_STAT_NAMES[stat]] = _number(value, where=key)
    return Score(value=_number(data[name], where=name), stats=ScoreStats(**stats))


def parse(output_dir: Path) -> EvaluationResult:
    """``<output_dir>/<type>/<eval_name>.json`` -> results (see the module docstring)."""
    data = _metrics_file(run_dir(output_dir))
    task_name = str(data["task_name"])
    n_repeats = int(data.get("n_repeats", 1))
    micro, macro = score_names(n_repeats)
    scores = {micro: _score(data, "score")}
    if "score_macro" in data:
        scores[macro] = _score(data, "score_macro")
    group = MetricResult(scores=scores)
    subsets = [key for key in data if ":" not in key and key not in ("task_name", "n_repeats", "score", "score_macro")]
    tasks = {name: TaskResult(metrics={METRIC: MetricResult(scores={micro: _score(data, name)})}) for name in subsets}
    if not tasks:
        tasks = {task_name: TaskResult(metrics={METRIC: MetricResult(scores={micro: scores[micro]})})}
    return EvaluationResult(groups={task_name: GroupResult(metrics={METRIC: group})}, tasks=tasks)


def _messages(convo: Any) -> tuple[list[Message], str | None]:
    """The prompt messages and the model's answer (the conversation's last assistant message)."""
    if not isinstance(convo, list) or not convo:
        return [], None
    *prompt, last = convo
    answer = last.get("content") if isinstance(last, dict) and last.get("role") == "assistant" else None
    if answer is None:
        prompt = convo
    messages = [Message(role=str(m.get("role")), content=str(m.get("content")))
                for m in prompt if isinstance(m, dict) and isinstance(m.get("content"), str)]
    return messages, answer if isinstance(answer, str) else None


def _status(line: dict[str, Any]) -> tuple[SampleStatus, str | None]:
    """``unscored`` when simple-evals extracted no answer (its report shows ``None`` or nothing), else ``scored``."""
    if "extracted_answer" in line and line["extracted_answer"].strip() in ("", "None"):
        return "unscored", "no answer could be extracted from the response"
    if line.get("score") is None:
        return "unscored", "the harness gave this sample no score"
    return "scored", None


def parse_samples(output_dir: Path) -> list[SampleRecord]:
    """``<output_dir>/<type>/per_sample.jsonl`` -> one record per (task, example, repeat); [] without it."""
    folder = run_dir(output_dir)
    export = folder / SAMPLES_EXPORT
    if not export.is_file():
        return []
    results = parse(output_dir)
    task_name = next(iter(results.groups))
    micro = next(iter(results.groups[task_name].metrics[METRIC].scores))
    records: list[SampleRecord] = []
    for number, text in enumerate(export.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError as err:
            raise ResultsParseError(f"{export}:{number}: not JSON ({err})", hint="see logs/harness.log") from None
        messages, answer = _messages(line.get("convo"))
        status, error = _status(line)
        metrics = line.get("metrics") or {}
        subsets = [name for name in metrics if name in results.tasks] or [task_name]
        for task in subsets:
            value = metrics.get(task, line.get("score")) if task != task_name else line.get("score")
            scores = {micro: float(value)} if isinstance(value, int | float) else {}  # bools too: 1.0 or 0.0
            records.append(SampleRecord(
                task=task, sample_id=sample_id(int(line["doc_index"]), line.get("doc")),
                repeat=int(line.get("repeat", 0)), input=messages, target=line.get("correct_answer"),
                prediction=answer, scores=scores, status=status, error=error))
    return records

