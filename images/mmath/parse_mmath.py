"""MMATH results and per-sample records, read from the files nvidia-mmath 26.3 and run_mmath.py write (stdlib only).

``mmath --output-dir D --model-name M --lang L`` writes, in ``D/M/`` (``M`` may hold ``/``):

- ``L.json``: all 374 problems of the language, in the package's order (``question``, ``answer``, ``data_source``,
  ``data_source_id``, ``lang``, ``gid``), each asked one (the first ``--limit`` ones with a limit) with mmath's
  ``final_prompt`` (question and the language's instruction to box the answer), ``prediction_<gid>`` (the model's
  text), ``pred_answer_<gid>`` (what ``math_postprocess_v2`` extracted: the last ``\\boxed{}``, else the last
  number, else the string ``"None"``) and ``correct_<gid>`` (math-verify's verdict against ``answer``);
- ``metrics_L.json``: accuracy per source (``AIME2024``, ``AIME2025``, ``CNMO``, ``MATH500``) over the problems
  asked, and ``micro_avg``, which is in fact the mean of those accuracies (a macro average);
- ``lcr_L.json`` (run_mmath.py): each answered problem's detected language, of its thinking (before the last
  ``</think>``) and of its answer, by ``gid``.

results.yml, as NVIDIA's parser names them: a task per source with ``accuracy``; the group ``MMATH`` with
``accuracy`` (mmath's ``micro_avg``). Ours besides: each task's and the group's ``language_consistency``
(``thinking_lcr``, ``answering_lcr``: the fraction of answers detected in the task's language, as mmath's
calculate_lcr.py counts it, on 0..1), and the group's ``accuracy.scores.micro_accuracy`` (correct / asked).

A record per asked problem: task = its source, ``sample_id`` = ``<gid>#<hash of the dataset row>``, ``input`` =
the chat message mmath sent, ``target`` = ``answer``; ``scored``, or ``unscored`` (accuracy 0, as mmath counts it)
when no answer could be extracted.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, GroupResult, MetricResult, Score, ScoreStats, TaskResult
from orchestrator.schema.samples import Message, SampleRecord, sample_id

GROUP = "MMATH"
LANGUAGES = ("en", "zh", "ar", "es", "fr", "ja", "ko", "pt", "th", "vi")
_ADDED = re.compile(r"^(final_prompt|(prediction|pred_answer|correct)_\d+)$")
_LAYOUT = "<model>/metrics_<lang>.json beside <model>/<lang>.json"
NOTHING_EXTRACTED = ("None", None)
"""``pred_answer`` when mmath found no boxed answer and no number (its ``_get_last_digit`` returns ``str(None)``)."""


def parse(output_dir: Path) -> EvaluationResult:
    """Results of the one language run under ``output_dir`` (see the module docstring)."""
    folder, lang = _run_folder(output_dir)
    metrics = _load(folder / f"metrics_{lang}.json")
    if not isinstance(metrics, dict) or "micro_avg" not in metrics:
        raise ResultsParseError(f"{folder / f'metrics_{lang}.json'}: no micro_avg", hint=_hint())
    records = _records(folder, lang)
    tasks: dict[str, TaskResult] = {}
    for source, value in metrics.items():
        if source == "micro_avg":
            continue
        mine = [r for r in records if r.task == source]
        scores = {"accuracy": _score(value, mine, "accuracy")}
        tasks[source] = TaskResult(metrics={"accuracy": MetricResult(scores=scores)} | _lcr(mine))
    overall = {"accuracy": _score(_number(metrics["micro_avg"]), [], "accuracy"),
               "micro_accuracy": _mean(records, "accuracy")}
    group = GroupResult(metrics={"accuracy": MetricResult(scores=overall)} | _lcr(records))
    return EvaluationResult(tasks=tasks, groups={GROUP: group})


def parse_samples(output_dir: Path) -> list[SampleRecord]:
    """A record per problem asked (see the module docstring)."""
    folder, lang = _run_folder(output_dir)
    return _records(folder, lang)


# ---- files -----------------------------------------------------------------------------------------------


def _hint() -> str:
    return f"mmath writes {_LAYOUT} under --output-dir; the run may have failed before writing them, see the log"


def _run_folder(output_dir: Path) -> tuple[Path, str]:
    """The folder of the run's files and its language: exactly one ``metrics_<lang>.json`` below ``output_dir``."""
    if not output_dir.is_dir():
        raise ResultsParseError(f"mmath output directory {output_dir} does not exist")
    found = [(path.parent, path.stem.removeprefix("metrics_")) for path in sorted(output_dir.rglob("metrics_*.json"))
             if path.stem.removeprefix("metrics_") in LANGUAGES]
    if not found:
        raise ResultsParseError(f"no mmath metrics file under {output_dir}", hint=_hint())
    if len(found) > 1:
        listing = ", ".join(str(folder.relative_to(output_dir) / f"metrics_{lang}.json") for folder, lang in found)
        raise ResultsParseError(f"several mmath runs under {output_dir} ({listing})",
                                hint="run one language (one model) per output directory")
    return found[0]


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise ResultsParseError(f"cannot read mmath output {path}: {err}", hint=_hint()) from err


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultsParseError(f"mmath metric {value!r} is not a number", hint=_hint())
    return float(value)


# ---- records ---------------------------------------------------------------------------------------------


def _records(folder: Path, lang: str) -> list[SampleRecord]:
    problems = _load(folder / f"{lang}.json")
    if not isinstance(problems, list) or not all(isinstance(p, dict) for p in problems):
        raise ResultsParseError(f"{folder / f'{lang}.json'}: not a list of problems", hint=_hint())
    lcr_path = folder / f"lcr_{lang}.json"
    detected = _load(lcr_path).get("detected", {}) if lcr_path.is_file() else {}
    records = []
    for problem in problems:
        try:
            gid = problem["gid"]
            if f"correct_{gid}" not in problem:
                continue  # not asked (--limit)
            records.append(_record(problem, gid, lang, detected.get(str(gid))))
        except (KeyError, TypeError, ValueError) as err:
            raise ResultsParseError(f"{folder / f'{lang}.json'}: problem {problem.get('gid')!r} is not as mmath "
                                    f"26.3 writes it: {err}", hint=_hint()) from err
    return records


def _record(problem: dict[str, Any], gid: int, lang: str, detected: dict[str, str] | None) -> SampleRecord:
    document = {key: value for key, value in problem.items() if not _ADDED.match(key)}
    scores = {"accuracy": 1.0 if problem[f"correct_{gid}"] is True else 0.0}
    if detected is not None:
        scores |= {"thinking_lcr": float(detected["thinking"] == lang),
                   "answering_lcr": float(detected["answering"] == lang)}
    extracted = problem.get(f"pred_answer_{gid}")
    unscored = extracted in NOTHING_EXTRACTED
    return SampleRecord(
        task=str(problem["data_source"]), sample_id=sample_id(gid, document),
        input=[Message(role="user", content=str(problem["final_prompt"]))], target=problem["answer"],
        prediction=problem[f"prediction_{gid}"], scores=scores, status="unscored" if unscored else "scored",
        error="no boxed answer and no number in the prediction" if unscored else None)


# ---- scores ----------------------------------------------------------------------------------------------


def _score(value: Any, records: list[SampleRecord], name: str) -> Score:
    """mmath's value, with the count and sum of the records' ``name`` scores where there are records."""
    if not records:
        return Score(value=_number(value))
    return Score(value=_number(value), stats=ScoreStats(count=len(records),
                                                        sum=math.fsum(r.scores[name] for r in records)))


def _mean(records: list[SampleRecord], name: str) -> Score:
    values = [r.scores[name] for r in records if name in r.scores]
    if not values:
        return Score(value=0.0, stats=ScoreStats(count=0))
    return Score(value=math.fsum(values) / len(values), stats=ScoreStats(count=len(values), sum=math.fsum(values)))


def _lcr(records: list[SampleRecord]) -> dict[str, MetricResult]:
    """``language_consistency`` over ``records`` (none when run_mmath.py wrote no detections)."""
    if not records or any("answering_lcr" not in r.scores for r in records):
        return {}
    scores = {name: _mean(records, name) for name in ("thinking_lcr", "answering_lcr")}
    return {"language_consistency": MetricResult(scores=scores)}
