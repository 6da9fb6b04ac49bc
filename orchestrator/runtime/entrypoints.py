"""``core_evals_<harness>`` entry points: the runtime CLI with that harness's framework.yml preset.

The file is found, in order, at ``$EVALS_FRAMEWORK_FILE``, where the distribution installs
it (``<prefix>/share/evals/frameworks/<harness>/framework.yml``), or in the source tree
(``images/<harness>/framework.yml``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orchestrator.runtime.cli import main

HARNESS_DIRS: dict[str, str] = {
    "lm_eval": "lm-eval",
    "vlmevalkit": "vlmevalkit",
}
"""Entry-point suffix -> directory under images/ (and share/evals/frameworks/)."""


def framework_file(harness_dir: str) -> Path:
    """Where this harness's framework.yml lives (the first candidate that exists)."""
    override = os.environ.get("EVALS_FRAMEWORK_FILE")
    if override:
        return Path(override)
    candidates = [
        Path(sys.prefix) / "share" / "evals" / "frameworks" / harness_dir / "framework.yml",
        Path(__file__).resolve().parents[2] / "images" / harness_dir / "framework.yml",
    ]
    return next((path for path in candidates if path.is_file()), candidates[0])


def _entry(suffix: str) -> int:
    return main(prog=f"core_evals_{suffix}", framework=framework_file(HARNESS_DIRS[suffix]))


def lm_eval() -> int:
    """core_evals_lm_eval."""
    return _entry("lm_eval")


def vlmevalkit() -> int:
    """core_evals_vlmevalkit."""
    return _entry("vlmevalkit")
