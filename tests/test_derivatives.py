"""Exact derivatives of order 1 to 3 (issue 16, first part): symbolic and compiled, against
autograd nested through numpy's linear algebra, on games of every kind; the ``[derivatives]``
section, its JSON and its check, which fails when the derivative is wrong."""

import dataclasses
import json

import numpy as np
import pytest
from test_cli import ROOT

from mapg_verify import pipeline
from mapg_verify.casefile.reader import load_case, parse_case
from mapg_verify.checks import derivatives as derivative_check
from mapg_verify.cli import main
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.derivatives import derivative_of, truncated
from mapg_verify.oracles.autodiff import autograd_value_derivative

GAMES = {
    "one-shot PD, sigmoid": {"builtin": "prisoners_dilemma"},
    "2-step IPD, sigmoid": {"builtin": "ipd_finite", "horizon": 2, "gamma": 0.8},
    "random, softmax, infinite": {"builtin": "random", "seed": 7, "states": 2, "actions": [2, 3], "gamma": 0.9},
}


def _case(game: dict, seed: int, policy: str = "sigmoid"):
    kind = "softmax" if game["builtin"] == "random" else policy
    return parse_case({"game": game, "policy": {"kind": kind}, "params": {"seed": seed, "scale": 0.8}}, "d")


@pytest.mark.parametrize("label", GAMES)
@pytest.mark.parametrize("order", [1, 2, 3])
def test_exact_derivatives_agree_with_nested_autograd(label, order):
    """Every agent, three parameter draws (one at order 3), relative 1e-10."""
    for seed in range(3 if order < 3 else 1):
        case = _case(GAMES[label], seed)
        x = case.flat_theta
        for agent in range(case.game.n_agents):
            exact = derivative_of(case.game, case.policy, agent, order)(x)
            reference = autograd_value_derivative(case.game, case.policy, x, agent, order)
            assert exact.shape == (len(x),) * order
            assert np.max(np.abs(exact - reference)) <= 1e-10 * max(np.max(np.abs(reference)), 1e-3)


def test_the_tensor_is_symmetric_and_its_first_order_is_the_gradient():
    case = _case(GAMES["random, softmax, infinite"], 1)
    x = case.flat_theta
    third = derivative_of(case.game, case.policy, 1, 3)(x)
    assert np.array_equal(third, np.transpose(third, (1, 0, 2))) and np.array_equal(
        third, np.transpose(third, (2, 1, 0))
    )
    first = derivative_of(case.game, case.policy, 1, 1)(x)
    assert np.allclose(first, compile_game(case.game, case.policy).gradient(x)[1], rtol=1e-12, atol=1e-14)


def test_a_truncated_value_is_the_game_played_for_that_many_steps():
    case = load_case(ROOT / "cases/ipd.toml")
    x = case.flat_theta
    short = derivative_of(case.game, case.policy, 0, 2, horizon=3)(x)
    reference = autograd_value_derivative(truncated(case.game, 3), case.policy, x, 0, 2)
    assert np.max(np.abs(short - reference)) <= 1e-12 * np.max(np.abs(reference))
    full = derivative_of(case.game, case.policy, 0, 2)(x)
    assert np.max(np.abs(short - full)) > 1e-3 * np.max(np.abs(full))  # 3 steps of gamma = 0.96 are not the game


def test_exact_json_has_the_derivative_and_its_check(tmp_path):
    path = ROOT / "cases/derivatives/ipd_2_steps_third_order.toml"
    out = tmp_path / "exact.json"
    assert main(["exact", str(path), "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    tensor = np.array(document["derivatives"]["exact"])
    assert tensor.shape == (10, 10, 10) and document["derivatives"]["order"] == 3
    (check,) = [c for c in document["checks"] if c["name"] == "derivative-oracles"]
    assert check["verdict"] == "pass"


def test_a_wrong_derivative_fails_its_check(monkeypatch):
    """Off by a relative 1e-8 in one entry pair: the oracles' tolerances are met by rounding only."""
    case = load_case(ROOT / "cases/derivatives/ipd_hessian.toml")
    right = derivative_check.derivative_of

    def perturbed(game, policy, agent, order, horizon=None):
        derivative = right(game, policy, agent, order, horizon)
        if order != case.derivatives.order:
            return derivative

        def wrong(x):
            entries = np.array(derivative.function(x))
            entries[1] = entries[1] * (1 + 1e-8) + 1e-8  # the entry (0, 1), and so (1, 0)
            return entries

        return dataclasses.replace(derivative, function=wrong)

    monkeypatch.setattr(derivative_check, "derivative_of", perturbed)
    _, (check, *_) = derivative_check.derivative_truth(case)
    assert check.verdict == "fail" and "autograd" in check.summary
    checks = {c.name: c for c in pipeline.evaluate(case).checks}  # the pipeline runs it too
    assert checks["derivative-oracles"].verdict == "fail"
