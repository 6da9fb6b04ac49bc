"""Results of one evaluation, in the shape NVIDIA's Evals Factory writes to results.yml.

``results.{tasks,groups}.<name>.metrics.<metric>.scores.<score>.{value, stats}``.
Every parser returns an :class:`EvaluationResult`; the runtime wraps it in a
:class:`ResultsFile` together with the resolved config and the run's provenance.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.schema.config import ApiEndpoint, EvaluationConfig, ResolvedTarget
from orchestrator.schema.deployment import ServedDeployment


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Interval(_Strict):
    """A 95% confidence interval of a score, computed by us from the run's samples the same way for every harness."""

    lower: float = Field(description="Lower bound.")
    upper: float = Field(description="Upper bound.")
    method: Literal["exact_binomial", "bootstrap"] = Field(
        description="exact_binomial: Clopper-Pearson, where every sample scores 0 or 1; bootstrap: percentile "
                    "bootstrap of the mean over samples (10,000 resamples, seed 0) otherwise.")


class SampleCounts(_Strict):
    """How a task's samples ended (samples.jsonl `status`)."""

    scored: int = Field(ge=0, description="Samples the harness scored.")
    unscored: int = Field(ge=0, description="Samples the harness could not extract or score an answer for.")
    error: int = Field(ge=0, description="Samples the endpoint or the harness failed on; never scored as wrong.")


class ScoreStats(_Strict):
    """Sample statistics behind a score; every field is optional because harnesses report different subsets."""

    count: int | None = Field(default=None, description="Number of samples the score is computed over.")
    sum: float | None = Field(default=None, description="Sum of per-sample scores (value = sum / count for a mean).")
    sum_squared: float | None = Field(default=None, description="Sum of squared per-sample scores.")
    min: float | None = Field(default=None, description="Smallest per-sample score.")
    max: float | None = Field(default=None, description="Largest per-sample score.")
    mean: float | None = Field(default=None, description="Mean of per-sample scores.")
    variance: float | None = Field(default=None, description="Variance of per-sample scores.")
    stddev: float | None = Field(default=None, description="Standard deviation of per-sample scores.")
    stderr: float | None = Field(default=None, description="Standard error of the mean, as the harness reports it.")
    ci95: Interval | None = Field(default=None, description="95% confidence interval recomputed from samples.jsonl, "
                                                            "where the score is a mean over samples.")


class Score(_Strict):
    """One number and the statistics it came from. Ratios are on a 0..1 scale."""

    value: float = Field(description="The score. Accuracy-like scores are on a 0..1 scale.")
    stats: ScoreStats = Field(default_factory=ScoreStats, description="Statistics behind the value.")


class MetricResult(_Strict):
    """The scores of one metric, keyed by score name (often the metric name itself, or a filter variant)."""

    scores: dict[str, Score] = Field(default_factory=dict, description="Scores keyed by score name.")


class TaskResult(_Strict):
    """Metrics of one task (a benchmark or one of its subtasks)."""

    metrics: dict[str, MetricResult] = Field(default_factory=dict, description="Metrics keyed by metric name.")
    samples: SampleCounts | None = Field(
        default=None, description="How the task's samples ended, from samples.jsonl (null when the harness wrote no "
                                  "per-sample output).")


class GroupResult(_Strict):
    """Metrics aggregated over a group of tasks; groups may nest."""

    metrics: dict[str, MetricResult] = Field(default_factory=dict, description="Metrics keyed by metric name.")
    groups: dict[str, GroupResult] | None = Field(default=None, description="Nested groups, if any.")


class EvaluationResult(_Strict):
    """What a parser returns: per-task and per-group metrics."""

    tasks: dict[str, TaskResult] = Field(default_factory=dict, description="Per-task results.")
    groups: dict[str, GroupResult] = Field(default_factory=dict, description="Per-group results.")


class Provenance(_Strict):
    """Where a result came from, enough to reproduce it."""

    runtime_version: str = Field(description="Version of the orchestrator runtime that ran the evaluation.")
    harness: str = Field(description="Harness (framework) name.")
    harness_version: str | None = Field(default=None, description="Installed version of the harness package, if known.")
    framework_sha256: str = Field(description="sha256 of the framework.yml the run was resolved from.")
    image: str | None = Field(default=None, description="Container image the run executed in (name:tag as the host "
                                                        "started it), if known.")
    image_digest: str | None = Field(
        default=None, description="The image's content id (sha256:..., `docker image inspect --format {{.Id}}`), "
                                  "set by the host that started the container; `evals run --from` runs this id.")
    image_repo_digest: str | None = Field(
        default=None, description="The image's registry digest (REPO@sha256:...), when it was pulled from or pushed "
                                  "to a registry: where `evals run --from` pulls it from when it is not here.")
    host_version: str | None = Field(default=None, description="Version of the orchestrator on the host that "
                                                               "started the container, if one did.")
    deployment: ServedDeployment | None = Field(
        default=None, description="The model server the run started and evaluated (`deployment:`): type, image and "
                                  "its id, checkpoint path or id, its command line; None when the endpoint was up.")
    command: str = Field(description="The rendered command exactly as it was executed.")
    started_at: datetime = Field(description="When the harness command started (UTC).")
    finished_at: datetime = Field(description="When the harness command ended (UTC).")
    duration_seconds: float = Field(description="Wall-clock duration of the harness command.")
    exit_code: int = Field(description="Exit code of the harness command.")


class LatencyStats(_Strict):
    """Latency of answered requests as the harness saw them through the proxy, in milliseconds."""

    p50_ms: float = Field(description="Median.")
    p95_ms: float = Field(description="95th percentile.")
    p99_ms: float = Field(description="99th percentile.")
    mean_ms: float = Field(description="Mean.")
    max_ms: float = Field(description="Slowest.")


class Usage(_Strict):
    """What the run asked of the endpoint, from the adapter proxy's response_stats interceptor."""

    requests: int = Field(description="Requests the harness made (cache hits included).")
    cache_hits: int = Field(default=0, description="Requests answered from the cache.")
    upstream_attempts: int = Field(default=0, description="Requests sent to the endpoint, retries included.")
    retries: int = Field(default=0, description="Attempts beyond the first.")
    errors: dict[str, int] = Field(default_factory=dict,
                                   description="Failed attempts by kind (status code, timeout, ...).")
    failed_requests: int = Field(default=0, description="Requests answered to the harness with an error.")
    prompt_tokens: int = Field(default=0, description="Prompt tokens the endpoint reported.")
    completion_tokens: int = Field(default=0, description="Completion tokens the endpoint reported.")
    unfinished_reasoning: int = Field(default=0, description="Answers whose reasoning never ended.")
    latency: LatencyStats | None = Field(default=None, description="Latency percentiles, if any request was answered.")


class ResultsFile(_Strict):
    """The whole results.yml: the resolved run, its results and provenance."""

    framework_name: str = Field(description="Harness (framework) name.")
    pkg_name: str = Field(description="Harness package name.")
    command: str = Field(description="The rendered command template's output.")
    config: EvaluationConfig = Field(description="The resolved evaluation config.")
    target: ResolvedTarget = Field(description="The resolved target endpoint (secrets by name only).")
    results: EvaluationResult = Field(description="Per-task and per-group scores.")
    provenance: Provenance = Field(description="Where the result came from.")
    usage: Usage | None = Field(default=None, description="What the run asked of the model's endpoint: requests, "
                                                         "cache hits, errors, tokens and latency.")
    usage_by_role: dict[str, Usage] = Field(
        default_factory=dict, description="The same for each auxiliary endpoint the run asked through a proxy of its "
                                          "own, by role (judge, ...); never counted in usage.")


__all__ = [
    "ApiEndpoint",
    "EvaluationResult",
    "GroupResult",
    "Interval",
    "MetricResult",
    "Provenance",
    "ResultsFile",
    "SampleCounts",
    "Score",
    "ScoreStats",
    "TaskResult",
]
