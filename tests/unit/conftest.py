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


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$EVALS_CACHE_DIR for this test; no Hub variables from the caller's shell."""
    path = tmp_path / "evals-cache"
    monkeypatch.setenv("EVALS_CACHE_DIR", str(path))
    for name in ("HF_TOKEN", "HF_ENDPOINT", "HF_UPDATE_DOWNLOAD_COUNTS"):
        monkeypatch.delenv(name, raising=False)
    return path
