"""`evals`: the host command line. Lists tasks from built images and runs them in containers."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table

from orchestrator import __version__
from orchestrator.catalog import HarnessImage, from_labels, image_for, pick_image, tasks_of
from orchestrator.launch import check_api_key, execute, new_run_id, plan_container_run, preflight, read_results
from orchestrator.launchers import Launcher
from orchestrator.launchers.docker import DockerLauncher, client, image_labels, labelled_images
from orchestrator.report import results_table
from orchestrator.runtime.run import describe
from orchestrator.schema.config import RunConfigLayer
from orchestrator.schema.container import LABEL_HARNESS
from orchestrator.schema.errors import EvalsError
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest

app = typer.Typer(name="evals", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evaluate LLM and VLM endpoints with harnesses that run in their own containers.")
stdout = Console()
stderr = Console(stderr=True)


def _launcher() -> Launcher:
    return DockerLauncher()


def _images() -> list[HarnessImage]:
    seen: dict[str, HarnessImage] = {}
    for tag, labels in labelled_images(client(), LABEL_HARNESS):
        image = from_labels(tag, labels)
        seen.setdefault(image.harness, image)
    return sorted(seen.values(), key=lambda image: image.harness)


def _image(harness: str | None, image: str | None) -> HarnessImage:
    name = image or image_for(harness or "")
    return from_labels(name, image_labels(client(), name))


@app.command("ls")
def list_tasks(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List every task of every built harness image (read from image labels)."""
    entries = tasks_of(_images())
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


@app.command("run")
def run(
    eval_type: Annotated[str | None, typer.Option("--eval_type", "--eval-type", help="TASK or HARNESS.TASK")] = None,
    model_id: Annotated[str | None, typer.Option("--model_id", "--model-id", help="model name")] = None,
    model_url: Annotated[str | None, typer.Option("--model_url", "--model-url", help="full endpoint URL")] = None,
    model_type: Annotated[str | None, typer.Option("--model_type", "--model-type",
                                                   help="chat, completions or vlm")] = None,
    api_key_name: Annotated[str | None, typer.Option("--api_key_name", "--api-key-name",
                                                     help="NAME of the variable holding the API key")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output_dir", "--output-dir",
                                                    help="default: results/<harness>-<task>-<run id>")] = None,
    run_config: Annotated[Path | None, typer.Option("--run_config", "--run-config", help="YAML run config")] = None,
    overrides: Annotated[str | None, typer.Option("--overrides", help="'a.b=c,d.e=f' (YAML values)")] = None,
    harness: Annotated[str | None, typer.Option("--harness", help="lm-eval or vlmevalkit")] = None,
    image: Annotated[str | None, typer.Option("--image", help="image to run (default evals/<harness>:latest)")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data_dir", "--data-dir",
                                                  help="pre-staged data, mounted read-only at /data")] = None,
    network: Annotated[str, typer.Option("--network", help="auto (host for a localhost endpoint), host, default",
                                         click_type=click.Choice(["auto", "host", "default"]))] = "auto",
    skip_preflight: Annotated[bool, typer.Option("--skip-preflight", help="do not check the endpoint")] = False,
    dry_run: Annotated[bool, typer.Option("--dry_run", "--dry-run", help="show what would run; run nothing")] = False,
) -> None:
    """Run one evaluation in its harness's container and print its results."""
    request = RunRequest(eval_type=eval_type, model_id=model_id, model_url=model_url, model_type=model_type,
                         api_key_name=api_key_name, run_config=run_config, overrides=overrides)
    chosen = _image(harness, image) if harness or image else pick_image(_images(), _eval_type_hint(request))
    run_id = new_run_id()
    planned = plan_container_run(chosen, request, run_id=run_id, output_dir=Path("."), network=network,
                                 data_dir=data_dir)
    target_dir = output_dir or Path("results") / f"{chosen.harness}-{planned.plan.evaluation.config.type}-{run_id}"
    planned = plan_container_run(chosen, request, run_id=run_id, output_dir=target_dir, network=network,
                                 data_dir=data_dir)
    if dry_run:
        sys.stdout.write(describe(planned.plan))
        spec = planned.spec
        mounts = ", ".join(f"{m.source}:{m.target}" + (":ro" if m.read_only else "") for m in spec.mounts)
        sys.stdout.write(f"\nContainer:\n\n  image: {spec.image}\n  args: {json.dumps(spec.args)}\n"
                         f"  user: {spec.user}\n  network: {'host' if spec.network_host else 'default'}\n"
                         f"  mounts: {mounts}\n  api key variable: {spec.secret_env or '-'} (value passed on stdin)\n")
        return
    check_api_key(planned)
    if not skip_preflight:
        preflight(planned.plan.evaluation.target.api_endpoint.url)
    stderr.print(f"[bold]run {run_id}[/]: {chosen.harness}.{planned.plan.evaluation.config.type} in {chosen.image}"
                 f" -> {target_dir}")

    def output(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    results = execute(planned, _launcher(), output=output)
    stdout.print(results_table(results))
    stdout.print(f"results: {target_dir / 'results.yml'}")


def _eval_type_hint(request: RunRequest) -> str | None:
    if request.eval_type:
        return request.eval_type
    if request.overrides and "config.type=" in request.overrides:
        return request.overrides.split("config.type=", 1)[1].split(",", 1)[0].strip()
    if request.run_config is not None:
        layer = load_model(RunConfigLayer, request.run_config)
        return layer.config.type if layer.config else None
    return None


@app.command("show")
def show(paths: Annotated[list[Path], typer.Argument(help="results.yml files or output directories")]) -> None:
    """Validate results.yml files and print their scores."""
    for path in paths:
        file = path / "results.yml" if path.is_dir() else path
        results = read_results(file)
        stdout.print(results_table(results, title=f"{results.framework_name} / {results.config.type}  ({file})"))


@app.command("version")
def version() -> None:
    """Print the version."""
    print(__version__)


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors and bad input print one line and return 2."""
    try:
        app(args=argv, prog_name="evals", standalone_mode=False)
    except click.UsageError as err:
        print(f"evals: error: {err.format_message()} (see evals --help)", file=sys.stderr)
        return 2
    except EvalsError as err:
        print(f"evals: error: {err}", file=sys.stderr)
        return err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("evals: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
