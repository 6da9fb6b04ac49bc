"""`evals report`: one self-contained HTML page of runs and output directories (over orchestrator/host/report/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.host.report.gather import SOURCES_HINT
from orchestrator.schema.errors import InputError
from orchestrator.schema.record import RUN_ID

# orchestrator.host.report.page (matplotlib, numpy, the statistics) is imported when the command runs, not when
# `evals` starts.


def default_output(source: str) -> Path:
    """``report-<run id>.html`` (or ``report-<directory name>.html``) in the current directory."""
    name = Path(source).resolve().name if Path(source).exists() or not RUN_ID.fullmatch(source) else source
    return Path(f"report-{name or 'evals'}.html")


def report(
    sources: Annotated[list[str], typer.Argument(
        help="run ids, task output directories (holding results.yml) or folders of them (a suite's output root)",
        show_default=False)],
    *,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="the HTML file to write; default report-<run id or directory name>.html here",
        show_default=False)] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="the model the others are compared against; default the first one found",
        show_default=False)] = None,
) -> None:
    """Write one HTML page that opens from disk with no network: scores with CIs, charts, the comparison of the
    models, a sample browser, usage and provenance."""
    from orchestrator.host.report import page  # noqa: PLC0415 - matplotlib and numpy only when run

    if not sources:
        raise InputError("report needs a run id or a directory", hint=SOURCES_HINT)
    path = output if output is not None else default_output(sources[0])
    page.check_writable(path)
    page.write(page.build(sources, baseline=baseline), path)
    print(path)
