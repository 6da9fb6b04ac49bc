"""A finished task as every target exports it: score rows (csv, json), and flat metrics, params and tags (MLflow,
W&B).

One row per (model, task, result name, metric, score) of results.yml: groups first, then the (sub)tasks (a group
whose name and values repeat a task's is left out: the task's row has the CI and the sample counts). The columns,
in this order, are :data:`COLUMNS`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.host.exports.tasks import TaskExport
from orchestrator.schema.results import MetricResult, SampleCounts


class ScoreRow(BaseModel):
    """One score of one task of one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The model's name (the suite's, else the endpoint's model id).")
    task: str = Field(description="The task that was run (config.type).")
    harness: str = Field(description="The harness.")
    kind: Literal["group", "task"] = Field(description="Whether `name` is a group or a (sub)task of results.yml.")
    name: str = Field(description="The group or (sub)task the score is of.")
    metric: str = Field(description="The metric.")
    score: str = Field(description="The score of the metric (often the metric's own name).")
    value: float = Field(description="The score's value.")
    ci_low: float | None = Field(description="Lower bound of its 95% CI, where the samples give one.")
    ci_high: float | None = Field(description="Upper bound of its 95% CI.")
    ci_method: str | None = Field(description="exact_binomial or bootstrap.")
    stderr: float | None = Field(description="Standard error, as the harness reports it.")
    n: int | None = Field(description="Samples the score is computed over.")
    scored: int | None = Field(description="The (sub)task's scored samples (samples.jsonl).")
    unscored: int | None = Field(description="Its unscored samples.")
    errors: int | None = Field(description="Its samples that ended in an error.")
    run_id: str | None = Field(description="The evals run id (none when exported from a directory).")
    output_dir: str = Field(description="The task's output directory.")


COLUMNS: tuple[str, ...] = tuple(ScoreRow.model_fields)


def score_rows(task: TaskExport) -> list[ScoreRow]:
    """Every score of one task (see the module docstring)."""
    results = task.results.results
    found: list[ScoreRow] = []
    for name, group in results.groups.items():
        same = results.tasks.get(name)
        repeated = same is not None and _values(group.metrics).items() <= _values(same.metrics).items()
        if not repeated:
            found += _rows(task, "group", name, group.metrics, None)
    for name, entry in results.tasks.items():
        found += _rows(task, "task", name, entry.metrics, entry.samples)
    return found


def _values(metrics: dict[str, MetricResult]) -> dict[tuple[str, str], float]:
    return {(metric, score): found.value for metric, result in metrics.items()
            for score, found in result.scores.items()}


def _rows(task: TaskExport, kind: Literal["group", "task"], name: str, metrics: dict[str, MetricResult],
          samples: SampleCounts | None) -> list[ScoreRow]:
    rows = []
    for metric_name, metric in metrics.items():
        for score_name, score in metric.scores.items():
            stats = score.stats
            rows.append(ScoreRow(
                model=task.model, task=task.task, harness=task.harness, kind=kind, name=name, metric=metric_name,
                score=score_name, value=score.value, ci_low=stats.ci95.lower if stats.ci95 else None,
                ci_high=stats.ci95.upper if stats.ci95 else None, ci_method=stats.ci95.method if stats.ci95 else None,
                stderr=stats.stderr, n=stats.count, scored=samples.scored if samples else None,
                unscored=samples.unscored if samples else None, errors=samples.error if samples else None,
                run_id=task.run_id, output_dir=str(task.output_dir)))
    return rows


def metrics(task: TaskExport) -> dict[str, float]:
    """Flat metrics: ``NAME/METRIC[/SCORE]`` and its ``/ci95_lower``, ``/ci95_upper``, ``/stderr``, ``/n``;
    ``NAME/samples/{scored,unscored,error}``; ``usage/...``; ``duration_seconds``."""
    found: dict[str, float] = {}
    for row in score_rows(task):
        key = f"{row.name}/{row.metric}" + ("" if row.score == row.metric else f"/{row.score}")
        if key in found:
            key = f"{key}/{row.kind}"
        found[key] = row.value
        extras = {"ci95_lower": row.ci_low, "ci95_upper": row.ci_high, "stderr": row.stderr, "n": row.n}
        found.update({f"{key}/{what}": float(value) for what, value in extras.items() if value is not None})
    for name, entry in task.results.results.tasks.items():
        if entry.samples:
            found.update({f"{name}/samples/{status}": float(count)
                          for status, count in entry.samples.model_dump().items()})
    usage = task.results.usage
    if usage:
        found.update({f"usage/{key}": float(value) for key, value in usage.model_dump(exclude={"errors", "latency"})
                      .items()})
        found.update({f"usage/latency_{key}": value for key, value in
                      (usage.latency.model_dump() if usage.latency else {}).items()})
    found["duration_seconds"] = task.results.provenance.duration_seconds
    return found


def params(task: TaskExport) -> dict[str, str]:
    """Flat params: what ran (model, task, harness, image and digest, versions) and the resolved config's
    ``config.params.*`` and ``target.api_endpoint`` keys (the whole resolved config is an artifact)."""
    results = task.results
    provenance = results.provenance
    endpoint = results.target.api_endpoint
    found: dict[str, Any] = {
        "model": task.model, "task": task.task, "harness": task.harness,
        "harness_version": provenance.harness_version, "image": provenance.image,
        "image_digest": provenance.image_digest, "image_repo_digest": provenance.image_repo_digest,
        "runtime_version": provenance.runtime_version, "framework_sha256": provenance.framework_sha256,
        "endpoint.url": endpoint.url, "endpoint.type": endpoint.type, "endpoint.model_id": endpoint.model_id,
        "endpoint.api_key_name": endpoint.api_key,
    }
    found.update(_flat("config.params", results.config.params.model_dump(mode="json")))
    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in found.items() if value is not None}


def _flat(prefix: str, data: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(f"{prefix}.{key}", value))
        else:
            flat[f"{prefix}.{key}"] = value
    return flat


def tags(task: TaskExport) -> dict[str, str]:
    """``evals.*`` tags: the run, suite, model, task, harness and the results' sha256 (what a re-export finds)."""
    found = {"evals.run_id": task.run_id, "evals.suite": task.suite, "evals.model": task.model,
             "evals.task": task.task, "evals.harness": task.harness, "evals.results_sha256": task.results_sha256,
             "evals.output_dir": str(task.output_dir)}
    return {key: value for key, value in found.items() if value is not None}
