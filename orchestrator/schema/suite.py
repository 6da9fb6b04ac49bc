"""The suite file (`evals run --suite suite.yml`): every (model, task) pair of a release check in one run.

A suite names its models (an endpoint each: url, type, model id, the key's variable NAME, adapter settings, the
most requests it takes at once) and its tasks (eval_type, overrides, data), and defaults shared by every pair.
Each pair is resolved like one `evals run`, with these layers, lowest priority first:

  framework defaults < task defaults (framework.yml) < suite ``defaults`` < the task's ``overrides`` <
  the model's ``adapter_config`` < the model's ``overrides`` < the model's url, model_id, model_type, api_key_name

so the model's endpoint always wins (see docs/suites.md). The file is checked structurally here (strict keys,
types); what needs the images or the environment (unknown task, unbuilt image, unset key variable) is checked by
the host, which lists every problem of every pair at once (:func:`suite_problems` gives the file's own).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.schema.config import (
    AdapterConfigLayer,
    DeploymentLayer,
    EndpointType,
    EndpointUrl,
    EnvVarName,
    ModelId,
    NonBlank,
    RunConfigLayer,
)
from orchestrator.schema.errors import EvalsError
from orchestrator.schema.loading import validate
from orchestrator.schema.overrides import parse_overrides
from orchestrator.schema.tracking import ExportConfig

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A suite's or a model's name: it names a directory (``<output>/<model>/``) and a table column, so letters, digits,
``_``, ``.`` and ``-``, not starting with ``.``, at most 64 characters."""


def _check_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError("a name is letters, digits, '_', '.' and '-', not starting with '.' (it names a directory), "
                         "at most 64")
    return value


SafeName = Annotated[str, AfterValidator(_check_name)]


def overrides_layer(text: str | None, *, source: str) -> RunConfigLayer:
    """An ``overrides`` string of the suite (``a.b=c,d.e=f``, as --overrides) as a run-config layer."""
    if not text:
        return RunConfigLayer()
    return validate(RunConfigLayer, parse_overrides(text), source=source)


def _check_overrides(value: str | None) -> str | None:
    """Refuse overrides that are not dotted keys of the run config (as --overrides would), when the file is read."""
    try:
        overrides_layer(value, source="overrides")
    except EvalsError as err:
        raise ValueError(err.message.removeprefix("--overrides: ").removeprefix("overrides: ")) from None
    return value


Overrides = Annotated[str | None, AfterValidator(_check_overrides)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuiteModel(_Strict):
    """One model under evaluation: its endpoint and how to reach it."""

    name: SafeName = Field(description="The model's name in the suite: its output directory and its table column.")
    url: EndpointUrl | None = Field(default=None, description="Full endpoint URL, e.g. http://host:8000/v1/chat/"
                                                              "completions (none with a deployment).")
    model_type: EndpointType = Field(description="chat, completions or vlm.")
    model_id: ModelId | None = Field(default=None, description="Model name sent to the endpoint (with a deployment: "
                                                               "its served_model_name).")
    deployment: DeploymentLayer | None = Field(
        default=None, description="A model server `evals` starts for this model's tasks and stops after them (as a "
                                  "run config's deployment:); its URL and model name become the model's.")
    api_key_name: EnvVarName | None = Field(
        default=None, description="NAME of the environment variable holding the endpoint's API key, never the key.")
    adapter_config: AdapterConfigLayer | None = Field(
        default=None, description="The adapter proxy for this model (target.api_endpoint.adapter_config's layer).")
    max_parallel_requests: int | None = Field(
        default=None, ge=1, description="The most requests this endpoint takes at once across all its tasks: a "
                                        "task's config.params.parallelism is clipped to it. null: no limit.")
    overrides: Overrides = Field(default=None, description="Dotted overrides for this model's pairs, as --overrides "
                                                           "(a.b=c,d.e=f); above the task's.")

    @model_validator(mode="after")
    def _endpoint_or_server(self) -> SuiteModel:
        """A model is an endpoint (url and model_id) or a server the run deploys, not both."""
        deployed = self.deployment is not None and self.deployment.type not in (None, "none")
        if deployed and self.url is not None:
            raise ValueError("a model with a deployment is served at its server's URL: drop url")
        if not deployed and (self.url is None or self.model_id is None):
            raise ValueError("a model needs url and model_id (or a deployment that serves it)")
        return self

    @property
    def deployed(self) -> bool:
        """Whether the run starts this model's server."""
        return self.deployment is not None and self.deployment.type not in (None, "none")

    @field_validator("max_parallel_requests", mode="before")
    @classmethod
    def _not_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a boolean, where a number belongs")
        return value


class SuiteTask(_Strict):
    """One task of the suite, run on every model (or on the ``models`` named)."""

    eval_type: NonBlank = Field(description="The task, as --eval_type: TASK or HARNESS.TASK.")
    overrides: Overrides = Field(default=None, description="Dotted overrides for this task's pairs, as --overrides; "
                                                           "above the suite's defaults, below the model's settings.")
    data_dir: str | None = Field(default=None, description="Pre-staged data for this task, mounted read-only at "
                                                           "/data (as --data_dir); relative to the suite file.")
    harness: str | None = Field(default=None, description="The harness whose built image runs the task (as "
                                                          "--harness), where several offer it.")
    image: str | None = Field(default=None, description="The image that runs the task (as --image).")
    models: list[SafeName] | None = Field(default=None, min_length=1,
                                          description="Run the task on these models only (names of `models`).")


class SuiteDefaults(RunConfigLayer):
    """A run-config layer applied to every pair (config.params, config.offline, target.api_endpoint settings)."""

    data_dir: str | None = Field(default=None, description="Pre-staged data for every task that names none "
                                                           "(relative to the suite file).")

    def layer(self) -> RunConfigLayer:
        """The run-config part, as a merge layer."""
        return RunConfigLayer.model_validate(self.model_dump(exclude={"data_dir"}, exclude_unset=True))


class Suite(_Strict):
    """A suite file: the models, the tasks, what every pair shares."""

    name: SafeName = Field(description="The suite's name (its default output directory: results/suite-<name>-<run>).")
    defaults: SuiteDefaults = Field(default_factory=SuiteDefaults, description="Applied to every pair.")
    models: list[SuiteModel] = Field(min_length=1, description="The models under evaluation.")
    tasks: list[SuiteTask] = Field(min_length=1, description="The tasks to run on them.")
    max_parallel: int | None = Field(default=None, ge=1,
                                     description="The most containers running at once (as --max_parallel, which wins).")
    export: ExportConfig | None = Field(default=None, description="Where the results go when the suite ends (as "
                                                                  "`evals export`): MLflow, W&B, CSV, JSON.")

    def pairs(self) -> list[tuple[SuiteModel, SuiteTask]]:
        """Every (model, task) pair to run: model by model, each with its tasks in file order."""
        return [(model, task) for model in self.models for task in self.tasks
                if task.models is None or model.name in task.models]


def suite_problems(suite: Suite) -> list[str]:
    """What the file says wrong that its structure allows: a model name given twice, a task naming an unknown model."""
    problems: list[str] = []
    names = [model.name for model in suite.models]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            problems.append(f"model name {name!r} is given {names.count(name)} times: each model needs its own name")
    if suite.defaults.deployment is not None:
        problems.append("defaults.deployment: a deployment serves one model; put it on that model "
                        "(models[].deployment)")
    deployed = [model.name for model in suite.models if model.deployed]
    if len(deployed) > 1:
        problems.append(f"models {', '.join(deployed)} each deploy a server; a suite run deploys at most one (run one "
                        "suite per deployed checkpoint, then `evals report` them together)")
    for index, task in enumerate(suite.tasks):
        for name in task.models or []:
            if name not in names:
                problems.append(f"tasks[{index}] ({task.eval_type}) names model {name!r}, which `models` does not "
                                f"define (known: {', '.join(names)})")
    return problems
