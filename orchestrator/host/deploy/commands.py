"""Each server type's real command line, rendered from a resolved :class:`Deployment`.

One function per type, from the flags each server documents. The result, :class:`ServerCommand`, is
what an executor starts: the local one as a container on this engine, the Slurm one with the
cluster's container runtime on every node of the allocation. A multi-node server is rendered once
per node: ``head`` is the address of the first node and ``node_rank`` this node's rank (the Slurm
script passes shell expansions, e.g. ``"$HEAD_NODE"`` and ``"$SLURM_NODEID"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.schema.container import DEPLOYMENT_VAR
from orchestrator.schema.deployment import Deployment, ServedDeployment
from orchestrator.schema.errors import InputError
from orchestrator.schema.record import RunRecord

CHECKPOINT_MOUNT = "/checkpoint"
"""Where a checkpoint given as a host path is mounted (read-only) in the server's container."""


@dataclass(frozen=True)
class ServerCommand:
    """A server container: image, entry point and arguments, variables, what to mount and where it answers."""

    image: str
    entrypoint: list[str] | None
    """None: the image's own."""
    args: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    """Non-secret variables."""
    secret_envs: list[str] = field(default_factory=list)
    """NAMES of variables passed from evals' environment (values never in a file or command line)."""
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)
    """(host path, container path, read-only)."""
    port: int = 8000
    health_path: str = "/health"
    model_name: str = "model"

    def base_url(self, host: str = "127.0.0.1") -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:8000``."""
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class NodeContext:
    """Where one copy of a multi-node server runs: the first node's address, this node's rank, how many nodes."""

    head: str = "127.0.0.1"
    node_rank: str = "0"
    nodes: int = 1


def _model_arg(deployment: Deployment) -> str:
    """The checkpoint as the server sees it: the mount point for a path, the id as it is."""
    if deployment.checkpoint is None:
        return ""
    return CHECKPOINT_MOUNT if deployment.checkpoint_is_path else deployment.checkpoint


def _mounts(deployment: Deployment) -> list[tuple[str, str, bool]]:
    if deployment.checkpoint is not None and deployment.checkpoint_is_path:
        return [(deployment.checkpoint, CHECKPOINT_MOUNT, True)]
    return []


def _server(d: Deployment, *, entrypoint: list[str] | None, args: list[str],
            environment: dict[str, str] | None = None, secrets: list[str] | None = None) -> ServerCommand:
    """The common part: the user's extra arguments appended, their variables by name, the checkpoint mounted."""
    return ServerCommand(image=d.image, entrypoint=entrypoint, args=[*args, *d.extra_args],
                         environment=environment or {}, secret_envs=list(dict.fromkeys([*(secrets or []), *d.env])),
                         mounts=_mounts(d), port=d.port, health_path=d.health.path, model_name=d.served_model_name)


def _checkpoint(d: Deployment) -> str:
    """The model a server that needs one serves; a deployment without one is bad input."""
    if d.checkpoint is None:
        raise InputError(f"a {d.type} deployment needs a checkpoint",
                         hint="set deployment.checkpoint: a local path (./model, /models/x) or a model id")
    return _model_arg(d)


def _reference(d: Deployment, node: NodeContext) -> ServerCommand:
    args = ["--host", "127.0.0.1", "--port", str(d.port), "--served-model-name", d.served_model_name]
    if d.checkpoint is not None:
        args += ["--model", _model_arg(d)]
    return _server(d, entrypoint=None, args=args)


def _vllm(d: Deployment, node: NodeContext) -> ServerCommand:
    # `vllm serve MODEL [options]`: https://docs.vllm.ai/en/stable/cli/serve.html (--served-model-name, --host,
    # --port, --tensor-parallel-size, --data-parallel-size; the image's own entry point is the older api_server)
    args = [_checkpoint(d), "--served-model-name", d.served_model_name, "--host", "127.0.0.1", "--port", str(d.port),
            "--tensor-parallel-size", str(d.tensor_parallel_size), "--data-parallel-size", str(d.data_parallel_size)]
    return _server(d, entrypoint=["vllm", "serve"], args=args)


def _sglang(d: Deployment, node: NodeContext) -> ServerCommand:
    # `python3 -m sglang.launch_server`: https://docs.sglang.ai/advanced_features/server_arguments.html
    # (--model-path, --served-model-name, --host, --port, --tp-size, --dp-size)
    args = ["--model-path", _checkpoint(d), "--served-model-name", d.served_model_name, "--host", "127.0.0.1",
            "--port", str(d.port), "--tp-size", str(d.tensor_parallel_size), "--dp-size", str(d.data_parallel_size)]
    return _server(d, entrypoint=["python3", "-m", "sglang.launch_server"], args=args)


NIM_CACHE = "/opt/nim/.cache"
"""Where a NIM keeps the models it downloads (``NIM_CACHE_PATH``'s default)."""


def _nim(d: Deployment, node: NodeContext) -> ServerCommand:
    # NIM for LLMs 1.x reads its settings from variables, not arguments:
    # https://docs.nvidia.com/nim/large-language-models/1.12.0/configuration.html (NIM_SERVED_MODEL_NAME,
    # NIM_MODEL_NAME: a local model for the multi-LLM NIM, NIM_SERVER_PORT, NIM_TENSOR_PARALLEL_SIZE,
    # NIM_CACHE_PATH; NGC_API_KEY to download the model's profile)
    if d.data_parallel_size > 1:
        raise InputError("a NIM serves one replica; deployment.data_parallel_size is "
                         f"{d.data_parallel_size}", hint="drop deployment.data_parallel_size (or use vllm or sglang)")
    environment = {"NIM_SERVED_MODEL_NAME": d.served_model_name, "NIM_SERVER_PORT": str(d.port),
                   "NIM_CACHE_PATH": NIM_CACHE}
    if d.checkpoint is not None:
        environment["NIM_MODEL_NAME"] = _model_arg(d)
    if d.tensor_parallel_size > 1:
        environment["NIM_TENSOR_PARALLEL_SIZE"] = str(d.tensor_parallel_size)
    return _server(d, entrypoint=None, args=[], environment=environment, secrets=["NGC_API_KEY"])


def _trtllm(d: Deployment, node: NodeContext) -> ServerCommand:
    # `trtllm-serve MODEL [options]`: https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve/trtllm-serve.html
    # (--host, --port, --tp_size, --pp_size, --served_model_name); it has no data parallelism of its own
    if d.data_parallel_size > 1:
        raise InputError(f"trtllm-serve has no data parallelism; deployment.data_parallel_size is "
                         f"{d.data_parallel_size}", hint="drop it, or pass --ep_size/--pp_size in extra_args")
    args = [_checkpoint(d), "--served_model_name", d.served_model_name, "--host", "127.0.0.1", "--port", str(d.port),
            "--tp_size", str(d.tensor_parallel_size)]
    return _server(d, entrypoint=["trtllm-serve"], args=args)


RENDERERS: dict[str, Callable[[Deployment, NodeContext], ServerCommand]] = {
    "reference": _reference,
    "vllm": _vllm,
    "sglang": _sglang,
    "nim": _nim,
    "trtllm": _trtllm,
}


def render_server(deployment: Deployment, node: NodeContext | None = None) -> ServerCommand:
    """The server's container for this node (the only one, unless the deployment spans several)."""
    return RENDERERS[deployment.type](deployment, node or NodeContext(nodes=deployment.nodes))


def record_deployment(record: RunRecord, served: ServedDeployment) -> None:
    """Keep the run's server in its record, and hand it to every task's container for results.yml's provenance
    (:data:`~orchestrator.schema.container.DEPLOYMENT_VAR`); again once its image's id is known."""
    record.deployment = served
    for task in record.tasks:
        task.container.environment[DEPLOYMENT_VAR] = served.model_dump_json()
