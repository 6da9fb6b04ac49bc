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
    return main(_arguments(f"core_evals_{suffix}"), prog=f"core_evals_{suffix}",
                framework=framework_file(HARNESS_DIRS[suffix]))


def _arguments(prog: str) -> list[str]:
    """The command line's arguments, without a repeated program name: ``docker run IMAGE core_evals_<h> ls`` (the
    documented form) hands the entry point ``core_evals_<h> ls``."""
    args = sys.argv[1:]
    return args[1:] if args and args[0] == prog else args


def source_harness_dir(suffix: str) -> Path | None:
    """The folder ``images/<harness>/`` of the source tree whose name, with ``-`` as ``_``, is ``suffix``."""
    images = Path(__file__).resolve().parents[2] / "images"
    matches = [path.parent for path in sorted(images.glob("*/framework.yml"))
               if path.parent.name.replace("-", "_") == suffix]
    return matches[0] if matches else None


def core_evals() -> int:
    """``core_evals``, installed in an image as (a link named) ``core_evals_<harness>``: the runtime CLI with the
    framework.yml at ``$EVALS_FRAMEWORK_FILE``, else, named ``core_evals_<suffix>``, the source tree's
    ``images/<harness>/framework.yml``; named ``core_evals`` without either, it takes ``--framework FILE``."""
    prog = Path(sys.argv[0]).name
    framework: Path | None = None
    if os.environ.get("EVALS_FRAMEWORK_FILE"):
        framework = Path(os.environ["EVALS_FRAMEWORK_FILE"])
    elif prog.startswith("core_evals_"):
        found = source_harness_dir(prog.removeprefix("core_evals_"))
        framework = found / "framework.yml" if found else None
    return main(_arguments(prog), prog=prog, framework=framework)


def lm_eval() -> int:
    """core_evals_lm_eval."""
    return _entry("lm_eval")


def vlmevalkit() -> int:
    """core_evals_vlmevalkit."""
    return _entry("vlmevalkit")
