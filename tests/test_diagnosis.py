"""A failed claim's diagnosis (``mapg_verify/checks/diagnosis.py``): each planted relabelling and slip
is named, exactly where the plug-in's expectation enumerates and on paired batches otherwise; a bug
that is none of them gives "no single change explains it"."""

import dataclasses
import math

import pytest
import slipped_plugins as slipped

from mapg_verify import check_estimator
from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.claims import check_claim, claim_of, partner_of
from mapg_verify.checks.diagnosis import diagnose
from mapg_verify.checks.fingerprint import Design
from mapg_verify.estimators.dispatch import REGISTERED
from mapg_verify.estimators.plugins import plugin_expectation
from mapg_verify.estimators.records import Plugin
from mapg_verify.exact.backend import case_values
from mapg_verify.exact.truths import Truths
from mapg_verify.spec.case import Claim

VIEWS = "agent 1 reads its states without its view (CD and DC swapped)"
ADAPTED = {"adapted": 1}


def _case(path: str, meta_agent: int = 0, **estimators):
    case = load_case(path)
    inner = dataclasses.replace(case.inner, meta_agent=meta_agent)
    return dataclasses.replace(case, inner=inner, estimators=dataclasses.replace(case.estimators, **estimators))


def _diagnosis(function, case, claim=ADAPTED, mode=None, samples=300) -> dict:
    result = check_estimator(function, case, claim=claim, samples=samples, mode=mode)
    check = next(c for c in result.checks if c.kind == "claim")
    assert check.verdict == "fail", check.summary
    assert check.summary.endswith(check.figures["diagnosis"]["searched"])
    return check.figures["diagnosis"]


def _exact_dice(function, case) -> dict:
    """The DiCE port's claim of ``meta-mapg``, judged exactly and diagnosed, without the rest of the pipeline."""
    name = f"python:{function.__name__}"
    REGISTERED[name] = Plugin(name, function)
    try:
        claim, compiled = Claim("estimator", "meta-mapg"), case_values(case)
        case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, claims=((name, claim),)))
        assert claim_of(case, name) == claim and partner_of(case, claim) is not None
        exact = plugin_expectation(case, compiled, REGISTERED[name], partner_of(case, claim)[1])
        design = Design((), None, 0.0)
        failed = check_claim(case, compiled, Truths(case, compiled), name, claim, exact, None, 0, design)
        assert failed.verdict == "fail", failed.summary
        return diagnose(case, compiled, Truths(case, compiled), name, claim, failed, exact, 0, design).figures[
            "diagnosis"
        ]
    finally:
        del REGISTERED[name]


def test_a_port_that_forgets_the_second_players_view_is_diagnosed():
    """The issue's acceptance: the DiCE port of meta-mapg, agent 1's view forgotten, on the 2-step IPD."""
    found = _exact_dice(slipped.dice_forgets_views, load_case("tests/claims/ipd_views.toml"))
    assert found["mode"] == "exact" and found["explained by"] == VIEWS
    assert found["sentence"].startswith(f"holds if {VIEWS}")


def test_a_detached_peer_step_is_diagnosed_as_such():
    """A stop-gradient on the peer's inner step (the new-user trial's "peer's update detached") is
    named for what it is, meta-pg's estimator, not as the peer's rate taken as 0."""
    found = _exact_dice(slipped.dice_peer_detached, load_case("cases/claims.toml"))
    assert found["explained by"].startswith("the peers' inner steps are not differentiated"), found["sentence"]


def test_the_peers_rate_is_diagnosed():
    """A peer's rate taken as 0 in the plug-in's own update, on batches drawn with it, is the same
    estimator as a detached peer step: the one change names both."""
    found = _exact_dice(slipped.dice_peer_rate_zero, load_case("cases/claims.toml"))
    assert "a peer's rate taken as 0 in the plug-in's own update" in found["explained by"], found["sentence"]


def test_an_inner_sum_over_the_batch_is_diagnosed():
    """The inner steps' 1/K missing changes the update, not the estimate's scale: every rate K times."""
    found = _exact_dice(slipped.dice_inner_sum, load_case("cases/claims.toml"))
    assert found["explained by"].startswith("the inner steps sum over the batch"), found["sentence"]


@pytest.mark.parametrize(
    ("function", "named"),
    [
        (slipped.forgets_views, VIEWS),
        (slipped.from_t, "the returns are discounted from t"),
        (slipped.no_gamma, "gamma is left out (gamma^0 = 1)"),
        (slipped.actions_swapped, "agent 1's action labels are swapped"),
    ],
)
def test_each_planted_slip_is_named_exactly(function, named):
    found = _diagnosis(function, _case("tests/claims/ipd_views.toml", meta_agent=1), mode="exact")
    assert found["mode"] == "exact" and found["explained by"].startswith(named)


def test_a_flipped_sign_is_named_as_an_equivalent_relabelling():
    """On an estimate that reads agent 1's policy alone, flipping every sign and swapping agent 1's
    labels are the same change: either is a right answer, and the first found is named."""
    found = _diagnosis(slipped.sign_flipped, _case("tests/claims/ipd_views.toml", meta_agent=1), mode="exact")
    assert found["explained by"] in (
        "agent 1's action labels are swapped (0 and 1)",
        "the parameters' sign is flipped (sigmoid(theta) read as the probability of action 1)",
    )


def test_relabellings_and_slips_are_named_on_paired_batches():
    found = _diagnosis(slipped.forgets_views, _case("tests/claims/ipd_two_steps.toml", meta_agent=1))
    assert found["mode"] == "statistical" and found["explained by"] == VIEWS and found["unchanged p-value"] < 0.01
    found = _diagnosis(slipped.missing_one_over_k, "tests/claims/horizon_two.toml", mode="statistical")
    assert found["explained by"] == "the estimate is K_out = 2 times the partner's (a 1/K_out missing)"


def test_a_bug_that_is_no_single_change_is_said_so():
    found = _diagnosis(slipped.rewards_for_returns, "tests/claims/ipd_two_steps.toml")
    assert found["explained by"] is None and found["sentence"].startswith("no single change explains it")


def test_a_candidate_too_noisy_to_see_the_difference_explains_nothing(monkeypatch):
    """A candidate not rejected holds only where its test would have caught, with 99% power, the
    difference the unchanged plug-in showed: a candidate that draws other batches can be too noisy
    to see it (inner rates 1% high were once "explained" by the views relabelling that way)."""
    from mapg_verify.checks import diagnosis

    candidates = [diagnosis.Candidate(VIEWS, "views"), diagnosis.Candidate("gamma is left out", "gamma")]
    case = load_case("tests/claims/ipd_two_steps.toml")

    def tests(noisy: float, quiet: float):
        # the unchanged plug-in: rejected, measured difference 0.1; each candidate: p 0.5, what it detects
        found = ((1e-20, 0.01, 0.1), [(0.5, noisy, 0.05), (0.4, quiet, 0.0)])
        monkeypatch.setattr(diagnosis, "statistical_p_values", lambda *args: found)
        return diagnosis._statistical_search(case, None, None, "x", candidates, None, None, 0, 120)

    assert tests(noisy=0.3, quiet=0.02)["explained by"] == "gamma is left out"
    assert tests(noisy=0.02, quiet=0.02)["explained by"] == VIEWS  # the larger p-value, both powerful
    assert tests(noisy=0.3, quiet=0.3)["explained by"] is None


def test_the_search_is_sized_to_see_the_difference_the_claim_measured():
    """On paired batches each candidate gets ``4 N (d / m)^2`` batches (half the measured difference
    detected), within the budget: the new-user trial's 5-step IPD got 120 where about 1,100 were needed."""
    from mapg_verify.checks.diagnosis import SAMPLES, STATISTICAL_CALLS, search_samples

    case = load_case("tests/claims/ipd_five_steps.toml")
    case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, samples=20_000))
    measured = {"samples": 20_000, "relative difference measured": 0.119}

    def sized(detects):
        return search_samples(case, measured | {"smallest relative difference detected (99% power)": detects}, 9, 1)

    assert sized(0.0141) == math.ceil(4 * 20_000 * (0.0141 / 0.119) ** 2) == 1124
    assert sized(0.1) == 2_000  # 20,000 calls shared by 9 candidates and the unchanged plug-in
    assert sized(0.0) == SAMPLES[0]
    assert search_samples(case, {}, 9, 1) == min(SAMPLES[1], STATISTICAL_CALLS // 10)
