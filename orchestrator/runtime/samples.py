"""samples.jsonl and what results.yml learns from it: per-task sample counts, ``stats.ci95`` and the error check.

After the harness succeeded and its results were parsed, the harness's sample parser (``parse_samples`` of its
parser module, :mod:`orchestrator.runtime.harness_parser`) reads its per-sample output. The records are written to
``<output dir>/samples.jsonl`` (atomically, ordered by task, sample and repeat; a stale file from an earlier run in
the same directory is removed when this run has none), each task of results.yml gains ``samples: {scored, unscored,
error}``, and every task score whose mean over the task's non-error samples is the value the harness reported (a
mean of per-sample scores, not e.g. a corpus-level BLEU) gains ``stats.ci95``
(:mod:`orchestrator.runtime.intervals`). Repeats of one sample are averaged first, so the interval is over samples,
not over repeats. Then :func:`check_errors` fails the run when a task has too many errors.

:func:`join_requests` adds to each record the ids of the model proxy's request records (``logs/requests.jsonl``)
whose prompt key is the record's input's (:func:`~orchestrator.schema.samples.prompt_key`): where the harness's
per-sample output holds the prompt exactly as sent (lm-eval's chat messages and completion prompts; not a
multiple-choice context, whose requests carry each choice too, nor a prompt whose images the record holds by
sha256). A record so joined whose every request failed (the harness got an error each time) is status ``error``.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from orchestrator.runtime.harness_parser import SampleParser
from orchestrator.runtime.intervals import ci95
from orchestrator.schema.errors import SampleErrorLimitError
from orchestrator.schema.requests import REQUESTS_FILE, RequestRecord, read_request_records
from orchestrator.schema.results import EvaluationResult, MetricResult, SampleCounts, Score, TaskResult
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord, dump_line, prompt_key

MEAN_TOLERANCE = 1e-9
"""How close (relative) the mean over samples must be to the harness's value for a score to get an interval."""


def collect_samples(harness: str, output_dir: Path, *, parser: SampleParser) -> list[SampleRecord]:
    """The run's records from the harness's sample ``parser``; [] (and a warning on stderr) when there are none."""
    records = parser(output_dir)
    if not records:
        _warn(f"{harness} wrote no per-sample output under {output_dir}: no {SAMPLES_FILE}, no sample counts or "
              "confidence intervals")
    return records


def join_requests(records: list[SampleRecord], log_dir: Path) -> list[SampleRecord]:
    """``records`` with the ids of their request records in ``log_dir/requests.jsonl`` (see the module docstring)."""
    by_key = read_request_records(log_dir / REQUESTS_FILE)
    if not by_key:
        return records
    joined = []
    for record in records:
        requests = [request for request in by_key.get(prompt_key(_as_sent(record)), []) if request.role == "model"]
        if not requests:
            joined.append(record)
            continue
        update: dict[str, object] = {"request_ids": [request.id for request in requests]}
        if all(_failed(request) for request in requests):
            update |= {"status": "error", "error": f"the endpoint failed: {requests[-1].error or requests[-1].status}",
                       "scores": {}}
        joined.append(record.model_copy(update=update))
    return joined


def _as_sent(record: SampleRecord) -> object:
    if isinstance(record.input, str):
        return record.input
    return [message.model_dump(mode="json") for message in record.input]


def _failed(request: RequestRecord) -> bool:
    return request.error is not None or request.status >= 400


def write_samples(output_dir: Path, records: list[SampleRecord]) -> None:
    """``samples.jsonl`` with one line per record, in (task, sample, repeat) order; none: an old file is removed."""
    path = output_dir / SAMPLES_FILE
    if not records:
        path.unlink(missing_ok=True)
        return
    fd, tmp = tempfile.mkstemp(dir=output_dir, prefix=f".{SAMPLES_FILE}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(dump_line(record) for record in sorted(records, key=_order))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def with_sample_stats(results: EvaluationResult, records: list[SampleRecord]) -> EvaluationResult:
    """``results`` with each task's sample counts and the ci95 of its scores that are means over samples."""
    by_task: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_task[record.task].append(record)
    tasks = {name: _task_stats(task, by_task[name]) if by_task.get(name) else task
             for name, task in results.tasks.items()}
    return results.model_copy(update={"tasks": tasks})


def check_errors(records: Iterable[SampleRecord], *, max_fraction: float, path: Path) -> None:
    """Raise :class:`SampleErrorLimitError` if in any task errors / samples > ``max_fraction`` (0: any error)."""
    totals: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for record in records:
        totals[record.task] += 1
        errors[record.task] += record.status == "error"
    over = [f"{errors[task]} of {totals[task]} samples of task {task}"
            for task in sorted(totals) if errors[task] / totals[task] > max_fraction]
    if over:
        raise SampleErrorLimitError(
            f"{'; '.join(over)} ended in an error, more than config.params.max_error_fraction={max_fraction:g} allows",
            hint=f"the records with status error in {path} say what failed; results.yml and {SAMPLES_FILE} are "
                 "written. Fix the endpoint and run again, or raise config.params.max_error_fraction")


def _task_stats(task: TaskResult, records: list[SampleRecord]) -> TaskResult:
    status = Counter(record.status for record in records)
    counts = SampleCounts(scored=status["scored"], unscored=status["unscored"], error=status["error"])
    metrics = {
        metric_name: MetricResult(scores={name: _with_ci(name, score, records)
                                          for name, score in metric.scores.items()})
        for metric_name, metric in task.metrics.items()
    }
    return task.model_copy(update={"samples": counts, "metrics": metrics})


def _with_ci(name: str, score: Score, records: list[SampleRecord]) -> Score:
    """``score`` with ``stats.ci95`` when its value is the mean of the samples' scores of that name."""
    per_sample: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.status != "error" and name in record.scores:
            per_sample[record.sample_id].append(record.scores[name])
    if not per_sample:
        return score
    means = [math.fsum(values) / len(values) for values in per_sample.values()]
    mean = math.fsum(means) / len(means)
    if not math.isclose(mean, score.value, rel_tol=MEAN_TOLERANCE, abs_tol=1e-12):
        return score
    return score.model_copy(update={"stats": score.stats.model_copy(update={"ci95": ci95(means)})})


def _order(record: SampleRecord) -> tuple[str, int, int | str, str, int]:
    """Task, then the sample's document id (numerically where it is a number), then repeat."""
    doc_id = record.sample_id.rpartition("#")[0] or record.sample_id
    return (record.task, *((0, int(doc_id)) if doc_id.isdigit() else (1, doc_id)), record.sample_id, record.repeat)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
