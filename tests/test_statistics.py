"""Hotelling's T-squared and Holm's z-tests: calibration under the null, power, edge cases.

Calibration follows scipy's own resampling tests: count how often a correct null is
rejected over many seeds and check the count with a binomial test.
"""

import numpy as np
import pytest
from scipy.stats import binomtest

from mapg_verify.checks.statistics import adjusted_mean_test, holm, mean_test


def false_alarms(seeds: range, n: int, d: int, level: float, skewed: bool = True) -> int:
    correlation = np.full((d, d), 0.5) + 0.5 * np.eye(d)
    count = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        samples = rng.multivariate_normal(np.ones(d), correlation, size=n)
        if skewed:
            samples = samples**3  # mean E[(1 + e)^3] = 1 + 3 * 1 = 4
        count += mean_test(samples, np.full(d, 4.0 if skewed else 1.0), level=level).rejected
    return count


def test_false_alarm_rate_at_level_0_05():
    """400 seeds, skewed 3-dimensional data, N = 500: rejections ~ Binomial(400, 0.05)
    (checked two-sided at 0.001: this test fails by chance 1 time in 1000)."""
    count = false_alarms(range(400), 500, 3, 0.05)
    assert binomtest(count, 400, 0.05).pvalue > 0.001, count


@pytest.mark.slow
def test_false_alarm_rate_at_level_0_01_over_2000_seeds_gaussian():
    """Under normality Hotelling's F law is exact. (With the skewed data above, N = 500, the
    rate at 0.01 measured 39 / 2000 = 1.95%: the F law is only asymptotic there, so the
    estimators' own calibration, not this one, decides the budget.)"""
    count = false_alarms(range(2000), 500, 3, 0.01, skewed=False)
    assert binomtest(count, 2000, 0.01).pvalue > 0.001, count


def test_power_against_a_small_shift():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((2000, 4))
    result = mean_test(samples, np.array([0.0, 0.0, 0.0, -0.15]), level=0.01)
    assert result.rejected
    assert result.holm_rejected.tolist() == [False, False, False, True]


def test_zero_variance_components():
    samples = np.column_stack([np.random.default_rng(1).standard_normal(100), np.full(100, 2.0)])
    right = mean_test(samples, [0.0, 2.0])  # the constant column equals its null: tested on rank 1
    assert right.rank == 1 and right.p_value == pytest.approx(mean_test(samples[:, :1], [0.0]).p_value)
    wrong = mean_test(samples, [0.0, 2.5])
    assert wrong.rejected and wrong.p_value == 0.0 and wrong.holm_rejected[1]


def test_holm_step_down():
    p = np.array([0.001, 0.04, 0.012, 0.3])
    # thresholds 0.05/4, 0.05/3, 0.05/2, 0.05/1 against sorted 0.001, 0.012, 0.04, 0.3
    assert holm(p, 0.05).tolist() == [True, False, True, False]


@pytest.mark.parametrize(
    ("samples", "mean", "message"),
    [
        (np.ones((1, 2)), [1, 1], "two samples"),
        (np.ones((5, 2)), [1], "expected"),
        (np.full((5, 1), np.nan), [1], "finite"),
    ],
)
def test_bad_arguments(samples, mean, message):
    with pytest.raises(ValueError, match=message):
        mean_test(samples, mean)


def _score_like(rng, n: int, d: int, p: int):
    """Rows shaped like paired differences: a zero-mean score ``s`` times a positive return,
    controls ``(s, s * r)`` less their exact means (0), plus noise of its own."""
    scores = rng.standard_normal((n, p))
    returns = 1.0 + rng.exponential(size=(n, 1))
    controls = np.hstack([scores, scores * returns])
    mixing = np.random.default_rng(99).standard_normal((2 * p, d))
    rows = controls @ mixing + 0.1 * rng.standard_normal((n, d)) ** 3
    return rows, controls


def adjusted_false_alarms(seeds: range, n: int = 500, d: int = 5, p: int = 6, level: float = 0.01) -> int:
    count = 0
    for seed in seeds:
        rows, controls = _score_like(np.random.default_rng(seed), n, d, p)
        count += adjusted_mean_test(rows, controls, level=level)[0].rejected
    return count


@pytest.mark.parametrize(("n", "p"), [(500, 6), (2000, 40)])
def test_adjusted_test_keeps_its_level_quick(n, p):
    """The regression-adjusted test over 200 seeds (N = 500 with 12 controls; N = 2,000 with 80, a
    claim's default budget with the baseline controls of the 2-step IPD; skewed noise): the
    rejections at level 0.01 are accepted by a binomial test at 0.001."""
    count = adjusted_false_alarms(range(200), n=n, p=p)
    assert binomtest(count, 200, 0.01).pvalue > 0.001, count


@pytest.mark.slow
@pytest.mark.parametrize(("n", "p"), [(500, 6), (2000, 40)])
def test_adjusted_test_keeps_its_level(n, p):
    count = adjusted_false_alarms(range(1000, 2000), n=n, p=p)
    assert binomtest(count, 1000, 0.01).pvalue > 0.001, count


def test_adjusted_test_finds_what_the_plain_one_misses():
    """A shift of 1% of the rows' spread: the controls explain the spread, so only the adjusted test sees it."""
    rows, controls = _score_like(np.random.default_rng(7), 2000, 5, 6)
    shifted = rows + 0.01 * rows.std(axis=0)
    assert adjusted_mean_test(shifted, controls)[0].rejected
    assert not mean_test(shifted, np.zeros(5)).rejected
    assert not adjusted_mean_test(rows, controls)[0].rejected
