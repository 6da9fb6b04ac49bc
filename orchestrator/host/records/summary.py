"""A run's summary.yml (every pair's scores, samples, usage, provenance, failures) and its table tasks x models."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from orchestrator.host.backends.executor import log_tail
from orchestrator.host.records import store
from orchestrator.host.records.report import literal
from orchestrator.host.records.results import read_results
from orchestrator.host.records.status import STATE_STYLE
from orchestrator.runtime.run import RUN_CONFIG_FILE, write_atomic
from orchestrator.schema.errors import EvalsError
from orchestrator.schema.loading import dump_yaml
from orchestrator.schema.record import RunRecord, TaskRecord
from orchestrator.schema.requests import REQUESTS_FILE, read_request_records
from orchestrator.schema.results import MetricResult, ResultsFile, SampleCounts, Score
from orchestrator.schema.summary import SUMMARY_FILE, PairSummary, ScoreSummary, Summary, UsageSummary

TAIL_LINES = 20
Z95 = 1.959963984540054


def _score(name: str, score: Score) -> ScoreSummary:
    stats = score.stats
    if stats.ci95 is not None:
        return ScoreSummary(name=name, value=score.value, ci_lower=stats.ci95.lower, ci_upper=stats.ci95.upper,
                            ci_method=stats.ci95.method, count=stats.count)
    if stats.stderr is not None:
        half = Z95 * stats.stderr
        return ScoreSummary(name=name, value=score.value, ci_lower=score.value - half, ci_upper=score.value + half,
                            ci_method="normal", count=stats.count)
    return ScoreSummary(name=name, value=score.value, count=stats.count)


def _metric_scores(prefix: str, metrics: dict[str, MetricResult]) -> list[ScoreSummary]:
    found = []
    for metric_name, metric in metrics.items():
        for score_name, score in metric.scores.items():
            label = metric_name if score_name == metric_name else f"{metric_name} / {score_name}"
            found.append(_score(prefix + label, score))
    return found


def scores_of(results: ResultsFile) -> list[ScoreSummary]:
    """Every score of a results.yml, groups first; a harness task or group named otherwise than the pair's task
    prefixes its rows (``name: metric``)."""
    task = results.config.type
    found: list[ScoreSummary] = []
    for name, group in results.results.groups.items():
        found += _metric_scores("" if name == task else f"{name}: ", group.metrics)
    for name, result in results.results.tasks.items():
        if name in results.results.groups and results.results.groups[name].metrics == result.metrics:
            continue
        found += _metric_scores("" if name == task else f"{name}: ", result.metrics)
    return found


def _samples(results: ResultsFile) -> SampleCounts | None:
    counts = [task.samples for task in results.results.tasks.values() if task.samples is not None]
    if not counts:
        return None
    return SampleCounts(scored=sum(c.scored for c in counts), unscored=sum(c.unscored for c in counts),
                        error=sum(c.error for c in counts))


def _usage_from_records(output_dir: Path) -> UsageSummary | None:
    """What the proxy recorded for a pair that wrote no results (records joined by prompt, the model's role)."""
    try:
        by_key = read_request_records(output_dir / "logs" / REQUESTS_FILE)
    except EvalsError:
        return None
    records = [r for records in by_key.values() for r in records if r.role == "model"]
    if not records:
        return None
    return UsageSummary(requests=len(records), cache_hits=sum(r.cache_hit for r in records),
                        failed_requests=sum(r.error is not None for r in records),
                        prompt_tokens=sum(r.prompt_tokens for r in records),
                        completion_tokens=sum(r.completion_tokens for r in records), source=f"logs/{REQUESTS_FILE}")


def pair_summary(task: TaskRecord) -> PairSummary:
    """One task of a run as its summary entry (its results.yml read again, validated)."""
    output_dir = Path(task.output_dir)
    results: ResultsFile | None = None
    if task.state == "succeeded":
        try:
            results = read_results(output_dir / "results.yml")
        except EvalsError:
            results = None
    pair = PairSummary(index=task.index, model=task.model or "-", task=task.task, harness=task.harness,
                       state=task.state, output_dir=task.output_dir, resolved_config=str(output_dir / RUN_CONFIG_FILE),
                       image=task.container.image, log=task.log)
    if results is not None:
        usage = results.usage
        pair.results = str(output_dir / "results.yml")
        pair.model = task.model or results.target.api_endpoint.model_id
        pair.image_digest = results.provenance.image_digest
        pair.scores, pair.samples = scores_of(results), _samples(results)
        pair.duration_seconds = results.provenance.duration_seconds
        if usage is not None:
            pair.usage = UsageSummary(requests=usage.requests, cache_hits=usage.cache_hits,
                                      failed_requests=usage.failed_requests, prompt_tokens=usage.prompt_tokens,
                                      completion_tokens=usage.completion_tokens, source="results.yml")
    else:
        pair.usage = _usage_from_records(output_dir)
    if task.state != "succeeded":
        pair.reason = task.reason or ("not finished" if task.state in ("pending", "running") else None)
        pair.log_tail = log_tail(Path(task.log), TAIL_LINES)
    return pair


def build_summary(record: RunRecord) -> Summary:
    """The summary of a run as its record and its tasks' outputs say now."""
    pairs = [pair_summary(task) for task in record.tasks]
    models = list(record.suite.models) if record.suite is not None else list(dict.fromkeys(p.model for p in pairs))
    return Summary(run_id=record.id, suite=record.suite.name if record.suite else None,
                   suite_file=record.suite.file if record.suite else None, models=models, written_at=store.now(),
                   complete=all(p.state == "succeeded" for p in pairs), pairs=pairs)


def write_summary(record: RunRecord) -> tuple[Summary, list[Path]]:
    """summary.yml in the suite's output root (a suite) and in the run's record directory; the paths written."""
    summary = build_summary(record)
    text = dump_yaml(summary.model_dump(mode="json"))
    places = [store.record_dir(record.id)]
    if record.suite is not None:
        places.insert(0, Path(record.suite.output_root))
    written = []
    for place in places:
        place.mkdir(parents=True, exist_ok=True)
        write_atomic(place / SUMMARY_FILE, text)
        written.append(place / SUMMARY_FILE)
    return summary, written


def cell(score: ScoreSummary) -> str:
    """``value ± half-width`` of the 95% interval (its larger side), or the value alone."""
    if score.ci_lower is None or score.ci_upper is None:
        return f"{score.value:.4f}"
    half = max(score.value - score.ci_lower, score.ci_upper - score.value)
    return f"{score.value:.4f} ± {half:.4f}"


def summary_table(summary: Summary) -> Table:
    """Rows: task and metric; columns: models; cells: score ± CI half-width, or the pair's state if it has none."""
    title = f"suite {summary.suite} (run {summary.run_id})" if summary.suite else f"run {summary.run_id}"
    table = Table(title=literal(title), title_justify="left")
    table.add_column("task")
    table.add_column("metric")
    for model in summary.models:
        table.add_column(literal(model), justify="right")
    by_pair = {(p.model, p.harness, p.task): p for p in summary.pairs}
    tasks = list(dict.fromkeys((p.harness, p.task) for p in summary.pairs))
    for harness, task in tasks:
        pairs = [by_pair.get((model, harness, task)) for model in summary.models]
        rows = list(dict.fromkeys(s.name for p in pairs if p is not None for s in p.scores)) or ["-"]
        for row in rows:
            cells = []
            for pair in pairs:
                score = next((s for s in pair.scores if s.name == row), None) if pair is not None else None
                if pair is None:
                    cells.append(literal(""))
                elif score is not None:
                    cells.append(literal(cell(score)))
                else:
                    cells.append(literal(pair.state if pair.state != "succeeded" else "-",
                                         STATE_STYLE.get(pair.state, "")))
            table.add_row(literal(f"{harness}.{task}"), literal(row), *cells)
    return table
