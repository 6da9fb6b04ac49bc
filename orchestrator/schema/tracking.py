"""Where a run's results are exported: `evals export --config FILE`, and a suite file's ``export:`` section.

```yaml
mlflow: {tracking_uri: http://127.0.0.1:5000, experiment: release-check, tags: {team: eval}}
wandb: {project: evals, mode: offline}
csv: {path: scores.csv}
json: {path: scores.json}
```

Each key present is one target; `evals export --to NAME` picks some of them. Secrets travel by variable NAME only
(``token_name``, ``api_key_name``): the value is read from the environment of the exporting process, never written.
"""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from orchestrator.schema.config import EnvVarName

TargetName = Literal["csv", "json", "mlflow", "wandb"]
TARGETS: tuple[TargetName, ...] = ("csv", "json", "mlflow", "wandb")
"""Every target, in the order an export runs them: the local files first, so they are written whatever a server
does."""

RUN_NAME_FIELDS = ("model", "task", "harness", "run_id")
"""What a run name template may name: ``{model}``, ``{task}``, ``{harness}``, ``{run_id}``."""


def _check_template(value: str) -> str:
    """``value`` if it is a format string naming only :data:`RUN_NAME_FIELDS` (no attribute, index or conversion)."""
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as err:
        raise ValueError(f"not a name template ({err}); write braces as {{{{ and }}}}") from None
    for _, field, spec, conversion in parts:
        if field is not None and (field not in RUN_NAME_FIELDS or spec or conversion):
            raise ValueError(f"unknown field {{{field}}}: a template names "
                             + ", ".join(f"{{{name}}}" for name in RUN_NAME_FIELDS))
    if not value.strip():
        raise ValueError("an empty run name")
    return value


NameTemplate = Annotated[str, AfterValidator(_check_template)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MlflowTarget(_Strict):
    """An MLflow tracking server: one MLflow run per (model, task)."""

    tracking_uri: str | None = Field(
        default=None, min_length=1,
        description="The tracking server (http://host:5000, databricks, a local directory). Default: "
                    "$MLFLOW_TRACKING_URI.")
    experiment: str = Field(default="evals", min_length=1, description="The experiment; created when missing.")
    run_name: NameTemplate = Field(default="{model}/{task}",
                                   description="Name of each MLflow run: a template of {model}, {task}, {harness}, "
                                               "{run_id}.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags set on every MLflow run (besides evals.*).")
    token_name: EnvVarName | None = Field(
        default=None, description="NAME of the variable holding the server's token, if not MLFLOW_TRACKING_TOKEN "
                                  "(which MLflow reads itself, as MLFLOW_TRACKING_USERNAME and _PASSWORD).")


class WandbTarget(_Strict):
    """Weights & Biases: one W&B run per (model, task)."""

    project: str = Field(min_length=1, description="The W&B project.")
    entity: str | None = Field(default=None, min_length=1, description="The W&B entity (user or team); default: "
                                                                       "the key's own.")
    mode: Literal["offline", "online"] = Field(
        default="offline", description="offline: written under `dir` only, never a connection (upload later with "
                                       "`wandb sync DIR/wandb/offline-run-*`); online: sent to W&B now.")
    dir: str | None = Field(default=None, min_length=1, description="Where W&B writes its run directories (wandb/ "
                                                                    "inside). Default: the export's base directory.")
    api_key_name: EnvVarName = Field(default="WANDB_API_KEY",
                                     description="NAME of the variable holding the W&B API key (online only).")


class FileTarget(_Strict):
    """A file of score rows (csv or json)."""

    path: str = Field(min_length=1, description="The file; relative to the export's base directory; - for stdout.")


class ExportConfig(_Strict):
    """The export targets and their settings; each key present is one target."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    mlflow: MlflowTarget | None = Field(default=None, description="An MLflow tracking server.")
    wandb: WandbTarget | None = Field(default=None, description="Weights & Biases.")
    csv: FileTarget | None = Field(default=None, description="A CSV file: one row per (model, task, metric, score).")
    json_file: FileTarget | None = Field(default=None, alias="json",
                                         description="A JSON file: the same rows as the CSV file.")

    @model_validator(mode="after")
    def _some_target(self) -> ExportConfig:
        if not self.names:
            raise ValueError("no target: give one or more of " + ", ".join(TARGETS))
        return self

    @property
    def names(self) -> list[TargetName]:
        """The targets it names, in the order they run (:data:`TARGETS`)."""
        present = {"csv": self.csv, "json": self.json_file, "mlflow": self.mlflow, "wandb": self.wandb}
        return [name for name in TARGETS if present[name] is not None]

    def only(self, names: list[TargetName]) -> ExportConfig:
        """The same settings with only ``names`` (which it must hold)."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        return ExportConfig.model_validate({name: data[name] for name in names})
