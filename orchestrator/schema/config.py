"""The run config: partial layers (what files and flags say) and the resolved run (after merging).

Layers are partial: every field may be absent, and unknown keys are errors (except under
``config.params.extra``, which is free-form per harness). The resolved types are what a run
needs; :func:`orchestrator.schema.merge.resolve` turns merged layers into them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator

from orchestrator.schema.adapter import AdapterConfig, Interceptor

EndpointType = Literal["chat", "completions", "vlm"]
"""``vlm`` is a chat endpoint that accepts images in its messages."""

ENDPOINT_TYPES: tuple[EndpointType, ...] = ("chat", "completions", "vlm")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(  # the value is not shown: it is most likely the key itself
            "not an environment variable name (the value is not shown, as it may be the key itself); give the "
            "variable's NAME (letters, digits, _), never the key"
        )
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL, e.g. http://localhost:8000/v1/chat/completions")
    if any(ch.isspace() for ch in value):
        raise ValueError(f"{value!r} contains whitespace")
    try:
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError:
        raise ValueError(f"{value!r} has a port that is not a number from 0 to 65535") from None
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean, where a number belongs")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _check_model_id(value: str) -> str:
    """Harnesses make directories from model ids (lm-eval ``<output>/<id with / as __>``, VLMEvalKit
    ``<work-dir>/<last segment>``): a ``.`` or ``..`` segment would put them outside the output directory. A
    leading ``/`` is fine (vLLM names a model by its path unless told otherwise)."""
    _not_blank(value)
    if any(part in (".", "..") for part in value.replace("\\", "/").split("/")):
        raise ValueError("a model id must not have a . or .. path segment (harnesses make directories from it)")
    return value


EnvVarName = Annotated[str, AfterValidator(_check_env_name)]
EndpointUrl = Annotated[str, AfterValidator(_check_url)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]
ModelId = Annotated[str, AfterValidator(_check_model_id)]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, populate_by_name=True)


class _Resolved(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _NumbersNotBooleans(BaseModel):
    """``true``/``false`` where a number belongs are refused (pydantic would read them as 1/0)."""

    @field_validator("parallelism", "limit_samples", "max_new_tokens", "temperature", "top_p", "max_retries",
                     "request_timeout", "max_error_fraction", mode="before", check_fields=False)
    @classmethod
    def _not_booleans(cls, value: Any) -> Any:
        return _not_bool(value)


# --------------------------------------------------------------------------- partial layers

MAX_ERROR_FRACTION = ("Largest fraction of a task's samples that may end in an error (endpoint or harness failure) "
                      "before the run fails; 0: any error fails the run, errors are never scored as wrong answers.")


class ParamsLayer(_Layer, _NumbersNotBooleans):
    """``config.params`` as one layer states it."""

    parallelism: int | None = Field(default=None, ge=1, description="Concurrent requests to the endpoint.")
    limit_samples: int | None = Field(default=None, ge=1, description="Evaluate only the first N samples (null: all).")
    max_new_tokens: int | None = Field(default=None, ge=1, description="Maximum tokens to generate per answer.")
    temperature: float | None = Field(default=None, ge=0, description="Sampling temperature.")
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling probability mass.")
    max_retries: int | None = Field(default=None, ge=0, description="Retries per failed request.")
    request_timeout: int | float | None = Field(default=None, gt=0, description="Seconds to wait for one answer.")
    max_error_fraction: float | None = Field(default=None, ge=0, le=1, description=MAX_ERROR_FRACTION)
    task: str | None = Field(default=None, description="The harness's own name for the task, where it differs.")
    extra: dict[str, Any] | None = Field(default=None, description="Free-form, harness-specific parameters.")


class ConfigLayer(_Layer):
    """``config`` as one layer states it."""

    type: str | None = Field(default=None, description="The task to run (same as --eval_type).")
    output_dir: str | None = Field(default=None, description="Directory for results and logs.")
    supported_endpoint_types: list[EndpointType] | None = Field(
        default=None, description="Endpoint types the task can evaluate."
    )
    required_capabilities: list[str] | None = Field(default=None, description="Endpoint capabilities the task needs.")
    params: ParamsLayer | None = Field(default=None, description="Evaluation parameters.")
    offline: bool | None = Field(
        default=None, description="Use only cached and pre-staged data: never reach the Hugging Face Hub or the "
                                  "harness's data URLs (same as --offline).")


class ApiEndpointLayer(_Layer):
    """``target.api_endpoint`` as one layer states it."""

    model_id: str | None = Field(default=None, description="Model name sent to the endpoint.")
    url: EndpointUrl | None = Field(default=None, description="Full endpoint URL, e.g. http://host:8000/v1/chat/completions.")
    type: EndpointType | None = Field(default=None, description="chat, completions or vlm.")
    api_key: EnvVarName | None = Field(
        default=None,
        validation_alias=AliasChoices("api_key", "api_key_name"),
        description="NAME of the environment variable holding the API key (also accepted as api_key_name).",
    )
    stream: bool | None = Field(default=None, description="Ask the endpoint to stream answers.")
    adapter_config: AdapterConfigLayer | None = Field(
        default=None, description="The adapter proxy between harness and endpoint (interceptor chain).")


class AdapterConfigLayer(_Layer):
    """``target.api_endpoint.adapter_config`` as one layer states it; a given interceptor list replaces lower ones."""

    enabled: bool | None = Field(default=None, description="Run the harness through the adapter proxy.")
    interceptors: list[Interceptor] | None = Field(default=None, description="Interceptors, outermost first.")


class TargetLayer(_Layer):
    """``target`` as one layer states it."""

    api_endpoint: ApiEndpointLayer | None = Field(default=None, description="The endpoint under evaluation.")


DeploymentType = Literal["vllm", "sglang", "nim", "trtllm", "reference", "none"]
"""The model servers `evals` can start before a run (``none``: the endpoint is already up)."""

DEPLOYMENT_TYPES: tuple[DeploymentType, ...] = ("vllm", "sglang", "nim", "trtllm", "reference", "none")


class HealthLayer(_Layer):
    """``deployment.health`` as one layer states it."""

    path: str | None = Field(default=None, description="The server's health route, e.g. /health (default: the "
                                                       "preset's).")
    start_timeout: float | None = Field(default=None, gt=0, description="Seconds to wait for the route to answer "
                                                                         "200 after the server starts.")
    interval: float | None = Field(default=None, gt=0, description="Seconds between two health checks.")


class DeploymentLayer(_Layer):
    """``deployment``: the model server `evals` starts for the run, waits for, points every task at and stops.

    The host reads it (the evaluation image never does: ``run_eval`` evaluates ``target.api_endpoint`` as given).
    Each type's preset fills what is left out (:mod:`orchestrator.schema.deployment`)."""

    type: DeploymentType | None = Field(default=None, description="vllm, sglang, nim, trtllm, reference (this "
                                                                  "project's reference endpoint) or none.")
    image: str | None = Field(default=None, description="The server's image (default: the preset's).")
    checkpoint: str | None = Field(
        default=None, description="A local path (absolute, or starting with ./ or ~; mounted read-only) or a model "
                                  "id the server fetches itself (e.g. meta-llama/Llama-3.1-8B-Instruct).")
    served_model_name: str | None = Field(default=None, description="The model name the server answers to (the "
                                                                    "tasks' model_id); default: from the checkpoint.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Port the server listens on (host network).")
    gpus: int | Literal["all"] | list[int] | None = Field(
        default=None, description="GPUs for the server: a count, 'all', or device indices; requested through the "
                                  "engine (local) or the allocation (Slurm). None: no GPU.")
    tensor_parallel_size: int | None = Field(default=None, ge=1, description="Tensor parallelism.")
    data_parallel_size: int | None = Field(default=None, ge=1, description="Data parallelism (replicas).")
    nodes: int | None = Field(default=None, ge=1, description="Nodes the server spans (Slurm only; default 1).")
    extra_args: list[str] | None = Field(default=None, description="More arguments for the server, appended as "
                                                                   "they are.")
    env: list[EnvVarName] | None = Field(
        default=None, description="NAMES of variables passed to the server from evals' environment, like API keys "
                                  "(e.g. HF_TOKEN, NGC_API_KEY); values never reach a file or a command line.")
    health: HealthLayer | None = Field(default=None, description="How to tell the server is ready.")

    @field_validator("port", "tensor_parallel_size", "data_parallel_size", "nodes", "gpus", mode="before")
    @classmethod
    def _not_booleans(cls, value: Any) -> Any:
        return _not_bool(value)


class RunConfigLayer(_Layer):
    """A run config file (``--run_config``), or what flags and overrides say."""

    config: ConfigLayer | None = Field(default=None, description="What to evaluate and how.")
    target: TargetLayer | None = Field(default=None, description="The endpoint to evaluate.")
    deployment: DeploymentLayer | None = Field(
        default=None, description="A model server for `evals` to start before the run and stop after it (host "
                                  "only; `run_eval` ignores it).")


class DefaultsLayer(RunConfigLayer):
    """Framework or task defaults: a run config that may also carry the command template."""

    command: str | None = Field(default=None, description="Jinja template of the harness command.")
    data_command: str | None = Field(
        default=None, description="Jinja template of the command that fetches (online) or checks (offline) the "
                                  "task's data before any request to the model; exit code 2 with one line = data "
                                  "missing.")


# --------------------------------------------------------------------------- resolved run


class Params(_Resolved, _NumbersNotBooleans):
    """Resolved ``config.params``. ``None`` means the harness's own default."""

    parallelism: int = Field(default=1, ge=1, description="Concurrent requests to the endpoint.")
    limit_samples: int | None = Field(default=None, ge=1, description="Evaluate only the first N samples (null: all).")
    max_new_tokens: int | None = Field(default=None, ge=1, description="Maximum tokens to generate per answer.")
    temperature: float | None = Field(default=None, ge=0, description="Sampling temperature.")
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling probability mass.")
    max_retries: int | None = Field(default=None, ge=0, description="Retries per failed request.")
    request_timeout: int | float | None = Field(default=None, gt=0, description="Seconds to wait for one answer.")
    max_error_fraction: float = Field(default=0.0, ge=0, le=1, description=MAX_ERROR_FRACTION)
    task: str | None = Field(default=None, description="The harness's own name for the task, where it differs.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form, harness-specific parameters.")


class EvaluationConfig(_Resolved):
    """Resolved ``config``."""

    output_dir: NonBlank = Field(description="Directory for results and logs.")
    params: Params = Field(default_factory=Params, description="Evaluation parameters.")
    supported_endpoint_types: list[EndpointType] = Field(description="Endpoint types the task can evaluate.")
    type: str = Field(description="The task.")
    required_capabilities: list[str] = Field(default_factory=list, description="Endpoint capabilities the task needs.")
    offline: bool = Field(default=False, description="Use only cached and pre-staged data (no Hub, no data URLs).")


class ApiEndpoint(_Resolved):
    """Resolved ``target.api_endpoint``. ``api_key`` is a variable NAME, never a key."""

    api_key: EnvVarName | None = Field(
        default=None, description="NAME of the environment variable holding the API key."
    )
    model_id: ModelId = Field(description="Model name sent to the endpoint.")
    stream: bool = Field(default=False, description="Ask the endpoint to stream answers.")
    type: EndpointType = Field(description="chat, completions or vlm.")
    url: EndpointUrl = Field(description="Full endpoint URL.")
    adapter_config: AdapterConfig = Field(default_factory=AdapterConfig,
                                          description="The adapter proxy between harness and endpoint.")


class ResolvedTarget(_Resolved):
    """Resolved ``target``."""

    api_endpoint: ApiEndpoint = Field(description="The endpoint under evaluation.")


class Evaluation(_Resolved):
    """One fully resolved run: what ``--dry_run`` prints as ``Rendered config:``."""

    command: str = Field(description="Jinja template of the harness command.")
    data_command: str | None = Field(default=None, description="Jinja template of the data fetch/check command.")
    framework_name: str = Field(description="Harness (framework) name.")
    pkg_name: str = Field(description="Harness package name.")
    config: EvaluationConfig = Field(description="What to evaluate and how.")
    target: ResolvedTarget = Field(description="The endpoint to evaluate.")
