"""The vlmevalkit harness's parser (loaded by orchestrator/runtime/harness_parser.py from this folder).

``parse``: VLMEvalKit's score files into results (:mod:`.results`); ``parse_samples``: its prediction and judged
files into samples.jsonl records (:mod:`.samples`). Stdlib, pydantic and ``orchestrator`` only: it never imports
VLMEvalKit.
"""

from .results import parse
from .samples import parse_samples

__all__ = ["parse", "parse_samples"]
