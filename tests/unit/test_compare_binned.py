"""The binned bootstrap and permutation test (orchestrator/host/compare/binned.py) against the exact procedures.

Tolerances (Monte Carlo): a percentile from R = 10,000 resamples has a standard error of
``sqrt(p (1 - p) / R) / f(q)``, f the density of the resampled means at the percentile, estimated here from the exact
(index) resamples' own quantiles 1 point either side; the binned and the exact estimate are independent, so they
must agree within 4 * sqrt(2) of it (4 standard errors of their difference; 0.15 bootstrap standard errors for a
normal shape, more where the percentile falls between two modes). A tail probability p of a 10,000-pattern null has
a standard error sqrt(p (1 - p) / 10,000); two independent estimates must agree within 4 * sqrt(2) of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as reference  # type: ignore[import-untyped]  # (no stubs installed)

from orchestrator.host.compare import binned, stats

RESAMPLES = 10_000
Shape = Callable[[np.random.Generator, int], np.ndarray]

SHAPES: dict[str, Shape] = {
    "normal": lambda rng, n: rng.normal(0.01, 0.3, n),
    "uniform": lambda rng, n: rng.uniform(-1, 1.05, n),
    "student t, 2 dof": lambda rng, n: rng.standard_t(2, n),
    "lognormal": lambda rng, n: rng.lognormal(0, 1.5, n) - 3,
    "bimodal": lambda rng, n: np.where(rng.random(n) < 0.3, rng.normal(-1, 0.1, n), rng.normal(0.5, 0.2, n)),
    "a few huge outliers": lambda rng, n: np.concatenate([rng.normal(0, 1, n - 3), [400.0, 900.0, -300.0]]),
    "ties and a few distinct": lambda rng, n: np.concatenate([rng.integers(-1, 2, n - 100).astype(float),
                                                              rng.normal(0, 3, 100)]),
    "f1 differences (the benchmark's)": lambda rng, n: np.clip(rng.normal(0.56, 0.2, n), 0, 1)
                                                      - np.clip(rng.normal(0.55, 0.2, n), 0, 1),
    "scores on a 0.05 grid": lambda rng, n: (rng.binomial(20, 0.55, n) - rng.binomial(20, 0.5, n)) / 20
                                            + np.where(rng.random(n) < 0.02, rng.integers(-20, 21, n) / 20, 0),
}
CASES = [(shape, 5_000) for shape in SHAPES] + [("lognormal", stats.BINNED_FROM + 1),
                                                ("a few huge outliers", stats.BINNED_FROM + 1)]


def percentile_tolerance(exact: np.ndarray, q: float) -> float:
    density_width = float(np.diff(np.percentile(exact, [q - 1, q + 1]))[0]) / 0.02  # 1 / f(quantile)
    return 4 * math.sqrt(2) * math.sqrt(q / 100 * (1 - q / 100) / len(exact)) * density_width


@pytest.mark.parametrize(("shape", "n"), CASES, ids=[f"{shape}, n={n}" for shape, n in CASES])
def test_binned_bootstrap_percentiles_agree_with_the_index_bootstrap(shape: str, n: int) -> None:
    d = SHAPES[shape](np.random.default_rng(n), n)
    bins = binned.bootstrap_bins(d)
    assert bins is not None and bins.squares.any(), "the case must go through bins, with values within them"
    assert ((bins.counts == 1) | (bins.counts >= binned.SMALLEST_BIN)).all()
    assert bins.counts.sum() == n and len(bins.counts) <= binned.MOST_BINS
    fast = stats.bootstrap_means(d, rng=stats.generator(1, shape), resamples=RESAMPLES, draw="bins")
    exact = stats.bootstrap_means(d, rng=stats.generator(2, shape), resamples=RESAMPLES, draw="index")
    assert fast.mean() == pytest.approx(d.mean(), abs=4 * d.std() / math.sqrt(n * RESAMPLES))
    for q in (2.5, 97.5):
        tolerance = percentile_tolerance(exact, q)
        assert abs(np.percentile(fast, q) - np.percentile(exact, q)) <= tolerance, (q, tolerance)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_binned_resampled_means_have_the_bootstraps_exact_mean_and_variance(shape: str) -> None:
    """The bootstrap mean's mean is mean(d) and its variance var(d) / n (ddof 0). 100,000 binned resamples: their
    variance has a relative standard error sqrt((2 + k) / 100,000), k the excess kurtosis of the resampled mean
    (k(d) / n); it must be within 4 of them (1.8% for a normal shape: dropping the within-bin term loses more)."""
    n, resamples = 5_000, 100_000
    d = SHAPES[shape](np.random.default_rng(n), n)
    means = stats.bootstrap_means(d, rng=stats.generator(5, shape), resamples=resamples, draw="bins")
    variance = d.var() / n
    kurtosis = float(reference.kurtosis(d)) / n
    assert means.mean() == pytest.approx(d.mean(), abs=4 * math.sqrt(variance / resamples))
    assert means.var() == pytest.approx(variance, rel=4 * math.sqrt((2 + kurtosis) / resamples))


def test_a_value_far_from_the_rest_gets_a_bin_of_its_own() -> None:
    """Two outliers in one bin would make one normal term of them; the bootstrap's separate modes would blur."""
    d = np.concatenate([np.random.default_rng(3).normal(0, 1, 3_000), [300.0, 400.0]])
    bins = binned.bootstrap_bins(d)
    assert bins is not None
    assert {300.0, 400.0} <= set((bins.means * bins.scale)[bins.counts == 1].tolist())
    assert len(bins.counts) < 100, "only the tails are split"


def test_the_benchmark_shape_needs_only_the_first_bins() -> None:
    d = SHAPES["f1 differences (the benchmark's)"](np.random.default_rng(0), 20_000)
    bins = binned.bootstrap_bins(d)
    assert bins is not None and len(bins.counts) == binned.FIRST_BINS


def test_too_many_bins_fall_back_to_indices() -> None:
    """Each value 1.1 times the one before: at every scale a few values dominate, so more than 256 bins would be
    needed and indices are drawn."""
    d = np.random.default_rng(4).choice([-1.0, 1.0], 2_500) * 1.1 ** np.arange(2_500)
    assert binned.bootstrap_bins(d) is None and binned.sign_bins(np.abs(d)) is None
    with pytest.raises(ValueError, match="bins"):
        stats.bootstrap_means(d, rng=stats.generator(0), resamples=100, draw="bins")
    assert len(stats.bootstrap_means(d, rng=stats.generator(0), resamples=100)) == 100  # by index


def test_huge_scores_keep_finite_bins() -> None:
    """Squares of 1e200 overflow a float; the bins are kept in units of a power of 2."""
    d = SHAPES["lognormal"](np.random.default_rng(8), 3_000)
    small = stats.bootstrap_ci(d, rng=stats.generator(0), draw="bins")
    huge = stats.bootstrap_ci(d * 2.0**700, rng=stats.generator(0), draw="bins")
    assert (huge[0] / 2.0**700, huge[1] / 2.0**700) == pytest.approx(small, rel=1e-12)
    p = stats.sign_flip(d * 2.0**700, rng=stats.generator(0))
    assert p == stats.sign_flip(d, rng=stats.generator(0))


def test_more_than_64_distinct_values_go_by_bins_not_by_value() -> None:
    """A multinomial over 100-600 distinct values took 0.3-0.5 s a row at 20,000 pairs; bins take about 10 ms."""
    d = np.round(SHAPES["student t, 2 dof"](np.random.default_rng(9), 20_000), 1).astype(np.float64)  # ~200 values
    assert stats.FEW_VALUES < len(np.unique(d)) <= len(d) // 32
    default = stats.bootstrap_ci(d, rng=stats.generator(0, "grid"))
    assert default == stats.bootstrap_ci(d, rng=stats.generator(0, "grid"), draw="bins")
    assert default != stats.bootstrap_ci(d, rng=stats.generator(0, "grid"), draw="counts")


def test_the_binned_ci_is_seeded() -> None:
    d = SHAPES["lognormal"](np.random.default_rng(6), 4_000)
    first = stats.bootstrap_ci(d, rng=stats.generator(0, "task", "f1"))
    assert stats.bootstrap_ci(d, rng=stats.generator(0, "task", "f1")) == first
    assert stats.bootstrap_ci(d, rng=stats.generator(0, "task", "f1"), draw="bins") == first  # the default here
    assert stats.bootstrap_ci(d, rng=stats.generator(0, "task", "rouge")) != first


def test_binned_95_percent_ci_covers_a_known_difference_93_to_97_percent_of_the_time() -> None:
    """1,000 seeded simulations of n = 2,500 skewed differences (gamma, shape 4, skewness 1; true mean 0.05), through
    the binned bootstrap with 2,000 resamples (coverage does not depend on their number, the test's time does)."""
    rng = np.random.default_rng(2027)
    d = rng.gamma(4, 0.25, (1_000, 2_500)) - 0.95
    start = time.perf_counter()
    cis = [stats.bootstrap_ci(d[i], rng=stats.generator(i, "binned"), resamples=2_000, draw="bins")
           for i in range(1_000)]
    elapsed = time.perf_counter() - start
    covered = sum(lower <= 0.05 <= upper for lower, upper in cis)
    assert 930 <= covered <= 970, covered
    assert elapsed < 60, f"{elapsed:.1f} s: the coverage test must stay quick"


SIGN_CASES = ["normal", "student t, 2 dof", "lognormal", "a few huge outliers", "ties and a few distinct"]


@pytest.mark.parametrize("shape", SIGN_CASES)
def test_binned_sign_sums_have_the_tails_of_random_signs(shape: str) -> None:
    """Tail probabilities of |sum| at the exact null's 0.1%, 1%, 5% and 10% points."""
    d = SHAPES[shape](np.random.default_rng(7), 2_500)
    magnitudes = np.abs(d[d != 0])
    bins = binned.sign_bins(magnitudes)
    assert bins is not None and bins.squares.any()
    fast = np.abs(binned.sign_sums(bins, rng=stats.generator(1, shape), resamples=RESAMPLES))
    exact = np.abs(random_sign_sums(d[d != 0], seed=2))
    for p in (0.001, 0.01, 0.05, 0.1):
        threshold = np.quantile(exact, 1 - p)
        tolerance = 4 * math.sqrt(2) * math.sqrt(p * (1 - p) / RESAMPLES)
        assert float((fast >= threshold).mean()) == pytest.approx(p, abs=tolerance), p


def random_sign_sums(values: np.ndarray, *, seed: int) -> np.ndarray:
    """The exact random-sign null: RESAMPLES patterns of one random sign per value."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice([-1.0, 1.0], size=(1_000, len(values))) @ values
                           for _ in range(RESAMPLES // 1_000)])


@pytest.mark.parametrize(("shape", "shift"), [("lognormal", 2.0), ("f1 differences (the benchmark's)", 2.0),
                                              ("a few huge outliers", None)])
def test_permutation_p_through_bins_agrees_with_scipy_permutation_test(shape: str, shift: float | None) -> None:
    """Pairs (a, b) whose differences are the shape, centred and shifted by ``shift`` null standard deviations (the
    outliers, +900, +400, -300, already give a p-value near 3/8: 1/4 of sign patterns reach 1,600, 1/8 about 1,000)."""
    rng = np.random.default_rng(11)
    d = SHAPES[shape](rng, 2_500)
    if shift is not None:
        d = d - d.mean()
        d = d + shift * math.sqrt(float((d * d).sum())) / len(d)
    a = rng.normal(0.5, 0.2, len(d))
    b = a + d
    assert binned.sign_bins(np.abs(d[d != 0])) is not None
    ours = stats.sign_flip(b - a, rng=stats.generator(3, shape))
    theirs = reference.permutation_test((b, a), lambda x, y, axis: np.mean(x - y, axis=axis),
                                        permutation_type="samples", vectorized=True, n_resamples=RESAMPLES,
                                        rng=np.random.default_rng(4)).pvalue
    assert 0.01 < theirs < 0.9
    assert ours == pytest.approx(theirs, abs=0.025)
