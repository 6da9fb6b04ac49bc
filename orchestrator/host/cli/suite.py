"""`evals run --suite FILE`: which flags combine with a suite, and a finished suite shown (summary.yml, the table)."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from orchestrator.host.cli.console import stderr, stdout
from orchestrator.host.records.status import failure_text, status_table
from orchestrator.host.records.summary import summary_table, write_summary
from orchestrator.schema.errors import EvalsError, InputError
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


def export_suite(record: RunRecord) -> int:
    """Run the suite's ``export:`` targets once it ended (whatever its pairs' states): each target's line, and 1
    when one failed (its line says how to retry; the results are untouched), else 0."""
    config = record.suite.export if record.suite is not None else None
    if config is None or record.suite is None:
        return 0
    from orchestrator.host.exports.targets import export_run  # noqa: PLC0415 (MLflow and W&B load when used)
    try:
        outcome = export_run(record, config, base_dir=Path(record.suite.output_root))
    except EvalsError as err:
        stderr.print(escape(f"evals: error: export: {err.message}; the results are kept: retry with `evals export "
                            f"{record.id} ...`"), soft_wrap=True)
        return 1
    for line in outcome.skipped:
        stderr.print(escape(f"evals: warning: not exported: {line}"), soft_wrap=True)
    for line, result in zip(outcome.lines(), outcome.targets, strict=True):
        stderr.print(escape(("" if result.ok else "evals: error: ") + line), soft_wrap=True)
    return outcome.exit_code


def is_path(argument: Path) -> bool:
    """An argument of `evals show` that names a file or directory (else it may be a run id)."""
    return argument.exists() or "/" in str(argument) or argument.suffix in (".yml", ".yaml")
