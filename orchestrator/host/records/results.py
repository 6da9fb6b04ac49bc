"""Reading a task's results.yml on the host: validated, within limits, as every command shows it."""

from __future__ import annotations

from pathlib import Path

from orchestrator.schema.errors import EvalsError, InputError, ResultsParseError
from orchestrator.schema.limits import RESULTS_LIMITS
from orchestrator.schema.loading import load_model
from orchestrator.schema.results import ResultsFile


def read_results(path: Path) -> ResultsFile:
    """Load and validate a results.yml written by a container (within RESULTS_LIMITS: 4 MiB, 250,000 nodes)."""
    if not path.exists():
        raise ResultsParseError(f"the container finished but wrote no {path}")
    try:
        return load_model(ResultsFile, path, limits=RESULTS_LIMITS)
    except EvalsError as err:
        raise ResultsParseError(f"invalid results file: {err}") from None


def read_named(path: Path, *, flag: str = "") -> tuple[Path, ResultsFile]:
    """A results.yml the user names, or the output directory holding one: missing or invalid is bad input (prefixed
    by ``flag``, e.g. ``--from: ``). Returns the file and its results."""
    file = path / "results.yml" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{flag}no results file {file}", hint="give a results.yml or the output directory holding one")
    try:
        return file, read_results(file)
    except ResultsParseError as err:
        raise InputError(f"{flag}{err.message}", hint=err.hint) from None
