"""Host side of one run: resolve with the runtime's own code, preflight, launch the image, gather results.

The host resolves the run exactly as the container will (same framework file, same flags,
output dir as seen inside the container), so a bad config fails before any container starts
and ``--dry_run`` shows what the container will run.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.catalog import HarnessImage
from orchestrator.datacache import DataAccess, is_local
from orchestrator.launchers import Launcher, LaunchSpec, Mount, Output
from orchestrator.runtime.run import LoadedFramework, Plan, plan_run, prepare_output_dir
from orchestrator.schema.config import Evaluation
from orchestrator.schema.container import DATA_DIR, RESULTS_DIR, RUN_CONFIG_PATH, RUN_LABEL_PREFIX
from orchestrator.schema.errors import EvalsError, HarnessError, InputError, ResultsParseError
from orchestrator.schema.limits import RESULTS_LIMITS
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.sanity import run_keys, unset_key

NetworkMode = str  # "auto" | "host" | "default"


@dataclass(frozen=True)
class ContainerRun:
    """A run planned on the host: the container's plan and the spec that starts it."""

    run_id: str
    image: HarnessImage
    plan: Plan
    spec: LaunchSpec
    output_dir: Path


def new_run_id() -> str:
    """Sortable, unique enough for one user: time plus pid-derived suffix."""
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 10000:04d}"


def container_args(request: RunRequest) -> list[str]:
    """run_eval arguments for the container: the user's flags, with container paths."""
    args = ["run_eval"]
    for flag, given in request.flag_values().items():
        value = RESULTS_DIR if flag == "--output_dir" else given
        if value is not None:
            args += [flag, value]
    if request.run_config is not None:
        args += ["--run_config", RUN_CONFIG_PATH]
    if request.overrides:
        args += ["--overrides", request.overrides]
    if request.offline:
        args.append("--offline")
    return args


def plan_container_run(image: HarnessImage, request: RunRequest, *, run_id: str, output_dir: Path,
                       network: NetworkMode = "auto", data_dir: Path | None = None,
                       data: DataAccess | None = None) -> ContainerRun:
    """Resolve and render on the host as the container will; build the launch spec."""
    framework = LoadedFramework(Path(f"{image.image}:framework.yml"), image.framework, image.framework_sha256)
    if data is not None and data.offline:
        request = replace(request, offline=True)
    plan = plan_run(framework, replace(request, output_dir=RESULTS_DIR))
    evaluation = plan.evaluation
    url = evaluation.target.api_endpoint.url
    mounts = [Mount(source=output_dir.resolve(), target=RESULTS_DIR)]
    if data is not None:
        mounts.append(data.mount)
    if request.run_config is not None:
        mounts.append(Mount(source=request.run_config.resolve(), target=RUN_CONFIG_PATH, read_only=True))
    if data_dir is not None:
        if not data_dir.is_dir():
            raise InputError(f"--data_dir {data_dir} is not a directory", hint="pass the directory of pre-staged data")
        mounts.append(Mount(source=data_dir.resolve(), target=DATA_DIR, read_only=True))
    spec = LaunchSpec(
        image=image.image, args=container_args(request), name=f"evals-{run_id}", user=f"{os.getuid()}:{os.getgid()}",
        network_host=network == "host"
        or (network == "auto" and (is_local(url) or (data is not None and data.loopback))),
        mounts=mounts, environment=dict(data.environment) if data is not None else {},
        secret_envs=list(dict.fromkeys(key_names(evaluation) + (data.secret_envs if data is not None else []))),
        labels={f"{RUN_LABEL_PREFIX}.id": run_id, f"{RUN_LABEL_PREFIX}.harness": image.harness,
                f"{RUN_LABEL_PREFIX}.task": evaluation.config.type},
    )
    return ContainerRun(run_id, image, plan, spec, output_dir)


def key_names(evaluation: Evaluation) -> list[str]:
    """Every key variable the run names: --api_key_name's and those in config.params.extra (judge, ...)."""
    return [key.name for key in run_keys(evaluation)]


def check_api_key(run: ContainerRun) -> None:
    """Every key variable the run names (endpoint, judge, user simulator) must be set on the host."""
    missing = unset_key(run_keys(run.plan.evaluation), os.environ)
    if missing is not None:
        raise missing


def preflight(url: str, *, timeout: float = 3.0) -> None:
    """Refuse early if nothing listens at the endpoint's host and port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InputError(f"endpoint {url} is unreachable ({reason})",
                         hint="start the endpoint or fix --model_url (--skip-preflight to skip this check)") from None


def execute(run: ContainerRun, launcher: Launcher, *, output: Output) -> ResultsFile:
    """Launch the container, wait, then read and validate results.yml."""
    prepare_output_dir(run.output_dir)
    code = launcher.run(run.spec, output=output)
    log = run.output_dir / "logs" / "harness.log"
    if code != 0:
        raise HarnessError(f"evaluation container exited with code {code}", exit_code=code, hint=f"see {log}")
    return read_results(run.output_dir / "results.yml")


def read_results(path: Path) -> ResultsFile:
    """Load and validate a results.yml written by a container (within RESULTS_LIMITS: 4 MiB, 250,000 nodes)."""
    if not path.exists():
        raise ResultsParseError(f"the container finished but wrote no {path}")
    try:
        return load_model(ResultsFile, path, limits=RESULTS_LIMITS)
    except EvalsError as err:
        raise ResultsParseError(f"invalid results file: {err}") from None
