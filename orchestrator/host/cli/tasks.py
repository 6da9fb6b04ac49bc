"""`evals ls`: the tasks of the built harness images."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.host.catalog import tasks_of
from orchestrator.host.cli.console import stderr, stdout
from orchestrator.host.cli.services import services_of


def list_tasks(ctx: typer.Context,
               as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List every task of every built harness image (read from image labels)."""
    entries = tasks_of(services_of(ctx).catalog.images())
    if as_json:
        print(json.dumps([asdict(entry) for entry in entries], indent=2))
        return
    if not entries:
        stderr.print("No evaluation images are built yet: build them with `make images`.")
        return
    table = Table("harness", "task", "endpoint types", "description")
    for entry in entries:
        table.add_row(entry.harness, entry.task, ", ".join(entry.endpoint_types), entry.description)
    stdout.print(table)
