"""A harness's parser, found in the harness's own folder: the module ``parse_<harness>.py`` (or package
``parse_<harness>/``) beside its framework.yml, ``<harness>`` being the folder name with ``-`` as ``_``.

In the source tree that folder is ``images/<harness>/``; in an image it is where the Dockerfile installs the folder's
files (``/opt/evals/<harness>/``, named by ``$EVALS_FRAMEWORK_FILE``). The module runs in the runtime's venv: it may
import ``orchestrator`` and the standard library, never the harness. It defines

- ``parse(output_dir: Path) -> EvaluationResult``: the harness's own output files read into results;
- ``parse_samples(output_dir: Path) -> list[SampleRecord]``: its per-sample output ([] when it wrote none).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import cast

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult
from orchestrator.schema.samples import SampleRecord

Parser = Callable[[Path], EvaluationResult]
SampleParser = Callable[[Path], list[SampleRecord]]


@dataclass(frozen=True)
class HarnessParsers:
    """The two functions of one harness's parser module."""

    module: str
    parse: Parser
    parse_samples: SampleParser


def module_name(harness_dir: Path) -> str:
    """``parse_<folder name with - as _>``: the parser module's name for the harness in ``harness_dir``."""
    return "parse_" + harness_dir.name.replace("-", "_").replace(".", "_")


def parser_path(harness_dir: Path) -> Path | None:
    """The parser module's file (``parse_<h>.py`` or ``parse_<h>/__init__.py``) in ``harness_dir``; None if absent."""
    name = module_name(harness_dir)
    for candidate in (harness_dir / f"{name}.py", harness_dir / name / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def load_parsers(harness_dir: Path) -> HarnessParsers:
    """Import the parser module of the harness in ``harness_dir`` (once per process) and return its functions."""
    path = parser_path(harness_dir)
    name = module_name(harness_dir)
    if path is None:
        raise ResultsParseError(f"no results parser in {harness_dir}",
                                hint=f"a harness folder holds {name}.py (or {name}/__init__.py) beside framework.yml")
    module = sys.modules.get(name)
    if module is None or Path(getattr(module, "__file__", "")).resolve() != path.resolve():
        module = _import(name, path)
    parse, parse_samples = getattr(module, "parse", None), getattr(module, "parse_samples", None)
    if not callable(parse) or not callable(parse_samples):
        raise ResultsParseError(f"{path} does not define parse(output_dir) and parse_samples(output_dir)",
                                hint="see orchestrator/runtime/harness_parser.py")
    return HarnessParsers(name, cast(Parser, parse), cast(SampleParser, parse_samples))


def _import(name: str, path: Path) -> ModuleType:
    package = path.parent if path.name == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package)] if package else None)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
