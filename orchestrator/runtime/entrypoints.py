"""``core_evals``: the runtime CLI as a console script, installed in an image as (a link named)
``core_evals_<harness>`` with that harness's framework.yml preset.

The framework is ``$EVALS_FRAMEWORK_FILE`` (every image sets it); without it, a program named
``core_evals_<h>`` takes the source tree's ``images/<harness>/framework.yml`` whose folder name, with
``-`` as ``_``, is ``<h>`` (:func:`orchestrator.runtime.harnesses.harness_dirs`); named ``core_evals``, it takes
``--framework FILE``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orchestrator.runtime.cli import main
from orchestrator.runtime.harnesses import entry_point, harness_dirs


def _arguments(prog: str) -> list[str]:
    """The command line's arguments, without a repeated program name: ``docker run IMAGE core_evals_<h> ls`` (the
    documented form) hands the entry point ``core_evals_<h> ls``."""
    args = sys.argv[1:]
    return args[1:] if args and args[0] == prog else args


def source_harness_dir(prog: str) -> Path | None:
    """The source tree's harness folder whose entry point is ``prog`` (``core_evals_<h>``); None if there is none."""
    return next((folder for folder in harness_dirs() if entry_point(folder.name) == prog), None)


def core_evals() -> int:
    """The ``core_evals`` console script (see the module docstring)."""
    prog = Path(sys.argv[0]).name
    framework: Path | None = None
    if os.environ.get("EVALS_FRAMEWORK_FILE"):
        framework = Path(os.environ["EVALS_FRAMEWORK_FILE"])
    elif prog.startswith("core_evals_"):
        found = source_harness_dir(prog)
        framework = found / "framework.yml" if found else None
    return main(_arguments(prog), prog=prog, framework=framework)
