"""`evals status|logs|cancel|runs|show`: recorded runs and results files, shown."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.host import api
from orchestrator.host.cli.console import stderr, stdout, write_output
from orchestrator.host.cli.options import LatestRunId, RunId
from orchestrator.host.cli.services import services_of
from orchestrator.host.cli.suite import is_path
from orchestrator.host.records import store
from orchestrator.host.records.follow import follow_task
from orchestrator.host.records.report import literal, results_table
from orchestrator.host.records.results import read_named
from orchestrator.host.records.status import show_run, status_table
from orchestrator.host.records.summary import build_summary, summary_table, write_summary
from orchestrator.schema.errors import InputError, printable


def status(ctx: typer.Context, run_id: LatestRunId = None,
           as_json: Annotated[bool, typer.Option("--json", help="print the run record as JSON")] = False) -> None:
    """Show each task's state; the scores of finished tasks; the log tail of failed ones."""
    record = store.load(run_id or store.latest())
    record = services_of(ctx).executor_for(record.executor).refresh(record)
    if record.done and record.suite is not None:
        write_summary(record)
    if as_json:
        print(record.model_dump_json(indent=2))
        return
    show_run(record, stdout, stderr)


def logs(ctx: typer.Context, run_id: LatestRunId = None,
         task: Annotated[int | None, typer.Option("--task", help="only this task (index)")] = None,
         follow_: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the task ends")] = False,
         ) -> None:
    """Print the console output of a run's tasks (with --follow, as it is written)."""
    record = store.load(run_id or store.latest())
    chosen = [t for t in record.tasks if task is None or t.index == task]
    if not chosen:
        raise InputError(f"run {record.id} has no task {task}", hint=f"tasks: 0-{len(record.tasks) - 1}")
    run_executor = services_of(ctx).executor_for(record.executor)
    for entry in chosen:
        if len(chosen) > 1:
            stderr.print(literal(f"== task {entry.index} ({entry.harness}.{entry.task}): {entry.log}", "bold"))
        record = follow_task(record, entry.index, run_executor, write=write_output, until_done=follow_)


def cancel(ctx: typer.Context, run_id: RunId) -> None:
    """Stop every unfinished task of a run (scancel for Slurm); no container is left running."""
    record = api.cancel(run_id, executor_for=services_of(ctx).executor_for)
    stdout.print(status_table(record))


def list_runs() -> None:
    """List recorded runs (newest last) with their tasks' states; what is not a run is skipped with a warning."""
    records, skipped = store.scan()
    for reason in skipped:
        print(f"evals: warning: skipped {printable(reason)}", file=sys.stderr)
    table = Table("run", "executor", "created", "tasks")
    for record in records:
        states = ", ".join(f"{t.task}: {t.state}" for t in record.tasks)
        table.add_row(record.id, record.executor, f"{record.created_at:%Y-%m-%d %H:%M:%S}", literal(states))
    stdout.print(table)


def show(ctx: typer.Context,
         targets: Annotated[list[Path], typer.Argument(help="results.yml files, output directories or run ids",
                                                       metavar="RUN_ID|PATH...")]) -> None:
    """Print the scores of results.yml files (a file over 4 MiB or 250,000 YAML nodes is refused), or a run's table
    tasks x models (rows: task and metric; cells: score ± 95% CI half-width; a finished suite's summary.yml is
    written again)."""
    for target in targets:
        if is_path(target):
            file, results = read_named(target)
            stdout.print(results_table(results, title=f"{results.framework_name} / {results.config.type}  ({file})"))
            continue
        record = store.load(str(target))
        record = services_of(ctx).executor_for(record.executor).refresh(record)
        summary = write_summary(record)[0] if record.done and record.suite is not None else build_summary(record)
        stdout.print(summary_table(summary))
