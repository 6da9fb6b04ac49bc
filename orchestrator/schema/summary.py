"""summary.yml: one run's (a suite's) every (model, task) pair in one file, written when the run ends.

Per pair: its state, its scores with 95% confidence intervals, sample counts, usage and provenance, read from the
pair's results.yml (and logs/requests.jsonl when there is no results.yml); a pair that did not succeed carries its
reason and the tail of its log. Written to the suite's output root and to the run's record directory.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.schema.record import TaskState
from orchestrator.schema.results import SampleCounts

SUMMARY_FILE = "summary.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreSummary(_Strict):
    """One score of a pair, with its interval."""

    name: str = Field(description="The row it makes in the table: the metric (`metric / score` where they differ), "
                                  "prefixed by the harness's task name where it is not the pair's task.")
    value: float = Field(description="The score.")
    ci_lower: float | None = Field(default=None, description="Lower bound of the 95% confidence interval.")
    ci_upper: float | None = Field(default=None, description="Upper bound of the 95% confidence interval.")
    ci_method: str | None = Field(default=None, description="How the interval was had: the results' own ci95 "
                                                            "(exact_binomial, bootstrap) or `normal` (value +- 1.96 "
                                                            "stderr, where only the harness's stderr is known).")
    count: int | None = Field(default=None, description="Samples the score is computed over.")


class UsageSummary(_Strict):
    """What a pair asked of its endpoint (the model's role)."""

    requests: int = Field(default=0, description="Requests the harness made (cache hits included).")
    cache_hits: int = Field(default=0, description="Requests answered from the cache.")
    failed_requests: int = Field(default=0, description="Requests answered to the harness with an error.")
    prompt_tokens: int = Field(default=0, description="Prompt tokens the endpoint reported.")
    completion_tokens: int = Field(default=0, description="Completion tokens the endpoint reported.")
    source: str = Field(description="results.yml, or logs/requests.jsonl where the pair wrote no results.")


class PairSummary(_Strict):
    """One (model, task) pair of the run."""

    index: int = Field(ge=0, description="The task's index in the run record.")
    model: str = Field(description="The suite model's name (a plain run: the results' model id, else `-`).")
    task: str = Field(description="The resolved task (config.type).")
    harness: str = Field(description="The harness that ran it.")
    state: TaskState = Field(description="The task's last known state.")
    output_dir: str = Field(description="The pair's output directory.")
    results: str | None = Field(default=None, description="Its results.yml, when it wrote a valid one.")
    resolved_config: str = Field(description="Path of the resolved config the container ran (run_config.yml).")
    image: str = Field(description="The image the container ran, as recorded.")
    image_digest: str | None = Field(default=None, description="The image's id (sha256) from results.yml.")
    scores: list[ScoreSummary] = Field(default_factory=list, description="Every score, groups first.")
    samples: SampleCounts | None = Field(default=None, description="Samples scored, unscored and in error.")
    usage: UsageSummary | None = Field(default=None, description="Requests, tokens and errors, where recorded.")
    duration_seconds: float | None = Field(default=None, description="Wall time of the harness command.")
    reason: str | None = Field(default=None, description="Why a pair that did not succeed ended as it did.")
    log: str = Field(description="The pair's console log.")
    log_tail: list[str] = Field(default_factory=list, description="The last lines of the log of a pair that did not "
                                                                  "succeed.")


class Summary(_Strict):
    """summary.yml: every pair of a run."""

    run_id: str = Field(description="The run.")
    suite: str | None = Field(default=None, description="The suite's name (None for a run without --suite).")
    suite_file: str | None = Field(default=None, description="The suite file the run was planned from.")
    models: list[str] = Field(description="The models, in the suite's order (the table's columns).")
    written_at: datetime = Field(description="When this summary was written.")
    complete: bool = Field(description="Every pair succeeded.")
    pairs: list[PairSummary] = Field(min_length=1, description="One entry per (model, task) pair, in task order.")
