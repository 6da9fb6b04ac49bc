"""`evals export`: a run's results to MLflow, W&B, a CSV or a JSON file (over orchestrator/host/exports/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.host.exports.command import build_config
from orchestrator.host.exports.targets import export_run
from orchestrator.schema.errors import printable
from orchestrator.schema.loading import load_model
from orchestrator.schema.tracking import ExportConfig


def export(
    sources: Annotated[list[str], typer.Argument(help="run ids, output directories (a task's, a run's or a suite's) "
                                                      "or results.yml files", show_default=False)],
    *,
    to: Annotated[list[str] | None, typer.Option("--to", help="csv, json, mlflow or wandb; repeat for several "
                                                              "(default: every target of --config)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML export settings, as a suite's export: "
                                                                 "section (flags override it)")] = None,
    csv_path: Annotated[str | None, typer.Option("--csv_path", help="the CSV file (default <run>.csv; - for stdout)")]
    = None,
    json_path: Annotated[str | None, typer.Option("--json_path", help="the JSON file (default <run>.json; - for "
                                                                      "stdout)")] = None,
    mlflow_uri: Annotated[str | None, typer.Option("--mlflow_uri", help="MLflow tracking server (default "
                                                                        "$MLFLOW_TRACKING_URI)")] = None,
    mlflow_experiment: Annotated[str | None, typer.Option("--mlflow_experiment", help="MLflow experiment (default "
                                                                                      "evals)")] = None,
    mlflow_run_name: Annotated[str | None, typer.Option("--mlflow_run_name", help="MLflow run name template of "
                                                                                  "{model} {task} {harness} {run_id} "
                                                                                  "(default {model}/{task})")] = None,
    mlflow_tag: Annotated[list[str] | None, typer.Option("--mlflow_tag", help="KEY=VALUE tag on every MLflow run; "
                                                                              "repeat for several")] = None,
    mlflow_token_name: Annotated[str | None, typer.Option("--mlflow_token_name", help="NAME of the variable holding "
                                                                                      "the MLflow token (default: "
                                                                                      "MLFLOW_TRACKING_TOKEN)")] = None,
    wandb_project: Annotated[str | None, typer.Option("--wandb_project", help="W&B project")] = None,
    wandb_entity: Annotated[str | None, typer.Option("--wandb_entity", help="W&B entity (user or team)")] = None,
    wandb_mode: Annotated[str | None, typer.Option("--wandb_mode", help="offline (default: written locally, no "
                                                                        "connection) or online")] = None,
    wandb_dir: Annotated[str | None, typer.Option("--wandb_dir", help="where W&B writes its wandb/ directory "
                                                                      "(default: here)")] = None,
    wandb_api_key_name: Annotated[str | None, typer.Option("--wandb_api_key_name", help="NAME of the variable "
                                                                                        "holding the W&B key, online "
                                                                                        "(default WANDB_API_KEY)")]
    = None,
) -> None:
    """Export runs' scores (with CIs), params and files to MLflow (one run per model and task), W&B (offline by
    default), CSV or JSON. A target that fails says why and how to retry, the others still run; exit 1 then."""
    flags = {"--csv_path": csv_path, "--json_path": json_path, "--mlflow_uri": mlflow_uri,
             "--mlflow_experiment": mlflow_experiment, "--mlflow_run_name": mlflow_run_name,
             "--mlflow_tag": mlflow_tag, "--mlflow_token_name": mlflow_token_name, "--wandb_project": wandb_project,
             "--wandb_entity": wandb_entity, "--wandb_mode": wandb_mode, "--wandb_dir": wandb_dir,
             "--wandb_api_key_name": wandb_api_key_name}
    base = load_model(ExportConfig, config) if config else None
    settings = build_config(base=base, to=to or [], flags=flags, default_stem=_stem(sources))
    outcome = export_run(sources, settings, base_dir=Path.cwd())
    for line in outcome.skipped:
        print(f"evals: warning: not exported: {printable(line)}", file=sys.stderr)
    for line, result in zip(outcome.lines(), outcome.targets, strict=True):
        print(("" if result.ok else "evals: error: ") + printable(line), file=sys.stderr)
    if outcome.exit_code:
        raise SystemExit(outcome.exit_code)  # not typer.Exit: `evals` runs click with standalone_mode=False


def _stem(sources: list[str]) -> str:
    """The default name of the csv and json files: the one run's id or directory name, else evals-export."""
    if len(sources) != 1:
        return "evals-export"
    path = Path(sources[0])
    return (path.parent if path.is_file() else path).resolve().name or "evals-export"
