"""Slurm settings for ``evals run --executor slurm``: a YAML file (``--slurm_config``) and flags.

The flags (``--partition``, ``--time``, ...) override the file's values; ``--sbatch`` directives are
added to the file's ``sbatch_extra``. Both go through :class:`SlurmConfig`, so a bad value fails
the same way wherever it comes from: one line naming the file and line, or the flag.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from orchestrator.schema.config import EnvVarName
from orchestrator.schema.errors import ConfigError
from orchestrator.schema.loading import load_model, validation_error
from orchestrator.schema.sanity import check_values

ContainerRuntime = Literal["docker", "enroot", "apptainer"]
"""How a batch job starts the image: ``docker run``, ``srun --container-image`` (enroot/pyxis), ``apptainer exec``."""

DEFAULT_EXPORT: tuple[str, ...] = ("PATH", "HOME", "USER", "LANG", "TZ", "DOCKER_HOST")
"""Variables a job takes from the submitting shell besides the API key's (sbatch --export, by name)."""

RESERVED_DIRECTIVES: frozenset[str] = frozenset({
    "--array", "--output", "--error", "--export", "--job-name", "--open-mode", "--parsable", "--wrap",
})
"""Directives evals sets itself (the array, logs, job name, environment)."""

_TIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE")
_MEMORY = re.compile(r"\d+[KMGT]?")
_NAME = re.compile(r"[A-Za-z0-9_.+,:=@/%-]+")
_DIRECTIVE = re.compile(r"(--[a-z][a-z0-9-]*)(=[^\s'\"\\]+)?")


def _check_time(value: str) -> str:
    if not _TIME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slurm time limit: MINUTES, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")
    return value


def _check_memory(value: str) -> str:
    if not _MEMORY.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slurm memory size, e.g. 16G or 4000M")
    return value


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid Slurm name (letters, digits and _.+,:=@/%- only)")
    return value


def _check_directive(value: str) -> str:
    match = _DIRECTIVE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not an sbatch option: write it as --name=value (e.g. --qos=high) or --name, "
                         "without spaces or quotes")
    option = match.group(1)
    if option in RESERVED_DIRECTIVES:
        raise ValueError(f"{option} is set by evals (array, logs, job name, exported variables); drop it")
    return value.strip()


SlurmTime = Annotated[str, AfterValidator(_check_time)]
SlurmName = Annotated[str, AfterValidator(_check_name)]
Memory = Annotated[str, AfterValidator(_check_memory)]
Directive = Annotated[str, AfterValidator(_check_directive)]


class SlurmConfig(BaseModel):
    """How evaluation jobs are submitted to a Slurm cluster. Every field is optional."""

    model_config = ConfigDict(extra="forbid")

    partition: SlurmName | None = Field(default=None, description="Partition to submit to (sbatch --partition).")
    account: SlurmName | None = Field(default=None, description="Account to charge (sbatch --account).")
    time: SlurmTime | None = Field(
        default=None, description="Time limit per job: MINUTES, MM:SS, HH:MM:SS or D-HH:MM:SS (sbatch --time).")
    gres: SlurmName | None = Field(default=None, description="Generic resources per node, e.g. gpu:1 (sbatch --gres).")
    gpus: int | None = Field(default=None, ge=1, description="GPUs per job (sbatch --gpus); exposed to the container.")
    cpus_per_task: int | None = Field(default=None, ge=1, description="CPUs per job (sbatch --cpus-per-task).")
    mem: Memory | None = Field(default=None, description="Memory per node, e.g. 16G (sbatch --mem).")
    container_runtime: ContainerRuntime = Field(
        default="docker",
        description="How a job starts the image: docker (docker run), enroot (srun --container-image, pyxis) "
                    "or apptainer (apptainer exec).")
    images: dict[str, str] = Field(
        default_factory=dict,
        description="Harness -> image as the runtime on the compute nodes names it (a registry path, an enroot "
                    ".sqsh or an apptainer .sif). Default: the local image name (docker), dockerd://NAME (enroot), "
                    "docker-daemon://NAME (apptainer).")
    sbatch_extra: list[Directive] = Field(
        default_factory=list, description="More sbatch options, one per item, e.g. --qos=high or --exclusive.")
    output_root: str | None = Field(
        default=None,
        description="Directory on storage the compute nodes share: each run gets <output_root>/<run id>/ with the "
                    "tasks' output dirs and the jobs' logs. Default: ./results.")
    export: list[EnvVarName] = Field(
        default_factory=lambda: list(DEFAULT_EXPORT),
        description="Variables the jobs take from the submitting shell, by name (sbatch --export); the API key's "
                    "variable is always added.")


SLURM_FLAGS: dict[str, str] = {
    "partition": "--partition",
    "account": "--account",
    "time": "--time",
    "gres": "--gres",
    "gpus": "--gpus",
    "container_runtime": "--container_runtime",
    "output_root": "--output_root",
    "sbatch_extra": "--sbatch",
}
"""SlurmConfig field -> the `evals run` flag that sets it."""


def resolve_slurm_config(path: Path | None, flags: dict[str, Any]) -> SlurmConfig:
    """The file's settings (if any) overridden by the flags that were given; ``--sbatch`` items are appended.

    A bad flag value is reported against the flag, a bad file value against file:line.
    """
    given = {key: value for key, value in flags.items() if value not in (None, [], ())}
    unknown = set(given) - set(SLURM_FLAGS)
    if unknown:
        raise ValueError(f"not Slurm flags: {sorted(unknown)}")
    try:
        from_flags = SlurmConfig.model_validate(given)
    except ValidationError as err:
        field = str(err.errors()[0]["loc"][0])
        message = validation_error(err, model=SlurmConfig, doc=None, source="").message
        raise ConfigError(message.split(": ", 1)[-1], where=SLURM_FLAGS.get(field, field)) from None
    base = load_model(SlurmConfig, path) if path is not None else SlurmConfig()
    update = from_flags.model_dump(include=set(given) - {"sbatch_extra"})
    if "sbatch_extra" in given:
        update["sbatch_extra"] = [*base.sbatch_extra, *from_flags.sbatch_extra]
    config = base.model_copy(update=update)
    check_values(config.model_dump(), "slurm")  # a NUL byte cannot be in an #SBATCH line or a path
    return config
