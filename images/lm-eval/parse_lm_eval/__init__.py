"""The lm-eval harness's parser (loaded by orchestrator/runtime/harness_parser.py from this folder).

``parse``: lm-eval's results JSON into results (:mod:`.results`); ``parse_samples``: its ``--log_samples`` files
into samples.jsonl records (:mod:`.samples`). Stdlib and ``orchestrator`` only: it never imports lm-eval.
"""

from .results import parse
from .samples import parse_samples

__all__ = ["parse", "parse_samples"]
