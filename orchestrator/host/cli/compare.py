"""`evals compare` and `evals gate`: over orchestrator/host/compare/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from orchestrator.schema.errors import InputError, printable

if TYPE_CHECKING:
    from orchestrator.host.compare.report import Report

# The commands import numpy and the statistics when they run, not when `evals` starts (every other command would
# pay for them).

RUNS_HELP = "output directories (a task's or one holding several), results.yml files or run ids"


def _format(as_json: bool, markdown: bool) -> None:
    if as_json and markdown:
        raise InputError("--json and --markdown are two formats of one output", hint="give one of them")


def _warn(report: Report) -> None:
    for warning in report.warnings:
        print(f"evals: warning: {printable(warning)}", file=sys.stderr)


def compare_runs(
    runs: Annotated[list[str], typer.Argument(help=f"{RUNS_HELP}; the first is the baseline", show_default=False)],
    *,
    flips: Annotated[bool, typer.Option("--flips", help="list the samples whose 0/1 score changed, with their input "
                                                        "and both predictions")] = False,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", "--allow_partial",
                                                help="compare the samples that match when the runs' samples differ "
                                                     "(other tasks, data or limits); default: refuse")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="everything as JSON, flips whole")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Markdown, for a pull-request comment")] = False,
) -> None:
    """Compare runs sample by sample: per task and metric the means, their difference with a 95% CI, a p-value
    (Holm-adjusted) and the smallest difference the samples could detect; the first run against each other."""
    from orchestrator.host.compare import render  # noqa: PLC0415 - numpy only when run
    from orchestrator.host.compare.compare import compare  # noqa: PLC0415 - numpy only when run
    from orchestrator.host.compare.load import collection_paused, load_run  # noqa: PLC0415 - numpy only when run

    _format(as_json, markdown)
    if len(runs) < 2:
        raise InputError("compare needs at least two runs", hint="evals compare BASELINE CANDIDATE [CANDIDATE ...]")
    with collection_paused():
        loaded = [load_run(source) for source in runs]
    report = compare(loaded, allow_partial=allow_partial, flips=flips)
    _warn(report)
    if as_json:
        sys.stdout.write(render.json_text(report))
    elif markdown:
        sys.stdout.write(render.markdown(report))
    else:
        Console().print(render.table(report))


def gate(
    baseline: Annotated[str, typer.Argument(help="the baseline run: an output directory, a results.yml or a run id",
                                            show_default=False)],
    candidate: Annotated[str, typer.Argument(help="the candidate run, named the same ways", show_default=False)],
    *,
    policy: Annotated[Path, typer.Option("--policy", help="YAML gate policy: rules of task, metric, max_drop, "
                                                          "tier (critical or advisory)", show_default=False)],
    allow_partial: Annotated[bool, typer.Option("--allow-partial", "--allow_partial",
                                                help="judge on the samples that match when the runs' samples "
                                                     "differ; default: refuse")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the verdicts and the whole comparison as JSON")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Markdown, for a pull-request comment")] = False,
) -> None:
    """Judge a candidate against a baseline by a policy: each rule PASS, FAIL or INCONCLUSIVE; exit 0 GO, 1 NO-GO,
    3 INCONCLUSIVE (advisory rules never change it), 2 bad input."""
    from orchestrator.host.compare import gate as gating  # noqa: PLC0415 - numpy only when run
    from orchestrator.host.compare.compare import compare  # noqa: PLC0415 - numpy only when run
    from orchestrator.host.compare.load import collection_paused, load_run  # noqa: PLC0415 - numpy only when run

    _format(as_json, markdown)
    rules, doc = gating.load_policy(policy)
    with collection_paused():
        loaded = [load_run(baseline), load_run(candidate)]
    report = compare(loaded, allow_partial=allow_partial)
    gating.check_names(rules, report, doc)
    result = gating.judge(rules, report)
    _warn(report)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    elif markdown:
        sys.stdout.write(gating.markdown(result))
    else:
        Console().print(gating.table(result))
    if result.exit_code:
        raise SystemExit(result.exit_code)  # not typer.Exit: `evals` runs click with standalone_mode=False
