"""What `evals compare` reports (its --json output): runs, one comparison per candidate, their rows and flips.

In a comparison the first run given is the *baseline* and each other run in turn the *candidate*; a difference is
always candidate minus baseline, so a negative one is a drop.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.schema.samples import Message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunInfo(_Strict):
    """One run as given on the command line."""

    label: str = Field(description="A, B, C, ... in the order given; A is the baseline.")
    source: str = Field(description="The output directory, results.yml or run id as given.")
    tasks: list[str] = Field(description="Tasks with samples in this run.")


class Row(_Strict):
    """One (task, metric) of one comparison."""

    task: str
    metric: str
    baseline_mean: float | None = Field(description="Mean of the baseline's scores over the n pairs.")
    candidate_mean: float | None = Field(description="Mean of the candidate's scores over the n pairs.")
    difference: float | None = Field(description="Mean of candidate minus baseline over the n pairs.")
    ci_lower: float | None = Field(description="95% CI of the difference, paired percentile bootstrap: lower bound.")
    ci_upper: float | None = Field(description="Upper bound.")
    p_value: float | None = Field(description="Two-sided p-value of no difference (see `test`).")
    p_holm: float | None = Field(description="p_value adjusted with Holm's method over every row of the report.")
    test: Literal["mcnemar", "permutation"] | None = Field(
        description="mcnemar: exact, every score 0 or 1; permutation: paired (sign-flip) permutation test.")
    detectable: float | None = Field(description="Smallest true difference found with 80% power at alpha 0.05 "
                                                 "(two-sided): 2.8016 * sd(differences) / sqrt(n); null below 2 "
                                                 "pairs and when every difference is the same (no spread to "
                                                 "estimate it from).")
    n: int = Field(description="Pairs the statistics are over: matched, no error on either side, scored on both.")
    matched: int = Field(description="Samples in both runs, matched on (task, sample_id, repeat).")
    only_baseline: int = Field(description="Samples of the task only in the baseline.")
    only_candidate: int = Field(description="Samples of the task only in the candidate.")
    errors_baseline: int = Field(description="Matched samples the baseline ended in an error (left out).")
    errors_candidate: int = Field(description="Matched samples the candidate ended in an error (left out).")
    missing: int = Field(description="Matched pairs without an error where a side has no score of this metric.")


class Flip(_Strict):
    """A sample whose 0/1 score changed between the baseline and the candidate."""

    task: str
    metric: str
    sample_id: str
    repeat: int
    change: Literal["gained", "lost"] = Field(description="gained: 0 -> 1; lost: 1 -> 0 (baseline -> candidate).")
    input: str | list[Message] = Field(description="What the baseline sent for the sample.")
    candidate_input: str | list[Message] | None = Field(
        default=None, description="What the candidate sent, where it differs (another system message, template).")
    target: Any = None
    baseline_prediction: str | None
    candidate_prediction: str | None


class Comparison(_Strict):
    """The baseline against one candidate."""

    baseline: str = Field(description="Label of the baseline run.")
    candidate: str = Field(description="Label of the candidate run.")
    rows: list[Row]
    flips: list[Flip] | None = Field(default=None, description="With --flips: every flip of a 0/1 metric.")


class Method(_Strict):
    """How the numbers were computed."""

    resamples: int = Field(description="Bootstrap resamples (and random sign patterns) per row.")
    seed: int = Field(description="Seed; each row's generator is seeded by it, the task and the metric.")
    confidence: float = 0.95
    alpha: float = 0.05
    power: float = 0.8


class Report(_Strict):
    """The whole output of one `evals compare`."""

    runs: list[RunInfo]
    comparisons: list[Comparison]
    warnings: list[str] = Field(default_factory=list)
    method: Method
