"""The Slurm command line (sbatch, scontrol, scancel): the only module that runs it.

Commands run with argument lists, never through a shell. Without accounting (no sacct) a job's
state comes from ``scontrol show job``, which knows finished jobs for MinJobAge seconds; after
that the run's exit files tell (see :mod:`orchestrator.host.backends.slurm.executor`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator.schema.errors import EvalsError

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]
SLURM_HINT = "run evals where sbatch works (a cluster's login node); for a single-node test cluster: `make slurm`"


class SchedulerUnavailableError(EvalsError):
    """No Slurm controller answers, or its commands are missing."""

    exit_code = 2


class SchedulerError(EvalsError):
    """A Slurm command failed (e.g. sbatch rejected the job)."""

    exit_code = 1


@dataclass(frozen=True)
class JobInfo:
    """What scontrol says about one job (or array element)."""

    job_id: str
    state: str
    exit_code: int | None
    signal: int | None
    reason: str | None
    started: datetime | None = None
    ended: datetime | None = None


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise SchedulerUnavailableError(f"{argv[0]} is not on PATH: Slurm's client commands are missing",
                                        hint=SLURM_HINT)
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def parse_job_line(line: str) -> dict[str, str]:
    """``scontrol show job -o`` prints one job per line as space-separated KEY=VALUE pairs."""
    fields: dict[str, str] = {}
    for item in line.split():
        key, sep, value = item.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def _time(value: str | None) -> datetime | None:
    """scontrol's local times (``2026-11-27T08:14:17``); ``Unknown``/``None`` are no time."""
    try:
        return datetime.fromisoformat(value).astimezone() if value else None
    except ValueError:
        return None


def _job_info(job_id: str, fields: dict[str, str]) -> JobInfo:
    code, _, signal = fields.get("ExitCode", "").partition(":")
    reason = fields.get("Reason")
    return JobInfo(job_id=job_id, state=fields.get("JobState", "UNKNOWN"),
                   exit_code=int(code) if code.isdigit() else None,
                   signal=int(signal) if signal.isdigit() else None,
                   reason=None if reason in (None, "None") else reason,
                   started=_time(fields.get("StartTime")), ended=_time(fields.get("EndTime")))


class SlurmCli:
    """sbatch / scontrol / scancel through a runner (subprocess by default; a fake in unit tests)."""

    def __init__(self, runner: Runner | None = None) -> None:
        self._run = runner or _run

    def check(self) -> None:
        """Refuse early, with the remedy, when no controller answers."""
        result = self._run(["scontrol", "ping"])
        if result.returncode != 0 or "is UP" not in result.stdout:
            detail = (result.stdout + result.stderr).strip().splitlines()
            raise SchedulerUnavailableError(
                f"no Slurm controller answers ({detail[-1] if detail else 'scontrol ping failed'})", hint=SLURM_HINT)

    def submit(self, script: Path, *, array: str | None = None) -> tuple[str, list[str]]:
        """``sbatch --parsable [--array=...] SCRIPT``: the job id and the command line used."""
        argv = ["sbatch", "--parsable", *([f"--array={array}"] if array else []), str(script)]
        result = self._run(argv)
        if result.returncode != 0:
            message = result.stderr.strip().splitlines()
            raise SchedulerError(f"sbatch refused the job: {message[-1] if message else result.returncode}",
                                 hint=f"check the Slurm settings (partition, account, time, gres); script: {script}")
        job_id = result.stdout.strip().split(";", 1)[0]
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch printed no job id ({result.stdout.strip()!r})")
        return job_id, argv

    def job(self, job_id: str) -> JobInfo | None:
        """State of one job or array element (``JOB_INDEX``); None once the controller forgot it."""
        result = self._run(["scontrol", "show", "job", "-o", job_id])
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:
                return None
            raise SchedulerError(f"scontrol show job {job_id} failed: {result.stderr.strip()}", hint=SLURM_HINT)
        base, _, index = job_id.partition("_")
        for line in result.stdout.splitlines():
            fields = parse_job_line(line)
            if not index or (fields.get("ArrayJobId") == base and fields.get("ArrayTaskId") == index):
                return _job_info(job_id, fields)
            if fields.get("ArrayJobId") == base and _in_range(index, fields.get("ArrayTaskId", "")):
                return _job_info(job_id, fields)  # a pending element still inside the array's meta record
        return None

    def cancel(self, job_ids: list[str]) -> None:
        """``scancel`` every given job (already finished ones are fine)."""
        if not job_ids:
            return
        result = self._run(["scancel", *job_ids])
        if result.returncode != 0 and "Invalid job id" not in result.stderr:
            raise SchedulerError(f"scancel failed: {result.stderr.strip()}", hint=SLURM_HINT)


def _in_range(index: str, spec: str) -> bool:
    """Whether array index ``index`` is in an ArrayTaskId spec like ``1-3,5%2``."""
    if not index.isdigit():
        return False
    wanted = int(index)
    for part in spec.split("%", 1)[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (wanted == int(low) or (high.isdigit() and int(low) <= wanted <= int(high))):
            return True
    return False
