"""`evals prefetch`: everything some tasks need, fetched into a directory to carry elsewhere; and its check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape

from orchestrator.host.catalog import chosen_image, pick_image
from orchestrator.host.cli.console import stderr, stdout, write_output
from orchestrator.host.cli.options import EvalTypes, Harness, Overrides
from orchestrator.host.cli.services import services_of
from orchestrator.host.data.prefetch import IMAGE_FORMATS, PrefetchItem, prefetch
from orchestrator.host.data.prefetched import verify
from orchestrator.schema.errors import InputError


def prefetch_data(
    ctx: typer.Context,
    eval_type: EvalTypes = None,
    to: Annotated[Path | None, typer.Option("--to", help="new directory to write (whole or not at all)")] = None,
    images: Annotated[bool, typer.Option("--images", help="also docker save the images into DIR/images")] = False,
    image_format: Annotated[list[str] | None, typer.Option(
        "--image_format", "--image-format", help="images as docker-archive, enroot (.sqsh, needs enroot) or "
                                                 "apptainer (.sif, needs apptainer); repeatable; implies --images",
        click_type=click.Choice(list(IMAGE_FORMATS)))] = None,
    verify_dir: Annotated[Path | None, typer.Option("--verify", help="check a prefetched DIR against its manifest "
                                                                     "(sha256 of every file)")] = None,
    run_config: Annotated[Path | None, typer.Option("--run_config", "--run-config",
                                                    help="YAML run config (for its config.params.extra)")] = None,
    overrides: Overrides = None,
    harness: Harness = None,
    image: Annotated[str | None, typer.Option("--image", help="image to use (default evals/<harness>:latest)")] = None,
    network: Annotated[str, typer.Option("--network", help="auto (host for a Hub mirror on localhost), host, default",
                                         click_type=click.Choice(["auto", "host", "default"]))] = "auto",
) -> None:
    """Fetch everything some tasks need into a new directory, for `evals run --offline --data DIR` elsewhere."""
    if verify_dir is not None:
        if eval_type or to:
            raise InputError("--verify checks a directory; it takes no --eval_type or --to",
                             hint="give one or the other")
        manifest = verify(verify_dir)
        size = sum(entry.size for entry in manifest.files.values())
        tasks = ", ".join(f"{t.harness}.{t.task}" for t in manifest.tasks)
        stdout.print(f"{verify_dir}: {len(manifest.files)} files ({size / 1e6:.1f} MB) match the manifest; "
                     f"tasks: {tasks}" + (f"; images: {', '.join(i.image for i in manifest.images)}"
                                           if manifest.images else ""), soft_wrap=True)  # one line, however wide
        return
    if not eval_type or to is None:
        raise InputError("prefetch needs --eval_type TASK (repeatable) and --to DIR",
                         hint="e.g. evals prefetch --eval_type gsm8k --eval_type lm-eval.mmlu --to /shared/evals-data")
    services = services_of(ctx)
    catalog = services.catalog
    items = []
    for task in eval_type:
        chosen = (chosen_image(catalog, harness=harness, image=image) if harness or image
                  else pick_image(catalog.images(), task))
        items.append(PrefetchItem(image=chosen, eval_type=task, run_config=run_config, overrides=overrides))
    formats = tuple(image_format or (["docker-archive"] if images else []))
    manifest = prefetch(items, to, launcher=services.launcher, output=write_output, network=network,
                        save=catalog.save, image_formats=formats, id_of=catalog.image_id,
                        report=lambda line: stderr.print(escape(line)))
    size = sum(entry.size for entry in manifest.files.values())
    stderr.print(f"[bold]prefetched[/] {', '.join(f'{t.harness}.{t.task}' for t in manifest.tasks)} into {to} "
                 f"({len(manifest.files)} files, {size / 1e6:.1f} MB; manifest.json)")
    stderr.print(f"carry it over, then: evals prefetch --verify {to} && evals run --offline --data {to} ...")
