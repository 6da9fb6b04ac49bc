"""The policy of `evals gate`: which (task, metric) may drop how far, and whether a failure stops a release.

```yaml
rules:
  - {task: gsm8k, metric: exact_match, max_drop: 0.02}            # critical unless told
  - {task: ifeval, metric: prompt_level_strict_acc, max_drop: 0.03, tier: advisory}
```

Each rule compares the 95% CI of (candidate - baseline) with ``-max_drop``: PASS when the whole CI is at or above it,
FAIL when the whole CI is below it, INCONCLUSIVE when it straddles it. The whole is NO-GO when a critical rule FAILs,
else INCONCLUSIVE when a critical rule is INCONCLUSIVE, else GO; advisory rules are reported and never change it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Tier = Literal["critical", "advisory"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateRule(_Strict):
    """One (task, metric) and the largest drop of the candidate below the baseline it allows."""

    task: str = Field(min_length=1, description="The task, as `evals compare` names it (results.yml "
                                                "`results.tasks`).")
    metric: str = Field(min_length=1, description="The metric, as in the task's samples.jsonl `scores`.")
    max_drop: float = Field(ge=0, allow_inf_nan=False,
                            description="Largest allowed drop (baseline - candidate) in the metric's own units: "
                                        "0.02 is 2 points of a 0..1 accuracy. 0: no drop at all.")
    tier: Tier = Field(default="critical", description="critical: a FAIL makes the gate NO-GO; advisory: reported "
                                                       "only, never changes the verdict.")


class GatePolicy(_Strict):
    """A gate policy file (`evals gate --policy FILE`)."""

    rules: list[GateRule] = Field(min_length=1, description="The rules; each (task, metric) at most once.")

    @model_validator(mode="after")
    def _once_each(self) -> GatePolicy:
        seen: set[tuple[str, str]] = set()
        for rule in self.rules:
            if (rule.task, rule.metric) in seen:
                raise ValueError(f"task {rule.task!r}, metric {rule.metric!r} has two rules: keep one")
            seen.add((rule.task, rule.metric))
        return self
