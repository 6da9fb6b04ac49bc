"""Paired statistics of two runs' scores on the same samples: numpy only, vectorised, seeded.

Every function takes the scores of the baseline ``a`` and the candidate ``b`` on the same ``n`` samples, in the same
order; ``d = b - a`` are the paired differences. The methods (docs/compare-and-gate.md states them for users):

- the 95% CI of the mean difference: a paired percentile bootstrap (resample the ``n`` pairs with replacement,
  :data:`RESAMPLES` times, take the 2.5th and 97.5th percentiles of the resampled means), drawn one of three ways
  (:func:`bootstrap_means`): ``counts`` when ``d`` takes at most :data:`FEW_VALUES` distinct values (0/1 scores give
  at most three): the resampled mean depends only on how often each value is drawn, one multinomial draw per
  resample, exactly the distribution of drawing indices; ``index``: drawing the indices, when n <
  :data:`BINNED_FROM`; ``bins`` from :data:`BINNED_FROM` pairs on: the counts of bins of consecutive sorted values
  drawn exactly, the values within the bins as one normal term with the exact conditional mean and variance
  (:mod:`.binned` states what it keeps and loses; when the bins would need more than 256, indices again);
- the p-value: exact McNemar (a two-sided binomial test on the discordant pairs) when every score of both runs is 0
  or 1; otherwise a paired permutation test (each pair's difference keeps or flips its sign), exact when the nonzero
  differences are few enough to enumerate, else :data:`RESAMPLES` random sign patterns with scipy's convention
  ``(hits + 1) / (resamples + 1)`` per side, two-sided = twice the smaller side, at most 1. The random patterns'
  sums are drawn by distinct magnitude up to :data:`FEW_VALUES` (exact), by bins from :data:`BINNED_FROM` nonzero
  differences on (how many of each bin flip exact, the rest one normal term: :mod:`.binned`), else 8 signs a byte;
- :func:`holm`: Holm's step-down adjustment of a family of p-values;
- :func:`detectable`: the smallest true difference a two-sided test at alpha 0.05 would find with 80% power,
  ``(z_0.975 + z_0.8) * sd(d) / sqrt(n)`` with ``sd`` the sample standard deviation (ddof 1); None when the
  differences are all equal (no estimate of their spread) or fewer than 2.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

from orchestrator.host.compare import binned
from orchestrator.runtime.intervals import binomial_mass, log_choose

Floats = npt.NDArray[np.float64]

RESAMPLES = 10_000
"""Bootstrap resamples, and random sign patterns of the permutation test, per (task, metric)."""
CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
DETECTABLE_FACTOR = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)
"""z_0.975 + z_0.8 = 2.8016: the minimum detectable difference is this many standard errors of the mean difference."""
INDEX_BLOCK = 2_000_000
"""Resampled indices drawn at once by the bootstrap (16 MB of int64 differences gathered per block)."""

BINNED_FROM = 2_000
"""From this many values on (pairs for the bootstrap, nonzero differences for the permutation test), many distinct
values are resampled by bins; below, one by one (10,000 x 2,000 indices take about 0.1 s)."""
FEW_VALUES = 64
"""Up to this many distinct values are resampled by counts, exactly: a multinomial (or a binomial per value) costs one
draw per value and resample, about 45 ms for 64 values and 10,000 resamples, 0.35 s for 169 (scores on a 0.05 grid)."""

Test = Literal["mcnemar", "permutation"]
Draw = Literal["counts", "bins", "index"]


@dataclass(frozen=True)
class Paired:
    """The statistics of one (task, metric): means over the ``n`` pairs, difference ``mean(b - a)`` and so on."""

    n: int
    mean_a: float | None
    mean_b: float | None
    difference: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    test: Test | None
    detectable: float | None


def generator(seed: int, *names: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and ``names`` (task, metric): a row's numbers do not depend on the other rows."""
    words = [seed] + [int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") for name in names]
    return np.random.default_rng(np.random.SeedSequence(words))


def check_finite(values: Floats, what: str) -> None:
    """Refuse NaN and infinite scores: a statistic over them means nothing."""
    if not np.isfinite(values).all():
        raise ValueError(f"{what}: scores must be finite numbers (found NaN or infinity)")


def is_binary(values: Floats) -> bool:
    """Every value is 0 or 1."""
    return bool(np.isin(values, (0.0, 1.0)).all())


def paired(a: Floats, b: Floats, *, rng: np.random.Generator, resamples: int = RESAMPLES) -> Paired:
    """Every statistic of one (task, metric); ``n = 0`` gives counts only, ``n = 1`` no detectable difference."""
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores need two 1-d arrays of one length, not {a.shape} and {b.shape}")
    check_finite(a, "baseline")
    check_finite(b, "candidate")
    n = len(a)
    if n == 0:
        return Paired(0, None, None, None, None, None, None, None)
    d = b - a
    boot, perm = rng.spawn(2)
    test: Test = "mcnemar" if is_binary(a) and is_binary(b) else "permutation"
    p_value = mcnemar(a, b) if test == "mcnemar" else sign_flip(d, rng=perm, resamples=resamples)
    return Paired(n=n, mean_a=float(a.mean()), mean_b=float(b.mean()), difference=float(d.mean()),
                  ci=bootstrap_ci(d, rng=boot, resamples=resamples), p_value=p_value, test=test,
                  detectable=detectable(d))


def bootstrap_ci(d: Floats, *, rng: np.random.Generator, resamples: int = RESAMPLES,
                 confidence: float = CONFIDENCE, draw: Draw | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI of ``mean(d)``; ``draw`` forces a way to draw the resamples (default: the cheapest)."""
    means = bootstrap_means(d, rng=rng, resamples=resamples, draw=draw)
    tail = (1 - confidence) / 2 * 100
    lower, upper = np.percentile(means, [tail, 100 - tail])
    return float(lower), float(upper)


def bootstrap_means(d: Floats, *, rng: np.random.Generator, resamples: int, draw: Draw | None = None) -> Floats:
    """``resamples`` means of ``len(d)`` values drawn from ``d`` with replacement.

    ``counts`` (by distinct value) and ``index`` are the bootstrap exactly; ``bins`` draws each resample's counts
    of bins of consecutive values exactly and their values' deviations within the bins as one normal term, with
    the exact conditional mean and variance (:mod:`.binned`). By default: ``counts`` up to FEW_VALUES distinct
    values, else ``bins`` from BINNED_FROM values on unless that needs too many bins, else ``counts`` up to n / 32
    distinct values (still cheaper than indices), else ``index``. A forced ``bins`` that needs too many raises
    ValueError.
    """
    n = len(d)
    values, counts = np.unique(d, return_counts=True)
    if len(values) == 1:
        return np.full(resamples, values[0])
    by_value = binned.Bins.of_equal_values(values, counts)
    if draw == "counts" or (draw is None and len(values) <= FEW_VALUES):
        return binned.bootstrap_sums(by_value, rng=rng, resamples=resamples) / n
    if draw == "bins" or (draw is None and n >= BINNED_FROM):
        bins = binned.bootstrap_bins(d)
        if bins is not None:
            return binned.bootstrap_sums(bins, rng=rng, resamples=resamples) / n
        if draw == "bins":
            raise ValueError(f"more than {binned.MOST_BINS} bins needed for these {n} values")
    if draw is None and len(values) <= n // 32:
        return binned.bootstrap_sums(by_value, rng=rng, resamples=resamples) / n
    means = np.empty(resamples)
    block = max(1, INDEX_BLOCK // n)
    for start in range(0, resamples, block):
        stop = min(start + block, resamples)
        indices = rng.integers(0, n, size=(stop - start, n), dtype=np.int32 if n < 2**31 else np.int64)
        means[start:stop] = d[indices].sum(axis=1) / n
    return means


def mcnemar(a: Floats, b: Floats) -> float:
    """Exact McNemar: two-sided binomial test of the discordant pairs (0->1 against 1->0) at p = 1/2."""
    gained = int(np.count_nonzero((a == 0) & (b == 1)))
    lost = int(np.count_nonzero((a == 1) & (b == 0)))
    return binomial_two_sided(min(gained, lost), gained + lost)


def binomial_two_sided(k: int, n: int) -> float:
    """P(X <= k) + P(X >= n - k) for X ~ Binomial(n, 1/2) and k <= n / 2, at most 1; summed in log space."""
    if n == 0 or 2 * k >= n:
        return 1.0
    return min(1.0, 2 * binomial_mass(log_choose(n), n, 0.5, 0, k))


def sign_flip(d: Floats, *, rng: np.random.Generator, resamples: int = RESAMPLES) -> float:
    """Two-sided paired permutation test of ``mean(d) = 0``: every pair keeps or swaps its two scores."""
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return 1.0
    observed = float(nonzero.sum())
    exact = 2 ** len(nonzero) <= resamples
    null = _all_sign_sums(nonzero) if exact else _random_sign_sums(nonzero, rng=rng, resamples=resamples)
    gamma = abs(observed) * np.finfo(np.float64).eps * 100  # scipy's tolerance for ties in floating point
    adjust = 0 if exact else 1
    less = (np.count_nonzero(null <= observed + gamma) + adjust) / (len(null) + adjust)
    greater = (np.count_nonzero(null >= observed - gamma) + adjust) / (len(null) + adjust)
    return float(min(1.0, 2 * min(less, greater)))


def _all_sign_sums(values: Floats) -> Floats:
    """The sum of ``values`` under every one of the 2^m sign patterns."""
    patterns = (np.arange(2 ** len(values))[:, None] >> np.arange(len(values))) & 1
    sums: Floats = (1 - 2 * patterns) @ values
    return sums


_BYTE_SIGNS = 1 - 2 * ((np.arange(256)[:, None] >> np.arange(8)) & 1)
"""Row b: the signs (+1 kept, -1 flipped) that the 8 bits of byte b give 8 consecutive values."""


def _random_sign_sums(values: Floats, *, rng: np.random.Generator, resamples: int) -> Floats:
    """The sum of ``values`` under ``resamples`` random sign patterns.

    With up to FEW_VALUES distinct magnitudes, how many of each are flipped is one binomial draw each (exact). Else,
    from BINNED_FROM values on, the same by bins of consecutive magnitudes, the flipped values' sum within the bins
    one normal term (:func:`.binned.sign_sums`); if that needs too many bins, by magnitude up to m / 32 of them.
    Otherwise each random byte signs 8 values at once: a table holds the 256 signed sums of every group of 8, so a
    pattern costs m / 8 look-ups instead of m multiplications.
    """
    magnitudes, counts = np.unique(np.abs(values), return_counts=True)
    bins: binned.Bins | None = None
    if len(values) >= BINNED_FROM and len(magnitudes) > FEW_VALUES:
        bins = binned.sign_bins(np.abs(values))
    if bins is None and len(magnitudes) <= max(FEW_VALUES, len(values) // 32):
        bins = binned.Bins.of_equal_values(magnitudes, counts)
    if bins is not None:
        return binned.sign_sums(bins, rng=rng, resamples=resamples)
    groups = -(-len(values) // 8)
    padded = np.zeros(groups * 8)
    padded[: len(values)] = values
    table = (padded.reshape(groups, 8) @ _BYTE_SIGNS.T).ravel()  # (groups, 256), flattened
    offsets = np.arange(groups, dtype=np.int32) * 256
    sums = np.empty(resamples)
    block = max(1, INDEX_BLOCK // groups)
    for start in range(0, resamples, block):
        stop = min(start + block, resamples)
        drawn = rng.integers(0, 256, size=(stop - start, groups), dtype=np.uint8)
        sums[start:stop] = table[drawn.astype(np.int32) + offsets].sum(axis=1)
    return sums


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment over the values that are not None (those stay None)."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    running, m = 0.0, len(present)
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def detectable(d: Floats) -> float | None:
    """The minimum detectable difference at 80% power, alpha 0.05 two-sided.

    None below 2 pairs, and when every difference is the same (a run against itself): their standard deviation is
    then 0, which estimates nothing about the noise of another pair of runs; a 0 would read "any difference would
    be detected".
    """
    if len(d) < 2 or bool((d == d[0]).all()):
        return None
    return float(DETECTABLE_FACTOR * d.std(ddof=1) / math.sqrt(len(d)))
