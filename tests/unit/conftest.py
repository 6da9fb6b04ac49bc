"""Unit tests keep run records in a temporary state directory, never in the user's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$EVALS_STATE_DIR for this test."""
    path = tmp_path / "evals-state"
    monkeypatch.setenv("EVALS_STATE_DIR", str(path))
    return path
