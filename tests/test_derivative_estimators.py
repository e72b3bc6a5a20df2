"""Derivative estimators (issue 16): each trajectory's estimate against an independent autograd
reference (the surrogate written with the magic box and differentiated k times); the exact
expectations of the unbiased ones against the exact derivatives at orders 1 to 3; the biased
ones' bias; the Monte-Carlo implementation check, its false alarms and its power."""

import json
import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defvjp, primitive
from scipy import stats

from mapg_verify.casefile.reader import parse_case
from mapg_verify.checks.derivatives import correlation_curve, estimator_checks
from mapg_verify.checks.statistics import mean_test
from mapg_verify.cli import main
from mapg_verify.estimators import derivatives
from mapg_verify.estimators.derivatives import (
    DERIVATIVE_ESTIMATORS,
    derivative_expectation,
    draw_derivatives,
    trajectory_estimates,
)
from mapg_verify.exact.baselines import trajectory_values
from mapg_verify.exact.derivatives import derivative_of
from mapg_verify.exact.enumeration import enumerate_trajectories
from mapg_verify.problem.params import layout_of

IPD3 = {"builtin": "ipd_finite", "horizon": 3, "gamma": 0.8}
RANDOM = {"builtin": "random", "seed": 2, "states": 2, "actions": [2, 3], "gamma": 0.9, "horizon": 2}
TWICE = {  # one state, played twice: two parameters, so third derivatives by nested autograd are cheap
    "transitions": [[[[1.0], [1.0]], [[1.0], [1.0]]]],
    "rewards": [[[[-1, -3], [0, -2]]], [[[-1, 0], [-3, -2]]]],
    "initial": [1.0],
    "gamma": 0.8,
    "horizon": 2,
}


def _case(game, order, policy="sigmoid", lam=0.5, of=0, **extra):
    section = {"order": order, "of": of, "estimators": list(DERIVATIVE_ESTIMATORS), "dice_lambda": lam, **extra}
    kind = "softmax" if game.get("builtin") == "random" else policy
    document = {"game": game, "policy": {"kind": kind}, "params": {"seed": 1, "scale": 0.8}, "derivatives": section}
    return parse_case(document, "derivatives")


@primitive
def _stop(x):
    return x


defvjp(_stop, lambda ans, x: lambda g: 0.0 * g)


def _box(x):
    return anp.exp(x - _stop(x))


def reference(case, name, trajectories):
    """The estimator's surrogate per trajectory, in autograd, differentiated ``order`` times."""
    settings, game = case.derivatives, case.game
    layout = layout_of(game, case.policy)
    x = case.flat_theta
    to_go = trajectories.to_go[..., settings.of]
    rewards = to_go - np.concatenate([to_go[:, 1:], np.zeros_like(to_go[:, :1])], axis=1)
    values = trajectory_values(game, case.policy, layout, trajectories, x)[..., settings.of]
    baseline = game.gamma ** np.arange(to_go.shape[1]) * values

    def surrogate(point):
        theta = layout.unflatten(point)
        steps = sum(
            case.policy.log_probs(theta[k])[game.views[k][trajectories.states], trajectories.actions[..., k]]
            for k in range(game.n_agents)
        )
        horizon = steps.shape[1]
        if name == "surrogate":
            return anp.sum(steps * to_go, axis=1)
        if name == "lvc":
            return anp.sum(_box(steps) * to_go, axis=1)
        lam = settings.dice_lambda if name == "loaded-dice" else 1.0
        total, before = 0.0, 0.0
        for t in range(horizon):
            now = lam * before + steps[:, t]
            if name == "dice":
                total = total + _box(now) * rewards[:, t]
            elif name == "dice-baseline":
                total = total + _box(now) * rewards[:, t] + (1 - _box(steps[:, t])) * _box(before) * baseline[:, t]
            else:
                total = total + (_box(now) - _box(now - steps[:, t])) * (to_go[:, t] - baseline[:, t])
            before = now
        return total

    function = surrogate
    for _ in range(settings.order):
        function = autograd.jacobian(function)
    return function(x).reshape(len(trajectories.states), -1)


@pytest.mark.parametrize(
    ("game", "order", "every"),
    [(TWICE, 1, 1), (TWICE, 2, 1), (TWICE, 3, 5), (IPD3, 1, 9), (IPD3, 2, 9), (RANDOM, 2, 12)],
    ids=["twice-1", "twice-2", "twice-3", "IPD-1", "IPD-2", "random-2"],
)
def test_each_trajectorys_estimate_equals_the_autograd_surrogate(game, order, every):
    """On every ``every``-th enumerated trajectory (nested autograd grows fast with the order)."""
    case = _case(game, order)
    trajectories = enumerate_trajectories(case.game, case.derivatives.horizon)
    trajectories = trajectories.take(np.arange(0, len(trajectories.states), every))
    for name in DERIVATIVE_ESTIMATORS:
        fast = trajectory_estimates(case, name, trajectories, case.flat_theta).reshape(len(trajectories.states), -1)
        slow = reference(case, name, trajectories)
        assert np.max(np.abs(fast - slow)) <= 1e-12 * max(np.max(np.abs(slow)), 1.0), name


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("game", [IPD3, RANDOM], ids=["3-step IPD", "random softmax"])
def test_dice_and_mao_and_loaded_dice_at_lambda_1_are_unbiased_at_every_order(game, order):
    case = _case(game, order, lam=1.0, of=1)
    exact = derivative_of(case.game, case.policy, 1, order, case.derivatives.horizon)(case.flat_theta)
    for name in ("dice", "dice-baseline", "loaded-dice"):
        expectation = derivative_expectation(case, name)
        assert np.max(np.abs(expectation - exact)) <= 1e-12 * np.max(np.abs(exact)), name


def test_lvc_and_the_plain_surrogate_are_biased_for_hessians_and_right_for_gradients():
    """Tang et al.'s claim, confirmed exactly: LVC's Hessian is biased on-policy (here by 0.84 of
    the Hessian's size); first-order estimates of every estimator are unbiased."""
    for order, biased in ((1, False), (2, True)):
        case = _case(IPD3, order)
        exact = derivative_of(case.game, case.policy, 0, order, 3)(case.flat_theta)
        for name in ("lvc", "surrogate", "loaded-dice"):
            bias = np.linalg.norm(derivative_expectation(case, name) - exact) / np.linalg.norm(exact)
            assert (bias > 0.1) if biased else (bias < 1e-12), (name, order, bias)


def test_monte_carlo_means_are_their_expectations_and_a_wrong_one_is_rejected():
    case = _case(IPD3, 2, samples=4000, batch=8)
    expectation = derivative_expectation(case, "dice").ravel()
    rows = draw_derivatives(case, "dice", np.random.default_rng(0))
    assert mean_test(rows, expectation, level=0.001).p_value > 0.001
    wrong = derivative_expectation(case, "lvc").ravel()  # 0.84 off: found at this budget
    assert mean_test(rows, wrong, level=0.001).p_value < 1e-6


def _false_alarms(seeds: int) -> int:
    case = _case({"builtin": "prisoners_dilemma"}, 2, samples=300, batch=4)
    expectation = derivative_expectation(case, "dice").ravel()
    distinct = [0, 1, 3]  # the entries (0, 0), (0, 1), (1, 1) of the 2 x 2 Hessian
    return sum(
        mean_test(
            draw_derivatives(case, "dice", np.random.default_rng([7, seed]))[:, distinct],
            expectation[distinct],
            level=0.01,
        ).p_value
        < 0.01
        for seed in range(seeds)
    )


@pytest.mark.parametrize("seeds", [pytest.param(200), pytest.param(1000, marks=pytest.mark.slow)])
def test_false_alarms_of_the_implementation_check_are_at_its_level(seeds):
    """Binomial test at level 0.001 that the false-alarm rate at level 0.01 is not above 0.01."""
    alarms = _false_alarms(seeds)
    assert stats.binomtest(alarms, seeds, 0.01, alternative="greater").pvalue > 0.001, alarms


def test_chunked_expectations_equal_one_pass(monkeypatch):
    """The expectation summed a trajectory at a time equals the one-pass sum (order 3, every estimator)."""
    case = _case(RANDOM, 3, of=1)
    whole = {name: derivative_expectation(case, name) for name in DERIVATIVE_ESTIMATORS}
    monkeypatch.setattr(derivatives, "CHUNK_ENTRIES", 1)
    for name, expected in whole.items():
        np.testing.assert_allclose(
            derivative_expectation(case, name), expected, rtol=1e-12, atol=1e-14 * abs(expected).max()
        )


def test_at_first_order_every_estimator_claims_unbiased_and_the_claim_holds():
    case = _case(IPD3, 1)
    exact = derivative_of(case.game, case.policy, 0, 1, 3)(case.flat_theta)
    _, checks = estimator_checks(case, exact, float(np.abs(exact).max()), seed=None)
    verdicts = {check.name: check.passed for check in checks}
    assert verdicts == {f"derivative-claim:{name}": True for name in DERIVATIVE_ESTIMATORS}


def test_the_correlation_curve_rises_to_1_for_dice_and_plateaus_for_lvc():
    """The papers' protocol on a one-agent MDP (the second agent has one action, so its parameters are
    left out): DiCE's correlation approaches 1 and its error 0 as the batch grows; LVC's Hessian,
    biased, keeps an error near its bias."""
    game = {"builtin": "random", "seed": 3, "states": 2, "actions": [3, 1], "gamma": 0.9, "horizon": 2}
    case = _case(game, 2, batches=[4, 4096], repeats=8, samples=20)
    exact = derivative_of(case.game, case.policy, 0, 2, 2)(case.flat_theta)
    curves = {name: correlation_curve(case, name, exact, seed=0) for name in ("dice", "lvc")}
    dice, lvc = curves["dice"], curves["lvc"]
    assert dice["batch"] == [4, 4096] and dice["repeats"] == 8 and dice["left out"] > 0
    assert dice["entries"] + dice["left out"] == math.comb(len(exact) + 1, 2)
    small, large = dice["correlation"]
    assert small["low"] <= small["mean"] <= small["high"] and large["mean"] > max(small["mean"], 0.99)
    assert dice["relative error"][1]["mean"] < 0.1 < dice["relative error"][0]["mean"]
    bias = np.linalg.norm(derivative_expectation(case, "lvc") - exact) / np.linalg.norm(exact)
    assert bias > 0.1 and lvc["relative error"][1]["mean"] > 0.8 * bias


def test_the_report_shows_the_derivatives_table_and_the_curve(tmp_path):
    game = "\n".join(f"{key} = {value!r}".replace("'", '"') for key, value in RANDOM.items())
    case = tmp_path / "curve.toml"
    case.write_text(
        f'name = "curve"\n[game]\n{game}\n[policy]\nkind = "softmax"\n[params]\nseed = 1\n'
        '[derivatives]\norder = 2\nestimators = ["dice", "lvc"]\nbatch = 8\nsamples = 200\n'
        "batches = [4, 64]\nrepeats = 5\n"
    )
    assert main(["run", str(case), "--out", str(tmp_path / "out")]) == 0
    document = json.loads((tmp_path / "out" / "results.json").read_text())["cases"][0]
    curve = document["derivatives"]["estimators"]["dice"]["curve"]
    assert set(curve) == {"batch", "repeats", "entries", "left out", "correlation", "relative error"}
    checks = {check["name"]: check for check in document["checks"]}
    assert checks["derivative-correlation:lvc"]["verdict"] == "info"
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Derivatives: d^2 V^0" in page and "derivative estimates against the batch size" in page
