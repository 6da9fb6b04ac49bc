"""Result parsers: explicit registries, harness name -> ``parse(output_dir) -> EvaluationResult`` and harness name ->
a sample parser ``(output_dir) -> list[SampleRecord]`` (the lines of samples.jsonl).

A parser reads the harness's own output files; it never imports the harness.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from orchestrator.runtime.harness_parser import load_parsers, parser_path
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult
from orchestrator.schema.samples import SampleRecord

from . import lm_eval, lm_eval_samples, vlmevalkit, vlmevalkit_samples

Parser = Callable[[Path], EvaluationResult]
SampleParser = Callable[[Path], list[SampleRecord]]
"""Reads the harness's per-sample output below the output dir; [] when it wrote none; raises ResultsParseError on a
file it cannot read."""

PARSERS: dict[str, Parser] = {
    "lm-eval": lm_eval.parse,
    "vlmevalkit": vlmevalkit.parse,
}


def get_parser(harness: str, *, harness_dir: Path | None = None) -> Parser:
    """The parser in ``harness_dir`` (:mod:`orchestrator.runtime.harness_parser`) when it holds one, else the one
    registered for ``harness``; unknown names list the registered ones."""
    if harness_dir is not None and parser_path(harness_dir) is not None:
        return load_parsers(harness_dir).parse
    try:
        return PARSERS[harness]
    except KeyError:
        close = difflib.get_close_matches(harness, PARSERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ResultsParseError(
            f"no results parser for harness {harness!r}",
            hint=f"{hint}registered: {', '.join(sorted(PARSERS))} (orchestrator/runtime/parsers/__init__.py)",
        ) from None


SAMPLE_PARSERS: dict[str, SampleParser] = {
    "lm-eval": lm_eval_samples.parse_samples,
    "vlmevalkit": vlmevalkit_samples.samples,
}


def get_sample_parser(harness: str, *, harness_dir: Path | None = None) -> SampleParser | None:
    """The per-sample parser in ``harness_dir`` when it holds one, else the one registered for ``harness``; None for a
    harness without one (it writes no samples.jsonl)."""
    if harness_dir is not None and parser_path(harness_dir) is not None:
        return load_parsers(harness_dir).parse_samples
    return SAMPLE_PARSERS.get(harness)
