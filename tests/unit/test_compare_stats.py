"""The paired statistics of `evals compare` against scipy.stats, by hand, and by simulation.

Tolerances: a percentile bootstrap endpoint from 10,000 resamples has a Monte Carlo standard error of about
0.027 bootstrap standard errors (sqrt(0.025 * 0.975 / 10,000) / phi(1.96)); two independent estimates (ours, scipy's)
differ by about 0.038 of them, so endpoints must agree within 0.15 bootstrap standard errors (about 4 Monte Carlo
SEs). A randomised permutation p-value from 10,000 sign patterns has an SE of at most 0.005; ours and scipy's must
agree within 0.025 (3.5 SEs of the difference). Exact tests (McNemar; permutations of at most 13 pairs) must agree to
1e-9.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats as reference  # type: ignore[import-untyped]  # (no stubs installed)

from orchestrator.host.compare import stats

RESAMPLES = 10_000


def paired_binary(n: int, *, p_a: float, p_b: float, keep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 scores: ``b`` copies ``a`` with probability ``keep``, else is drawn afresh (correlated pairs)."""
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < p_a).astype(float)
    fresh = (rng.random(n) < p_b).astype(float)
    b = np.where(rng.random(n) < keep, a, fresh)
    return a, b


def scipy_ci(d: np.ndarray, seed: int) -> tuple[float, float]:
    zeros = np.zeros_like(d)
    result = reference.bootstrap((d, zeros), lambda x, y, axis: np.mean(x - y, axis=axis), paired=True,
                                 vectorized=True, n_resamples=RESAMPLES, method="percentile",
                                 rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def scipy_permutation_p(a: np.ndarray, b: np.ndarray, seed: int) -> float:
    result = reference.permutation_test((b, a), lambda x, y, axis: np.mean(x - y, axis=axis),
                                        permutation_type="samples", vectorized=True, n_resamples=RESAMPLES,
                                        rng=np.random.default_rng(seed))
    return float(result.pvalue)


@pytest.mark.parametrize(("n", "p_a", "p_b", "keep"), [(40, 0.5, 0.6, 0.5), (500, 0.7, 0.75, 0.8),
                                                      (5_000, 0.3, 0.31, 0.9), (20_000, 0.62, 0.63, 0.85)])
def test_mcnemar_is_scipy_binomtest_on_the_discordant_pairs(n: int, p_a: float, p_b: float, keep: float) -> None:
    a, b = paired_binary(n, p_a=p_a, p_b=p_b, keep=keep, seed=n)
    gained, lost = int(((a == 0) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())
    expected = reference.binomtest(gained, gained + lost, 0.5).pvalue
    assert stats.mcnemar(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (0, 5), (3, 10), (5, 10), (49, 100), (4_900, 10_000), (9_000, 20_000),
                                      (0, 20_000)])
def test_binomial_tail_is_scipy_binomtest(k: int, n: int) -> None:
    expected = reference.binomtest(k, n, 0.5).pvalue
    assert stats.binomial_two_sided(k, n) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_paired_uses_mcnemar_for_0_1_scores_and_permutation_otherwise() -> None:
    a, b = paired_binary(300, p_a=0.5, p_b=0.6, keep=0.6, seed=3)
    rng = stats.generator(0, "task", "acc")
    assert stats.paired(a, b, rng=rng).test == "mcnemar"
    assert stats.paired(a, b * 0.5, rng=rng).test == "permutation"


CI_CASES = {
    "continuous, by index": lambda rng: rng.normal(0.02, 0.3, 400),
    "continuous, by bins": lambda rng: rng.standard_t(4, 5_000) * 0.2 + 0.01,
    "0/1 differences, by counts": lambda rng: np.subtract(*paired_binary(800, p_a=0.6, p_b=0.55, keep=0.7,
                                                                         seed=11)),
    "1-5 rubric, by counts": lambda rng: rng.integers(1, 6, 600).astype(float) - rng.integers(1, 6, 600),
}


@pytest.mark.parametrize("case", sorted(CI_CASES))
def test_bootstrap_ci_agrees_with_scipy_bootstrap_paired(case: str) -> None:
    d = CI_CASES[case](np.random.default_rng(5))
    ours = stats.bootstrap_ci(d, rng=stats.generator(1, case))
    theirs = scipy_ci(d, seed=2)
    tolerance = 0.15 * d.std(ddof=1) / math.sqrt(len(d))
    assert ours == pytest.approx(theirs, abs=tolerance)
    assert ours[0] < d.mean() < ours[1]


def test_bootstrap_by_counts_and_by_index_draw_the_same_distribution() -> None:
    d = np.random.default_rng(9).integers(-2, 3, 2_000).astype(float)
    counts = stats.bootstrap_ci(d, rng=stats.generator(1, "counts"), draw="counts")
    index = stats.bootstrap_ci(d, rng=stats.generator(1, "index"), draw="index")
    assert counts == pytest.approx(index, abs=0.15 * d.std(ddof=1) / math.sqrt(len(d)))


PERMUTATION_CASES = {
    "continuous, byte table": lambda rng: (rng.normal(0.5, 0.2, 800), rng.normal(0.51, 0.2, 800)),
    "continuous, few pairs": lambda rng: (rng.normal(0.5, 0.2, 60), rng.normal(0.53, 0.2, 60)),
    "graded 0-1 in tenths, binomial draws": lambda rng: (rng.integers(0, 11, 1_000) / 10,
                                                         rng.integers(0, 11, 1_000) / 10 + 0.01),
}


@pytest.mark.parametrize("case", sorted(PERMUTATION_CASES))
def test_permutation_p_agrees_with_scipy_permutation_test_samples(case: str) -> None:
    a, b = PERMUTATION_CASES[case](np.random.default_rng(21))
    ours = stats.sign_flip(b - a, rng=stats.generator(3, case))
    theirs = scipy_permutation_p(a, b, seed=4)
    assert 0.01 < theirs < 0.9, "pick data whose p-value Monte Carlo error is not dwarfed by its size"
    assert ours == pytest.approx(theirs, abs=0.025)


def test_permutation_of_few_pairs_is_exact_and_equals_scipy() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(0, 1, 12), rng.normal(0.4, 1, 12)
    assert stats.sign_flip(b - a, rng=stats.generator(0)) == pytest.approx(scipy_permutation_p(a, b, seed=0),
                                                                           rel=1e-9)


def test_randomised_permutation_p_counts_the_observed_pattern_as_scipy_does() -> None:
    """All 40 differences equal: no random sign pattern reaches the observed sum, so each side is
    (0 + 1) / (10,000 + 1) and the two-sided p twice that, exactly as scipy's permutation_test gives."""
    a, b = np.zeros(40), np.full(40, 0.3)
    expected = scipy_permutation_p(a, b, seed=0)
    assert expected == pytest.approx(2 / 10_001)
    assert stats.sign_flip(b - a, rng=stats.generator(0)) == pytest.approx(expected, rel=1e-12)


def test_holm_by_hand() -> None:
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> kept at 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, None, 0.2]) == [0.5, None, 0.4]
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]
    assert stats.holm([]) == []


def test_the_95_percent_ci_covers_a_known_difference_93_to_97_percent_of_the_time() -> None:
    """1,000 seeded simulations of each kind. 0/1 scores, through the by-counts bootstrap with the shipped 10,000
    resamples: a is right with probability 0.6; b keeps a right answer with probability 0.9 and turns a wrong one
    right with 0.275, so E[b] - E[a] = 0.54 + 0.11 - 0.6 = 0.05. Continuous differences (normal, mean 0.1), through
    the by-index bootstrap with 2,000 resamples (the coverage does not depend on them, the time does)."""
    rng = np.random.default_rng(2026)
    n_binary, n_continuous = 400, 120
    right = rng.random((1_000, n_binary))
    a = (right < 0.6).astype(float)
    draw = rng.random((1_000, n_binary))
    b = np.where(a == 1, draw < 0.9, draw < 0.275).astype(float)
    d = rng.normal(0.1, 1.0, (1_000, n_continuous))
    start = time.perf_counter()
    binary = [stats.bootstrap_ci(b[i] - a[i], rng=stats.generator(i, "binary")) for i in range(1_000)]
    continuous = [stats.bootstrap_ci(d[i], rng=stats.generator(i, "continuous"), resamples=2_000, draw="index")
                  for i in range(1_000)]
    elapsed = time.perf_counter() - start
    covered_binary = sum(lower <= 0.05 <= upper for lower, upper in binary)
    covered_continuous = sum(lower <= 0.1 <= upper for lower, upper in continuous)
    assert 930 <= covered_binary <= 970, covered_binary
    assert 930 <= covered_continuous <= 970, covered_continuous
    assert elapsed < 60, f"{elapsed:.1f} s: the coverage test must stay quick"


def test_edge_cases_no_pair_one_pair_all_equal() -> None:
    rng = stats.generator(0, "edge")
    empty = stats.paired(np.array([]), np.array([]), rng=rng)
    assert (empty.n, empty.difference, empty.ci, empty.p_value, empty.detectable) == (0, None, None, None, None)
    one = stats.paired(np.array([0.0]), np.array([1.0]), rng=rng)
    assert (one.n, one.difference, one.ci, one.p_value, one.detectable) == (1, 1.0, (1.0, 1.0), 1.0, None)
    for a in (np.array([1.0, 0, 1, 1, 0] * 20), np.array([0.3, 0.9, 0.25] * 30)):
        same = stats.paired(a, a.copy(), rng=rng)
        assert (same.difference, same.ci, same.p_value, same.detectable) == (0.0, (0.0, 0.0), 1.0, None)
        assert same.mean_a == same.mean_b
    shifted = stats.paired(np.full(50, 0.25), np.full(50, 0.75), rng=rng)
    assert shifted.ci == (0.5, 0.5) and shifted.p_value is not None and shifted.p_value < 1e-3
    assert shifted.detectable is None  # every difference 0.5: no spread to estimate an MDE from


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_scores_that_are_not_finite_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        stats.paired(np.array([0.0, bad]), np.array([0.0, 1.0]), rng=stats.generator(0))
    with pytest.raises(ValueError, match="finite"):
        stats.paired(np.array([0.0, 1.0]), np.array([bad, 1.0]), rng=stats.generator(0))


def test_minimum_detectable_difference_formula() -> None:
    d = np.random.default_rng(4).normal(0, 0.5, 900)
    assert pytest.approx(reference.norm.ppf(0.975) + reference.norm.ppf(0.8)) == stats.DETECTABLE_FACTOR
    assert stats.detectable(d) == pytest.approx(2.8016 * d.std(ddof=1) / 30, rel=1e-4)
    assert stats.detectable(np.array([1.0])) is None
    assert stats.detectable(np.zeros(500)) is None and stats.detectable(np.full(500, -0.25)) is None
    one_flip = np.array([0.0] * 499 + [1.0])  # sample variance (1 - 1/500) / 499 = 1/500
    assert stats.detectable(one_flip) == pytest.approx(2.8016 * math.sqrt(1 / 500) / math.sqrt(500), rel=1e-4)


def test_each_row_has_its_own_seeded_stream() -> None:
    d = np.random.default_rng(1).normal(0, 1, 500)
    first = stats.bootstrap_ci(d, rng=stats.generator(0, "gsm8k", "acc"))
    assert stats.bootstrap_ci(d, rng=stats.generator(0, "gsm8k", "acc")) == first
    assert stats.bootstrap_ci(d, rng=stats.generator(0, "mmlu", "acc")) != first
    assert stats.bootstrap_ci(d, rng=stats.generator(1, "gsm8k", "acc")) != first
