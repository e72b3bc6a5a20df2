"""What readers read of a check (:mod:`mapg_verify.checks.result`): its kind and subject, and the
typed records of its figures, read back from the figures the checks write."""

import math

from mapg_verify.checks.fingerprint import Fit
from mapg_verify.checks.result import (
    Bias,
    CheckResult,
    Claimed,
    MeanTestFigures,
    Spread,
    info,
    name_parts,
    per_estimator,
)
from mapg_verify.spec.case import BASIS


def test_a_name_is_a_kind_and_a_subject():
    assert name_parts("claim:examples.dice_meta_mapg:meta_mapg") == ("claim", "examples.dice_meta_mapg:meta_mapg")
    assert name_parts("oracles") == ("oracles", "")
    check = info("bias:meta-mapg[baseline=value]", {}, "s")
    assert (check.kind, check.subject, check.verdict) == ("bias", "meta-mapg[baseline=value]", "info")


def test_bias_records_are_read_back_from_the_figures_they_write():
    biases = (Bias("E", 0.25, 0.9, None), Bias("S", 1e-12, 1.0, 40.0))
    figures = {key: value for bias in reversed(biases) for key, value in bias.figures(0.1).items()}
    figures |= Spread(0.1, 12.0).figures()
    check = info("bias:x", figures, "s")
    assert Bias.of(check, 0.1) == biases  # model E first, whatever the figures' order
    assert check.figures["samples for 0.1 relative spread"] == 12.0 and Spread.of(check, 0.1) == Spread(0.1, 12.0)
    assert Bias.of(info("bias:x", {}, "not run: no estimate"), 0.1) == ()
    assert Spread.of(info("bias:x", {}, "not run: no estimate"), 0.1) is None


def test_a_mean_test_is_read_where_a_check_tests_at_a_level():
    figures = {"T-squared": 3.5, "p-value": 0.2, "level": 0.01, "samples": 200}
    assert MeanTestFigures.of(CheckResult("implementation:x", True, figures, "s")) == MeanTestFigures(3.5, 0.2, 0.01)
    claim = {**figures, "smallest relative difference detected (99% power)": 0.03}
    assert MeanTestFigures.of(CheckResult("claim:x", True, claim, "s")).detectable == 0.03
    assert MeanTestFigures.of(CheckResult("claim:x", True, {"mode": "exact", "error": 0.0}, "s")) is None


def test_a_claim_record_names_what_was_compared_and_any_diagnosis():
    figures = {"claim": "model-S", "mode": "statistical", "against": "sampled-exact on the same batches"}
    figures["diagnosis"] = {"sentence": "holds if the peer term is dropped", "explained by": "x"}
    claimed = Claimed.of(CheckResult("claim:p", False, figures, "s"))
    assert claimed == Claimed(
        "model-S", "statistical", "sampled-exact on the same batches", figures["diagnosis"]["sentence"]
    )
    assert Claimed.of(CheckResult("claim:p", True, {}, "s")) == Claimed(None, "", "", "")


def test_a_fit_is_read_only_where_the_fingerprint_ran():
    figures = {f"coefficient {term}": 1.0 for term in BASIS} | {f"95% half-width {term}": None for term in BASIS}
    fit = Fit.of(info("fingerprint:x", {**figures, "relative residual": 1e-14, "parameter draws": 4}, "s"))
    assert fit.coefficients == dict.fromkeys(BASIS, 1.0) and fit.residual == 1e-14 and fit.target is None
    assert Fit.of(info("fingerprint:x", {}, "not run: too costly")) is None


def test_per_estimator_figures_of_a_case_wide_check():
    figures = {"meta-mapg: false alarms": 1, "meta-mapg: binomial p": 0.5, "naive: false alarms": 0}
    assert per_estimator(info("calibration", figures, "s"), "false alarms") == {"meta-mapg": 1, "naive": 0}
    assert math.isclose(per_estimator(info("power", {"a/b: rejection rate": 0.5}, "s"), "rejection rate")["a/b"], 0.5)
