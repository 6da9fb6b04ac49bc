"""docs/cli.md is the command lines' own help: regenerated in memory, it must equal the committed file."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.host import cli_reference

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_current() -> None:
    committed = (ROOT / cli_reference.OUTPUT).read_text(encoding="utf-8")
    assert committed == cli_reference.render(), (
        "docs/cli.md is stale: regenerate it with `make docs` (python -m orchestrator.host.cli_reference)")


def test_cli_reference_covers_every_command() -> None:
    text = cli_reference.render()
    for command in ("ls", "run", "prefetch", "status", "logs", "cancel", "resubmit", "runs", "show", "version"):
        assert f"### `evals {command}`" in text
    for command in ("ls", "run_eval", "fetch_data"):
        assert f"### `core_evals_<harness> {command}`" in text
    assert "\x1b" not in text and "\\[" not in text  # no ANSI, no rich escapes


def test_cli_reference_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    wide = cli_reference.render()
    monkeypatch.setenv("COLUMNS", "40")
    assert cli_reference.render() == wide
