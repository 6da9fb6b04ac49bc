"""Confidence intervals against scipy's reference implementations (scipy is a development dependency only)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]  # no stubs; a development dependency only

from orchestrator.runtime.intervals import RESAMPLES, bootstrap_mean, ci95, clopper_pearson

PAIRS = [(0, 1), (1, 1), (0, 2), (1, 2), (2, 2), (0, 10), (3, 10), (10, 10), (7, 13), (1, 30), (29, 30),
         (50, 100), (1, 1000), (999, 1000), (123, 4567), (0, 100_000), (1, 100_000), (50_000, 100_000),
         (99_999, 100_000), (100_000, 100_000)]


@pytest.mark.parametrize(("k", "n"), PAIRS)
def test_clopper_pearson_matches_scipy_exact(k: int, n: int) -> None:
    reference = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    lower, upper = clopper_pearson(k, n)
    assert lower == pytest.approx(reference.low, abs=1e-9)
    assert upper == pytest.approx(reference.high, abs=1e-9)


def test_clopper_pearson_many_random_pairs() -> None:
    rng = np.random.default_rng(7)
    for n in rng.integers(1, 3000, size=40):
        k = int(rng.integers(0, n + 1))
        reference = stats.binomtest(k, int(n)).proportion_ci(method="exact")
        assert clopper_pearson(k, int(n)) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_zero_one_values_get_the_exact_binomial_interval() -> None:
    values = [1.0] * 7 + [0.0] * 13
    interval = ci95(values)
    assert interval is not None and interval.method == "exact_binomial"
    reference = stats.binomtest(7, 20).proportion_ci(method="exact")
    assert (interval.lower, interval.upper) == pytest.approx((reference.low, reference.high), abs=1e-9)
    assert ci95([True, False, True]) == ci95([1, 0, 1])  # booleans are 0/1 too


@pytest.mark.parametrize("seed", [1, 2])
def test_other_values_get_the_percentile_bootstrap_like_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.beta(0.5, 2.0, size=150)  # skewed scores in [0, 1]
    interval = ci95(values)
    assert interval is not None and interval.method == "bootstrap"
    reference = stats.bootstrap((values,), np.mean, method="percentile", n_resamples=RESAMPLES,
                                random_state=np.random.default_rng(seed)).confidence_interval
    # Two independent 10,000-resample estimates: the bounds differ by Monte Carlo error (~0.0005 here).
    assert interval.lower == pytest.approx(reference.low, abs=0.003)
    assert interval.upper == pytest.approx(reference.high, abs=0.003)
    assert interval.lower < float(values.mean()) < interval.upper


def test_bootstrap_is_seeded_and_reproducible() -> None:
    values = np.linspace(0, 1, 41) ** 2
    assert bootstrap_mean(values) == bootstrap_mean(values)
    assert bootstrap_mean(values, seed=1) != bootstrap_mean(values)


def test_bootstrap_draws_in_chunks_the_same_way_for_large_samples() -> None:
    values = np.random.default_rng(3).random(5000)  # chunks of 800 resamples
    lower, upper = bootstrap_mean(values)
    sem = values.std(ddof=1) / np.sqrt(values.size)
    assert lower == pytest.approx(values.mean() - 1.96 * sem, abs=sem * 0.1)
    assert upper == pytest.approx(values.mean() + 1.96 * sem, abs=sem * 0.1)


def test_edges() -> None:
    assert ci95([]) is None
    one = ci95([0.5])
    assert one is not None and (one.lower, one.upper, one.method) == (0.5, 0.5, "bootstrap")
    assert ci95([2.0, 2.0]) is not None
    with pytest.raises(ValueError, match="finite"):
        ci95([0.5, float("nan")])
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson(3, 2)
