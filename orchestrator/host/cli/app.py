"""The `evals` app: its commands, built over the services it is given; the entry point and its exit codes."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import cast

import click
import typer

from orchestrator import __version__
from orchestrator.host.cli.services import HostServices, default_services
from orchestrator.schema.errors import EvalsError, printable


def version() -> None:
    """Print the version."""
    print(__version__)


COMMANDS: dict[str, str] = {
    "ls": "orchestrator.host.cli.tasks:list_tasks",
    "run": "orchestrator.host.cli.run:run",
    "prefetch": "orchestrator.host.cli.data:prefetch_data",
    "status": "orchestrator.host.cli.records:status",
    "logs": "orchestrator.host.cli.records:logs",
    "cancel": "orchestrator.host.cli.records:cancel",
    "resubmit": "orchestrator.host.cli.run:resubmit",
    "runs": "orchestrator.host.cli.records:list_runs",
    "show": "orchestrator.host.cli.records:show",
    "compare": "orchestrator.host.cli.compare:compare_runs",
    "gate": "orchestrator.host.cli.compare:gate",
    "report": "orchestrator.host.cli.report:report",
    "export": "orchestrator.host.cli.export:export",
    "version": "orchestrator.host.cli.app:version",
}
"""Every command (``module:function``), in the order `evals --help` lists them. A command's module is imported
when the app is built with it: `evals ls` imports what listing needs, not what running needs."""


def command(name: str) -> Callable[..., None]:
    """The function of command ``name``."""
    module, _, function = COMMANDS[name].partition(":")
    return cast(Callable[..., None], getattr(importlib.import_module(module), function))


def build_app(services: HostServices, *, only: str | None = None) -> typer.Typer:
    """The `evals` app; its commands reach images, containers, schedulers and endpoints only through ``services``.
    ``only``: just that command (what its own invocation needs; help and usage errors build them all)."""
    app = typer.Typer(name="evals", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      context_settings={"obj": services})
    app.callback(help="Evaluate LLM and VLM endpoints with harnesses that run in their own containers.")(_group)
    for name in COMMANDS if only is None else [only]:
        app.command(name)(command(name))
    return app


def _group() -> None:
    """The app is a group of commands even when built with one."""


def full_app() -> typer.Typer:
    """The app with every command over the real backends (none is connected before a command uses it)."""
    return build_app(default_services())


def main(argv: list[str] | None = None, *, services: HostServices | None = None) -> int:
    """Entry point: usage errors and bad input print one line and return 2 (``services``: the real ones by default)."""
    args = sys.argv[1:] if argv is None else argv
    only = args[0] if args and args[0] in COMMANDS else None
    app = build_app(default_services() if services is None else services, only=only)
    try:
        code = app(args=args, prog_name="evals", standalone_mode=False)
    except click.UsageError as err:
        print(f"evals: error: {printable(err.format_message())} (see evals --help)", file=sys.stderr)
        return 2
    except EvalsError as err:
        print(f"evals: error: {err}", file=sys.stderr)
        return err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("evals: interrupted", file=sys.stderr)
        return 130
    if code == 130:  # typer turns Ctrl-C into Exit(130), which it returns when not standalone
        print("evals: interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0
