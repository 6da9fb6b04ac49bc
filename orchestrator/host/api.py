"""What the `evals` command line calls: plan a run from its flags, start it, resume it, cancel it. Nothing here prints.

The CLI hands in the backends (an executor per kind, the image chooser, the endpoint check) and the
callbacks that show progress, so these calls run the same against test doubles.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.host.backends.container import Output
from orchestrator.host.backends.executor import Executor, check_deployment, check_executor
from orchestrator.host.backends.kubernetes.jobs import KubernetesOptions, render_jobs, write_jobs
from orchestrator.host.backends.slurm.script import render_batch_script
from orchestrator.host.catalog import HarnessImage, ImageCatalog, chosen_image, pick_image
from orchestrator.host.data.cache import DataAccess, data_access
from orchestrator.host.data.prefetched import check_holds, cluster_images, read_prefetched
from orchestrator.host.deploy.commands import record_deployment, render_server
from orchestrator.host.deploy.describe import describe_server
from orchestrator.host.plan import (
    DEFAULT_RESULTS,
    ContainerRun,
    ImageChooser,
    NetworkMode,
    check_api_key,
    new_record,
    plan_tasks,
    slurm_details,
)
from orchestrator.host.records import store
from orchestrator.host.replay import Replay
from orchestrator.host.suite import plan_suite as plan_pairs
from orchestrator.host.suite import read_suite
from orchestrator.runtime.run import describe, prepare_output_dir
from orchestrator.schema.deployment import ServedDeployment, resolve_deployment
from orchestrator.schema.errors import InputError
from orchestrator.schema.manifest import PrefetchManifest
from orchestrator.schema.record import ExecutorName, RunRecord
from orchestrator.schema.resolve import RunRequest, request_layers, requested_task, run_deployment
from orchestrator.schema.slurm import SlurmConfig, resolve_slurm_config

ExecutorFor = Callable[[str], Executor]
"""The executor of a kind of run (``local``, ``slurm``): real backends from the CLI, doubles in tests."""


@dataclass(frozen=True)
class PlannedRun:
    """A run resolved on the host, nothing written yet: its tasks, its record, how its containers reach data."""

    tasks: list[ContainerRun]
    record: RunRecord
    data: DataAccess


def refuse_changes(given: dict[str, object], *, by: Literal["--resume", "--from"]) -> None:
    """``--resume`` and ``--from`` run what was recorded, as it was: the flags of ``given`` (flag -> its value) that
    hold a value would change it, and are bad input naming them."""
    named = [flag for flag, value in given.items() if value]
    if not named:
        return
    if by == "--resume":
        raise InputError(f"--resume runs the recorded tasks as they were; {', '.join(named)} cannot change them",
                         hint="drop them, or start a new run")
    raise InputError(f"--from runs the recorded evaluation as it was; {', '.join(named)} cannot change it",
                     hint="drop them (only --output_dir, data and executor options apply), or start a new run")


def refuse_changes_on_resume(*, eval_type: list[str] | None, model_id: str | None, model_url: str | None,
                             run_config: Path | None, overrides: str | None, dry_run: bool = False,
                             from_results: Path | None = None) -> None:
    """``--resume`` runs the recorded tasks as they were: flags that would change them are bad input, and so is
    ``--dry_run`` (it would not stop the resume)."""
    if dry_run:
        raise InputError("--resume does not take --dry_run: it would start the recorded tasks again",
                         hint="`evals status RUN_ID` shows them and their state")
    refuse_changes({"--eval_type": eval_type, "--model_id": model_id, "--model_url": model_url,
                    "--run_config": run_config, "--overrides": overrides, "--from": from_results}, by="--resume")


def plan(*, eval_type: list[str] | None, model_id: str | None, model_url: str | None, model_type: str | None,
         api_key_name: str | None, output_dir: Path | None, run_config: Path | None, overrides: str | None,
         data_dir: Path | None, offline: bool, cache_dir: Path | None, data: Path | None, network: NetworkMode,
         executor: str, slurm_config: Path | None, partition: str | None, account: str | None,
         time_limit: str | None, gres: str | None, gpus: int | None, container_runtime: str | None,
         output_root: Path | None, sbatch: list[str] | None, choose: ImageChooser,
         max_parallel: int | None = None) -> PlannedRun:
    """Resolve every task of `evals run` and its record; bad input stops it before anything is written.

    A kubernetes run is planned as a local one (its record is never written; its Jobs take ``--gpus``).
    ``max_parallel``: tasks running at once (local containers, the Slurm array's throttle); None: the default."""
    target = check_executor(executor)
    check_max_parallel(max_parallel)
    kind, settings = executor_settings(executor, slurm_config, partition=partition, account=account,
                                       time_limit=time_limit, gres=gres, gpus=gpus,
                                       container_runtime=container_runtime, output_root=output_root, sbatch=sbatch)
    if data is not None and cache_dir is not None:
        raise InputError("--data and --cache_dir both name the data cache", hint="give one of them")
    requests = [RunRequest(eval_type=task, model_id=model_id, model_url=model_url, model_type=model_type,
                           api_key_name=api_key_name, run_config=run_config, overrides=overrides,
                           offline=offline or data is not None)
                for task in _tasks(eval_type)]
    prefetched = read_prefetched(data) if data else None
    access = data_access(cache_dir=cache_dir, prefetched_cache=prefetched[0] if prefetched else None,
                         offline=offline)
    run_id = store.new_run_id()
    served = served_deployment(requests, executor=target)
    planned = plan_tasks(requests, choose=choose, run_id=run_id, executor=kind, output_dir=output_dir,
                         output_root=Path(settings.output_root) if settings and settings.output_root
                         else DEFAULT_RESULTS, network=network, data_dir=data_dir, data=access,
                         deployment=served.deployment if served else None)
    settings = check_prefetched(data, prefetched, planned, settings)
    details = slurm_details(run_id, settings, tasks=len(planned)) if settings is not None else None
    record = new_record(run_id, kind, planned, details)
    record.max_parallel = max_parallel
    if served is not None:
        record_deployment(record, served)
    return PlannedRun(planned, record, access)


def served_deployment(requests: list[RunRequest], *, executor: str) -> ServedDeployment | None:
    """The run's model server (``deployment:``), resolved and its command rendered once; None without one."""
    deployment = resolve_deployment(run_deployment(requests))
    if deployment is None:
        return None
    if executor == "kubernetes":
        raise InputError("--executor kubernetes renders the evaluation Jobs only, not a model server",
                         hint="drop deployment: (point the tasks at a served model with --model_url)")
    command = render_server(deployment)
    return ServedDeployment(deployment=deployment, command=[*(command.entrypoint or []), *command.args])


def check_max_parallel(value: int | None) -> None:
    """``--max_parallel`` is at least 1."""
    if value is not None and value < 1:
        raise InputError(f"--max_parallel {value}: at least 1 task must run at a time",
                         hint="give --max_parallel 1 or more (or leave it out for the default)")


def executor_settings(executor: str, slurm_config: Path | None, *, partition: str | None, account: str | None,
                      time_limit: str | None, gres: str | None, gpus: int | None, container_runtime: str | None,
                      output_root: Path | None, sbatch: list[str] | None) -> tuple[ExecutorName, SlurmConfig | None]:
    """The kind of record a run gets and its Slurm settings; Slurm settings given to another executor are bad input.
    A kubernetes run is planned as a local one (its Jobs take ``--gpus``)."""
    target = check_executor(executor)
    kind: ExecutorName = "slurm" if target == "slurm" else "local"
    slurm_flags = {"partition": partition, "account": account, "time": time_limit, "gres": gres,
                   "gpus": None if target == "kubernetes" else gpus, "container_runtime": container_runtime,
                   "output_root": str(output_root) if output_root else None, "sbatch_extra": sbatch}
    settings = resolve_slurm_config(slurm_config, slurm_flags) if kind == "slurm" else None
    if settings is None and (slurm_config or any(v not in (None, []) for v in slurm_flags.values())):
        raise InputError(f"Slurm settings were given to a {target} run", hint="add --executor slurm, or drop them")
    return kind, settings


def check_prefetched(data: Path | None, prefetched: tuple[Path, PrefetchManifest] | None,
                     planned: list[ContainerRun], settings: SlurmConfig | None) -> SlurmConfig | None:
    """With ``--data``: the directory must hold every task's data; a Slurm run takes its .sqsh/.sif images, unless
    the Slurm config names others. Returns the Slurm settings to run with."""
    if data is None or prefetched is None:
        return settings
    manifest = prefetched[1]
    check_holds(data, manifest, [(p.image.harness, p.plan.evaluation.config.type) for p in planned])
    if settings is None:
        return None
    held = cluster_images(data, manifest, settings.container_runtime, {p.image.harness: p.image.image for p in planned})
    return settings.model_copy(update={"images": {**held, **settings.images}})


def plan_suite(*, suite_file: Path, output_dir: Path | None, offline: bool, cache_dir: Path | None, data: Path | None,
               network: NetworkMode, executor: str, slurm_config: Path | None, partition: str | None,
               account: str | None, time_limit: str | None, gres: str | None, gpus: int | None,
               container_runtime: str | None, output_root: Path | None, sbatch: list[str] | None,
               catalog: ImageCatalog, check_keys: bool, max_parallel: int | None = None) -> PlannedRun:
    """Resolve every (model, task) pair of a suite file into one run; every problem is listed at once, nothing is
    written. Outputs: ``<output_dir or <output root>/suite-<name>-<run id>>/<model>/<harness>-<task>``.
    ``max_parallel`` (the flag) wins over the suite's own."""
    check_max_parallel(max_parallel)
    kind, settings = executor_settings(executor, slurm_config, partition=partition, account=account,
                                       time_limit=time_limit, gres=gres, gpus=gpus,
                                       container_runtime=container_runtime, output_root=output_root, sbatch=sbatch)
    if data is not None and cache_dir is not None:
        raise InputError("--data and --cache_dir both name the data cache", hint="give one of them")
    suite = read_suite(suite_file)
    prefetched = read_prefetched(data) if data else None
    access = data_access(cache_dir=cache_dir, prefetched_cache=prefetched[0] if prefetched else None,
                         offline=offline)
    run_id = store.new_run_id()
    base = Path(settings.output_root) if settings and settings.output_root else DEFAULT_RESULTS
    root = output_dir if output_dir is not None else base / f"suite-{suite.name}-{run_id}"
    pairs = plan_pairs(suite, source=suite_file, catalog=catalog, run_id=run_id, root=root, network=network,
                       data=access, offline=offline or data is not None, check_keys=check_keys)
    settings = check_prefetched(data, prefetched, pairs.tasks, settings)
    details = slurm_details(run_id, settings, tasks=len(pairs.tasks)) if settings is not None else None
    record = new_record(run_id, kind, pairs.tasks, details)
    for task, model in zip(record.tasks, pairs.models, strict=True):
        task.model = model
    record.suite, record.endpoint_limits = pairs.suite, pairs.endpoint_limits
    record.max_parallel = max_parallel if max_parallel is not None else suite.max_parallel
    if pairs.served is not None:
        if executor == "kubernetes":
            raise InputError("--executor kubernetes renders the evaluation Jobs only, not a model server",
                             hint="drop the model's deployment: (point it at a served model with url)")
        record_deployment(record, pairs.served)
    return PlannedRun(pairs.tasks, record, access)


def _tasks(eval_types: list[str] | None) -> list[str | None]:
    """The --eval_type values; none at all leaves the task to --run_config or --overrides."""
    return list(eval_types) if eval_types else [None]


def eval_type_hint(request: RunRequest) -> str | None:
    """The task a request names, if it names one (to pick the image that offers it), read as resolving reads it."""
    return requested_task(request_layers(request))


def describe_run(run: PlannedRun) -> str:
    """--dry_run: each task's resolved config, command and container; a Slurm run's batch script."""
    planned, record = run.tasks, run.record
    text = describe_server(record.deployment) if record.deployment is not None else ""
    for task in planned:
        if len(planned) > 1:
            text += (f"=== task {planned.index(task)}: {task.image.harness}.{task.plan.evaluation.config.type}"
                     f" -> {task.output_dir}\n\n")
        text += describe(task.plan)
        spec = task.spec
        mounts = ", ".join(f"{m.source}:{m.target}" + (":ro" if m.read_only else "") for m in spec.mounts)
        text += (f"\nContainer:\n\n  image: {spec.image}\n  args: {json.dumps(spec.args)}\n"
                 f"  user: {spec.user}\n  network: {'host' if spec.network_host else 'default'}\n"
                 f"  mounts: {mounts}\n  environment: {json.dumps(spec.environment)}\n"
                 f"  secrets by name: {', '.join(spec.secret_envs) or '-'} (values passed on stdin)\n")
    if record.slurm is not None:
        script = render_batch_script(run_id=record.id, run_dir=record.slurm.run_dir, tasks=record.tasks,
                                     config=record.slurm.config, max_parallel=record.max_parallel,
                                     deployment=record.deployment.deployment if record.deployment else None)
        text += f"\nBatch script (sbatch --parsable):\n\n{script}"
    return text


def render_manifests(run: PlannedRun, options: KubernetesOptions) -> str:
    """--executor kubernetes --dry_run --manifests -: one Job per task, as one multi-document YAML text."""
    return render_jobs(run.record.id, run.record.tasks, options)


def write_manifests(run: PlannedRun, options: KubernetesOptions, directory: Path | None) -> list[Path]:
    """--executor kubernetes --dry_run: one Job manifest file per task, by default in results/kubernetes-<run id>."""
    record = run.record
    return write_jobs(record.id, record.tasks, options, directory or DEFAULT_RESULTS / f"kubernetes-{record.id}")


def start(run: PlannedRun, *, executor_for: ExecutorFor, check_endpoint: Callable[[str], None] | None,
          announce: Callable[[], None], output: Output) -> RunRecord:
    """Check keys, endpoints and the executor; write the record; start the tasks (``announce`` just before)."""
    planned, record = run.tasks, run.record
    for task in planned:
        check_api_key(task)
    run_executor = executor_for(record.executor)
    if record.deployment is not None:  # its server is not up yet: the executor checks what starting it needs
        check_deployment(run_executor, record.deployment)
    elif check_endpoint is not None:
        for url in dict.fromkeys(p.plan.evaluation.target.api_endpoint.url for p in planned):
            check_endpoint(url)
    run_executor.check()
    run.data.prepare()
    for task in planned:
        prepare_output_dir(task.output_dir)
    store.create(record)
    announce()
    return run_executor.start(record, output=output)


def resume(run_id: str, *, time_limit: str | None, executor_for: ExecutorFor, announce: Callable[[RunRecord], None],
           output: Output, max_parallel: int | None = None) -> RunRecord:
    """Start a recorded run's unfinished tasks again (a Slurm run may get a new time limit; any run a new
    ``max_parallel``, recorded)."""
    check_max_parallel(max_parallel)
    record = store.load(run_id)
    if max_parallel is not None:
        record.max_parallel = max_parallel
    if time_limit is not None:
        if record.slurm is None:
            raise InputError("--time applies to Slurm runs only", hint=f"run {run_id} ran locally")
        config = resolve_slurm_config(None, {"time": time_limit})
        record.slurm.config = record.slurm.config.model_copy(update={"time": config.time})
    for name in dict.fromkeys(name for t in record.tasks for name in t.container.secret_envs):
        if not os.environ.get(name):
            raise InputError(f"environment variable {name} (a secret of the run, passed by name) is not set",
                             hint=f"export {name}=<your key> and resume again")
    announce(record)
    return executor_for(record.executor).resume(record, output=output)


def cancel(run_id: str, *, executor_for: ExecutorFor) -> RunRecord:
    """Stop every unfinished task of a run."""
    record = store.load(run_id)
    return executor_for(record.executor).cancel(record)


def check_kubernetes(executor: str, *, dry_run: bool, manifests: Path | None, results_claim: str | None) -> None:
    """``--executor kubernetes`` only renders Job manifests (with --dry_run); its options belong to it alone."""
    if executor == "kubernetes" and not dry_run:
        raise InputError("--executor kubernetes only renders Job manifests; evals does not submit them",
                         hint="add --dry_run, then kubectl apply -f DIR")
    if executor != "kubernetes" and (manifests is not None or results_claim is not None):
        raise InputError("--manifests and --results_claim are for Kubernetes manifests",
                         hint="add --executor kubernetes --dry_run, or drop them")


def image_chooser(catalog: ImageCatalog, *, harness: str | None, image: str | None,
                  replay: Replay | None) -> ImageChooser:
    """How `evals run` picks each task's image: the one a replay ran in (by its id), the one --image or --harness
    names, else the built image that offers the task."""
    def choose(request: RunRequest) -> HarnessImage:
        if replay is not None:
            return catalog.pinned(name=replay.image, image_id=replay.image_digest,
                                  repo_digest=replay.image_repo_digest)
        if harness or image:
            return chosen_image(catalog, harness=harness, image=image)
        return pick_image(catalog.images(), eval_type_hint(request))

    return choose
