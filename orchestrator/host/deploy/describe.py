"""What ``--dry_run`` shows of a run's model server, before its tasks: the container the executor would start."""

from __future__ import annotations

import json
import shlex

from orchestrator.host.deploy.commands import render_server
from orchestrator.schema.deployment import ServedDeployment


def gpu_text(gpus: int | str | list[int] | None) -> str:
    """``deployment.gpus`` in words: none, all, a count or device indices."""
    if gpus is None:
        return "none"
    if isinstance(gpus, list):
        return "devices " + ",".join(str(g) for g in gpus)
    return str(gpus)


def describe_server(served: ServedDeployment) -> str:
    """The server's image, command line, variables (secrets by name), mounts, GPUs and health check."""
    deployment = served.deployment
    command = render_server(deployment)
    mounts = ", ".join(f"{source}:{target}" + (":ro" if ro else "") for source, target, ro in command.mounts) or "-"
    entrypoint = shlex.join(command.entrypoint) if command.entrypoint else "(the image's own)"
    health = deployment.health
    return (f"Model server ({deployment.type}), started before the tasks and stopped after them:\n\n"
            f"  image: {command.image}\n  entrypoint: {entrypoint}\n  args: {json.dumps(command.args)}\n"
            f"  command: {shlex.join(served.command)}\n"
            f"  environment: {json.dumps(command.environment)}\n"
            f"  secrets by name: {', '.join(command.secret_envs) or '-'} (values from evals' environment)\n"
            f"  mounts: {mounts}\n  gpus: {gpu_text(deployment.gpus)}\n  network: host\n"
            f"  serves: {command.model_name} at {command.base_url()}\n"
            f"  health: GET {command.base_url()}{health.path} every {health.interval:g} s, up to "
            f"{health.start_timeout:g} s\n\n")
