"""Run records for unit tests: fixed ids, paths and arguments, so rendered artifacts are stable."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.schema.container import (
    HOST_CONTRACT_VAR,
    HOST_VERSION_VAR,
    IMAGE_VAR,
    RESOLVED_CONFIG_PATH,
    RESULTS_DIR,
)
from orchestrator.schema.record import ContainerRecord, MountRecord, RunRecord, SlurmRecord, TaskRecord
from orchestrator.schema.slurm import SlurmConfig

RUN_ID = "20260101-000000-0001"
RUN_DIR = f"/shared/results/{RUN_ID}"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
TRICKY = "config.params.extra.system_instruction='it''s $(touch /tmp/pwned) `id`; \"quoted\"'"
"""An override whose value holds quotes, $( ), backticks and ; -- it must reach the container byte for byte."""


CONTRACT = "c0" * 32
"""A contract fingerprint for the sample run (fixed, so the golden files do not change with the schemas)."""


def task(index: int, name: str, *, key: str | None = "MY_KEY", legacy_overrides: str | None = None,
         output_root: str = RUN_DIR) -> TaskRecord:
    """One lm-eval task of the sample run: the container runs the resolved config the host wrote into its output dir.

    With ``legacy_overrides``, the task as records written before the host resolved for the container hold it: the
    user's flags and overrides as the container's arguments (a resubmit runs them as they were)."""
    output_dir = f"{output_root}/lm-eval-{name}"
    data = MountRecord(source="/shared/data", target="/data", read_only=True)
    labels = {"evals.run.id": RUN_ID, "evals.run.harness": "lm-eval", "evals.run.task": name}
    if legacy_overrides is None:
        container = ContainerRecord(
            image="evals/lm-eval:latest", entrypoint="core_evals_lm_eval",
            args=["run_eval", "--resolved_config", RESOLVED_CONFIG_PATH], network_host=True,
            secret_envs=[key] if key else [],
            mounts=[MountRecord(source=output_dir, target=RESULTS_DIR),
                    MountRecord(source=f"{output_dir}/run_config.yml", target=RESOLVED_CONFIG_PATH, read_only=True),
                    data],
            environment={IMAGE_VAR: "evals/lm-eval:latest", HOST_VERSION_VAR: "0.1.0", HOST_CONTRACT_VAR: CONTRACT},
            labels=labels,
        )
        return TaskRecord(index=index, harness="lm-eval", task=name, output_dir=output_dir,
                          log=f"{RUN_DIR}/logs/task-{index}.log", container=container,
                          resolved_config=f"config:\n  type: {name}\n  output_dir: {RESULTS_DIR}\n")
    args = ["run_eval", "--eval_type", f"lm-eval.{name}", "--output_dir", RESULTS_DIR, "--model_id", "m",
            "--model_url", "http://127.0.0.1:8000/v1/chat/completions", "--model_type", "chat"]
    if key:
        args += ["--api_key_name", key]
    container = ContainerRecord(
        image="evals/lm-eval:latest", entrypoint="core_evals_lm_eval", args=[*args, "--overrides", legacy_overrides],
        network_host=True, secret_envs=[key] if key else [],
        mounts=[MountRecord(source=output_dir, target=RESULTS_DIR), data], labels=labels,
    )
    return TaskRecord(index=index, harness="lm-eval", task=name, output_dir=output_dir,
                      log=f"{RUN_DIR}/logs/task-{index}.log", container=container)


def tasks() -> list[TaskRecord]:
    """Two tasks; the second, recorded before the host resolved for the container, carries the tricky override."""
    return [task(0, "gsm8k_sample"), task(1, "arc_challenge_sample", legacy_overrides=TRICKY)]


def slurm_record(config: SlurmConfig, *, script: str = "/state/job.sh", run_dir: str = RUN_DIR,
                 count: int = 2) -> SlurmRecord:
    """Slurm details of the sample run."""
    return SlurmRecord(config=config, run_dir=run_dir, script=script, array=count > 1)


def run_record(task_list: list[TaskRecord], *, slurm: SlurmRecord | None = None) -> RunRecord:
    """The sample run."""
    return RunRecord(id=RUN_ID, executor="slurm" if slurm else "local", created_at=WHEN, updated_at=WHEN,
                     host="node", tasks=task_list, slurm=slurm)
