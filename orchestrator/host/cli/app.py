"""The `evals` app: its commands, built over the services it is given; the entry point and its exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
import typer

from orchestrator import __version__
from orchestrator.host.cli import compare, data, records, run, tasks
from orchestrator.host.cli.services import HostServices, default_services
from orchestrator.schema.errors import EvalsError, printable


def version() -> None:
    """Print the version."""
    print(__version__)


COMMANDS: dict[str, Callable[..., None]] = {
    "ls": tasks.list_tasks,
    "run": run.run,
    "prefetch": data.prefetch_data,
    "status": records.status,
    "logs": records.logs,
    "cancel": records.cancel,
    "resubmit": run.resubmit,
    "runs": records.list_runs,
    "show": records.show,
    "compare": compare.compare_runs,
    "gate": compare.gate,
    "version": version,
}
"""Every command, in the order `evals --help` lists them."""


def build_app(services: HostServices) -> typer.Typer:
    """The `evals` app; its commands reach images, containers, schedulers and endpoints only through ``services``."""
    app = typer.Typer(name="evals", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      context_settings={"obj": services},
                      help="Evaluate LLM and VLM endpoints with harnesses that run in their own containers.")
    for name, command in COMMANDS.items():
        app.command(name)(command)
    return app


app = build_app(default_services())
"""The app over the real backends (none is connected before a command uses it)."""


def main(argv: list[str] | None = None, *, services: HostServices | None = None) -> int:
    """Entry point: usage errors and bad input print one line and return 2 (``services``: the real ones by default)."""
    command = app if services is None else build_app(services)
    try:
        command(args=argv, prog_name="evals", standalone_mode=False)
    except click.UsageError as err:
        print(f"evals: error: {printable(err.format_message())} (see evals --help)", file=sys.stderr)
        return 2
    except EvalsError as err:
        print(f"evals: error: {err}", file=sys.stderr)
        return err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("evals: interrupted", file=sys.stderr)
        return 130
    return 0
