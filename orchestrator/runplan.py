"""From `evals run` flags to a run record: several tasks, each resolved on the host as its container will.

Every task is resolved and validated before anything is written or started, so one bad task
stops the whole run with one message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator import runs
from orchestrator.catalog import HarnessImage
from orchestrator.datacache import DataAccess
from orchestrator.launch import ContainerRun, NetworkMode, plan_container_run
from orchestrator.launchers.slurm_script import task_log
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
from orchestrator.schema.slurm import SlurmConfig

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
               data_dir: Path | None, data: DataAccess | None = None) -> list[ContainerRun]:
    """Resolve every task; refuse a task given twice. Output dirs follow :func:`output_dirs`."""
    images = [choose(request) for request in requests]
    first = [plan_container_run(image, request, run_id=run_id, output_dir=Path("."), network=network,
                                data_dir=data_dir, data=data) for image, request in zip(images, requests, strict=True)]
    keys = [(p.image.harness, p.plan.evaluation.config.type) for p in first]
    for key in keys:
        if keys.count(key) > 1:
            raise InputError(f"task {key[0]}.{key[1]} is given twice", hint="give each --eval_type once")
    dirs = output_dirs(keys, run_id=run_id, executor=executor, output_dir=output_dir, output_root=output_root)
    return [plan_container_run(image, request, run_id=run_id, output_dir=directory.resolve(), network=network,
                               data_dir=data_dir, data=data)
            for image, request, directory in zip(images, requests, dirs, strict=True)]


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
    return SlurmRecord(config=config, run_dir=str(run_dir), script=str(runs.record_dir(run_id) / "job.sh"),
                       array=tasks > 1)


def new_record(run_id: str, executor: ExecutorName, planned: list[ContainerRun],
               slurm: SlurmRecord | None = None) -> RunRecord:
    """The record of a run about to start: every task pending."""
    tasks = []
    for index, run in enumerate(planned):
        log = (task_log(slurm.run_dir, index) if slurm is not None
               else str(runs.record_dir(run_id) / "logs" / f"task-{index}.log"))
        tasks.append(TaskRecord(index=index, harness=run.image.harness, task=run.plan.evaluation.config.type,
                                output_dir=str(run.output_dir), log=log, container=_container(run)))
    now = runs.now()
    return RunRecord(id=run_id, executor=executor, created_at=now, updated_at=now, host=runs.hostname(),
                     tasks=tasks, slurm=slurm)
