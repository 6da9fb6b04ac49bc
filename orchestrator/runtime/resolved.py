"""``run_eval --resolved_config FILE``: a run the host resolved, run as it is (nothing merged again).

The host resolves each task once, writes the result (exactly what its ``--dry_run`` shows as the rendered config)
to the task's ``run_config.yml`` and mounts it read-only. Before reading it, the runtime checks that the host
speaks its contract: the host passes its version and contract fingerprint in the environment, and an image built
from another version (or before a contract change) refuses with the command that rebuilds it. The file is then
validated with the contract's models and the checks every resolved run passes; its command templates must be this
image's own (a node with another build of the image under the same name is refused too).
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator import __version__
from orchestrator.runtime.run import LoadedFramework, Plan, plan_evaluation
from orchestrator.schema.config import Evaluation
from orchestrator.schema.container import HOST_CONTRACT_VAR, HOST_VERSION_VAR, IMAGE_VAR
from orchestrator.schema.contract import fingerprint, short
from orchestrator.schema.errors import ConfigError, InputError
from orchestrator.schema.loading import load_model
from orchestrator.schema.merge import merge
from orchestrator.schema.resolve import check_resolved

RESOLUTION_FLAGS = ("--eval_type", "--model_id", "--model_url", "--model_type", "--api_key_name", "--output_dir",
                    "--run_config", "--overrides", "--offline")
"""run_eval's flags that resolve a run: refused with --resolved_config, whose run is resolved already."""


def rebuild_hint(harness: str) -> str:
    """How to get a runtime of the host's version: rebuild this image, or (outside an image) reinstall."""
    image = os.environ.get(IMAGE_VAR)
    if image:
        return (f"rebuild image {image} from the host's checkout: `make images` or "
                f"`bash scripts/build-image.sh {harness}`")
    return "install the host's version of the runtime here: pip install <the host's evals checkout>"


def check_host(harness: str) -> None:
    """The host that resolved the run (its version and contract in the environment) must match this runtime."""
    version, contract = os.environ.get(HOST_VERSION_VAR), os.environ.get(HOST_CONTRACT_VAR)
    own = fingerprint()
    if version in (None, __version__) and contract in (None, own):
        return
    where = f"image {os.environ[IMAGE_VAR]}" if os.environ.get(IMAGE_VAR) else "this runtime"
    raise InputError(f"{where} has evals {__version__} (contract {short(own)}) but the run was resolved by evals "
                     f"{version or '?'} (contract {short(contract or '?')})", hint=rebuild_hint(harness))


def refuse_resolution_flags(given: dict[str, object]) -> None:
    """``given``: run_eval's flags and their values; any resolution flag with --resolved_config is bad input."""
    named = [flag for flag in RESOLUTION_FLAGS if given.get(flag)]
    if named:
        raise InputError(f"--resolved_config runs a run resolved already; {', '.join(named)} cannot change it",
                         hint="drop them, or resolve here without --resolved_config")


def load_resolved(framework: LoadedFramework, path: Path) -> Plan:
    """Check the host, read and validate the resolved run, and render it (the same :class:`Plan` as the host's)."""
    definition = framework.definition
    harness = definition.framework.name
    check_host(harness)
    try:
        evaluation = load_model(Evaluation, path)
    except ConfigError as err:
        raise InputError(err.message, hint=f"if another version of evals wrote it, {rebuild_hint(harness)}") from None
    if evaluation.framework_name != harness:
        raise InputError(f"{path} is a run of {evaluation.framework_name}; this is the runtime of {harness}",
                         hint=f"run it in the {evaluation.framework_name} image")
    task = definition.find_task(f"{harness}.{evaluation.config.type}")
    check_resolved(evaluation, task)
    templates = merge(definition.defaults, task.defaults)
    if (evaluation.command, evaluation.data_command) != (templates.command, templates.data_command):
        raise InputError(f"{path} was resolved with another framework.yml than this runtime's ({framework.path})",
                         hint=rebuild_hint(harness))
    return plan_evaluation(framework, evaluation)
