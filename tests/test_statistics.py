"""Hotelling's T-squared and Holm's z-tests: calibration under the null, power, edge cases.

Calibration follows scipy's own resampling tests: count how often a correct null is
rejected over many seeds and check the count with a binomial test.
"""

import numpy as np
import pytest
from scipy.stats import binomtest

from mapg_verify.checks.statistics import holm, mean_test


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
