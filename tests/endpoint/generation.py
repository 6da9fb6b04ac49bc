"""The deterministic generation rule, stop sequences and the max-tokens limit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

QUESTION_MARKER = "Question:"
ANSWER_MARKER = "Answer:"
FALLBACK_REPLY = "This is a deterministic test response."
_INTEGER = re.compile(r"[0-9]+")

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Generated:
    """A generation after stop sequences and the token limit were applied."""

    text: str
    finish_reason: FinishReason


def reply_for(prompt: str) -> str:
    """The full reply to ``prompt`` before any stop sequence or token limit.

    If the prompt contains ``Question:``, the question is the text after its last occurrence, up to
    the first ``Answer:`` after it. If that question contains an integer (a run of ASCII digits), the
    reply is ``The answer is N.`` with N the last one (leading zeros dropped). Otherwise the reply is
    the fixed sentence ``FALLBACK_REPLY``.
    """
    start = prompt.rfind(QUESTION_MARKER)
    if start < 0:
        return FALLBACK_REPLY
    question = prompt[start + len(QUESTION_MARKER) :].split(ANSWER_MARKER, 1)[0]
    integers = _INTEGER.findall(question)
    if not integers:
        return FALLBACK_REPLY
    return f"The answer is {int(integers[-1])}."


def generate(prompt: str, *, max_tokens: int | None, stop: Sequence[str], reply: str | None = None) -> Generated:
    """Apply the rule (or take ``reply``, a scripted one), cut before the earliest stop sequence, then keep at most
    ``max_tokens`` tokens.

    Tokens are UTF-8 bytes (the byte-level tokenizer), so ``max_tokens=5`` keeps five bytes.
    """
    text = reply_for(prompt) if reply is None else reply
    cuts = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    if cuts:
        text = text[: min(cuts)]
    data = text.encode("utf-8")
    if max_tokens is not None and len(data) > max_tokens:
        return Generated(data[:max_tokens].decode("utf-8", errors="ignore"), "length")
    return Generated(text, "stop")
