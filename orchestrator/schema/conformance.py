"""``images/<harness>/conformance.yml``: what the conformance suite (tests/integration/test_conformance.py) runs for
one harness, offline, against the deterministic test endpoint (tests/endpoint), and the image's size budget.

```yaml
task: gsm8k                      # run end to end, offline, with limit_samples
model_type: chat                 # chat | completions | vlm
limit_samples: 2
data_dir: fixtures/data          # optional; relative to the harness folder; mounted read-only at /data
script: fixtures/replies.json    # optional; scripted replies for the test endpoint (python -m tests.endpoint --script)
overrides: {}                    # optional: dotted run-config keys -> values (evals --overrides)
max_image_mb: 1000               # the image's size budget (docker image inspect .Size, 10^6 bytes)
samples: true                    # false: the harness writes per-request records instead (a profiler: AIPerf)
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.schema.config import EndpointType
from orchestrator.schema.loading import load_model

CONFORMANCE_FILE = "conformance.yml"


class ConformanceSpec(BaseModel):
    """One harness's offline conformance run and its image size budget."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="A task of the harness's framework.yml, run end to end offline.")
    model_type: EndpointType = Field(description="The endpoint type the run uses (--model_type).")
    limit_samples: int = Field(default=2, ge=1, le=50, description="config.params.limit_samples of the run.")
    data_dir: str | None = Field(default=None, min_length=1,
                                 description="Offline data, relative to the harness folder; mounted read-only at "
                                             "/data and passed as --data_dir.")
    script: str | None = Field(default=None, min_length=1,
                               description="Scripted replies for the test endpoint (tests/endpoint/script.py), "
                                           "relative to the harness folder.")
    overrides: dict[str, Any] = Field(default_factory=dict,
                                      description="Dotted run-config keys -> values (as `--overrides` takes them).")
    max_image_mb: float = Field(gt=0, description="The image's size budget in MB (10^6 bytes).")
    samples: bool = Field(default=True,
                          description="The run writes samples.jsonl. false for a harness that has no samples and "
                                      "writes per-request records instead (a profiler): the run must then write no "
                                      "samples.jsonl and the proxy's logs/requests.jsonl.")

    def files(self, folder: Path) -> dict[str, Path]:
        """The files it names (``data_dir``, ``script``), resolved against the harness ``folder``."""
        named = {"data_dir": self.data_dir, "script": self.script}
        return {key: folder / value for key, value in named.items() if value is not None}


def load_conformance(folder: Path) -> ConformanceSpec:
    """The harness ``folder``'s conformance.yml, validated (a ConfigError with file:line otherwise)."""
    return load_model(ConformanceSpec, folder / CONFORMANCE_FILE)
