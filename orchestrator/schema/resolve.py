"""From flags, files and overrides to one validated :class:`Evaluation`.

Host and image call :func:`resolve_run` alike, so a config the image would reject is
rejected on the host before any container starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.schema.auxiliary import auxiliary_settings
from orchestrator.schema.config import ENDPOINT_TYPES, DeploymentLayer, Evaluation, RunConfigLayer
from orchestrator.schema.errors import ConfigError, InputError
from orchestrator.schema.framework import FrameworkDefinition, TaskDefinition
from orchestrator.schema.loading import load_model, validate, validation_error
from orchestrator.schema.merge import merge
from orchestrator.schema.overrides import parse_overrides
from orchestrator.schema.sanity import check_values, run_keys

FLAG_KEYS: dict[str, tuple[str, ...]] = {
    "--eval_type": ("config", "type"),
    "--output_dir": ("config", "output_dir"),
    "--model_id": ("target", "api_endpoint", "model_id"),
    "--model_url": ("target", "api_endpoint", "url"),
    "--model_type": ("target", "api_endpoint", "type"),
    "--api_key_name": ("target", "api_endpoint", "api_key"),
}
"""Each explicit flag and the config key it sets."""


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What the user asked for: the explicit flags, a run config file, overrides."""

    eval_type: str | None = None
    model_id: str | None = None
    model_url: str | None = None
    model_type: str | None = None
    api_key_name: str | None = None
    output_dir: str | None = None
    run_config: Path | None = None
    overrides: str | None = None
    offline: bool = False
    """``--offline``: a flag without a value; sets ``config.offline`` (false leaves lower layers' value)."""
    layers: tuple[RunConfigLayer, ...] = ()
    """A suite pair's layers (defaults, the task's overrides, the model's settings), lowest first: above
    ``--run_config``, below the explicit flags."""

    def flag_values(self) -> dict[str, str | None]:
        """Explicit flags by their command-line names."""
        return {
            "--eval_type": self.eval_type, "--output_dir": self.output_dir, "--model_id": self.model_id,
            "--model_url": self.model_url, "--model_type": self.model_type, "--api_key_name": self.api_key_name,
        }


def _flags_layer(request: RunRequest) -> RunConfigLayer:
    data: dict[str, Any] = {}
    for flag, value in request.flag_values().items():
        if value is None:
            continue
        node = data
        *parents, leaf = FLAG_KEYS[flag]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    if request.offline:
        data.setdefault("config", {})["offline"] = True
    try:
        return RunConfigLayer.model_validate(data)
    except ValidationError as err:
        loc = tuple(err.errors()[0]["loc"])
        flag = next((f for f, key in FLAG_KEYS.items() if key == loc), "command-line flags")
        message = validation_error(err, model=RunConfigLayer, doc=None, source=flag).message
        raise ConfigError(message.split(": ", 1)[-1], where=flag) from None


def request_layers(request: RunRequest) -> list[RunConfigLayer]:
    """The request's own layers, lowest priority first: ``--run_config``, a suite pair's layers, the explicit flags,
    ``--overrides``."""
    user = load_model(RunConfigLayer, request.run_config) if request.run_config else RunConfigLayer()
    overrides = validate(RunConfigLayer, parse_overrides(request.overrides), source="--overrides") \
        if request.overrides else RunConfigLayer()
    return [user, *request.layers, _flags_layer(request), overrides]


def run_deployment(requests: list[RunRequest]) -> DeploymentLayer | None:
    """The ``deployment:`` of a run: each request's layers merged (``--run_config`` < ``--overrides``); one per run,
    so tasks naming different deployments are bad input. None when no layer names one."""
    found = [merge(*request_layers(request)).deployment for request in requests]
    distinct = {layer.model_dump_json(exclude_unset=True) if layer else "" for layer in found}
    if len(distinct) > 1:
        raise InputError("the run's tasks name different deployments; a run starts one model server",
                         hint="give every task the same deployment:, or split them into runs")
    return found[0] if found else None


def requested_task(layers: list[RunConfigLayer]) -> str | None:
    """The task the highest layer that names one names (``config.type``), if any does."""
    for layer in reversed(layers):
        if layer.config is not None and layer.config.type:
            return layer.config.type
    return None


def resolve_run(framework: FrameworkDefinition, request: RunRequest) -> Evaluation:
    """Merge every layer in priority order and validate the result."""
    layers = request_layers(request)
    eval_type = requested_task(layers)
    if eval_type is None:
        raise InputError("missing --eval_type",
                         hint="name the task to run, e.g. --eval_type mmlu; list tasks with `ls`")
    task = framework.find_task(eval_type)
    merged = merge(framework.defaults, task.defaults, *layers)
    data = merged.model_dump(exclude_none=False)
    data.pop("deployment", None)  # the host's concern: it starts the server and points the target at it
    data["config"]["type"] = task.type
    data["framework_name"] = framework.framework.name
    data["pkg_name"] = framework.framework.pkg_name
    evaluation = _validate_resolved(data)
    check_resolved(evaluation, task)
    return evaluation


def check_resolved(evaluation: Evaluation, task: TaskDefinition) -> None:
    """What a valid :class:`Evaluation` of ``task`` must also satisfy (a resolved run read from a file, too)."""
    check_endpoint_type(evaluation, task)
    check_values(evaluation.model_dump(include={"config", "target"}))
    run_keys(evaluation)  # names, not keys
    auxiliary_settings(evaluation.config.params.extra)  # a judge's url and adapter_config


_MISSING_HINTS = {
    "config.output_dir": "pass --output_dir DIR",
    "target.api_endpoint.model_id": "pass --model_id NAME",
    "target.api_endpoint.url": "pass --model_url URL",
    "target.api_endpoint.type": f"pass --model_type ({'|'.join(ENDPOINT_TYPES)})",
    "config.supported_endpoint_types": "the framework.yml must list the task's supported_endpoint_types",
}


def _validate_resolved(data: dict[str, Any]) -> Evaluation:
    data = _drop_nones(data)
    try:
        return Evaluation.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "missing":
            hint = _MISSING_HINTS.get(key, "set it in --run_config or --overrides")
            raise InputError(f"missing {key}", hint=f"{hint} (or set {key} in --run_config)") from None
        raise validation_error(err, model=Evaluation, doc=None, source="merged config") from None


def _drop_nones(data: dict[str, Any]) -> dict[str, Any]:
    """Nones in the fixed schema mean "not given"; inside params.extra they are kept as values."""
    result: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        result[key] = _drop_nones(value) if isinstance(value, dict) and key != "extra" else value
    return result


def check_endpoint_type(evaluation: Evaluation, task: TaskDefinition) -> None:
    """The endpoint's type must be one the task supports; a vlm endpoint is also a chat endpoint."""
    given = evaluation.target.api_endpoint.type
    supported = evaluation.config.supported_endpoint_types
    if given in supported or (given == "vlm" and "chat" in supported):
        return
    raise InputError(
        f"task {task.type!r} does not support --model_type {given}",
        hint=f"it supports: {', '.join(supported)}; pick another --model_type or a variant of the task for {given}",
    )
