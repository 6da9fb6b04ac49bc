"""95% confidence intervals of a score's mean over samples, the same way for every harness (results.yml `stats.ci95`).

- Every value 0 or 1 (accuracy, exact match, pass@1 of one attempt): the exact binomial (Clopper-Pearson)
  interval of the proportion. Its bounds solve ``P(X >= k; p) = 0.025`` and ``P(X <= k; p) = 0.025`` for
  ``X ~ Binomial(n, p)``; we find them by bisection on ``p``, with the binomial probabilities summed in log
  space (log binomial coefficients as a cumulative sum of log-ratios), which matches
  ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")`` to 1e-9 up to n = 100,000.
- Otherwise: the percentile bootstrap of the mean, 10,000 resamples drawn with numpy's generator seeded 0, so a
  result is reproducible.

numpy only, not scipy: scipy (~100 MB installed) would go into every harness image's runtime venv for two
functions; the unit tests check these numbers against scipy, a development dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from orchestrator.schema.results import Interval

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0
_TAIL = (1 - CONFIDENCE) / 2
_BISECTIONS = 80
_CHUNK_CELLS = 4_000_000
"""Bootstrap resamples are drawn in chunks of at most this many indices (32 MB of int64)."""


def ci95(values: Sequence[float] | NDArray[np.float64]) -> Interval | None:
    """The 95% interval of the mean of ``values`` (see the module docstring); None for no values."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return None
    if not np.all(np.isfinite(data)):
        raise ValueError("ci95: values must be finite")
    if np.all((data == 0) | (data == 1)):
        lower, upper = clopper_pearson(int(data.sum()), int(data.size))
        return Interval(lower=lower, upper=upper, method="exact_binomial")
    lower, upper = bootstrap_mean(data)
    return Interval(lower=lower, upper=upper, method="bootstrap")


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The exact two-sided 95% interval of a proportion of ``k`` successes in ``n`` trials."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"clopper_pearson: need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    log_comb = log_choose(n)
    # P(X >= k; p) grows with p: the lower bound is where it reaches the tail.
    lower = 0.0 if k == 0 else _bisect(lambda p: binomial_mass(log_comb, n, p, k, n) - _TAIL, rising=True)
    # P(X <= k; p) falls with p: the upper bound is where it drops to the tail.
    upper = 1.0 if k == n else _bisect(lambda p: binomial_mass(log_comb, n, p, 0, k) - _TAIL, rising=False)
    return lower, upper


def bootstrap_mean(values: NDArray[np.float64], *, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """The percentile bootstrap 95% interval of the mean: ``resamples`` resamples with replacement, seeded."""
    n = values.size
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    rows = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    lower, upper = np.percentile(means, [100 * _TAIL, 100 * (1 - _TAIL)])
    return float(lower), float(upper)


def log_choose(n: int) -> NDArray[np.float64]:
    """``log C(n, i)`` for i = 0..n: the cumulative sum of ``log((n - i) / (i + 1))``."""
    i = np.arange(n, dtype=np.float64)
    return np.concatenate(([0.0], np.cumsum(np.log(n - i) - np.log(i + 1))))


def binomial_mass(log_comb: NDArray[np.float64], n: int, p: float, first: int, last: int) -> float:
    """``P(first <= X <= last)`` for ``X ~ Binomial(n, p)``, summed in log space; ``log_comb`` is
    :func:`log_choose` of ``n``."""
    i = np.arange(first, last + 1, dtype=np.float64)
    log_pmf = log_comb[first:last + 1] + i * math.log(p) + (n - i) * math.log1p(-p)
    top = float(log_pmf.max())
    return math.exp(top) * float(np.exp(log_pmf - top).sum())


def _bisect(f: Callable[[float], float], *, rising: bool) -> float:
    """The root in (0, 1) of a monotonic ``f``, to the last representable digit."""
    lo, hi = 0.0, 1.0
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if (f(mid) < 0) == rising:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
