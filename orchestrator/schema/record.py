"""The run record: what `evals run` started, persisted so that any shell can query it later.

One ``run.yml`` per run under the state directory (``$EVALS_STATE_DIR/runs/<id>/``, default
``~/.local/state/evals/runs/<id>/``). It holds names and paths only, never a secret: each task's
container is recorded as it was launched (image, arguments, mounts, the API key's variable NAME),
so a run can be resumed exactly as it started.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from orchestrator.schema.config import EnvVarName
from orchestrator.schema.deployment import ServedDeployment
from orchestrator.schema.slurm import SlurmConfig
from orchestrator.schema.tracking import ExportConfig

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A run id: letters, digits, ``_``, ``.`` and ``-``, not starting with ``.``, at most 64 characters. It names a
directory under the state directory, containers and Slurm jobs, so it can never be ``..`` or hold a ``/``."""


def check_run_id(value: str) -> str:
    """``value`` if it is a run id (see :data:`RUN_ID`)."""
    if not RUN_ID.fullmatch(value):
        raise ValueError("not a run id: letters, digits, '_', '.' and '-', not starting with '.', at most 64")
    return value


RunId = Annotated[str, AfterValidator(check_run_id)]

ExecutorName = Literal["local", "slurm"]

TaskState = Literal["pending", "running", "succeeded", "failed", "cancelled", "timeout", "interrupted"]
"""``interrupted``: ended without an exit code (killed, preempted, node lost, or evals itself stopped)."""

FINAL_STATES: frozenset[TaskState] = frozenset({"succeeded", "failed", "cancelled", "timeout", "interrupted"})
RESUMABLE_STATES: frozenset[TaskState] = frozenset({"failed", "cancelled", "timeout", "interrupted"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MountRecord(_Strict):
    """A bind mount, host path to container path."""

    source: str = Field(description="Absolute host path.")
    target: str = Field(description="Path inside the container.")
    read_only: bool = Field(default=False, description="Mounted read-only.")


class ContainerRecord(_Strict):
    """How a task's container is started. Holds no secret values."""

    image: str = Field(description="Image name as the local engine knows it.")
    entrypoint: str = Field(description="The image's entry point (core_evals_<harness>), for runtimes that ignore it.")
    args: list[str] = Field(description="Arguments to the entry point (run_eval ...).")
    network_host: bool = Field(default=False, description="Host networking (an endpoint on localhost).")
    mounts: list[MountRecord] = Field(default_factory=list, description="Bind mounts.")
    secret_envs: list[EnvVarName] = Field(
        default_factory=list, description="NAMES of the variables whose values the container reads from stdin, "
                                          "one line each (the API key's, the Hub token's).")
    environment: dict[str, str] = Field(default_factory=dict,
                                        description="Non-secret variables set in the container (HF_ENDPOINT).")

    @model_validator(mode="before")
    @classmethod
    def _one_secret(cls, data: Any) -> Any:
        """Records written before the Hub token was forwarded name one variable as ``secret_env``."""
        if isinstance(data, dict) and "secret_env" in data:
            data = dict(data)
            old = data.pop("secret_env")
            data.setdefault("secret_envs", [old] if old else [])
        return data
    labels: dict[str, str] = Field(default_factory=dict, description="Container labels (evals.run.*).")


class TaskRecord(_Strict):
    """One task of a run and its last known state."""

    index: int = Field(ge=0, description="Position in the run; the job array index on Slurm.")
    harness: str = Field(description="Harness name, e.g. lm-eval.")
    task: str = Field(description="The resolved task (config.type).")
    output_dir: str = Field(description="Absolute path of the task's output directory (results.yml, logs/).")
    log: str = Field(description="Absolute path of the task's console log.")
    container: ContainerRecord = Field(description="The container that runs the task.")
    model: str | None = Field(default=None, description="The suite model's name (`models[].name` of the suite file) "
                                                        "this task evaluates; None for a run without --suite.")
    resolved_config: str | None = Field(
        default=None, description="The run as the host resolved it (YAML, keys by name only), exactly what `--dry_run` "
                                  "shows as its rendered config: written to <output_dir>/run_config.yml before each "
                                  "start and run by the container as it is (run_eval --resolved_config). None in "
                                  "records written before the host passed it.")
    state: TaskState = Field(default="pending", description="Last known state.")
    job_id: str | None = Field(default=None, description="Slurm job id of the latest attempt (JOB or JOB_INDEX).")
    exit_code: int | None = Field(default=None, description="Exit code of the latest attempt, when known.")
    reason: str | None = Field(default=None, description="Why the task is in its state (scheduler reason, error).")
    attempts: int = Field(default=0, ge=0, description="How many times the task was started or submitted.")
    started_at: datetime | None = Field(default=None, description="When the latest attempt started (local).")
    finished_at: datetime | None = Field(default=None, description="When the latest attempt ended, if known.")


class Submission(_Strict):
    """One sbatch call."""

    job_id: str = Field(description="The job id sbatch printed.")
    argv: list[str] = Field(description="The sbatch command line (no secrets).")
    tasks: list[int] = Field(description="Task indices this submission runs.")
    submitted_at: datetime = Field(description="When.")


class SlurmRecord(_Strict):
    """What the Slurm executor needs to query, cancel and resubmit a run."""

    config: SlurmConfig = Field(description="The Slurm settings the run was submitted with.")
    run_dir: str = Field(description="<output_root>/<run id>: job logs (logs/) and exit codes (exit/), shared storage.")
    script: str = Field(description="Absolute path of the rendered batch script (in the record directory).")
    array: bool = Field(description="Whether the script is a job array (several tasks).")
    submissions: list[Submission] = Field(default_factory=list, description="Every sbatch call, oldest first.")


class SuiteRecord(_Strict):
    """The suite a run was planned from (`evals run --suite`)."""

    name: str = Field(description="The suite's name.")
    file: str = Field(description="Absolute path of the suite file, as it was read.")
    models: list[str] = Field(description="The suite's model names, in file order (the summary table's columns).")
    output_root: str = Field(description="Absolute path of the suite's output root: <root>/<model>/<harness>-<task>, "
                                         "and summary.yml.")
    export: ExportConfig | None = Field(default=None, description="The suite's export: section, run when the suite "
                                                                  "ends (also after a resume).")


class RunRecord(_Strict):
    """One `evals run`: its tasks, where their outputs go, and how to reach them again."""

    id: RunId = Field(description="The run id (the name of its directory).",
                      json_schema_extra={"pattern": f"^{RUN_ID.pattern}$"})
    executor: ExecutorName = Field(description="local (containers on this machine) or slurm (batch jobs).")
    created_at: datetime = Field(description="When the run was started.")
    updated_at: datetime = Field(description="When this record was last written.")
    host: str = Field(description="Machine the run was started from.")
    pid: int | None = Field(default=None, description="The evals process running a local run.")
    tasks: list[TaskRecord] = Field(min_length=1, description="The tasks, in index order.")
    max_parallel: int | None = Field(
        default=None, ge=1, description="Most tasks running at once: containers of a local run, the job array's "
                                        "throttle (%N) of a Slurm run. None: the default (local: "
                                        "min(4, CPU cores, tasks); Slurm: no throttle).")
    endpoint_limits: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="Endpoint URL (target.api_endpoint.url) -> the most requests at once across "
                                          "all of that endpoint's tasks: each task takes config.params.parallelism of "
                                          "them while it runs. Empty: no limit beyond each task's own parallelism.")
    slurm: SlurmRecord | None = Field(default=None, description="Slurm details (executor slurm only).")
    deployment: ServedDeployment | None = Field(
        default=None, description="The model server the run starts before its tasks and stops after them "
                                  "(`deployment:`); its image's id once it started.")
    suite: SuiteRecord | None = Field(default=None, description="The suite the run was planned from (--suite).")

    @property
    def images(self) -> list[str]:
        """Distinct images of the run's tasks, in task order."""
        return list(dict.fromkeys(task.container.image for task in self.tasks))

    @property
    def done(self) -> bool:
        """Every task has reached a final state."""
        return all(task.state in FINAL_STATES for task in self.tasks)
