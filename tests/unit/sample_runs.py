"""Synthetic runs for the compare and gate tests: samples.jsonl written through SampleRecord, and a results.yml."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator.schema.loading import dump_yaml, load_model
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord, SampleStatus, dump_line, sample_id

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "fixtures" / "results" / "lm_eval_results.yml"
SHA = "9d4a709c9b8b854def2000654af1ed218a5357b828b7af795157cc54a354e539"


def records(task: str, scores: Sequence[float | dict[str, float]], *, metric: str = "acc",
            statuses: Sequence[SampleStatus] | None = None, dataset: str = "v1", first: int = 0,
            predictions: Sequence[str] | None = None) -> list[SampleRecord]:
    """One record per score (a number is ``{metric: number}``); ``dataset`` changes every sample's hash."""
    found = []
    for i, score in enumerate(scores):
        doc = first + i
        status = statuses[i] if statuses else "scored"
        found.append(SampleRecord(
            task=task, sample_id=sample_id(doc, {"question": f"q{doc}", "dataset": dataset}),
            input=f"Question {doc}: what is {doc} + {doc}?", target=str(2 * doc),
            prediction=None if status == "error" else (predictions[i] if predictions else f"answer {doc}"),
            scores={} if status == "error" else (score if isinstance(score, dict) else {metric: float(score)}),
            status=status, error="endpoint failed after 3 retries" if status == "error" else None))
    return found


def write_run(directory: Path, samples: list[SampleRecord], *, harness_version: str | None = "0.4.13",
              framework_sha256: str = SHA, results: bool = True) -> Path:
    """A task output directory holding ``samples`` (and a results.yml naming the harness version and hash)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SAMPLES_FILE).write_text("".join(dump_line(record) for record in samples), encoding="utf-8")
    if results:
        document = load_model(ResultsFile, RESULTS)
        document.provenance.harness_version = harness_version
        document.provenance.framework_sha256 = framework_sha256
        (directory / "results.yml").write_text(dump_yaml(document.model_dump(mode="json")), encoding="utf-8")
    return directory
