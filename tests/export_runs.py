"""Finished task output directories to export (unit and integration tests): a results.yml with CIs, sample counts
and usage, its samples.jsonl and run_config.yml, laid out as a suite lays them out (DIR/<model>/<harness>-<task>)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.schema.loading import dump_yaml, load_model
from orchestrator.schema.results import (
    GroupResult,
    Interval,
    MetricResult,
    ResultsFile,
    SampleCounts,
    Score,
    ScoreStats,
    TaskResult,
    Usage,
)
from tests.unit.sample_runs import RESULTS, records, write_run

MODELS = {"small": 0.7, "large": 0.9}
"""Model name -> its gsm8k strict-match score."""
METRIC = "exact_match__strict-match"


def task_dir(directory: Path, *, model: str, score: float, task: str = "gsm8k") -> Path:
    """One finished task of ``model``: results.yml (a group, a task with CI and counts, usage), samples.jsonl,
    run_config.yml."""
    write_run(directory, records(task, [1.0, 0.0, 1.0]))
    document = load_model(ResultsFile, RESULTS)
    document.target.api_endpoint.model_id = model
    document.config.type = task
    ci = Interval(lower=round(score - 0.2, 6), upper=round(min(1.0, score + 0.1), 6), method="exact_binomial")
    scored = Score(value=score, stats=ScoreStats(count=10, stderr=0.1, ci95=ci))
    flexible = Score(value=score / 2, stats=ScoreStats(count=10))
    document.results.tasks = {task: TaskResult(
        metrics={METRIC: MetricResult(scores={METRIC: scored}),
                 "exact_match": MetricResult(scores={"flexible-extract": flexible})},
        samples=SampleCounts(scored=8, unscored=1, error=1))}
    document.results.groups = {f"{task}_group": GroupResult(metrics={METRIC: MetricResult(scores={
        METRIC: Score(value=score)})})}
    document.usage = Usage(requests=10, cache_hits=2, prompt_tokens=1000, completion_tokens=50)
    document.provenance.image = "evals/lm-eval:latest"
    document.provenance.image_digest = "sha256:" + "ab" * 32
    (directory / "results.yml").write_text(dump_yaml(document.model_dump(mode="json")), encoding="utf-8")
    (directory / "run_config.yml").write_text(dump_yaml({"config": {"type": task}}), encoding="utf-8")
    return directory


def suite_dir(root: Path) -> Path:
    """Two models, one task each, as a suite writes them: ROOT/<model>/lm-eval-gsm8k."""
    for model, score in MODELS.items():
        task_dir(root / model / "lm-eval-gsm8k", model=model, score=score)
    return root
