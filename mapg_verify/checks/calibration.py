"""Check 6 of SPEC §5: the implementation check's false alarms on correct estimators, and its
power against deliberately wrong ones, over many seeds.

- calibration: each listed built-in estimator, its own exact expectation as the null, is tested
  ``seeds`` times on ``calibration_samples`` fresh replicates at the case's level; the count of
  rejections is ``Binomial(seeds, level)`` if the test is calibrated, which a two-sided binomial
  test checks at :data:`META_LEVEL`.
- power: each of :data:`mapg_verify.estimators.MUTANTS` is tested against ``meta-mapg``'s exact
  expectation, ``seeds`` times at the case's budget (``[estimators] samples``); at least
  :data:`POWER` of the seeds must reject. The budget that reaches that power is computed from
  the noncentral F law of Hotelling's statistic, ``lambda = n delta^T Sigma^+ delta`` with
  ``delta`` the exact difference of the expectations and ``Sigma`` the wrong estimator's
  covariance. A variant whose expectation equals ``meta-mapg``'s on the case (undiscounted
  returns on a one-step game, say) has nothing to detect: reported, not counted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from mapg_verify.checks.result import CheckResult, case_floor
from mapg_verify.checks.statistics import mean_test
from mapg_verify.estimators.dispatch import draw_rows, exact_expectation, rng_for
from mapg_verify.estimators.table import ESTIMATORS, MUTANTS
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import Case

META_LEVEL = 0.001
POWER = 0.99
Tick = Callable[[str], None]  # told the estimator's name after each seed


def rejections(
    case: Case, compiled: CompiledValues, name: str, null, samples: int, seed: int, tick: Tick | None = None
) -> tuple[int, np.ndarray]:
    """How many of ``case.checks.seeds`` tests of ``name`` against ``null`` reject, and the pooled
    rows' covariance; ``tick(name)`` after each seed (the caller's progress display)."""
    count, covariances = 0, []
    scale = case_floor(case, compiled)
    for index in range(case.checks.seeds):
        rows = draw_rows(case, compiled, name, samples, rng_for(seed, case, name, index))
        count += mean_test(rows, null, level=case.checks.level, scale=scale).rejected
        covariances.append(np.atleast_2d(np.cov(rows, rowvar=False)))
        if tick:
            tick(name)
    return count, np.mean(covariances, axis=0)


def calibration(case: Case, compiled: CompiledValues, seed: int, tick: Tick | None = None) -> CheckResult:
    """False alarms of the implementation check on the case's built-in estimators."""
    level, seeds = case.checks.level, case.checks.seeds
    figures, failed, parts = {}, [], []
    for name in (n for n in case.estimators.names if n in ESTIMATORS):
        try:
            null = exact_expectation(case, compiled, name).total
        except InputError as error:
            figures[f"{name}: skipped"] = error.reason
            continue
        count, _ = rejections(case, compiled, name, null, case.checks.calibration_samples, seed, tick)
        p_value = float(stats.binomtest(count, seeds, level).pvalue)
        figures[f"{name}: false alarms"] = count
        figures[f"{name}: binomial p"] = p_value
        parts.append(f"{name} {count}/{seeds}")
        if p_value < META_LEVEL:
            failed.append(name)
    summary = f"false alarms at level {level} over {seeds} seeds of {case.checks.calibration_samples} samples: "
    summary += ", ".join(parts) or "no built-in estimator with an exact expectation"
    if failed:
        summary = f"miscalibrated ({', '.join(failed)}): " + summary
    return CheckResult("calibration", not failed, figures, summary)


def power(case: Case, compiled: CompiledValues, seed: int, tick: Tick | None = None) -> CheckResult:
    """Rejections of the wrong variants of ``meta-mapg`` at the case's budget, and the budget for 99%."""
    null = exact_expectation(case, compiled, "meta-mapg").total
    samples, seeds, level = case.estimators.samples, case.checks.seeds, case.checks.level
    figures, failed, parts = {}, [], []
    for name in MUTANTS:
        delta = exact_expectation(case, compiled, name).total - null
        if np.max(np.abs(delta)) <= 1e-12 * max(np.max(np.abs(null)), 1.0):
            figures[f"{name}: expectation equals meta-mapg's"] = True
            parts.append(f"{name} identical here")
            continue
        count, covariance = rejections(case, compiled, name, null, samples, seed, tick)
        budget = budget_for_power(delta, covariance, level)
        figures[f"{name}: rejection rate"] = count / seeds
        figures[f"{name}: samples for {POWER:.0%} power"] = budget
        parts.append(f"{name} {count}/{seeds} (99% at n = {budget:,})")
        if count / seeds < POWER:
            failed.append(name)
    summary = f"rejections at {samples} samples: " + ", ".join(parts)
    if failed:
        summary = f"under {POWER:.0%} power ({', '.join(failed)}): " + summary
    return CheckResult("power", not failed, figures, summary)


def hotelling_power(n: int, delta: np.ndarray, covariance: np.ndarray, level: float) -> float:
    """Power of Hotelling's test with ``n`` rows, mean shift ``delta``, covariance ``covariance``."""
    values, vectors = np.linalg.eigh(np.atleast_2d(covariance))
    keep = values > values.max() * 1e-12
    rank = int(keep.sum())
    if n <= rank:
        return 0.0
    projected = vectors.T @ delta
    noncentrality = n * float(np.sum(projected[keep] ** 2 / values[keep]))
    critical = stats.f.isf(level, rank, n - rank)
    if noncentrality == 0.0:  # scipy's ncf is wrong at nc = 0 (it returned -0.99 for level 0.01)
        return float(stats.f.sf(critical, rank, n - rank))
    return float(np.clip(stats.ncf.sf(critical, rank, n - rank, noncentrality), 0.0, 1.0))


def budget_for_power(delta: np.ndarray, covariance: np.ndarray, level: float, target: float = POWER) -> int:
    """The smallest ``n`` (to 1%) with :func:`hotelling_power` at least ``target``."""
    low, high = 2, 4
    while hotelling_power(high, delta, covariance, level) < target:
        low, high = high, high * 2
        if high > 10**12:
            return high
    while high - low > max(1, low // 100):
        middle = (low + high) // 2
        low, high = (middle, high) if hotelling_power(middle, delta, covariance, level) < target else (low, middle)
    return high
