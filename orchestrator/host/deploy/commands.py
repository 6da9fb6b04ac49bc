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

from orchestrator.schema.deployment import Deployment

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


def _reference(d: Deployment, node: NodeContext) -> ServerCommand:
    args = ["--host", "127.0.0.1", "--port", str(d.port), "--served-model-name", d.served_model_name]
    if d.checkpoint is not None:
        args += ["--model", _model_arg(d)]
    return ServerCommand(image=d.image, entrypoint=None, args=[*args, *d.extra_args], secret_envs=list(d.env),
                         mounts=_mounts(d), port=d.port, health_path=d.health.path, model_name=d.served_model_name)


RENDERERS: dict[str, Callable[[Deployment, NodeContext], ServerCommand]] = {
    "reference": _reference,
}


def render_server(deployment: Deployment, node: NodeContext | None = None) -> ServerCommand:
    """The server's container for this node (the only one, unless the deployment spans several)."""
    return RENDERERS[deployment.type](deployment, node or NodeContext(nodes=deployment.nodes))
