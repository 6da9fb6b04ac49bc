"""The model server of a Slurm run with a deployment, as the batch script (``deploy.sh.j2``) sees it.

With a deployment, a run is one job: it allocates the deployment's nodes and GPUs, starts the server on every node
with the cluster's container runtime, waits for its health route, runs the tasks one after the other against it
and stops it on every way out (end, failure, scancel, time limit). Every value is quoted here or in the template;
the node's rank and the head's name are shell expansions (:func:`orchestrator.host.deploy.multinode.shell_words`).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from orchestrator.host.deploy.commands import ServerCommand
from orchestrator.host.deploy.multinode import IMAGE_ENTRYPOINTS, node_command, shell_words
from orchestrator.schema.deployment import Deployment
from orchestrator.schema.errors import InputError
from orchestrator.schema.slurm import SlurmConfig

SERVER_IMAGE_KEY = "deployment"
"""The key of ``images`` in the Slurm config that names the server's image for the cluster's runtime."""

SERVER_FAILED = 3
"""The exit code recorded for every task a server that died or never answered kept from running."""


@dataclass(frozen=True)
class Server:
    """The server's part of the batch script: literal values, or shell text already quoted."""

    type: str
    nodes: int
    port: int
    health_url: str
    start_timeout: int
    interval: str
    image: str
    """The image as the runtime names it, quoted."""
    keys: list[str]
    """NAMES of the variables the server gets from the job's environment."""
    env: list[str]
    mounts: list[str]
    gpus: str | None
    """``all``, ``visible`` (the job's CUDA_VISIBLE_DEVICES) or None."""
    entrypoint: str | None
    """docker: the image's entry point replaced by this program (quoted); None: the image's own."""
    command: str
    """docker: the arguments after the entry point; apptainer/enroot: the whole command (None entry point: args)."""
    own_entrypoint: bool
    """The command is the arguments to the image's own entry point (apptainer run, pyxis --container-entrypoint)."""


def server_image(image: str, config: SlurmConfig) -> str:
    """The server's image as the cluster's runtime names it: the config's ``images.deployment``, a path or URI as it
    is, else the local engine's image as for the evaluation images (dockerd://, docker-daemon://)."""
    if SERVER_IMAGE_KEY in config.images:
        return config.images[SERVER_IMAGE_KEY]
    if "://" in image or image.startswith("/") or config.container_runtime == "docker":
        return image
    return f"dockerd://{image}" if config.container_runtime == "enroot" else f"docker-daemon://{image}"


def _gpus(deployment: Deployment, config: SlurmConfig) -> str | None:
    if deployment.gpus == "all":
        return "all"
    if deployment.gpus is not None or config.gpus or "gpu" in (config.gres or ""):
        return "visible"
    return None


def gpu_directives(deployment: Deployment, config: SlurmConfig) -> list[str]:
    """sbatch options for the server's nodes and GPUs (the config's --gres/--gpus win)."""
    options = [f"--nodes={deployment.nodes}", "--ntasks-per-node=1"]
    if config.gres or config.gpus:
        return options
    if deployment.gpus == "all":
        return [*options, "--exclusive"]
    if isinstance(deployment.gpus, list):
        return [*options, f"--gres=gpu:{len(deployment.gpus)}"]
    if isinstance(deployment.gpus, int):
        return [*options, f"--gres=gpu:{deployment.gpus}"]
    return options


def _command(command: ServerCommand, deployment: Deployment, runtime: str) -> tuple[str | None, str, bool]:
    entrypoint = command.entrypoint
    if entrypoint is None and runtime == "enroot" and deployment.nodes > 1:
        entrypoint = IMAGE_ENTRYPOINTS.get(deployment.type)  # started through bash on every node: name it
        if entrypoint is None:
            raise InputError(f"the {deployment.type} image's entry point is unknown to evals",
                             hint="run it on one node, or with container_runtime docker or apptainer")
    if entrypoint is None:
        return None, shell_words(command.args), True
    if runtime == "docker":
        return shlex.quote(entrypoint[0]), shell_words([*entrypoint[1:], *command.args]), False
    return None, shell_words([*entrypoint, *command.args]), False


def server(deployment: Deployment, config: SlurmConfig) -> Server:
    """The deployment as the batch script starts it."""
    command = node_command(deployment)
    entrypoint, words, own = _command(command, deployment, config.container_runtime)
    return Server(
        type=deployment.type, nodes=deployment.nodes, port=command.port,
        health_url=f"http://127.0.0.1:{command.port}{command.health_path}",
        start_timeout=math.ceil(deployment.health.start_timeout), interval=f"{deployment.health.interval:g}",
        image=shlex.quote(server_image(command.image, config)), keys=list(command.secret_envs),
        env=[f"{key}={value}" for key, value in command.environment.items()],
        mounts=[f"{source}:{target}" + (":ro" if read_only else "") for source, target, read_only in command.mounts],
        gpus=_gpus(deployment, config), entrypoint=entrypoint, command=words, own_entrypoint=own,
    )
