"""Exporting a run to its targets: each target on its own, so one that fails never stops the others.

The targets run in the order csv, json, mlflow, wandb (the local files first). One that fails (a server down, a bad
URI, a missing package) is reported with what failed and the exact command that retries it; the results on disk
are never touched. Problems the settings show before anything runs (no MLflow tracking URI, an unset key variable)
are bad input, all listed at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator.host.exports.command import retry_command
from orchestrator.host.exports.files import export_csv, export_json
from orchestrator.host.exports.mlflow_target import export_mlflow, tracking_uri
from orchestrator.host.exports.tasks import TaskExport, gather
from orchestrator.host.exports.wandb_target import export_wandb
from orchestrator.schema.errors import EvalsError, InputError, printable
from orchestrator.schema.record import RunRecord
from orchestrator.schema.tracking import ExportConfig, TargetName

PACKAGES: dict[TargetName, str] = {"mlflow": "mlflow", "wandb": "wandb"}
"""The Python package a target needs beyond evals' own (both come with `pip install 'evals-orchestrator[export]'`)."""


class Exporter(Protocol):
    """One target: exports the tasks, returns one line saying what it did, raises when it fails."""

    def __call__(self, tasks: list[TaskExport], config: ExportConfig, *, base_dir: Path) -> str: ...

EXPORTERS: dict[TargetName, Exporter] = {"csv": export_csv, "json": export_json, "mlflow": export_mlflow,
                                         "wandb": export_wandb}


@dataclass(frozen=True)
class TargetOutcome:
    """How one target went."""

    target: TargetName
    ok: bool
    message: str
    """What it exported, or what failed."""
    retry: str | None = None
    """The command that exports to this target again (when it failed)."""


@dataclass
class ExportOutcome:
    """How an export went: each target's outcome, and the tasks left out (no results.yml)."""

    targets: list[TargetOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every target succeeded, else 1."""
        return 0 if all(outcome.ok for outcome in self.targets) else 1

    def lines(self) -> list[str]:
        """One line per target: ``exported ...`` or ``export to T failed: ...; retry: COMMAND``."""
        return [f"exported to {o.target}: {o.message}" if o.ok
                else f"export to {o.target} failed: {o.message}; retry: {o.retry}" for o in self.targets]


def problems(config: ExportConfig) -> list[str]:
    """What the settings lack before anything runs: an MLflow tracking URI, the variables they name."""
    found = []
    if config.mlflow is not None:
        if tracking_uri(config.mlflow) is None:
            found.append("mlflow: no tracking URI (give --mlflow_uri or tracking_uri, or set MLFLOW_TRACKING_URI)")
        if config.mlflow.token_name and not os.environ.get(config.mlflow.token_name):
            found.append(f"mlflow: the token variable {config.mlflow.token_name} is not set")
    if config.wandb is not None and config.wandb.mode == "online" and not os.environ.get(config.wandb.api_key_name):
        found.append(f"wandb: online needs the API key in {config.wandb.api_key_name}, which is not set "
                     "(or use mode offline)")
    return found


def export_run(sources: RunRecord | list[str], config: ExportConfig, *, base_dir: Path,
               exporters: Mapping[TargetName, Exporter] = EXPORTERS) -> ExportOutcome:
    """Export a run (its record, or run ids and output directories) to every target of ``config``.

    Bad input (nothing to export, settings that cannot work) raises InputError before any target runs; a target
    that fails is in the outcome with its retry command. Relative paths are taken from ``base_dir``."""
    names = [sources.id] if isinstance(sources, RunRecord) else list(sources)
    found = problems(config)
    if found:
        raise InputError("; ".join(found), hint="nothing was exported")
    gathered = gather([sources] if isinstance(sources, RunRecord) else names)
    outcome = ExportOutcome(skipped=gathered.skipped)
    for name in config.names:
        try:
            message = exporters[name](gathered.tasks, config, base_dir=base_dir)
        except Exception as err:  # any failure of one target is reported; the others still run
            outcome.targets.append(TargetOutcome(name, ok=False, message=_reason(name, err),
                                                 retry=retry_command(names, name, config, base_dir=base_dir)))
        else:
            outcome.targets.append(TargetOutcome(name, ok=True, message=message))
    return outcome


def _reason(name: TargetName, err: Exception) -> str:
    """One line saying what failed."""
    if isinstance(err, ModuleNotFoundError) and name in PACKAGES and (err.name or "").split(".")[0] == PACKAGES[name]:
        return f"the {PACKAGES[name]} package is not installed (pip install 'evals-orchestrator[export]')"
    text = str(err) if isinstance(err, EvalsError) else f"{type(err).__name__}: {err}"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return printable(first[:300])
