"""The model server a run deploys (``deployment:`` in the run config or a suite's model), resolved.

A run config's layers say what they say (:class:`orchestrator.schema.config.DeploymentLayer`); the
host merges them and fills the rest from the type's preset (:data:`PRESETS`): its image, port,
health route and how long a server of its kind may take to load a model. ``type: none`` (or no
``deployment:``) means the endpoint is already up and ``target.api_endpoint.url`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.schema.config import DeploymentLayer, DeploymentType, EnvVarName
from orchestrator.schema.container import DEPLOYMENT_VAR
from orchestrator.schema.errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Strict):
    """How the host (or the Slurm job) tells that the server is ready."""

    path: str = Field(description="The route that answers 200 once the model is loaded.")
    start_timeout: float = Field(gt=0, description="Seconds the server may take to answer it.")
    interval: float = Field(gt=0, description="Seconds between two checks.")


class Preset(_Strict):
    """What a server type brings by default."""

    image: str = Field(description="The server's image.")
    port: int = Field(description="The port it listens on.")
    health: Health = Field(description="Its readiness route and patience.")
    fetches: bool = Field(description="Whether it can fetch a model by id (else the checkpoint must be a path).")
    multi_node: bool = Field(description="Whether one server may span several nodes.")


PRESETS: dict[DeploymentType, Preset] = {
    # images: the tags each project publishes; pin your own with `image:`
    "vllm": Preset(image="vllm/vllm-openai:v0.11.0", port=8000, fetches=True, multi_node=True,
                   health=Health(path="/health", start_timeout=1800, interval=5)),
    "sglang": Preset(image="lmsysorg/sglang:v0.5.3-cu126", port=30000, fetches=True, multi_node=True,
                     health=Health(path="/health", start_timeout=1800, interval=5)),
    "nim": Preset(image="nvcr.io/nim/meta/llama-3.1-8b-instruct:1.13.1", port=8000, fetches=True, multi_node=False,
                  health=Health(path="/v1/health/ready", start_timeout=3600, interval=10)),
    "trtllm": Preset(image="nvcr.io/nvidia/tensorrt-llm/release:1.0.0", port=8000, fetches=True, multi_node=True,
                     health=Health(path="/health", start_timeout=3600, interval=10)),
    "reference": Preset(image="evals/reference-endpoint:latest", port=8000, fetches=False, multi_node=False,
                        health=Health(path="/health", start_timeout=300, interval=1)),
}


class Deployment(_Strict):
    """A model server, every setting decided: what `--dry_run` shows and results record (no secret values)."""

    type: Literal["vllm", "sglang", "nim", "trtllm", "reference"] = Field(description="The server.")
    image: str = Field(description="Its image.")
    checkpoint: str | None = Field(default=None, description="An absolute host path (mounted read-only) or a model "
                                                             "id; None: the image's own model (reference, nim).")
    checkpoint_is_path: bool = Field(default=False, description="Whether checkpoint is a host path.")
    served_model_name: str = Field(description="The model name it answers to (the tasks' model_id).")
    port: int = Field(ge=1, le=65535, description="The port it listens on.")
    gpus: int | Literal["all"] | list[int] | None = Field(default=None, description="GPUs for the server.")
    tensor_parallel_size: int = Field(default=1, ge=1, description="Tensor parallelism.")
    data_parallel_size: int = Field(default=1, ge=1, description="Data parallelism.")
    nodes: int = Field(default=1, ge=1, description="Nodes the server spans (Slurm).")
    extra_args: list[str] = Field(default_factory=list, description="More arguments, appended as they are.")
    env: list[EnvVarName] = Field(default_factory=list, description="NAMES of variables passed to the server.")
    health: Health = Field(description="How readiness is checked.")


def is_path(checkpoint: str) -> bool:
    """A checkpoint written as a path (absolute, ``./``, ``../`` or ``~``), not a model id."""
    return checkpoint.startswith(("/", "./", "../", "~")) or checkpoint in (".", "..")


def resolve_deployment(layer: DeploymentLayer | None, *, base: Path | None = None) -> Deployment | None:
    """The merged ``deployment:`` layer with its preset's defaults; None for no deployment (or ``type: none``).

    A relative checkpoint path is taken from ``base`` (the current directory when None). Nothing is checked
    against this machine here (paths, ports, GPUs): the host does that before it starts anything."""
    if layer is None or layer.type in (None, "none"):
        if layer is not None and layer.type is None and layer.model_fields_set - {"type"}:
            raise InputError("deployment has settings but no type",
                             hint="set deployment.type: vllm, sglang, nim, trtllm, reference or none")
        return None
    preset = PRESETS[layer.type]
    checkpoint, as_path = layer.checkpoint, False
    if checkpoint is not None and is_path(checkpoint):
        as_path = True
        checkpoint = str(((base or Path.cwd()) / Path(checkpoint).expanduser()).resolve())
    elif checkpoint is not None and not preset.fetches:
        raise InputError(f"deployment.checkpoint {checkpoint!r} is a model id, but a {layer.type} server cannot "
                         "fetch one", hint="give a path (absolute, or starting with ./ or ~)")
    nodes = layer.nodes or 1
    if nodes > 1 and not preset.multi_node:
        raise InputError(f"a {layer.type} server runs on one node; deployment.nodes is {nodes}",
                         hint="drop deployment.nodes")
    health = layer.health
    return Deployment(
        type=layer.type, image=layer.image or preset.image, checkpoint=checkpoint, checkpoint_is_path=as_path,
        served_model_name=layer.served_model_name or _served_name(layer.type, checkpoint, as_path),
        port=layer.port or preset.port, gpus=layer.gpus,
        tensor_parallel_size=layer.tensor_parallel_size or 1, data_parallel_size=layer.data_parallel_size or 1,
        nodes=nodes, extra_args=list(layer.extra_args or []), env=list(layer.env or []),
        health=Health(path=(health.path if health and health.path else preset.health.path),
                      start_timeout=(health.start_timeout if health and health.start_timeout
                                     else preset.health.start_timeout),
                      interval=(health.interval if health and health.interval else preset.health.interval)),
    )


def _served_name(kind: DeploymentType, checkpoint: str | None, as_path: bool) -> str:
    """The default model name: a model id as it is, a path's last part, else what the image serves."""
    if checkpoint is None:
        return "SmolLM2-135M-Instruct" if kind == "reference" else "model"
    return Path(checkpoint).name if as_path else checkpoint


class ServedDeployment(_Strict):
    """What a run served, as its record and every result's provenance keep it: the resolved deployment, the server's
    command line and, once the server started, its image's content id. Names only, never a secret's value."""

    deployment: Deployment = Field(description="The resolved deployment (type, image, checkpoint path or id, ...).")
    command: list[str] = Field(description="The server's entry point and arguments as started (rendered once).")
    image_digest: str | None = Field(default=None, description="The server image's content id (sha256:...), known "
                                                               "once the server started.")


def served_from_env(environ: Mapping[str, str]) -> ServedDeployment | None:
    """The deployment the host passed to an evaluation container (:data:`DEPLOYMENT_VAR`), None when it passed
    none; a value that is not one is bad input naming the variable."""
    text = environ.get(DEPLOYMENT_VAR)
    if not text:
        return None
    try:
        return ServedDeployment.model_validate_json(text)
    except ValidationError as err:
        raise InputError(f"{DEPLOYMENT_VAR} is not a deployment record ({err.errors()[0]['msg']})",
                         hint="it is set by the evals host; unset it when running an image by hand") from None
