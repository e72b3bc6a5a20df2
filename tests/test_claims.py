"""Claims (issue 12): parsing, verdicts in both modes on a correct DiCE port of meta-mapg and on
five plausible bugs (examples/dice_meta_mapg.py), the function API, and the false-alarm rate of
statistical claims (quick here, 1,000 seeds behind ``slow``)."""

import dataclasses
import json
import sys

import pytest
from scipy import stats
from test_cli import INLINE, ROOT, write

from mapg_verify import check_estimator
from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.claims import ADAPTED_ONLY, check_claim, claim_of, partner_controls, partner_of
from mapg_verify.checks.fingerprint import design_for
from mapg_verify.cli import main
from mapg_verify.estimators.dispatch import draw_rows, rng_for
from mapg_verify.estimators.plugins import plugin_draws
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.truths import Truths
from mapg_verify.pipeline import evaluate
from mapg_verify.spec.case import Claim

sys.path.insert(0, str(ROOT))
import plugins_for_tests as plugins

from examples import dice_meta_mapg as dice

TINY = ROOT / "tests" / "gold" / "tiny.toml"
HORIZON_TWO = ROOT / "tests" / "claims" / "horizon_two.toml"
NAMES = '[estimators]\nnames = ["meta-mapg", "meta-pg"]\n'


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ('"meta-pg" = "model-X"', "[estimators.claims.meta-pg] unknown claim 'model-X'"),
        ('"naive" = "model-S"', "[estimators.claims.naive] claims something of 'naive', which is not in"),
        ('"meta-pg" = { peer = "one" }', "[estimators.claims.meta-pg] a fingerprint claim has finite numbers"),
        ('"meta-pg" = { shaping = 1 }', "[estimators.claims.meta-pg] a fingerprint claim has finite numbers"),
        ('"meta-pg" = { peer = nan }', "[estimators.claims.meta-pg] a fingerprint claim has finite numbers"),
        ('"meta-pg" = { peer = inf }', "[estimators.claims.meta-pg] a fingerprint claim has finite numbers"),
        ('"meta-pg" = "meta-mapg[baseline=oops]"', "[estimators.claims.meta-pg] 'meta-mapg[baseline=oops]': baseline"),
        ('"meta-pg" = "mine:est"', "[estimators.claims.meta-pg] unknown claim 'mine:est'"),
    ],
)
def test_a_bad_claim_exits_2_naming_it(tmp_path, capsys, claims, message):
    path = write(tmp_path, INLINE + NAMES + "[estimators.claims]\n" + claims + "\n")
    assert main(["exact", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_claim_mode_exits_2(tmp_path, capsys):
    path = write(tmp_path, INLINE + NAMES + '[checks]\nclaim_mode = "sometimes"\n')
    assert main(["exact", str(path)]) == 2
    assert "[checks.claim_mode] must be one of auto, exact, statistical" in capsys.readouterr().err


def _claim(result):
    (record,) = [c for c in result.checks if c.kind == "claim"]
    return record


@pytest.mark.parametrize(
    ("function", "verdict"),
    [
        (dice.meta_mapg, "pass"),
        (dice.whole_batch_magic, "fail"),
        (dice.no_peer_log_probs, "fail"),
        (dice.baseline_unstopped, "fail"),
        (dice.stop_one_level, "fail"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_exact_claims_on_a_one_shot_game(function, verdict):
    result = check_estimator(function, TINY, claim="meta-mapg", samples=200, mode="exact")
    record = _claim(result)
    assert record.verdict == verdict, record.summary
    assert record.figures["mode"] == "exact"
    assert result.passed == (verdict == "pass")


@pytest.mark.parametrize("function", [dice.meta_mapg, dice.reward_target], ids=lambda f: f.__name__)
def test_rewards_for_returns_is_caught_where_they_differ(function):
    """Rewards in place of returns equal the port on a one-shot game (one step's reward is its
    return), and not on a two-step one; the port passes on both."""
    wrong = function is dice.reward_target
    assert _claim(check_estimator(function, TINY, claim="meta-mapg", samples=200, mode="exact")).verdict == "pass"
    record = _claim(check_estimator(function, HORIZON_TWO, claim="meta-mapg", samples=200, mode="exact"))
    assert record.verdict == ("fail" if wrong else "pass"), record.summary


def test_statistical_claims_pair_the_port_with_the_built_in_on_the_same_batches():
    """The plain port equals meta-mapg batch by batch (the paired differences are rounding); the
    port with a leave-one-out baseline does not, but differs only by a baseline term, which the
    baseline controls span exactly: it passes, and says so."""
    plain = _claim(check_estimator(dice.meta_mapg, TINY, claim="meta-mapg", samples=300, mode="statistical"))
    assert plain.verdict == "pass" and "to rounding, on each of 300 batches" in plain.summary, plain.summary
    assert plain.figures["against"].startswith("meta-mapg on the same batches (paired")
    loo = _claim(check_estimator(dice.meta_mapg_loo, TINY, claim="meta-mapg", samples=2000, mode="statistical"))
    assert loo.verdict == "pass", loo.summary
    assert loo.figures["largest relative gap"] > 1e-3, loo.figures  # not equal batch by batch
    assert "by terms of exactly zero mean only" in loo.summary, loo.summary


@pytest.mark.parametrize(
    ("function", "path"),
    [
        (dice.stop_one_level, TINY),
        (dice.no_peer_log_probs, TINY),
        (dice.baseline_unstopped, TINY),
        (dice.whole_batch_magic, HORIZON_TWO),
        (dice.reward_target, HORIZON_TWO),
    ],
    ids=lambda v: getattr(v, "__name__", getattr(v, "stem", v)),
)
def test_statistical_claims_catch_the_bugs(function, path):
    """Paired with meta-mapg on the same batches, each bug fails at 1,000 samples, far below the
    default budget (the 11-16% bugs too; without pairing they needed over 100,000)."""
    record = _claim(check_estimator(function, path, claim="meta-mapg", samples=1000, mode="statistical"))
    assert record.verdict == "fail", record.summary
    assert "paired" in record.figures["against"]


def test_a_plug_in_returning_its_phis_has_them_checked():
    correct = check_estimator(plugins.adapted_with_phis, TINY, claim=None, samples=200)
    assert correct.verdicts["inner-update:python:adapted_with_phis"] == "pass", correct.summary
    wrong = check_estimator(plugins.adapted_with_wrong_phis, TINY, claim=None, samples=200)
    record = next(c for c in wrong.checks if c.kind == "inner-update")
    assert record.verdict == "fail" and "batches its own inner update would not draw" in record.summary
    assert not wrong.passed
    silent = check_estimator(plugins.adapted_loo, TINY, claim=None, samples=200)
    assert silent.verdicts["inner-update:python:adapted_loo"] == "info"


def test_a_biased_estimator_without_a_claim_informs():
    result = check_estimator(dice.no_peer_log_probs, TINY, claim=None, samples=200)
    assert not [c for c in result.checks if c.kind == "claim"]
    assert result.verdicts["bias:python:no_peer_log_probs"] == "info"
    assert result.passed


def _false_alarms(case, name, claim: Claim, seeds: int, samples: int) -> int:
    """False alarms of ``claim`` on estimator ``name`` (a built-in) or function ``name`` (a plug-in,
    paired with its claim's partner on the same batches) over ``seeds`` seeds."""
    compiled = compile_game(case.game, case.policy)
    truths, design = Truths(case, compiled), design_for(case, compiled)
    count = 0
    for seed in range(seeds):
        rng = rng_for(seed, case, "calibration")
        paired = None
        if callable(name):
            partner = partner_of(case, claim)
            draws = plugin_draws(case, compiled, name, samples, rng, partner[1], partner[2])
            controls = partner_controls(case, compiled, partner, draws)
            rows, paired = draws.rows, (partner[0], draws.partner, controls)
        else:
            rows = draw_rows(case, compiled, name, samples, rng)
        count += check_claim(case, compiled, truths, "x", claim, None, rows, seed, design, paired).verdict == "fail"
    return count


def _calibration_cases():
    case = load_case(TINY)
    statistical = dataclasses.replace(case, checks=dataclasses.replace(case.checks, claim_mode="statistical"))
    # the reference's expectation over the cap: the claim falls back to the two-sample test
    inner = dataclasses.replace(case.inner, enumeration_cap=1, models=("expected",))
    capped = dataclasses.replace(statistical, inner=inner)
    return {
        "one-sample (sampled-exact = model-S)": (statistical, "sampled-exact", Claim("model", "model-S")),
        "two-sample (meta-mapg = meta-mapg)": (capped, "meta-mapg", Claim("estimator", "meta-mapg")),
        "paired (leave-one-out REINFORCE = adapted)": (
            statistical,
            plugins.adapted_loo,
            Claim("fingerprint", ADAPTED_ONLY),
        ),
    }


@pytest.mark.parametrize("label", list(_calibration_cases()))
def test_statistical_claims_false_alarm_at_their_level_quick(label):
    """200 seeds at level 0.01 (500 samples each); the count is accepted by a binomial test at 0.001."""
    case, name, claim = _calibration_cases()[label]
    count = _false_alarms(case, name, claim, 200, 500)
    assert stats.binomtest(count, 200, case.checks.level).pvalue >= 0.001, count


@pytest.mark.slow
@pytest.mark.parametrize("label", list(_calibration_cases()))
def test_statistical_claims_false_alarm_at_their_level(label):
    case, name, claim = _calibration_cases()[label]
    count = _false_alarms(case, name, claim, 1000, 2000)
    assert stats.binomtest(count, 1000, case.checks.level).pvalue >= 0.001, count


FROM_T = '''
import numpy as np

from examples.adapted_gradient import score


def adapted_from_t(inner, outer, theta, settings):
    """REINFORCE at phi_L with the planted bug: returns discounted from each step, not from step 0."""
    i, batch = settings.meta_agent, outer[-1]
    estimate, horizon = np.zeros_like(batch.phi[i]), batch.states.shape[1]
    for states, actions, rewards in zip(batch.states, batch.actions, batch.rewards, strict=True):
        for t, state in enumerate(states):
            to_go = sum(settings.gamma ** (u - t) * rewards[u, i] for u in range(t, horizon))
            estimate += score(batch.phi[i], settings.game.views[i, state], actions[t, i]) * to_go
    return estimate / len(batch.states)
'''


def test_auto_mode_goes_statistical_where_a_fingerprint_is_too_costly_to_enumerate(tmp_path):
    """Auto is exact only where the claim can be judged exactly: a fingerprint whose design would need
    more plug-in calls than the budget is tested statistically, not left untested."""
    (tmp_path / "from_t.py").write_text(FROM_T)
    case = write(
        tmp_path,
        '[game]\nbuiltin = "ipd_finite"\nhorizon = 2\ngamma = 0.8\n[policy]\nkind = "sigmoid"\n'
        '[params]\nseed = 3\nscale = 0.5\n[inner]\nmodel = ["expected", "sampled"]\nbatch = 2\n'
        '[estimators]\nnames = ["examples.adapted_gradient:adapted_gradient", "from_t:adapted_from_t"]\n'
        "samples = 1500\n[estimators.claims]\n"
        '"examples.adapted_gradient:adapted_gradient" = { adapted = 1 }\n"from_t:adapted_from_t" = { adapted = 1 }\n'
        "[checks]\nsweep = false\n",
    )
    out = tmp_path / "out"
    assert main(["run", str(case), "--out", str(out), "--jobs", "1"]) == 1
    checks = {c["name"]: c for c in json.loads((out / "results.json").read_text())["cases"][0]["checks"]}
    right, wrong = checks["claim:examples.adapted_gradient:adapted_gradient"], checks["claim:from_t:adapted_from_t"]
    assert right["figures"]["mode"] == wrong["figures"]["mode"] == "statistical"
    assert "not testable" in right["figures"]["exact mode"]
    assert right["verdict"] == "pass" and wrong["verdict"] == "fail"
    # returns from t differ from returns from 0 by gamma^t, a step's weight: the baseline controls
    # explain the differences' noise entirely, so any difference of mean is detected
    assert "relative difference measured" in wrong["summary"]
    assert "any difference above rounding is detected" in wrong["summary"], wrong["summary"]


def test_a_builtins_fingerprint_out_of_enumeration_is_tested_paired(tmp_path):
    """On the 5-step IPD with K = 4 no expectation enumerates: a built-in's fingerprint claim is
    then its rows against the basis surrogates' combination on the same batches (equal to
    rounding, sample by sample), not untested; a wrong variant claiming meta-mapg's fingerprint
    (the peer term's sign flipped) fails it."""
    case = load_case(ROOT / "tests" / "claims" / "ipd_five_steps.toml")
    wrong = Claim("fingerprint", claim_of(case, "meta-mapg").target)
    claims = (*case.estimators.claims, ("meta-mapg/flipped-peer", wrong))
    case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, claims=claims))
    checks = {c.name: c for c in evaluate(case, seed=0).checks}
    for name in ("meta-mapg", "meta-pg"):
        claim = checks[f"claim:{name}"]
        assert claim.verdict == "pass" and "to rounding, on each of 300 batches" in claim.summary, claim.summary
    flipped = checks["claim:meta-mapg/flipped-peer"]
    assert flipped.verdict == "fail", flipped.summary
