"""A byte-level tokenizer and the endpoint's logprob rule.

Token ids 0-255 are UTF-8 byte values; id 256 is the end-of-text token, written ``<|endoftext|>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EOS_TOKEN = "<|endoftext|>"
EOS_ID = 256
VOCAB_SIZE = 257
MAX_MODEL_LEN = 65536
LOGPROB_SCALE = 64.0
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def encode(text: str) -> list[int]:
    """Token ids of ``text``: its UTF-8 bytes, with each ``<|endoftext|>`` as the single id 256."""
    ids: list[int] = []
    for index, piece in enumerate(text.split(EOS_TOKEN)):
        if index:
            ids.append(EOS_ID)
        ids.extend(piece.encode("utf-8"))
    return ids


def decode(ids: Sequence[int]) -> str:
    """The text of ``ids``; invalid UTF-8 becomes U+FFFD. Raises ValueError for an id outside the vocabulary."""
    pieces: list[str] = []
    run = bytearray()
    for token in ids:
        check_id(token)
        if token == EOS_ID:
            pieces.append(run.decode("utf-8", errors="replace"))
            pieces.append(EOS_TOKEN)
            run.clear()
        else:
            run.append(token)
    pieces.append(run.decode("utf-8", errors="replace"))
    return "".join(pieces)


def check_id(token: int) -> None:
    """Raise ValueError unless ``token`` is an id of this vocabulary."""
    if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < VOCAB_SIZE:
        raise ValueError(f"token id {token!r} is outside the vocabulary (0..{VOCAB_SIZE - 1})")


def token_text(token: int) -> str:
    """How a token is written in logprob listings: the character for ASCII, ``bytes:\\xNN`` above it."""
    if token == EOS_ID:
        return EOS_TOKEN
    if token < 128:
        return chr(token)
    return f"bytes:\\x{token:02x}"


def logprob(token: int) -> float:
    """The rule: the log-probability of token id ``t`` is ``-t / 64`` at every position."""
    return -token / LOGPROB_SCALE


def tokenizer_info(model: str) -> dict[str, Any]:
    """The body of ``GET /tokenizer_info`` (the fields lm-eval's RemoteTokenizer reads, like vLLM's)."""
    return {
        "tokenizer_class": "ByteLevelTestTokenizer",
        "model": model,
        "eos_token": EOS_TOKEN,
        "bos_token": None,
        "pad_token": EOS_TOKEN,
        "unk_token": None,
        "vocab_size": VOCAB_SIZE,
        "model_max_length": MAX_MODEL_LEN,
        "chat_template": CHAT_TEMPLATE,
    }
