"""Checks 3 and 4 for one estimator (:mod:`mapg_verify.checks.estimator`): the implementation
test, the bias figures, the samples needed, the error curve and Holm over a case's family."""

import math
from pathlib import Path

import numpy as np

from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.estimator import (
    EstimatorReport,
    bias,
    error_curve,
    holm_family,
    implementation,
    samples_needed,
)
from mapg_verify.checks.result import Bias, CheckResult, MeanTestFigures
from mapg_verify.exact.backend import case_values
from mapg_verify.exact.truths import Truths

CASES = Path(__file__).resolve().parents[1] / "cases"


def test_samples_needed_is_the_spread_over_the_room_the_bias_leaves():
    covariance = np.diag([4.0, 1.0])  # tr = 5; (0.1 * 10)^2 = 1 of room without bias
    assert samples_needed(np.zeros(2), covariance, 10.0, 0.1) == 5
    assert samples_needed(np.array([0.6, 0.0]), covariance, 10.0, 0.1) == math.ceil(5 / (1 - 0.36))
    assert samples_needed(np.array([2.0, 0.0]), covariance, 10.0, 0.1) == math.inf


def test_the_error_curve_falls_as_its_prediction_says(rng):
    rows = 1.0 + rng.standard_normal((4000, 3))
    curve = error_curve(rows, np.ones(3))
    sizes = [point["samples"] for point in curve]
    assert sizes[0] == 10 and sizes[-1] == 4000 and sizes == sorted(sizes)
    assert math.isclose(curve[-1]["predicted"], 1 / math.sqrt(4000), rel_tol=0.1)  # tr(Sigma) = 3 = ||1||^2
    assert curve[-1]["relative error"] < 5 * curve[-1]["predicted"]


def test_the_implementation_test_passes_the_right_mean_and_rejects_a_wrong_one(rng):
    rows = rng.standard_normal((2000, 3))
    right = implementation("x", rows, np.zeros(3), 0.01)
    wrong = implementation("x", rows, np.full(3, 0.2), 0.01)
    assert right.verdict == "pass" and right.summary.startswith("consistent")
    assert wrong.verdict == "fail" and MeanTestFigures.of(wrong).p < 0.01


def test_bias_against_each_model_reads_back_as_records():
    case = load_case(CASES / "pd.toml")
    compiled = case_values(case)
    truth = Truths(case, compiled).models()
    value = truth["sampled"].total
    check = bias(case, compiled, truth, "sampled-exact", value, 1e-4 * np.eye(len(value)))
    expected, sampled = Bias.of(check, case.checks.relative_error)
    assert (expected.model, sampled.model) == ("E", "S") and check.verdict == "info"
    assert sampled.relative == 0.0 and math.isclose(sampled.cosine, 1.0) and sampled.samples_needed is not None
    assert expected.relative > 0.01 and check.summary.startswith("E: bias")


def _report(name: str, p: float) -> EstimatorReport:
    figures = {"T-squared": 1.0, "p-value": p, "level": 0.01, "samples": 100}
    return EstimatorReport(name, None, None, {}, (CheckResult(f"implementation:{name}", True, figures, "s"),), {})


def test_holm_judges_a_case_statistical_checks_as_one_family():
    """p = 0.004 and 0.5: Holm's adjusted 0.008 still rejects the first at 0.01, not the second."""
    reports = holm_family({"a": _report("a", 0.004), "b": _report("b", 0.5)}, 0.01)
    (first,), (second,) = reports["a"].checks, reports["b"].checks
    assert first.verdict == "fail" and math.isclose(first.figures["adjusted p-value (Holm)"], 0.008)
    assert second.verdict == "pass" and second.figures["family size (Holm)"] == 2
    assert "Holm over 2" in first.summary and first.figures["p-value"] == 0.004
