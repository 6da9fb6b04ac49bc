"""Result parsers: explicit registries, harness name -> ``parse(output_dir) -> EvaluationResult`` and
``samples(output_dir) -> list[SampleRecord]`` (the per-sample records of samples.jsonl).

A parser reads the harness's own output files; it never imports the harness.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult
from orchestrator.schema.samples import SampleRecord

from . import lm_eval, vlmevalkit, vlmevalkit_samples

Parser = Callable[[Path], EvaluationResult]

PARSERS: dict[str, Parser] = {
    "lm-eval": lm_eval.parse,
    "vlmevalkit": vlmevalkit.parse,
}

SampleParser = Callable[[Path], list[SampleRecord]]
"""Reads the harness's per-sample output below the output dir; raises ResultsParseError on a file it cannot read."""

SAMPLE_PARSERS: dict[str, SampleParser] = {
    "vlmevalkit": vlmevalkit_samples.samples,
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
