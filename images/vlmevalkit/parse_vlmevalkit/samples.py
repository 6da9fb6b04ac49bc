"""VLMEvalKit per-sample records: the prediction file and, where the dataset has one, the judged file, on ``index``.

``vlmeval.run --work-dir D`` writes, in ``D/<model>/T<date>_G<commit>/`` (symlinked into ``D/<model>/``):

- ``<model>_<DATASET>.xlsx``: the dataset's rows (``image`` dropped) and the model's ``prediction``. Excel only
  (``PRED_FORMAT`` does not reach this file in VLMEvalKit 26.3), so the vlmevalkit image also writes it as
  ``<model>_<DATASET>.tsv`` with two more columns, ``evals_image_sha256`` and ``evals_prompt`` (the chat messages
  the client sent, images as sha256): see images/vlmevalkit/evals_vlmeval/records.py. Read here: ``.tsv``, or
  ``.json``/``.csv`` should a later VLMEvalKit write those; never ``.xlsx``.
- the judged file, per sample: ``<model>_<DATASET>_<judge>_result`` (multiple choice: ``hit``, ``log``),
  ``<model>_<DATASET>_<judge>`` (MathVista, OCR-Reasoning: the judge's extraction ``res``, ``log``,
  ``reason_score``; SlideVQA: ``anls``, ``em``, ``f1``);
- ``<model>_<DATASET>_evals_hit.tsv`` (the image's): each sample's hit where VLMEvalKit computes it without
  writing it (OCRBench, ChartQA, MathVista, OCR-Reasoning).

A record's ``task`` is its results.yml task (the sample's split for ChartQA, its category for OCRBench and
multiple choice, its ``task`` for MathVista and OCR-Reasoning; the group, e.g. ``slidevqa``, where results.yml has
no tasks); ``sample_id`` is ``index`` plus the hash of the row's dataset columns (every column but ``prediction``
and ours, with the images' sha256s); ``scores`` are named like results.yml's metrics (``accuracy``,
``prefetch_rate``, ``reasoning_score``, ``anls``, ``exact_match``, ``f1``). For MMMU ``accuracy`` covers every
split; results.yml's headline is the validation split's. ``input`` is the prompt as sent when the file has
``evals_prompt``; without it (a run without the image's patches) it is the question and its options as text,
not the exact prompt.

A prediction holding VLMEvalKit's ``FAIL_MSG`` (its API client gives up: the endpoint failed after every retry) is
status ``error`` with that text and no scores, whatever the judge made of it. An answer the judge could not map to
an option (VLMEvalKit then picks one at random) or could not extract is ``unscored``, with the hit VLMEvalKit
counted and its log as ``error``.
"""

from __future__ import annotations

import ast
import csv
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.samples import Message, SampleRecord, sample_id

from .results import task_name

FAIL_MSG = "Failed to obtain answer via API."
"""What VLMEvalKit 26.3's API clients return after their last failed attempt (``vlmeval/api/base.py``; ``GPT4V``
adds a space), which ``vlmeval/inference.py`` matches with ``in`` too."""
HIT_SUFFIX = "_evals_hit"
PROMPT, IMAGES = "evals_prompt", "evals_image_sha256"
_READABLE = (".tsv", ".json", ".csv")
_NOT_DATASET = {"prediction", PROMPT, IMAGES, "image"}

Row = Mapping[str, str]


@dataclass(frozen=True)
class _Judged:
    """A sample's harness scores, and why it is unscored (None: scored)."""

    scores: dict[str, float]
    unscored: str | None = None


@dataclass(frozen=True)
class _Dataset:
    group: str
    task_columns: tuple[str, ...]
    judged: str | None  # how the judged file's name ends after <model>_<DATASET>_<judge>: "_result", "" or None
    score: Callable[[Row, Row | None, float | None], _Judged]


def parse_samples(output_dir: Path) -> list[SampleRecord]:
    """The records of every dataset whose prediction file is below ``output_dir`` (the run's ``--work-dir``)."""
    if not output_dir.is_dir():
        raise ResultsParseError(f"VLMEvalKit output directory {output_dir} does not exist")
    records: list[SampleRecord] = []
    for dataset, prediction in _predictions(output_dir):
        records.extend(_records(dataset, prediction))
    return records


# ---- files ------------------------------------------------------------------------------------------------------


def _predictions(output_dir: Path) -> list[tuple[str, Path]]:
    """(dataset, newest readable prediction file) per dataset; a prediction only in Excel is an error."""
    found: dict[str, list[Path]] = {}
    excel_only: list[Path] = []
    for model_dir in sorted(p for p in output_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        for path in sorted(model_dir.rglob(f"{model_dir.name}_*")):
            if path.is_symlink() or not path.is_file():  # vlmeval.run's links point at the T<date>_G<commit> files
                continue
            dataset = path.stem[len(model_dir.name) + 1 :]
            if dataset not in DATASETS:
                continue
            if path.suffix in _READABLE:
                found.setdefault(dataset, []).append(path)
            elif path.suffix == ".xlsx" and not any(path.with_suffix(s).is_file() for s in _READABLE):
                excel_only.append(path)
    if excel_only and not found:
        raise ResultsParseError(
            f"VLMEvalKit wrote its predictions only as Excel workbooks ({', '.join(map(str, excel_only))})",
            hint="the vlmevalkit image writes a .tsv copy beside each (evals_vlmeval/records.py); was it run "
                 "with EVALS_VLMEVAL_PATCHES=0?",
        )
    return [(name, max(paths, key=lambda p: (p.stat().st_mtime_ns, str(p)))) for name, paths in sorted(found.items())]


def _beside(prediction: Path, suffix_ok: Callable[[str], bool]) -> Path | None:
    """The readable file next to ``prediction`` named ``<prediction stem>_<suffix>`` with ``suffix_ok(suffix)``.

    A judge named ``org/model`` puts a ``/`` into the name, so the file may sit one directory further down.
    """
    stem = prediction.stem + "_"
    for path in sorted(prediction.parent.rglob("*")):
        relative = path.relative_to(prediction.parent).with_suffix("").as_posix()
        if (relative.startswith(stem) and path.suffix in _READABLE and path.is_file() and not path.is_symlink()
                and suffix_ok(relative[len(stem):])):
            return path
    return None


def _table(path: Path) -> list[dict[str, str]]:
    """Rows of a TSV/CSV (pandas ``to_csv``) or JSON records file, every cell as text (empty for NaN/null)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if path.suffix == ".json":
                data = json.load(handle)
                if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
                    raise ValueError("expected a list of records")
                return [{str(k): "" if v is None else str(v) for k, v in row.items()} for row in data]
            csv.field_size_limit(sys.maxsize)
            return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))
    except (OSError, ValueError, csv.Error) as err:
        raise ResultsParseError(f"cannot read VLMEvalKit per-sample file {path}: {err}") from err


def _by_index(path: Path | None, columns: tuple[str, ...]) -> dict[str, dict[str, str]]:
    if path is None:
        return {}
    rows = _table(path)
    missing = [c for c in ("index", *columns) if rows and c not in rows[0]]
    if missing:
        raise ResultsParseError(f"{path}: no column {missing[0]!r}; not a VLMEvalKit per-sample file as expected")
    return {row["index"]: row for row in rows}


# ---- records ----------------------------------------------------------------------------------------------------


def _records(name: str, prediction: Path) -> list[SampleRecord]:
    dataset = DATASETS[name]
    rows = _table(prediction)
    if rows and ("index" not in rows[0] or "prediction" not in rows[0]):
        raise ResultsParseError(f"{prediction}: no 'index' or 'prediction' column; not a VLMEvalKit prediction file")
    judged = _by_index(_judged_file(dataset, prediction), ())
    hits = _by_index(_beside(prediction, lambda suffix: "_" + suffix == HIT_SUFFIX), ("hit",))
    records = []
    for row in rows:
        try:
            records.append(_record(dataset, row, judged.get(row["index"]), hits.get(row["index"])))
        except (ValueError, SyntaxError, KeyError, ValidationError) as err:
            raise ResultsParseError(f"{prediction}: sample {row['index']!r}: {err}") from err
    return records


def _judged_file(dataset: _Dataset, prediction: Path) -> Path | None:
    if dataset.judged is None:
        return None
    ours = ("_score", "_acc", HIT_SUFFIX, "_result", "_rating")
    if dataset.judged:
        return _beside(prediction, lambda suffix: suffix.endswith(dataset.judged or "") and "_score" not in suffix)
    return _beside(prediction, lambda suffix: not any(("_" + suffix).endswith(end) for end in ours))


def _record(dataset: _Dataset, row: Row, judged: Row | None, hit_row: Row | None) -> SampleRecord:
    document = {k: v for k, v in row.items() if k not in _NOT_DATASET}
    if row.get(IMAGES):
        document["image_sha256"] = json.loads(row[IMAGES])
    task = next((task_name(row[c]) for c in dataset.task_columns if row.get(c)), dataset.group)
    common = {"task": task, "sample_id": sample_id(row["index"], document), "input": _input(row),
              "target": _target(row)}
    prediction = row["prediction"]
    if FAIL_MSG in prediction:
        return SampleRecord(**common, status="error", error=prediction.strip())
    hit = float(hit_row["hit"]) if hit_row is not None and hit_row["hit"] != "" else None
    result = dataset.score(row, judged, hit)
    status = "unscored" if result.unscored is not None else "scored"
    return SampleRecord(**common, prediction=prediction, scores=result.scores, status=status, error=result.unscored)


def _input(row: Row) -> str | list[Message]:
    """The messages as sent (``evals_prompt``), else the question and its options (not the exact prompt)."""
    if row.get(PROMPT):
        return [Message.model_validate(message) for message in json.loads(row[PROMPT])]
    options = [f"{letter}. {row[letter]}" for letter in "ABCDEFGHI" if row.get(letter)]
    return "\n".join([row.get("question", ""), *options])


def _target(row: Row) -> object:
    answer = row.get("answer", "")
    if answer.startswith("[") and answer.endswith("]"):  # OCRBench: a Python list literal VLMEvalKit evals
        try:
            return ast.literal_eval(answer)
        except (ValueError, SyntaxError):
            return answer
    return answer


# ---- per-dataset scores -----------------------------------------------------------------------------------------


def _missing(what: str) -> _Judged:
    return _Judged({}, f"no per-sample {what} in the run's files (the evaluation step may have failed)")


def _hit_only(row: Row, judged: Row | None, hit: float | None) -> _Judged:
    """OCRBench, ChartQA: the hit computed with VLMEvalKit's own rule (``_evals_hit``)."""
    return _missing("hit") if hit is None else _Judged({"accuracy": hit})


_RANDOM = ("Failed to predict, thus randomly generate one", "Failed in Prefetch")


def _multiple_choice(row: Row, judged: Row | None, hit: float | None) -> _Judged:
    """``mcq_vanilla_eval``: ``hit`` 0/1; an answer no option matched gets a random option (``log`` says so)."""
    if judged is None:
        return _missing("judgement")
    scores = {"accuracy": float(judged["hit"])}
    log = judged.get("log", "")
    return _Judged(scores, log.strip() if any(text in log for text in _RANDOM) else None)


def _extracted(row: Row, judged: Row | None, hit: float | None) -> _Judged:
    """MathVista / OCR-Reasoning: ``post_check`` of the judge's extraction; ``res`` empty when the judge gave up."""
    if judged is None or hit is None:
        return _missing("judgement" if judged is None else "hit")
    scores = {"accuracy": hit, "prefetch_rate": float(judged["log"] == "Prefetch succeed")}
    if judged.get("reason_score", "") != "":
        scores["reasoning_score"] = float(judged["reason_score"])
    return _Judged(scores, judged["log"].strip() if judged["res"] == "" else None)


def _slidevqa(row: Row, judged: Row | None, hit: float | None) -> _Judged:
    """``SlideVQA_acc``: ANLS, exact match and F1 of the judge's extraction ``pred`` (empty: none extracted)."""
    if judged is None:
        return _missing("judgement")
    scores = {"anls": float(judged["anls"]), "exact_match": float(judged["em"] == "True" or judged["em"] == "1"),
              "f1": float(judged["f1"])}
    return _Judged(scores, (judged.get("log", "").strip() or "no answer extracted") if not judged["pred"] else None)


def _mcq(group: str) -> _Dataset:
    return _Dataset(group, ("category", "l2-category"), "_result", _multiple_choice)


DATASETS: dict[str, _Dataset] = {
    "OCRBench": _Dataset("ocrbench", ("category",), None, _hit_only),
    "ChartQA_TEST": _Dataset("chartqa", ("split", "category"), None, _hit_only),
    "AI2D_TEST": _mcq("ai2d"),
    "AI2D_TEST_NO_MASK": _mcq("ai2d"),
    "MMMU_DEV_VAL": _mcq("mmmu"),
    "MathVista_MINI": _Dataset("mathvista", ("task",), "", _extracted),
    "OCR_Reasoning": _Dataset("ocr_reasoning", ("task",), "", _extracted),
    "SLIDEVQA": _Dataset("slidevqa", (), "", _slidevqa),
    "SLIDEVQA_MINI": _Dataset("slidevqa", (), "", _slidevqa),
}
"""Dataset name in the file name -> how its samples are read (the names the results parser knows)."""
