"""Logprob blocks in the OpenAI legacy completions format (what lm-eval's parse_logprobs reads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.endpoint import tokenizer


def top_alternatives(token: int, top: int) -> dict[str, float]:
    """The ``top`` most likely tokens under the rule (ids 0..top-1), plus the chosen token itself."""
    ids = [*range(min(top, tokenizer.VOCAB_SIZE)), token]
    return {tokenizer.token_text(t): tokenizer.logprob(t) for t in ids}


def legacy_logprobs(ids: Sequence[int], *, top: int, first_is_context: bool) -> dict[str, Any]:
    """``{"tokens", "token_logprobs", "top_logprobs"}`` for ``ids``.

    With ``first_is_context`` (echo), the first token has nothing before it: its logprob and its
    alternatives are null, as in the OpenAI API.
    """
    tokens = [tokenizer.token_text(t) for t in ids]
    token_logprobs: list[float | None] = [tokenizer.logprob(t) for t in ids]
    top_logprobs: list[dict[str, float] | None] = [top_alternatives(t, top) for t in ids]
    if first_is_context and ids:
        token_logprobs[0] = None
        top_logprobs[0] = None
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs}
