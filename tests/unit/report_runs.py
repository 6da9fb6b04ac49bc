"""Runs for the report's tests: models x tasks output directories, each with results.yml (scores with 95% CIs),
samples.jsonl and the proxy's logs/requests.jsonl, made through the contract's models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from orchestrator.schema.loading import dump_yaml, load_model
from orchestrator.schema.requests import REQUESTS_FILE, RequestRecord
from orchestrator.schema.results import Interval, MetricResult, ResultsFile, Score, ScoreStats, TaskResult
from orchestrator.schema.samples import SampleStatus
from tests.unit.sample_runs import RESULTS, records, write_run

SCRIPT = "</script><script>alert(1)</script>"
IMAGE = '<img src=x onerror="alert(2)">'
HOSTILE = f"{SCRIPT} {IMAGE}"
"""A prediction that would run script if the page put it in as markup."""
MODELS = ("model-a", "model-b")
TASKS = ("gsm8k", "arc_easy")
SAMPLES = 120
"""Samples per task: more than one page of the browser (50)."""


def scores(model: int, task: int) -> list[float]:
    """0/1 scores: model-b gets every 4th sample of model-a's wrong ones right and every 11th right one wrong."""
    base = [float((i * (task + 3)) % 5 < 3) for i in range(SAMPLES)]
    if model == 0:
        return base
    return [1.0 - v if (v == 0.0 and i % 4 == 0) or (v == 1.0 and i % 11 == 0) else v for i, v in enumerate(base)]


def statuses(model: int) -> list[SampleStatus]:
    """model-b: 3 errors and 2 unscored samples per task; model-a: all scored."""
    found: list[SampleStatus] = ["scored"] * SAMPLES
    if model == 1:
        found[10:13] = ["error"] * 3
        found[20:22] = ["unscored"] * 2
    return found


def write_output_dir(directory: Path, *, model: int, task: int) -> Path:
    """One task output directory of one model."""
    name, status = TASKS[task], statuses(model)
    values = scores(model, task)
    predictions = [HOSTILE if i == 0 else f"answer {i} of {MODELS[model]}" for i in range(SAMPLES)]
    write_run(directory, records(name, values, metric="exact_match", statuses=status, predictions=predictions),
              results=False)
    document = load_model(ResultsFile, RESULTS)
    kept = [v for v, s in zip(values, status, strict=True) if s != "error"]
    mean = sum(kept) / len(kept)
    score = Score(value=mean, stats=ScoreStats(count=len(kept), ci95=Interval(
        lower=max(0.0, mean - 0.09), upper=min(1.0, mean + 0.09), method="exact_binomial")))
    document.results.tasks = {name: TaskResult(metrics={"exact_match": MetricResult(scores={"exact_match": score})})}
    document.results.groups = {}
    document.config.type = name
    document.target.api_endpoint.model_id = MODELS[model]
    document.provenance.image = f"evals/lm-eval:{MODELS[model]}"
    document.provenance.image_digest = "sha256:" + "ab" * 32
    document.provenance.started_at = datetime(2026, 11, 28, 10, model, tzinfo=UTC)
    (directory / "results.yml").write_text(dump_yaml(document.model_dump(mode="json")), encoding="utf-8")
    _requests(directory, model=model)
    return directory


def _requests(directory: Path, *, model: int) -> None:
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    lines = []
    for i in range(SAMPLES):
        failed = model == 1 and 10 <= i < 13
        record = RequestRecord(id=f"model0-x-r{i}", role="model", prompt_key=None, path="/v1/chat/completions",
                               status=503 if failed else 200, attempts=1, prompt_tokens=40 + i % 9,
                               completion_tokens=0 if failed else 5 + (i * 7) % 30,
                               latency_ms=30.0 + (i * 37) % 200 * (1 + model), error="http_503" if failed else None)
        lines.append(record.model_dump_json(exclude_defaults=True))
    judge = RequestRecord(id="judge0-x-r0", role="judge", path="/v1/chat/completions", status=200, latency_ms=5.0)
    lines.append(judge.model_dump_json())
    (logs / REQUESTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_suite(root: Path) -> Path:
    """``root/<model>/lm-eval-<task>/`` for every model and task: a suite's output root."""
    for model in range(len(MODELS)):
        for task in range(len(TASKS)):
            write_output_dir(root / MODELS[model] / f"lm-eval-{TASKS[task]}", model=model, task=task)
    return root
