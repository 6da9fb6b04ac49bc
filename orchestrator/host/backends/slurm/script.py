"""The Slurm batch script of a run: rendered once (Jinja, StrictUndefined, every value through ``shq``).

One script serves every task of a run: as a job array, each element picks its task by
``$SLURM_ARRAY_TASK_ID``; the run's ``max_parallel`` throttles the array (``--array=0-K%N``: at most N elements
run at once). A task starts the same image, with the same arguments, mounts, user and
API-key hand-over as the local docker launcher, through the container runtime of the cluster:

- ``docker``: ``docker run --rm --init`` labelled ``evals.slurm.job=$SLURM_JOB_ID``. The container is
  a child of the Docker daemon, not of the job, so the script removes it when the job is signalled
  (scancel, time limit) and the Epilog (``epilog.sh`` beside this module) removes whatever is left.
- ``enroot``: ``srun --container-image`` (pyxis); the container is a job step, stopped with the job.
- ``apptainer``: ``apptainer exec --cleanenv``; a child process of the job.

Like the local launcher, the script tells the container its image for results.yml's provenance: the name, the
version and contract fingerprint of the host that resolved the run (from the record) and, when the node's Docker
engine holds the image the job runs (docker; enroot ``dockerd://``, apptainer ``docker-daemon://``), its content
id and registry digest, asked on the node when the job starts.

No secret is in the script: the API key's variable is exported to the job by NAME (``--export``) and
piped to the container's stdin, whose runtime reads it when ``EVALS_SECRET_STDIN`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from orchestrator.host.backends.slurm.server import SERVER_FAILED, gpu_directives, server
from orchestrator.runtime.render import make_environment
from orchestrator.schema.container import (
    IMAGE_DIGEST_VAR,
    IMAGE_REPO_DIGEST_VAR,
    IMAGE_VAR,
    RUN_LABEL_PREFIX,
    SECRET_STDIN_VAR,
)
from orchestrator.schema.deployment import Deployment
from orchestrator.schema.record import TaskRecord
from orchestrator.schema.slurm import SlurmConfig

SLURM_JOB_LABEL = "evals.slurm.job"
"""Label on every container a job starts with docker: the job's $SLURM_JOB_ID (what the Epilog removes)."""

TEMPLATE_FILE = "script.sh.j2"
"""The batch script's Jinja template, a package data file beside this module."""
DEPLOY_TEMPLATE_FILE = "deploy.sh.j2"
"""The batch script of a run with a deployment: one job, the server, then the tasks one after the other."""


def template_text(name: str = TEMPLATE_FILE) -> str:
    """The template as shipped (read once per render; rendering stays one pass)."""
    return files(__package__ or __name__).joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class _Task:
    """One task as the template sees it: every value literal, quoted by the template."""

    index: int
    image: str
    entrypoint: str
    args: list[str]
    mounts: list[str]
    labels: list[str]
    keys: list[str]
    env: list[str]
    network_host: bool
    inspect: str | None
    """The image as this node's Docker engine names it, for its id in results.yml's provenance (None: a file)."""


def runtime_image(image: str, harness: str, config: SlurmConfig) -> str:
    """The image as the cluster's container runtime names it (``images`` in the config wins)."""
    if harness in config.images:
        return config.images[harness]
    if config.container_runtime == "enroot":
        return f"dockerd://{image}"
    if config.container_runtime == "apptainer":
        return f"docker-daemon://{image}"
    return image


def _task(record: TaskRecord, config: SlurmConfig) -> _Task:
    container = record.container
    mounts = [f"{m.source}:{m.target}" + (":ro" if m.read_only else "") for m in container.mounts]
    image = runtime_image(container.image, record.harness, config)
    named = record.harness in config.images  # the Slurm config names the image (a .sqsh, a .sif, another name)
    environment = dict(container.environment)
    if named and IMAGE_VAR in environment:
        environment[IMAGE_VAR] = image
    return _Task(
        index=record.index, image=image, entrypoint=container.entrypoint, args=container.args, mounts=mounts,
        labels=[f"{key}={value}" for key, value in container.labels.items()],
        keys=list(container.secret_envs), env=[f"{k}={v}" for k, v in environment.items()],
        network_host=container.network_host,
        inspect=image if config.container_runtime == "docker" else None if named else container.image,
    )


def directives(config: SlurmConfig) -> list[str]:
    """sbatch options from the config, in a fixed order, then the extra ones as given."""
    options = {"--partition": config.partition, "--account": config.account, "--time": config.time,
               "--gres": config.gres, "--gpus": config.gpus, "--cpus-per-task": config.cpus_per_task,
               "--mem": config.mem}
    return [f"{name}={value}" for name, value in options.items() if value is not None] + list(config.sbatch_extra)


def exported(config: SlurmConfig, tasks: list[TaskRecord], server_keys: list[str] | None = None) -> list[str]:
    """Names for --export: the config's list plus every API key's variable and the server's (names, never values)."""
    keys = [name for t in tasks for name in t.container.secret_envs]
    return list(dict.fromkeys([*config.export, *keys, *(server_keys or [])]))


def log_pattern(run_dir: str, *, array: bool) -> str:
    """Where Slurm writes a task's console output (appended across resubmissions), as an sbatch filename pattern.

    sbatch replaces ``%j``, ``%u``, ``%x``... in ``--output``, so a ``%`` of the run directory is written ``%%``
    (a literal ``%``): the log lands at :func:`task_log` whatever the directory is called.
    """
    directory = run_dir.replace("%", "%%")
    return f"{directory}/logs/task-%a.log" if array else f"{directory}/logs/task-0.log"


def task_log(run_dir: str, index: int) -> str:
    """The console log of one task, as Slurm names it from :func:`log_pattern`."""
    return f"{run_dir}/logs/task-{index}.log"


def exit_file(run_dir: str, index: int) -> str:
    """Where the script records a task's exit code (status once the scheduler has forgotten the job)."""
    return f"{run_dir}/exit/task-{index}.code"


def job_log(run_dir: str) -> str:
    """The console of a job with a deployment (the server's start and wait, each task's start and end)."""
    return f"{run_dir}/logs/job.log"


def server_log(run_dir: str) -> str:
    """The output of a deployment's server, every node's."""
    return f"{run_dir}/logs/server.log"


def array_spec(indices: list[int], *, max_parallel: int | None) -> str:
    """sbatch's ``--array`` value for these task indices (``0-K`` when they are all of 0..K, else a list), with the
    throttle ``%N`` when ``max_parallel`` is set: at most N elements of the array run at once."""
    whole = indices == list(range(len(indices)))
    spec = f"0-{len(indices) - 1}" if whole else ",".join(map(str, indices))
    return f"{spec}%{max_parallel}" if max_parallel is not None else spec


def render_batch_script(*, run_id: str, run_dir: str, tasks: list[TaskRecord], config: SlurmConfig,
                        deployment: Deployment | None = None, max_parallel: int | None = None) -> str:
    """The whole batch script, rendered once: a job array for several tasks (throttled to ``max_parallel``); with a
    deployment, one job that serves the model to every task."""
    if deployment is not None:
        return _render_deployment(run_id=run_id, run_dir=run_dir, tasks=tasks, config=config, deployment=deployment)
    array = len(tasks) > 1
    template = make_environment().from_string(template_text())
    return template.render(
        run_id=run_id, run_dir=run_dir, runtime=config.container_runtime, job_name=f"evals-{run_id}",
        log_pattern=log_pattern(run_dir, array=array),
        array=array_spec([t.index for t in tasks], max_parallel=max_parallel) if array else "",
        export=exported(config, tasks), directives=directives(config), job_label=SLURM_JOB_LABEL,
        secret_var=SECRET_STDIN_VAR, gpus=bool(config.gpus) or "gpu" in (config.gres or ""),
        digest_var=IMAGE_DIGEST_VAR, repo_digest_var=IMAGE_REPO_DIGEST_VAR,
        tasks=[_task(task, config) for task in tasks],
    ) + "\n"


def _render_deployment(*, run_id: str, run_dir: str, tasks: list[TaskRecord], config: SlurmConfig,
                       deployment: Deployment) -> str:
    served = server(deployment, config)
    required = list(dict.fromkeys([*(key for task in tasks for key in task.container.secret_envs), *served.keys]))
    template = make_environment().from_string(template_text(DEPLOY_TEMPLATE_FILE))
    return template.render(
        run_id=run_id, run_dir=run_dir, runtime=config.container_runtime, job_name=f"evals-{run_id}",
        job_log=job_log(run_dir).replace("%", "%%"), export=exported(config, tasks, served.keys),
        directives=[*gpu_directives(deployment, config), *directives(config)], job_label=SLURM_JOB_LABEL,
        secret_var=SECRET_STDIN_VAR, digest_var=IMAGE_DIGEST_VAR, repo_digest_var=IMAGE_REPO_DIGEST_VAR,
        tasks=[_task(task, config) for task in tasks], server=served, failed_code=SERVER_FAILED, required=required,
        run_label=f"{RUN_LABEL_PREFIX}.id={run_id}",
    ) + "\n"
