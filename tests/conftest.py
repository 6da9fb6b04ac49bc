"""Shared test fixtures: paths into the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture
def lm_eval_framework() -> Path:
    """The shipped lm-eval framework.yml."""
    return REPO / "images" / "lm-eval" / "framework.yml"


@pytest.fixture
def vlm_framework() -> Path:
    """The shipped VLMEvalKit framework.yml."""
    return REPO / "images" / "vlmevalkit" / "framework.yml"
