"""The report's tables: scores (tasks x models, with their 95% CIs), usage and provenance, from results.yml, the
proxy's request records and the run records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from orchestrator.host.report.gather import TaskOutput
from orchestrator.schema.errors import InputError, ResultsParseError
from orchestrator.schema.requests import REQUESTS_FILE, RequestRecord, request_records

RUN_CONFIG_FILE = "run_config.yml"


@dataclass(frozen=True)
class Cell:
    """One score of one model: its value, 95% CI (where results.yml has one) and sample count."""

    value: float
    lower: float | None = None
    upper: float | None = None
    count: int | None = None


@dataclass(frozen=True)
class ScoreRow:
    """One (task, metric) across the models, in the report's model order (None: the model has no such score)."""

    task: str
    metric: str
    cells: list[Cell | None]


def score_rows(outputs: Sequence[TaskOutput], models: list[str]) -> list[ScoreRow]:
    """Every task's scores, as results.yml names them (``metric`` or ``metric / score``), by task."""
    found: dict[tuple[str, str], dict[str, Cell]] = {}
    for output in outputs:
        if output.results is None:
            continue
        for task, result in output.results.results.tasks.items():
            for metric_name, metric in result.metrics.items():
                for score_name, score in metric.scores.items():
                    label = metric_name if score_name == metric_name else f"{metric_name} / {score_name}"
                    ci = score.stats.ci95
                    found.setdefault((task, label), {})[output.model] = Cell(
                        value=score.value, lower=ci.lower if ci else None, upper=ci.upper if ci else None,
                        count=score.stats.count)
    return [ScoreRow(task=task, metric=metric, cells=[found[task, metric].get(model) for model in models])
            for task, metric in sorted(found)]


@dataclass
class Usage:
    """One model's requests on one task, from its output directory's logs/requests.jsonl (the model's proxy)."""

    latencies_ms: list[float] = field(default_factory=list)
    """Of the answered requests (cache hits included)."""
    requests: int = 0
    cache_hits: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def percentiles(self) -> str:
        """The median and 95th percentile latency, ``p50 / p95`` (``n/a`` without an answered request)."""
        if not self.latencies_ms:
            return "n/a"
        median, high = np.percentile(self.latencies_ms, [50, 95])
        return f"{median:.0f} / {high:.0f}"


def usage_of(output: TaskOutput) -> Usage:
    """The model's request records of one output directory (an auxiliary endpoint's, a judge's, left out)."""
    path = output.output_dir / "logs" / REQUESTS_FILE
    try:
        records = [record for record in request_records(path) if record.role == "model"]
    except ResultsParseError as err:
        raise InputError(err.message, hint="the proxy's request records are damaged; run the task again") from None
    return _summed(records)


def _summed(records: list[RequestRecord]) -> Usage:
    usage = Usage(requests=len(records))
    for record in records:
        usage.cache_hits += record.cache_hit
        usage.prompt_tokens += record.prompt_tokens
        usage.completion_tokens += record.completion_tokens
        if record.error is None:
            usage.latencies_ms.append(record.latency_ms)
        else:
            usage.failed += 1
    return usage


@dataclass(frozen=True)
class Provenance:
    """Where one output directory's results came from, as the page lists it."""

    model: str
    tasks: str
    facts: list[tuple[str, str]]
    resolved_config: str


def provenance_of(output: TaskOutput) -> Provenance:
    """Image and digest, versions, dates, host, run and the resolved config of one output directory."""
    facts: list[tuple[str, str]] = [("output directory", str(output.output_dir))]
    if output.run is not None and output.record is not None:
        facts += [("run", output.run.id), ("executor", output.run.executor), ("host", output.run.host),
                  ("state", output.record.state)]
    results = output.results
    if results is None:
        facts.append(("results.yml", "none (the task wrote no results)"))
    else:
        made = results.provenance
        facts += [("harness", f"{made.harness} {made.harness_version or '(version unknown)'}"),
                  ("image", made.image or "unknown"), ("image digest", made.image_digest or "unknown"),
                  ("image repo digest", made.image_repo_digest or "none"),
                  ("runtime / host version", f"{made.runtime_version} / {made.host_version or 'unknown'}"),
                  ("framework.yml sha256", made.framework_sha256),
                  ("started", f"{made.started_at:%Y-%m-%d %H:%M:%S %Z}".strip()),
                  ("finished", f"{made.finished_at:%Y-%m-%d %H:%M:%S %Z}".strip()),
                  ("duration", f"{made.duration_seconds:.1f} s"), ("exit code", str(made.exit_code)),
                  ("endpoint", f"{results.target.api_endpoint.url} ({results.target.api_endpoint.type})"),
                  ("command", made.command)]
    return Provenance(model=output.model, tasks=", ".join(output.tasks), facts=facts,
                      resolved_config=_resolved_config(output))


def _resolved_config(output: TaskOutput) -> str:
    if output.record is not None and output.record.resolved_config:
        return output.record.resolved_config
    path = output.output_dir / RUN_CONFIG_FILE
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(not recorded)"
