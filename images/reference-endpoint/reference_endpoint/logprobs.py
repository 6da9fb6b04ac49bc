"""Log-probabilities from raw logits (numpy): log-softmax per position and the top-k of a row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Logits = npt.NDArray[np.float32]
"""Rows of raw logits, one per position, n_vocab columns."""
LogProbs = npt.NDArray[np.float64]

CHUNK_ROWS = 32
"""Rows normalised at once: bounds the float64 working set to CHUNK_ROWS x n_vocab."""


def log_softmax(rows: Logits) -> LogProbs:
    """Normalised log-probabilities of each row (any leading shape), in float64."""
    wide = rows.astype(np.float64)
    shifted = wide - wide.max(axis=-1, keepdims=True)
    result: LogProbs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def top_k(row: LogProbs, k: int) -> list[tuple[int, float]]:
    """The k most likely tokens of one row of log-probabilities, most likely first."""
    if k <= 0:
        return []
    k = min(k, row.shape[-1])
    candidates = np.argpartition(-row, k - 1)[:k]
    ordered = candidates[np.argsort(-row[candidates], kind="stable")]
    return [(int(token), float(row[token])) for token in ordered]


def next_token_logprobs(rows: Logits, tokens: Sequence[int], k: int) -> list[tuple[float, list[tuple[int, float]]]]:
    """For each position i, the log-probability of tokens[i] under rows[i] and the top-k of rows[i].

    rows[i] are the logits the model produced after reading position i, so tokens[i] is the token that
    actually came next. Works in chunks so a long prompt never needs n x n_vocab float64s at once.
    """
    if len(rows) != len(tokens):
        raise ValueError(f"{len(rows)} logit rows for {len(tokens)} tokens")
    out: list[tuple[float, list[tuple[int, float]]]] = []
    for start in range(0, len(tokens), CHUNK_ROWS):
        chunk = log_softmax(rows[start : start + CHUNK_ROWS])
        for offset, row in enumerate(chunk):
            out.append((float(row[tokens[start + offset]]), top_k(row, k)))
    return out
