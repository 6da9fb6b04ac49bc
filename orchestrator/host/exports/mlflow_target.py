"""The mlflow target: one MLflow run per (model, task), through MLflow's own client (``mlflow-skinny`` is enough).

Each MLflow run gets the task's params (:func:`~orchestrator.host.exports.rows.params`), its metrics (every score
with its CI bounds, sample counts, usage: :func:`~orchestrator.host.exports.rows.metrics`), the ``evals.*`` tags
and the configured ones, and as artifacts results.yml, samples.jsonl, run_config.yml and report.html (those of them
the output directory holds). Its start and end are the evaluation's.

Exporting again: a task whose results (by the sha256 of results.yml, tag ``evals.results_sha256``) already have a
FINISHED MLflow run in the experiment is skipped, so a retry after a failure exports only what is missing; a
rerun task (new results) gets a new MLflow run. A run whose upload failed midway is marked FAILED and left as it is.

The client retries HTTP requests; unless the environment says otherwise, an export gives up after 2 retries and 30 s
per request (MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_TIMEOUT), so a
server that is down fails in seconds, not minutes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.host.exports import rows
from orchestrator.host.exports.tasks import TaskExport, plural
from orchestrator.schema.errors import EvalsError
from orchestrator.schema.samples import SAMPLES_FILE
from orchestrator.schema.tracking import ExportConfig, MlflowTarget

if TYPE_CHECKING:
    from mlflow import MlflowClient

ARTIFACTS = ("results.yml", SAMPLES_FILE, "run_config.yml", "report.html")
"""The files of a task's output directory logged as artifacts, when there."""

HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_BATCH = 100  # params or tags per log_batch call (MLflow's limit); metrics go 1000 at a time
_KEY = re.compile(r"[^/\w.\- ]")


def tracking_uri(target: MlflowTarget) -> str | None:
    """The server the target names: its own, else $MLFLOW_TRACKING_URI."""
    return target.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def export_mlflow(tasks: list[TaskExport], config: ExportConfig, *, base_dir: Path) -> str:
    """One MLflow run per task (see the module docstring); the line saying what was done. Raises on failure."""
    del base_dir  # MLflow stores what it is sent
    target = config.mlflow
    assert target is not None
    from mlflow import MlflowClient  # noqa: PLC0415 - an optional dependency, imported when used

    uri = tracking_uri(target)
    with _environment(target):
        client = MlflowClient(tracking_uri=uri)
        try:
            experiment = client.get_experiment_by_name(target.experiment)
        except Exception as err:
            raise EvalsError(f"the MLflow tracking server at {uri}: {_cause(err)}") from err
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(target.experiment)
        new = [task for task in tasks if not _finished(client, experiment_id, task)]
        for task in new:
            _export_task(client, experiment_id, task, target)
    return (f"{plural(len(new), 'task')} to experiment {target.experiment!r} at {uri}"
            + (f" ({len(tasks) - len(new)} already there)" if len(new) < len(tasks) else ""))


@contextmanager
def _environment(target: MlflowTarget) -> Iterator[None]:
    """The client's HTTP limits (unless set) and the token from ``token_name``, for the export only."""
    changes = {name: value for name, value in HTTP_DEFAULTS.items() if name not in os.environ}
    if target.token_name:
        token = os.environ.get(target.token_name)
        if not token:
            raise EvalsError(f"the MLflow token variable {target.token_name} is not set")
        changes["MLFLOW_TRACKING_TOKEN"] = token
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _finished(client: MlflowClient, experiment_id: str, task: TaskExport) -> bool:
    found = client.search_runs([experiment_id], max_results=1, filter_string=(
        f"tags.`evals.results_sha256` = '{task.results_sha256}' and attributes.status = 'FINISHED'"))
    return bool(found)


def _export_task(client: MlflowClient, experiment_id: str, task: TaskExport, target: MlflowTarget) -> None:
    from mlflow.entities import Metric, Param  # noqa: PLC0415 - an optional dependency

    provenance = task.results.provenance
    name = target.run_name.format(model=task.model, task=task.task, harness=task.harness, run_id=task.run_id or "")
    run = client.create_run(experiment_id, start_time=_ms(provenance.started_at.timestamp()), run_name=name,
                            tags={**target.tags, **rows.tags(task)})
    run_id = run.info.run_id
    try:
        when = _ms(provenance.finished_at.timestamp())
        metrics = [Metric(_key(key), value, when, 0) for key, value in rows.metrics(task).items()]
        params = [Param(_key(key), value) for key, value in rows.params(task).items()]
        for start in range(0, len(params), _BATCH):
            client.log_batch(run_id, params=params[start:start + _BATCH])
        for start in range(0, len(metrics), 10 * _BATCH):
            client.log_batch(run_id, metrics=metrics[start:start + 10 * _BATCH])
        for artifact in ARTIFACTS:
            if (task.output_dir / artifact).is_file():
                client.log_artifact(run_id, str(task.output_dir / artifact))
    except BaseException:
        _mark_failed(client, run_id)
        raise
    client.set_terminated(run_id, status="FINISHED", end_time=when)


def _mark_failed(client: MlflowClient, run_id: str) -> None:
    with suppress(Exception):  # the server that failed the upload may fail this too: the first error is the one told
        client.set_terminated(run_id, status="FAILED")


def _cause(err: Exception) -> str:
    """The short reason of a failed request (``Connection refused``), else the error's first line."""
    text = str(err)
    errno = re.search(r"\[Errno -?\d+\] ([^'\"()\]\[]+)", text)
    if errno:
        return errno.group(1).strip()
    if "Read timed out" in text or "ConnectTimeout" in text:
        return "timed out"
    return (text.strip().splitlines() or [type(err).__name__])[0][:200]


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _key(name: str) -> str:
    """``name`` as an MLflow key: only letters, digits, ``_ - . / space``, no empty or dot path parts, <= 250."""
    parts = [part if part not in ("", ".", "..") else "_" for part in _KEY.sub("_", name).split("/")]
    return "/".join(parts)[:250]
