"""Choosing the next token from a row of logits: greedy at temperature 0, else seeded nucleus sampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference_endpoint.logprobs import Logits


@dataclass(frozen=True)
class Sampling:
    """Resolved sampling parameters of one request (OpenAI semantics: no top-k, no min-p)."""

    temperature: float
    top_p: float
    seed: int | None


class Sampler:
    """Picks tokens for one request; the same seed gives the same choices."""

    def __init__(self, sampling: Sampling) -> None:
        self._sampling = sampling
        self._rng = np.random.default_rng(sampling.seed)

    def pick(self, logits: Logits) -> int:
        """The next token: argmax when temperature is 0, else a draw from the tempered nucleus."""
        if self._sampling.temperature <= 0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / self._sampling.temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if self._sampling.top_p < 1:
            order = np.argsort(-probs, kind="stable")
            cumulative = np.cumsum(probs[order])
            keep = order[: int(np.searchsorted(cumulative, self._sampling.top_p)) + 1]
            kept = probs[keep] / probs[keep].sum()
            return int(keep[self._rng.choice(len(keep), p=kept)])
        return int(self._rng.choice(len(probs), p=probs))
