"""The wandb target: one W&B run per (model, task), through the ``wandb`` library.

Each W&B run is named by the task's model and task, grouped by the evals run id (job type ``eval``), with the
task's params as its config (with ``evals.results_sha256`` and ``evals.output_dir``), its metrics (scores, CI
bounds, sample counts, usage) logged once (so they are its summary), the other ``evals.*`` values as tags, and
copies of results.yml, samples.jsonl, run_config.yml and report.html saved with it.

Offline (the default) it is written under ``DIR/wandb/offline-run-*`` and nothing connects anywhere (no system
metrics, machine info or git probing either); ``wandb sync DIR/wandb/offline-run-*`` uploads it later. The W&B run
id is derived from the project and the sha256 of results.yml: exporting the same results again writes another
offline directory for the same run id, which a sync merges into one W&B run; online, the run is resumed
(``resume="allow"``) and its values written again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from orchestrator.host.exports import rows
from orchestrator.host.exports.mlflow_target import ARTIFACTS
from orchestrator.host.exports.tasks import TaskExport, plural
from orchestrator.schema.tracking import ExportConfig, WandbTarget

_IN_CONFIG = ("evals.results_sha256", "evals.output_dir")
"""Values too long for a W&B tag (64 characters at most): in the run's config instead."""


def run_id(project: str, task: TaskExport) -> str:
    """The W&B run id of one task's results in one project."""
    return hashlib.sha256(f"{project}\0{task.results_sha256}".encode()).hexdigest()[:24]


def wandb_dir(target: WandbTarget, *, base_dir: Path) -> Path:
    """Where W&B writes (its wandb/ directory inside)."""
    return base_dir / target.dir if target.dir else base_dir


def export_wandb(tasks: list[TaskExport], config: ExportConfig, *, base_dir: Path) -> str:
    """One W&B run per task (see the module docstring); the line saying what was done. Raises on failure."""
    target = config.wandb
    assert target is not None
    import wandb  # noqa: PLC0415 - an optional dependency, imported when used

    directory = wandb_dir(target, base_dir=base_dir)
    directory.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(
        mode=target.mode, silent=True, console="off", save_code=False, disable_git=True, disable_code=True,
        disable_job_creation=True, x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True,
        api_key=_api_key(target))
    for task in tasks:
        tags = rows.tags(task)
        run = wandb.init(
            project=target.project, entity=target.entity, dir=str(directory), id=run_id(target.project, task),
            name=f"{task.model}/{task.task}", group=task.run_id, job_type="eval",
            config={**rows.params(task), **{key: value for key, value in tags.items() if key in _IN_CONFIG}},
            tags=[f"{key}={value}"[:64] for key, value in tags.items() if key not in _IN_CONFIG],
            resume="allow" if target.mode == "online" else None, settings=settings, reinit="create_new")
        try:
            run.log(rows.metrics(task))
            files = Path(run.dir)
            for artifact in ARTIFACTS:
                if (task.output_dir / artifact).is_file():
                    shutil.copy2(task.output_dir / artifact, files / artifact)
                    run.save(str(files / artifact), base_path=str(files), policy="now")
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish()
    where = f"{directory / 'wandb'} (upload: wandb sync {directory / 'wandb'}/offline-run-*)" \
        if target.mode == "offline" else f"project {target.project}"
    return f"{plural(len(tasks), 'task')} to W&B {target.mode}, {where}"


def _api_key(target: WandbTarget) -> str | None:
    """Online: the key from the variable the target names (checked before the export starts); offline: none."""
    return os.environ.get(target.api_key_name) if target.mode == "online" else None
