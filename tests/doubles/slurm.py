"""A fake Slurm command line for unit tests: answers sbatch/scontrol/scancel from a table of jobs."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field


@dataclass
class FakeSlurm:
    """``jobs`` maps a job id (``N`` or ``N_I``) to its scontrol line; ``calls`` records every command."""

    next_id: int = 100
    up: bool = True
    sbatch_error: str | None = None
    jobs: dict[str, str] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        command = argv[0]
        if command == "scontrol" and argv[1] == "ping":
            out = "Slurmctld(primary) at vm is UP\n" if self.up else "Slurmctld(primary) at vm is DOWN\n"
            return subprocess.CompletedProcess(argv, 0 if self.up else 1, out, "")
        if command == "sbatch":
            if self.sbatch_error:
                return subprocess.CompletedProcess(argv, 1, "", f"sbatch: error: {self.sbatch_error}\n")
            self.next_id += 1
            return subprocess.CompletedProcess(argv, 0, f"{self.next_id}\n", "")
        if command == "scontrol":
            line = self.jobs.get(argv[-1])
            if line is None:
                return subprocess.CompletedProcess(argv, 1, "", "slurm_load_jobs error: Invalid job id specified\n")
            return subprocess.CompletedProcess(argv, 0, line + "\n", "")
        if command == "scancel":
            return subprocess.CompletedProcess(argv, 0, "", "")
        raise AssertionError(f"unexpected command {argv}")

    def set_state(self, job_id: str, state: str, exit_code: str = "0:0", reason: str = "None") -> None:
        """What scontrol reports for ``job_id`` from now on."""
        base, _, index = job_id.partition("_")
        array = f"ArrayJobId={base} ArrayTaskId={index} " if index else ""
        self.jobs[job_id] = (f"JobId={job_id.replace('_', '9')} {array}JobName=evals JobState={state} "
                             f"Reason={reason} ExitCode={exit_code} RunTime=00:00:01")
