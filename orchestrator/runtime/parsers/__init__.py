"""Result parsers: an explicit registry, harness name -> ``parse(output_dir) -> EvaluationResult``.

A parser reads the harness's own output files; it never imports the harness.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult

from . import lm_eval, vlmevalkit

Parser = Callable[[Path], EvaluationResult]

PARSERS: dict[str, Parser] = {
    "lm-eval": lm_eval.parse,
    "vlmevalkit": vlmevalkit.parse,
}


def get_parser(harness: str) -> Parser:
    """The parser registered for ``harness``; unknown names list the registered ones."""
    try:
        return PARSERS[harness]
    except KeyError:
        close = difflib.get_close_matches(harness, PARSERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ResultsParseError(
            f"no results parser for harness {harness!r}",
            hint=f"{hint}registered: {', '.join(sorted(PARSERS))} (orchestrator/runtime/parsers/__init__.py)",
        ) from None
