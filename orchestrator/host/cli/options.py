"""The options and arguments several commands share, with one help text each."""

from __future__ import annotations

from typing import Annotated

import typer

EvalTypes = Annotated[list[str] | None, typer.Option("--eval_type", "--eval-type",
                                                     help="TASK or HARNESS.TASK; repeat for several tasks")]
Overrides = Annotated[str | None, typer.Option("--overrides", help="'a.b=c,d.e=f' (YAML values)")]
Harness = Annotated[str | None, typer.Option(
    "--harness", help="harness name (`evals ls`): its image evals/NAME:latest, else a built one labelled with it")]
RunId = Annotated[str, typer.Argument(help="run id")]
LatestRunId = Annotated[str | None, typer.Argument(help="run id (default: the latest run)")]
MaxParallel = Annotated[int | None, typer.Option(
    "--max_parallel", "--max-parallel",
    help="tasks running at once: local containers (default min(4, CPU cores); 1 streams the container's output, "
         "more show the live progress), a Slurm job array's throttle %N (default none)")]
