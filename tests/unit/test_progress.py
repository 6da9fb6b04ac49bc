"""Live progress read from a run's files: request records (read incrementally, partial last lines included), the
harness's progress bar, rates and ETAs; and the two ways it is shown."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from orchestrator.host.records.progress import ProgressReader, RunProgress
from orchestrator.host.records.progress_view import PlainView, duration, progress_table, total_line, view_for
from orchestrator.schema.record import RunRecord
from tests.unit.records import run_record, task

RESOLVED = """config:
  type: {name}
  output_dir: /workspace/results
"""


def record_line(n: int, *, key: str | None = None, status: int = 200, error: str | None = None,
                role: str = "model", tokens: tuple[int, int] = (10, 5), cache_hit: bool = False) -> bytes:
    record = {"id": f"{role}0-x-r{n}", "role": role, "prompt_key": key or f"{n:064x}", "path": "/v1/chat/completions",
              "status": status, "cache_hit": cache_hit, "attempts": 0 if cache_hit else 1,
              "prompt_tokens": tokens[0], "completion_tokens": tokens[1], "latency_ms": 12.5, "error": error}
    return json.dumps(record).encode() + b"\n"


def two_task_run(tmp_path: Path) -> RunRecord:
    tasks = [task(0, "gsm8k_sample", output_root=str(tmp_path)), task(1, "arc_sample", output_root=str(tmp_path))]
    for entry in tasks:
        entry.resolved_config = None
        (Path(entry.output_dir) / "logs").mkdir(parents=True)
    tasks[0].state, tasks[1].state = "running", "pending"
    return run_record(tasks)


def requests_file(record: RunRecord, index: int) -> Path:
    return Path(record.tasks[index].output_dir) / "logs" / "requests.jsonl"


def test_done_counts_distinct_answered_prompts_and_reads_only_complete_lines(tmp_path: Path) -> None:
    record = two_task_run(tmp_path)
    path = requests_file(record, 0)
    whole = record_line(3)
    path.write_bytes(record_line(1) + record_line(2) + record_line(2, cache_hit=True)
                     + record_line(9, status=503, error="http_503") + record_line(7, role="judge") + whole[:40])
    reader = ProgressReader()
    first = reader.read(record, now=100.0).tasks[0]
    assert first.done == 2  # 1 and 2 (twice, once from the cache); not the 503, not the judge's, not the partial
    assert first.errors == 1 and first.tokens == 5 * 15
    with path.open("ab") as handle:  # the proxy finishes the line, and writes another
        handle.write(whole[40:] + record_line(4))
    second = reader.read(record, now=110.0).tasks[0]
    assert second.done == 4 and second.tokens == 7 * 15
    assert second.rate == 0.2  # 2 more in 10 s


def test_total_is_the_harness_bar_else_limit_samples_and_eta_follows_the_rate(tmp_path: Path) -> None:
    record = two_task_run(tmp_path)
    record.tasks[0].resolved_config = RESOLVED.format(name="gsm8k_sample")  # not a whole resolved run: no limit
    path = requests_file(record, 0)
    log = Path(record.tasks[0].output_dir) / "logs" / "harness.log"
    log.write_bytes(b"Building contexts: 100%|##########| 40/40 [00:00<00:00]\rRequesting API:   0%|    | 0/")
    reader = ProgressReader()
    assert reader.read(record, now=0.0).tasks[0].total == 40
    with log.open("ab") as handle:  # the bar's text continues in the next write
        handle.write(b"80 [00:00<?, ?it/s]\rRequesting API:  5%|    | 4/80 [00:01<00:19, 4.0it/s]")
    path.write_bytes(b"".join(record_line(n) for n in range(20)))
    now = reader.read(record, now=10.0).tasks[0]
    assert now.total == 80 and now.done == 20 and now.rate == 2.0 and now.eta == 30.0
    assert reader.read(record, now=10.0).tasks[1].total is None  # pending, nothing known


def test_a_missing_or_replaced_file_is_read_again_from_the_start(tmp_path: Path) -> None:
    record = two_task_run(tmp_path)
    reader = ProgressReader()
    assert reader.read(record).tasks[0].done == 0
    path = requests_file(record, 0)
    path.write_bytes(record_line(1) + record_line(2) + record_line(3))
    assert reader.read(record).tasks[0].done == 3
    path.write_bytes(record_line(5))
    assert reader.read(record).tasks[0].done == 1


def progress(tmp_path: Path) -> RunProgress:
    record = two_task_run(tmp_path)
    requests_file(record, 0).write_bytes(record_line(1) + record_line(2, status=500, error="http_500"))
    return ProgressReader().read(record, now=5.0)


def test_plain_view_prints_every_task_and_a_total_line_on_state_changes_and_when_due(tmp_path: Path) -> None:
    lines: list[str] = []
    view = PlainView(lines.append, every=3600)
    reading = progress(tmp_path)
    view.show(reading)
    assert lines[0].startswith("#0 lm-eval.gsm8k_sample running: 1/? done") and "errors 1" in lines[0]
    assert lines[1].startswith("#1 lm-eval.arc_sample pending: 0/? done")
    assert lines[2] == total_line(reading) and lines[2].startswith("total: 2 tasks (0 succeeded, 1 running, 1 pending)")
    view.show(reading)
    assert len(lines) == 3  # nothing changed, not due yet
    view.close(reading)
    assert len(lines) == 3  # the same report is not printed twice
    record = two_task_run(tmp_path / "later")
    record.tasks[0].state = "succeeded"
    view.close(ProgressReader().read(record, now=5.0))
    assert len(lines) == 6 and lines[3].startswith("#0 lm-eval.gsm8k_sample succeeded")


def test_views_by_console_live_table_on_a_terminal(tmp_path: Path) -> None:
    plain = Console(file=io.StringIO(), force_terminal=False, width=200)
    view = view_for(plain, every=0)
    reading = progress(tmp_path)
    view.close(reading)
    assert "total: 2 tasks" in plain.file.getvalue()  # type: ignore[attr-defined]
    terminal = Console(file=io.StringIO(), force_terminal=True, width=200)
    live = view_for(terminal)
    live.show(reading)
    live.close(reading)
    drawn = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "lm-eval.gsm8k_sample" in drawn and "1/?" in drawn and not isinstance(live, PlainView)
    assert progress_table(reading).row_count == 3


def test_durations() -> None:
    assert [duration(s) for s in (None, 5, 65, 3725)] == ["-", "0:05", "1:05", "1:02:05"]
