"""Planning a run on the host: every task resolved once, with the runtime's own code; its container spec, its record.

The host resolves each task once (the image's framework file from its labels, the user's flags, the output dir
as the container sees it) and hands the container the result: the task's ``run_config.yml``, mounted read-only,
which ``run_eval --resolved_config`` runs as it is. So a bad config fails before any container starts, and what
``--dry_run`` shows as the rendered config is, byte for byte, what the container runs. Every task is resolved and
validated before anything is written or started, so one bad task stops the whole run with one message.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator import __version__
from orchestrator.host.backends.container import LaunchSpec, Mount
from orchestrator.host.backends.slurm.script import task_log
from orchestrator.host.catalog import HarnessImage
from orchestrator.host.data.cache import DataAccess, is_local
from orchestrator.host.deploy.target import point_at_server
from orchestrator.host.records import store
from orchestrator.runtime.run import RUN_CONFIG_FILE, LoadedFramework, Plan, plan_run, resolved_config_text
from orchestrator.schema.config import Evaluation
from orchestrator.schema.container import (
    DATA_DIR,
    HOST_CONTRACT_VAR,
    HOST_VERSION_VAR,
    IMAGE_VAR,
    RESOLVED_CONFIG_PATH,
    RESULTS_DIR,
    RUN_LABEL_PREFIX,
)
from orchestrator.schema.contract import fingerprint
from orchestrator.schema.deployment import Deployment
from orchestrator.schema.errors import InputError
from orchestrator.schema.record import (
    ContainerRecord,
    ExecutorName,
    MountRecord,
    RunRecord,
    SlurmRecord,
    TaskRecord,
)
from orchestrator.schema.resolve import RunRequest
from orchestrator.schema.sanity import run_keys, unset_key
from orchestrator.schema.slurm import SlurmConfig

NetworkMode = str  # "auto" | "host" | "default"


@dataclass(frozen=True)
class ContainerRun:
    """A run planned on the host: the container's plan and the spec that starts it."""

    run_id: str
    image: HarnessImage
    plan: Plan
    spec: LaunchSpec
    output_dir: Path


def container_args() -> list[str]:
    """run_eval arguments for the container: the resolved run, nothing to resolve again."""
    return ["run_eval", "--resolved_config", RESOLVED_CONFIG_PATH]


def resolve_task(image: HarnessImage, request: RunRequest, *, data: DataAccess | None = None) -> Plan:
    """The task resolved and rendered as its container will run it (output dir as the container sees it)."""
    framework = LoadedFramework(Path(f"{image.image}:framework.yml"), image.framework, image.framework_sha256)
    offline = request.offline or (data is not None and data.offline)
    return plan_run(framework, replace(request, output_dir=RESULTS_DIR, offline=offline))


def plan_container_run(image: HarnessImage, plan: Plan, *, run_id: str, output_dir: Path,
                       network: NetworkMode = "auto", data_dir: Path | None = None,
                       data: DataAccess | None = None) -> ContainerRun:
    """The launch spec of a resolved task: its output dir, its resolved config (read-only), data, key names."""
    evaluation = plan.evaluation
    url = evaluation.target.api_endpoint.url
    mounts = [Mount(source=output_dir.resolve(), target=RESULTS_DIR),
              Mount(source=output_dir.resolve() / RUN_CONFIG_FILE, target=RESOLVED_CONFIG_PATH, read_only=True)]
    if data is not None:
        mounts.append(data.mount)
    if data_dir is not None:
        if not data_dir.is_dir():
            raise InputError(f"--data_dir {data_dir} is not a directory", hint="pass the directory of pre-staged data")
        mounts.append(Mount(source=data_dir.resolve(), target=DATA_DIR, read_only=True))
    environment = dict(data.environment) if data is not None else {}
    # provenance (the name a pinned image is recorded under) and the runtime's check of the host's contract
    environment |= {IMAGE_VAR: image.image, HOST_VERSION_VAR: __version__, HOST_CONTRACT_VAR: fingerprint()}
    spec = LaunchSpec(
        image=image.digest or image.image, args=container_args(), name=f"evals-{run_id}",
        user=f"{os.getuid()}:{os.getgid()}",
        network_host=network == "host"
        or (network == "auto" and (is_local(url) or (data is not None and data.loopback))),
        mounts=mounts, environment=environment,
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


ImageChooser = Callable[[RunRequest], HarnessImage]
DEFAULT_RESULTS = Path("results")
_UNSAFE_PATH_CHARS = set(" \t\n\r'\"\\$`")


def entrypoint(harness: str) -> str:
    """The image's entry point: ``core_evals_<harness>`` with ``-`` as ``_``."""
    return "core_evals_" + harness.replace("-", "_")


def output_dirs(keys: list[tuple[str, str]], *, run_id: str, executor: ExecutorName, output_dir: Path | None,
                output_root: Path) -> list[Path]:
    """Each task's output dir. One task: --output_dir as given. Several: <--output_dir>/<harness>-<task>.

    Defaults: local ``results/<harness>-<task>-<run id>``; slurm ``<output_root>/<run id>/<harness>-<task>``.
    """
    if len(keys) == 1 and output_dir is not None:
        return [output_dir]
    if output_dir is not None:
        return [output_dir / f"{harness}-{task}" for harness, task in keys]
    if executor == "slurm":
        return [output_root / run_id / f"{harness}-{task}" for harness, task in keys]
    return [DEFAULT_RESULTS / f"{harness}-{task}-{run_id}" for harness, task in keys]


def plan_tasks(requests: list[RunRequest], *, choose: ImageChooser, run_id: str, executor: ExecutorName,
               output_dir: Path | None, output_root: Path, network: NetworkMode,
               data_dir: Path | None, data: DataAccess | None = None,
               deployment: Deployment | None = None) -> list[ContainerRun]:
    """Resolve every task once (pointed at the run's server when it deploys one); refuse a task given twice. Output
    dirs follow :func:`output_dirs`."""
    images = [choose(request) for request in requests]
    if deployment is not None:
        requests = [point_at_server(request, image, deployment) for request, image in zip(requests, images,
                                                                                           strict=True)]
    plans = [resolve_task(image, request, data=data) for image, request in zip(images, requests, strict=True)]
    keys = [(image.harness, plan.evaluation.config.type) for image, plan in zip(images, plans, strict=True)]
    for key in keys:
        if keys.count(key) > 1:
            raise InputError(f"task {key[0]}.{key[1]} is given twice", hint="give each --eval_type once")
    dirs = output_dirs(keys, run_id=run_id, executor=executor, output_dir=output_dir, output_root=output_root)
    return [plan_container_run(image, plan, run_id=run_id, output_dir=directory.resolve(), network=network,
                               data_dir=data_dir, data=data)
            for image, plan, directory in zip(images, plans, dirs, strict=True)]


def _container(planned: ContainerRun) -> ContainerRecord:
    spec = planned.spec
    return ContainerRecord(
        image=spec.image, entrypoint=entrypoint(planned.image.harness), args=list(spec.args),
        network_host=spec.network_host, secret_envs=list(spec.secret_envs), environment=dict(spec.environment),
        labels=dict(spec.labels),
        mounts=[MountRecord(source=str(m.source), target=m.target, read_only=m.read_only) for m in spec.mounts],
    )


def slurm_details(run_id: str, config: SlurmConfig, *, tasks: int) -> SlurmRecord:
    """Where a Slurm run keeps its logs and exit codes (shared storage) and its script (record dir)."""
    run_dir = (Path(config.output_root or DEFAULT_RESULTS) / run_id).resolve()
    if _UNSAFE_PATH_CHARS & set(str(run_dir)):
        raise InputError(f"output_root {str(run_dir.parent)!r} contains spaces, quotes or shell characters",
                         hint="pick a plain path: it goes into #SBATCH lines (--output_root)")
    return SlurmRecord(config=config, run_dir=str(run_dir), script=str(store.record_dir(run_id) / "job.sh"),
                       array=tasks > 1)


def new_record(run_id: str, executor: ExecutorName, planned: list[ContainerRun],
               slurm: SlurmRecord | None = None) -> RunRecord:
    """The record of a run about to start: every task pending."""
    tasks = []
    for index, run in enumerate(planned):
        log = (task_log(slurm.run_dir, index) if slurm is not None
               else str(store.record_dir(run_id) / "logs" / f"task-{index}.log"))
        tasks.append(TaskRecord(index=index, harness=run.image.harness, task=run.plan.evaluation.config.type,
                                output_dir=str(run.output_dir), log=log, container=_container(run),
                                resolved_config=resolved_config_text(run.plan.evaluation)))
    now = store.now()
    return RunRecord(id=run_id, executor=executor, created_at=now, updated_at=now, host=store.hostname(),
                     tasks=tasks, slurm=slurm)
