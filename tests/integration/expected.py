"""Expected scores, computed from the sample data with the test endpoint's documented rules.

These re-derive what the endpoint answers (tests/endpoint/README.md) independently of its code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "data"


def _rows(name: str, limit: int) -> list[dict[str, object]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()][:limit]


def gsm8k_flexible(limit: int) -> float:
    """The endpoint answers 'The answer is N.', N the last integer of the question."""
    hits = 0
    rows = _rows("gsm8k_sample.jsonl", limit)
    for row in rows:
        numbers = re.findall(r"[0-9]+", str(row["question"]))
        answer = str(int(numbers[-1])) if numbers else None
        gold = str(row["answer"]).split("####")[-1].strip().replace(",", "")
        hits += answer == gold
    return hits / len(rows)


def arc_scores(limit: int) -> tuple[float, float]:
    """(acc, acc_norm): a choice's loglikelihood is -(bytes of ' ' + choice)/64; acc_norm divides by len(choice)."""
    acc = norm = 0
    rows = _rows("arc_challenge_sample.jsonl", limit)
    for row in rows:
        choices = row["choices"]
        assert isinstance(choices, dict)
        texts, labels = list(choices["text"]), list(choices["label"])
        gold = labels.index(row["answerKey"])
        logliks = [-sum((" " + text).encode()) / 64 for text in texts]
        normed = [ll / len(text) for ll, text in zip(logliks, texts, strict=True)]
        acc += logliks.index(max(logliks)) == gold
        norm += normed.index(max(normed)) == gold
    return acc / len(rows), norm / len(rows)


def mmlu_acc(limit: int) -> float:
    """Choices are the letters A-D: ' A' has the smallest byte sum, so the endpoint always picks A."""
    rows = _rows("mmlu_sample.jsonl", limit)
    return sum(row["answer"] == 0 for row in rows) / len(rows)
