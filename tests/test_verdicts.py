"""Verdicts a user can trust (issue 29): ``untested`` is never a pass, statistical mode never
enumerates a plug-in, claims carry options, and the messages say what was measured."""

import dataclasses
import sys

import numpy as np
import pytest
from test_cli import ROOT, write

from mapg_verify import check_estimator
from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.claims import claim_of
from mapg_verify.checks.result import UNTESTED_EXIT, CheckResult, exit_code, overall, untested
from mapg_verify.checks.statistics import holm, holm_adjusted
from mapg_verify.cli import main
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import Claim

sys.path.insert(0, str(ROOT))
from examples import dice_meta_mapg as dice

CLAIMS = ROOT / "cases" / "claims.toml"


def off_by_half(inner, outer, theta, settings):
    """meta-mapg's DiCE port, scaled by 1.5: wrong by half its size."""
    return 1.5 * dice.meta_mapg(inner, outer, theta, settings)


def _out_of_reach() -> object:
    """cases/claims.toml with the plug-in's enumeration budget below what it needs."""
    case = load_case(CLAIMS)
    return dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, plugin_calls=10))


def test_verdicts_combine_fail_before_untested_before_pass():
    assert overall(["pass", "info"]) == "pass" and exit_code(["pass", "info"]) == 0
    assert overall(["pass", "untested", "info"]) == "untested" and exit_code(["untested"]) == UNTESTED_EXIT == 3
    assert overall(["untested", "fail"]) == "fail" and exit_code(["fail", "untested"]) == 1
    record = untested("claim:x", {}, "too large")
    assert record.verdict == "untested" and not record.passed and record.summary.startswith("not tested: ")
    with pytest.raises(ValueError):
        CheckResult("x", True, {}, "", "untested")  # an untested check never reads as passed


def test_exact_mode_out_of_reach_is_untested_not_green():
    """A wrong estimator whose exact expectation is out of reach: not a pass in exact mode."""
    result = check_estimator(off_by_half, _out_of_reach(), claim="meta-mapg", samples=300, mode="exact")
    claim = next(c for c in result.checks if c.kind == "claim")
    assert claim.verdict == "untested", claim.summary
    assert "plugin_calls" in claim.summary and 'claim_mode = "auto"' in claim.summary
    assert result.verdict == "untested" and not result.passed
    # the same estimator in auto mode is tested, statistically, and fails
    tested = check_estimator(off_by_half, _out_of_reach(), claim="meta-mapg", samples=300, mode="auto")
    assert tested.verdict == "fail" and not tested.passed


def test_run_exits_3_when_a_claim_is_untested(tmp_path, capsys):
    text = CLAIMS.read_text().replace("samples = 2000", "samples = 300\nplugin_calls = 10")
    text += '\nclaim_mode = "exact"\n'
    path = write(tmp_path, text)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]) == UNTESTED_EXIT
    printed = capsys.readouterr().out
    assert "UNTESTED" in printed and "untested claims (not a pass)" in printed
    page = (tmp_path / "out" / "index.html").read_text()
    assert 'class="badge untested"' in page and "claim(s) not tested" in page


def test_statistical_mode_calls_a_plugin_once_per_sample():
    """No enumeration: a per-replicate plug-in is called at most twice per sample (here once)."""
    calls = []

    def counted(inner, outer, theta, settings):
        calls.append(1)
        return dice.meta_mapg(inner, outer, theta, settings)

    result = check_estimator(counted, CLAIMS, claim="meta-mapg", samples=200, mode="statistical")
    assert result.passed, result.summary
    assert len(calls) <= 2 * 200
    verdicts = {name.split(":")[0]: v for name, v in result.verdicts.items()}
    assert verdicts["implementation"] == verdicts["fingerprint"] == "info"
    calls.clear()
    check_estimator(counted, CLAIMS, claim="meta-mapg", samples=200, mode="exact")
    assert len(calls) > 200  # exact mode does enumerate (2,048 sequences here)


def test_the_plugin_budget_is_its_own_key(tmp_path, capsys):
    text = CLAIMS.read_text().replace("samples = 2000", "samples = 2000\nplugin_calls = 0")
    assert main(["exact", str(write(tmp_path, text))]) == 2
    assert "[estimators.plugin_calls]" in capsys.readouterr().err


def test_claims_carry_options_and_builtins_with_a_baseline_keep_their_claim():
    result = check_estimator(dice.meta_mapg, CLAIMS, claim="meta-mapg[baseline=none]", samples=300, mode="exact")
    assert result.passed, result.summary
    case = load_case(CLAIMS)
    valued = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, baseline="value"))
    assert claim_of(valued, "meta-mapg") == Claim("estimator", "meta-mapg[baseline=none, inner_baseline=value]")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("meta-mapg[baseline=value, baseline=none]", "option 'baseline' is given twice"),
        ("meta-mapg[gae_lambda=lots]", "gae_lambda must be a number in [0, 1]"),
        ("meta-mapg[dice_lambda=2]", "dice_lambda must be a number in [0, 1]"),
    ],
)
def test_bad_options_in_a_name_are_input_errors(name, reason):
    from mapg_verify.estimators.dispatch import split_name

    with pytest.raises(InputError) as error:
        split_name(name)
    assert reason in error.value.reason and error.value.key == "estimators.names"


def test_holm_adjusted_p_values_match_the_step_down_procedure():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.05, size=rng.integers(1, 6))
        order, m = np.argsort(p), len(p)
        stop = next((k for k in range(m) if p[order[k]] >= 0.01 / (m - k)), m)
        expected = np.zeros(m, dtype=bool)
        expected[order[:stop]] = True
        assert (holm(p, 0.01) == expected).all()
        assert (holm_adjusted(p) >= p).all()


def test_a_consistent_claim_after_holm_does_not_say_it_differs():
    """Raw p below the level, Holm's adjusted p above it: the line says consistent, with both p."""
    from mapg_verify.checks.claims import statistical_summary

    figures = {
        "claim": "meta-mapg",
        "against": "meta-mapg on the same batches (paired)",
        "T-squared": 6.8,
        "p-value": 0.00923,
        "level": 0.01,
        "samples": 2000,
        "relative difference measured": 0.006,
        "smallest relative difference detected (99% power)": 0.013,
        "samples for target": 10**60,
        "target relative difference": 0.1,
        "rank": 1,
        "unvaried": 0,
    }
    text = statistical_summary(figures, False, (2, 0.01846))
    assert text.startswith("consistent (Holm over 2: adjusted p = 0.0185 at level 0.01)")
    assert "differs" not in text and "rules out 0.013 or more" in text and "1e+60 samples" in text
    assert "this budget detects 0.013" in statistical_summary(figures, True)
    explained = statistical_summary(figures | {"T-squared": None, "p-value": None, "rank": 0, "unvaried": 1}, True)
    assert "T^2 infinite, p = 0" in explained and "any difference above rounding is detected" in explained
    assert "this budget detects" not in explained  # no noise left: no smallest detectable difference to state


FULL = {"current": 1, "adapted": 1, "own-pathwise": 1, "own-dice": 1, "peer": 1}


@pytest.mark.parametrize(("function", "verdict"), [(dice.meta_mapg, "pass"), (off_by_half, "fail")])
def test_a_fingerprint_claim_out_of_enumeration_is_paired_with_the_basis_surrogates(function, verdict):
    """Every basis term is a switch of the one DiCE surrogate: the claim's partner is that
    combination on the plug-in's own batches, so a fingerprint claim is tested at any scale."""
    result = check_estimator(function, _out_of_reach(), claim=FULL, samples=300, mode="auto")
    claim = next(c for c in result.checks if c.kind == "claim")
    assert claim.figures["mode"] == "statistical" and "basis surrogates" in claim.figures["against"]
    assert claim.verdict == verdict, claim.summary
    if verdict == "pass":
        assert "to rounding, on each of 300 batches" in claim.summary  # the port is the combination


def test_basis_weights_span_the_terms():
    from mapg_verify.estimators.table import basis_weights

    assert basis_weights((0, 0, 0, 1, 0, 0, 0), 4) == (("frozen", "own", 1.0),)
    assert dict(((k, p), w) for k, p, w in basis_weights((0, 0, 1, 0, 0, 0, 0), 4)) == {
        ("dice", "current"): -0.25,
        ("timestep", "current"): 1.0,
    }
    assert basis_weights((1, 1, 0, 1, 1, 1, 1), 2) == (
        ("dice", "current", 1.0),
        ("dice", "own", 1.0),
        ("dice", "peer", 1.0),
    )  # meta-mapg's declared fingerprint is meta-mapg with the batch pairing


def test_one_verdict_per_estimator_says_what_differs():
    from mapg_verify.checks.result import estimator_verdict

    def check(name, verdict, summary="s", figures=None):
        return CheckResult(f"{name}:p", verdict in ("pass", "info"), figures or {}, summary, verdict)

    claim = check("claim", "pass", figures={"claim": "meta-mapg"})
    inner = check("inner-update", "fail", "does not hold: its phi_l differ")
    verdict, reason = estimator_verdict([check("implementation", "pass"), claim, inner])
    assert verdict == "fail" and reason.startswith("its inner loop, not its outer term, differs")
    assert estimator_verdict([check("implementation", "pass"), claim]) == ("pass", "its claim (meta-mapg) held")
    untested_claim = check("claim", "untested", "not tested: exact mode, but ...")
    assert estimator_verdict([untested_claim]) == ("untested", "not tested: exact mode, but ...")
    assert estimator_verdict([check("bias", "info")])[0] == "pass"


import plugins_for_tests as plugins  # noqa: E402


def test_float32_plugins_are_judged_at_their_own_precision():
    """Float32 returns: detected, the inner-update tolerance scaled to 256 of its epsilons; the
    summary says so."""
    result = check_estimator(plugins.adapted_in_float32, CLAIMS, claim={"adapted": 1}, samples=200)
    inner = next(c for c in result.checks if c.kind == "inner-update")
    assert inner.verdict == "pass" and "it computes in float32" in inner.summary, inner.summary
    assert inner.figures["tolerance"] == pytest.approx(256 * np.finfo(np.float32).eps)
    claim = next(c for c in result.checks if c.kind == "claim")
    assert claim.verdict == "pass", claim.summary


def test_a_float32_constant_in_float64_code_is_named_and_can_be_declared():
    found = check_estimator(plugins.adapted_with_a_float32_constant, CLAIMS, claim={"adapted": 1}, samples=200)
    inner = next(c for c in found.checks if c.kind == "inner-update")
    assert inner.verdict == "fail" and "declare it with precision = 'float32'" in inner.summary
    declared = check_estimator(plugins.declared_float32, CLAIMS, claim={"adapted": 1}, samples=200)
    inner = next(c for c in declared.checks if c.kind == "inner-update")
    assert inner.verdict == "pass", inner.summary
    wrong = check_estimator(plugins.adapted_with_wrong_phis, CLAIMS, claim={"adapted": 1}, samples=200)
    assert wrong.verdicts["inner-update:python:adapted_with_wrong_phis"] == "fail"  # a real bug still fails


def test_control_variates_catch_what_the_plain_paired_test_misses():
    """Rewards in place of returns on the 2-step IPD at 2,000 samples: the plain paired test
    passes it (p = 0.065), the test adjusted on zero-mean controls (the batches' scores, the
    partner's parts less their exact expectations) rejects it; a correct port still passes."""
    case = ROOT / "tests" / "claims" / "ipd_two_steps.toml"
    found = check_estimator(dice.reward_target, case, claim="meta-mapg", samples=2000, mode="statistical")
    claim = next(c for c in found.checks if c.kind == "claim")
    assert claim.verdict == "fail" and "control variates of zero mean" in claim.figures["against"]
    right = check_estimator(dice.meta_mapg_loo, case, claim="meta-mapg", samples=2000, mode="statistical")
    assert right.passed, right.summary


def test_a_builtins_baseline_claim_keeps_its_other_options():
    """loaded-dice[dice_lambda=0.5] with a value baseline claims its own expectation without the
    outer baseline, at the same lambda (found by run cases: the lambda was dropped)."""
    case = load_case(CLAIMS)
    assert claim_of(case, "loaded-dice[dice_lambda=0.5]") == Claim(
        "estimator", "loaded-dice[dice_lambda=0.5, baseline=none, inner_baseline=value]"
    )
