"""Check 6: the implementation check's false alarms on correct estimators sit at its level, and the
deliberately wrong variants of meta-mapg are caught at the default budget."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mapg_verify.casefile.reader import load_case
from mapg_verify.checks import calibration as calibration_module
from mapg_verify.checks.calibration import budget_for_power, calibration, hotelling_power, power
from mapg_verify.checks.statistics import mean_test
from mapg_verify.estimators.dispatch import draw_rows, exact_expectation
from mapg_verify.estimators.table import MUTANTS
from mapg_verify.exact.compiled import compile_game

CASES = Path(__file__).resolve().parents[1] / "cases"


def setting(name: str, seeds: int, samples: int = 1000):
    case = load_case(CASES / name)
    case = dataclasses.replace(case, checks=dataclasses.replace(case.checks, seeds=seeds, calibration_samples=samples))
    return case, compile_game(case.game, case.policy)


@pytest.mark.parametrize("name", ["pd.toml", "ipd_short.toml"])
def test_false_alarms_sit_at_the_level_quick(name):
    """200 seeds of 400 samples per estimator; the binomial test at 0.001 (SPEC §5, check 6)."""
    case, compiled = setting(name, seeds=200, samples=400)
    result = calibration(case, compiled, seed=0)
    assert result.passed, result.summary


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pd.toml", "ipd_short.toml", "power_ipd.toml"])
def test_false_alarms_sit_at_the_level_over_1000_seeds(name):
    case, compiled = setting(name, seeds=1000, samples=1000)
    result = calibration(case, compiled, seed=0)
    assert result.passed, result.summary


def test_calibration_fails_when_the_null_is_off(monkeypatch):
    """A null shifted by two standard errors makes the check over-reject, and calibration says so."""
    case, compiled = setting("pd.toml", seeds=100, samples=400)
    case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, names=("meta-mapg",)))
    rows = draw_rows(case, compiled, "meta-mapg", 4000, np.random.default_rng(0))
    shift = 2 * rows.std(axis=0) / np.sqrt(400)
    original = calibration_module.exact_expectation

    def shifted(*arguments):
        parts = original(*arguments)
        return dataclasses.replace(parts, own=parts.own + shift)

    monkeypatch.setattr(calibration_module, "exact_expectation", shifted)
    result = calibration(case, compiled, seed=0)
    assert not result.passed and "miscalibrated" in result.summary


def test_wrong_variants_are_caught_within_the_default_budget():
    """Analytic budgets from the exact differences, and 10 seeds each at 20000 samples."""
    case, compiled = setting("power_ipd.toml", seeds=10)
    null = exact_expectation(case, compiled, "meta-mapg").total
    for name in MUTANTS:
        delta = exact_expectation(case, compiled, name).total - null
        rows = draw_rows(case, compiled, name, 5000, np.random.default_rng(3))
        assert budget_for_power(delta, np.cov(rows, rowvar=False), case.checks.level) < case.estimators.samples
    result = power(case, compiled, seed=0)
    assert result.passed, result.summary
    assert all(rate == 1.0 for key, rate in result.figures.items() if key.endswith("rejection rate"))


def test_power_formula_matches_gaussian_simulation():
    """At the budget for 50% power, Gaussian data reject about half the time (300 seeds, 99.9% band)."""
    covariance = np.array([[1.0, 0.3], [0.3, 2.0]])
    delta = np.array([0.05, -0.02])
    n = budget_for_power(delta, covariance, 0.01, target=0.5)
    assert hotelling_power(n, np.zeros(2), covariance, 0.01) == pytest.approx(0.01, rel=1e-6)
    rng = np.random.default_rng(0)
    factor = np.linalg.cholesky(covariance)
    rejected = sum(
        mean_test(rng.standard_normal((n, 2)) @ factor.T + delta, np.zeros(2), level=0.01).rejected for _ in range(300)
    )
    assert 0.5 * 300 - 3.3 * np.sqrt(300 * 0.25) < rejected < 0.5 * 300 + 3.3 * np.sqrt(300 * 0.25)
