"""`evals run --suite FILE`: which flags combine with a suite, and a finished suite shown (summary.yml, the table)."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from orchestrator.host.cli.console import stderr, stdout
from orchestrator.host.records.status import failure_text, status_table
from orchestrator.host.records.summary import summary_table, write_summary
from orchestrator.schema.errors import InputError
from orchestrator.schema.record import RunRecord

SUITE_OWNS = ("--eval_type", "--model_id", "--model_url", "--model_type", "--api_key_name", "--run_config",
              "--overrides", "--harness", "--image", "--data_dir", "--from", "--resume")
"""Flags a suite file states per model or per task (or that run something else): refused with --suite."""


def refuse_with_suite(given: dict[str, object]) -> None:
    """``given`` (flag -> its value): the :data:`SUITE_OWNS` flags holding a value are bad input, named."""
    named = [flag for flag in SUITE_OWNS if given.get(flag)]
    if named:
        raise InputError(f"--suite states the models and tasks; {', '.join(named)} cannot be combined with it",
                         hint="set them in the suite file (models[], tasks[], defaults), or drop --suite")


def show_suite(record: RunRecord, *, tails: bool) -> None:
    """Write summary.yml, then print the run's states, the table tasks x models, and the failed pairs' log tails."""
    summary, written = write_summary(record)
    stdout.print(status_table(record))
    stdout.print(summary_table(summary))
    if tails:
        for task in record.tasks:
            if task.state in ("failed", "timeout", "cancelled", "interrupted"):
                stderr.print(escape(failure_text(task)), end="", highlight=False, soft_wrap=True)
    stderr.print(escape(f"summary: {written[0]}"), soft_wrap=True)


def is_path(argument: Path) -> bool:
    """An argument of `evals show` that names a file or directory (else it may be a run id)."""
    return argument.exists() or "/" in str(argument) or argument.suffix in (".yml", ".yaml")
