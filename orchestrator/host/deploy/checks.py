"""What any executor checks of a run's server before anything is written: its checkpoint and its variables."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.host.deploy.commands import render_server
from orchestrator.schema.deployment import Deployment
from orchestrator.schema.errors import InputError


def check_inputs(deployment: Deployment) -> None:
    """A checkpoint path that does not exist (here, or on the cluster's shared storage as this login node sees it)
    and a variable the server is given by name that is not set are bad input, one line each."""
    if deployment.checkpoint_is_path and deployment.checkpoint and not Path(deployment.checkpoint).exists():
        raise InputError(f"deployment.checkpoint {deployment.checkpoint} does not exist",
                         hint="give the directory of the model's weights (mounted read-only)")
    missing = [name for name in render_server(deployment).secret_envs if not os.environ.get(name)]
    if missing:
        raise InputError(f"the {deployment.type} server needs {', '.join(missing)}, which is not set",
                         hint=f"export {missing[0]}=... (passed by name), or drop it from deployment.env")
