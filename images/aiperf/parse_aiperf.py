"""AIPerf results, read from the files aiperf 0.13.0 writes through run_aiperf.py (stdlib only).

run_aiperf.py runs ``aiperf profile`` once per concurrency ``N`` with ``--artifact-dir <output_dir>/concurrency_N``;
each writes there ``profile_export_aiperf.json``: every metric AIPerf computed, as ``{"unit", "avg", "p50", "p90",
"p99", "min", "max", "std", "count", ...}`` (a total or a rate has only ``avg``), over the requests that succeeded;
``error_request_count`` (absent without errors) and ``error_summary`` count the failed ones apart; ``input_config``
holds the run's settings (``phases[].concurrency``).

results.yml, a task per concurrency, ``concurrency_N``, with these metrics (latencies in milliseconds):

- ``request_throughput.requests_per_second``, ``output_token_throughput.tokens_per_second`` (completed requests
  and the output tokens the endpoint reported, per second of the benchmark);
- ``request_latency``, ``time_to_first_token``, ``inter_token_latency`` (the last two streamed only):
  ``p50``, ``p90``, ``p99``, ``mean``, with the count, min, max and standard deviation in ``stats``;
- ``requests``: ``succeeded``, ``failed`` (the endpoint's errors, never in a latency), ``error_rate`` (0..1).

When no request succeeded AIPerf writes no aggregate, only ``profile_export.jsonl``; every record there an error,
the task has ``requests`` alone (``failed`` = the records, ``error_rate`` 1) and zero throughputs.

No per-sample records: a load test has no samples. AIPerf's own record of each request (errors included) is
``concurrency_N/profile_export.jsonl``; the adapter proxy's is ``logs/requests.jsonl``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, MetricResult, Score, ScoreStats, TaskResult
from orchestrator.schema.samples import SampleRecord

EXPORT = "profile_export_aiperf.json"
RECORDS = "profile_export.jsonl"
_FOLDER = re.compile(r"^concurrency_(\d+)$")
LATENCIES = ("request_latency", "time_to_first_token", "inter_token_latency")
PERCENTILES = ("p50", "p90", "p99")


def parse(output_dir: Path) -> EvaluationResult:
    """A task per concurrency (see the module docstring)."""
    runs = _runs(output_dir)
    return EvaluationResult(tasks={f"concurrency_{n}": _task(path) if path.name == EXPORT else _all_failed(path)
                                   for n, path in runs})


def parse_samples(output_dir: Path) -> list[SampleRecord]:
    """None: AIPerf's per-request records stay in concurrency_N/profile_export.jsonl (see the module docstring)."""
    _runs(output_dir)
    return []


def _hint() -> str:
    return (f"run_aiperf.py writes concurrency_<N>/{EXPORT} under --output-dir; the run may have failed before "
            "writing it, see logs/harness.log and concurrency_<N>/logs/aiperf.log")


def _runs(output_dir: Path) -> list[tuple[int, Path]]:
    """Each concurrency's export (its per-request records where AIPerf wrote no export), by concurrency."""
    if not output_dir.is_dir():
        raise ResultsParseError(f"aiperf output directory {output_dir} does not exist")
    runs = sorted((int(match.group(1)), folder / EXPORT if (folder / EXPORT).is_file() else folder / RECORDS)
                  for folder in output_dir.iterdir()
                  if folder.is_dir() and (match := _FOLDER.match(folder.name))
                  and ((folder / EXPORT).is_file() or (folder / RECORDS).is_file()))
    if not runs:
        raise ResultsParseError(f"no concurrency_<N>/{EXPORT} under {output_dir}", hint=_hint())
    return runs


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise ResultsParseError(f"cannot read aiperf output {path}: {err}", hint=_hint()) from err
    if not isinstance(data, dict):
        raise ResultsParseError(f"{path}: not a JSON object", hint=_hint())
    return data


def _task(path: Path) -> TaskResult:
    data = _load(path)
    succeeded = _total(data, "request_count", path)
    failed = _total(data, "error_request_count", path) if "error_request_count" in data else 0.0
    metrics = {
        "request_throughput": _rate(data, "request_throughput", "requests_per_second", path),
        "output_token_throughput": _rate(data, "output_token_throughput", "tokens_per_second", path),
    }
    for name in LATENCIES:
        if name in data:
            metrics[name] = _distribution(data[name], name, path)
    if "request_latency" not in metrics and succeeded:
        raise ResultsParseError(f"{path}: {succeeded:g} requests succeeded but there is no request_latency",
                                hint=_hint())
    asked = succeeded + failed
    metrics["requests"] = MetricResult(scores={
        "succeeded": Score(value=succeeded), "failed": Score(value=failed),
        "error_rate": Score(value=failed / asked if asked else 0.0, stats=ScoreStats(count=int(asked), sum=failed))})
    return TaskResult(metrics=metrics)


def _all_failed(path: Path) -> TaskResult:
    """No export: AIPerf's records must all be errors (it writes no aggregate only when none succeeded)."""
    try:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError, RecursionError) as err:
        raise ResultsParseError(f"cannot read aiperf records {path}: {err}", hint=_hint()) from err
    if not records or not all(isinstance(r, dict) and r.get("error") for r in records):
        raise ResultsParseError(f"{path.parent}: no {EXPORT} though not every request failed", hint=_hint())
    failed = float(len(records))
    return TaskResult(metrics={
        "request_throughput": MetricResult(scores={"requests_per_second": Score(value=0.0)}),
        "output_token_throughput": MetricResult(scores={"tokens_per_second": Score(value=0.0)}),
        "requests": MetricResult(scores={"succeeded": Score(value=0.0), "failed": Score(value=failed),
                                         "error_rate": Score(value=1.0, stats=ScoreStats(count=len(records),
                                                                                          sum=failed))})})


def _number(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultsParseError(f"{path}: {what} is {value!r}, not a number", hint=_hint())
    return float(value)


def _entry(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    entry = data.get(name)
    if not isinstance(entry, dict):
        raise ResultsParseError(f"{path}: no {name}", hint=_hint())
    return entry


def _total(data: dict[str, Any], name: str, path: Path) -> float:
    """A count AIPerf writes as ``{"unit": "requests", "avg": N}``; absent ``request_count``: no request succeeded."""
    if name == "request_count" and name not in data:
        return 0.0
    return _number(_entry(data, name, path).get("avg"), f"{name}.avg", path)


def _rate(data: dict[str, Any], name: str, score: str, path: Path) -> MetricResult:
    value = _number(_entry(data, name, path).get("avg"), f"{name}.avg", path) if name in data else 0.0
    return MetricResult(scores={score: Score(value=value)})


def _distribution(entry: Any, name: str, path: Path) -> MetricResult:
    if not isinstance(entry, dict):
        raise ResultsParseError(f"{path}: {name} is not an object", hint=_hint())

    def get(key: str) -> float:
        return _number(entry.get(key), f"{name}.{key}", path)

    count = int(get("count"))
    stats = ScoreStats(count=count, min=get("min"), max=get("max"), mean=get("avg"), stddev=get("std"))
    scores = {p: Score(value=get(p), stats=stats) for p in PERCENTILES}
    scores["mean"] = Score(value=get("avg"), stats=stats.model_copy(update={"sum": get("sum")}))
    return MetricResult(scores=scores)
