"""The sample browser's data: per task, one row per sample with each model's answer, as compact JSON for the page.

A sample is *flipped* when its correctness differs between models: for some metric whose scores are all 0 or 1, one
model scored it 1 and another 0 (samples that ended in an error are left out of that). At most
:data:`MAX_SAMPLES` samples per task are embedded (the page says how many were left out) and every text is cut
at :data:`MAX_TEXT` characters, so a page stays light enough to open with thousands of samples.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.host.compare.load import read_samples
from orchestrator.host.report.gather import TaskOutput
from orchestrator.schema.samples import SAMPLES_FILE, ImageRef, Message, SampleRecord

MAX_SAMPLES = 5000
"""Samples per task embedded in a page."""
MAX_TEXT = 4000
"""Characters of one input, target or prediction embedded in a page."""


@dataclass
class TaskSamples:
    """One task's samples, by model: ``answers[key][model]``; keys in the order first seen."""

    answers: dict[tuple[str, int], dict[str, SampleRecord]] = field(default_factory=dict)


def read_all(outputs: Sequence[TaskOutput]) -> dict[str, TaskSamples]:
    """Every sample of every output directory that has a samples.jsonl, by task (validated strictly)."""
    tasks: dict[str, TaskSamples] = {}
    for output in outputs:
        path = output.output_dir / SAMPLES_FILE
        if not path.is_file():
            continue
        for record in read_samples(path):
            found = tasks.setdefault(record.task, TaskSamples())
            found.answers.setdefault((record.sample_id, record.repeat), {})[output.model] = record
    return tasks


def flipped(answers: dict[str, SampleRecord]) -> bool:
    """Whether the models' 0/1 scores of one sample disagree (see the module docstring)."""
    scored = [record.scores for record in answers.values() if record.status != "error"]
    metrics = {metric for scores in scored for metric in scores}
    for metric in metrics:
        values = {scores[metric] for scores in scored if metric in scores}
        if values == {0.0, 1.0}:
            return True
    return False


def browser_data(samples: dict[str, TaskSamples], models: list[str]) -> dict[str, Any]:
    """What the page's script reads: the models, and per task (sorted by name) its name, how many samples it has
    and its rows: ``[sample_id, repeat, input, target, flipped, [[status, scores, prediction, error] | null per
    model]]``."""
    tasks = []
    for task in sorted(samples):
        answers = samples[task].answers
        rows = [_row(key, by_model, models) for key, by_model in itertools.islice(answers.items(), MAX_SAMPLES)]
        tasks.append({"task": task, "total": len(answers), "rows": rows})
    return {"models": models, "tasks": tasks}


def _row(key: tuple[str, int], by_model: dict[str, SampleRecord], models: list[str]) -> list[Any]:
    first = next(iter(by_model.values()))
    cells = [_answer(by_model[model]) if model in by_model else None for model in models]
    return [key[0], key[1], _cut(_input_text(first.input)), _cut(_target_text(first.target)), flipped(by_model),
            cells]


def _answer(record: SampleRecord) -> list[Any]:
    scores = ", ".join(f"{metric} {value:g}" for metric, value in record.scores.items())
    return [record.status, scores, _cut(record.prediction or ""), _cut(record.error or "")]


def _input_text(value: str | list[Message]) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(f"[{message.role}] {_content(message)}" for message in value)


def _content(message: Message) -> str:
    if isinstance(message.content, str):
        return message.content
    return " ".join(f"[image sha256:{part.sha256[:12]}]" if isinstance(part, ImageRef) else part.text
                    for part in message.content)


def _target_text(target: Any) -> str:
    if target is None:
        return ""
    return target if isinstance(target, str) else json.dumps(target, ensure_ascii=False)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else f"{text[:MAX_TEXT]}… [cut: {len(text):,} characters]"


def script_json(data: Any) -> str:
    """JSON to embed in a ``<script type="application/json">``: ``<``, ``>`` and ``&`` escaped, so no text in it
    can close the element or open another (read back with ``JSON.parse``)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def samples_missing(outputs: Sequence[TaskOutput]) -> list[Path]:
    """Output directories without a samples.jsonl (the page names them)."""
    return [output.output_dir for output in outputs if not (output.output_dir / SAMPLES_FILE).is_file()]
