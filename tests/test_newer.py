"""The field's newer estimators (README, "The field's newer estimators"): each exact expectation
against an autograd oracle written from its definition, to 1e-10, and the published claims settled."""

import numpy as np
import pytest

from mapg_verify.checks import newer
from mapg_verify.checks.newer import invariance_claim, kind_claim, shift_claim
from mapg_verify.checks.result import relative_error
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.metagradient import expected_update
from mapg_verify.exact.opponent_model import opponent_model_gradients
from mapg_verify.exact.proximal import identity, inner_solution, lookahead, scaled, two_logit
from mapg_verify.oracles.mamaml import mamaml_gradient, mfos_ipd_losses
from mapg_verify.oracles.opponent_model import autograd_ideal, autograd_taken
from mapg_verify.problem.catalog import imp, ipd, prisoners_dilemma
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import POLICIES

TOLERANCE = 1e-10


@pytest.mark.parametrize("game", [ipd(), imp(), prisoners_dilemma()], ids=lambda g: g.name)
@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
@pytest.mark.parametrize(("meta_agent", "temperature"), [(0, 1.0), (1, 0.7)])
def test_loqa_terms_match_autograd(game, kind, meta_agent, temperature):
    policy = POLICIES[kind]
    x = 0.5 * np.random.default_rng(4).standard_normal(layout_of(game, policy).size)
    found = opponent_model_gradients(game, policy, x, meta_agent, temperature)
    assert relative_error(found.ideal_total, autograd_ideal(game, policy, x, meta_agent, temperature)) <= TOLERANCE
    shaping = autograd_ideal(game, policy, x, meta_agent, temperature, shaping_only=True)
    assert relative_error(found.ideal, shaping, scale=1.0) <= TOLERANCE
    assert relative_error(found.taken, autograd_taken(game, policy, x, meta_agent, temperature), 1.0) <= TOLERANCE


def test_loqa_two_actions_closed_forms():
    """Two actions: ideal ``p0 p1 (A0 - A1)(G0 - G1)``; LOQA's ``p0 p1 (A0 G0 + A1 G1)`` since
    ``p0 A0 + p1 A1 = 0``: they differ by ``p0 p1 (A1 G0 + A0 G1)``, which a Q shift common to both
    actions (``G0 = G1``) leaves in LOQA's alone. On the one-shot PD the opponent's gain from
    defecting does not depend on ``theta^0``, so the ideal shaping is 0 and LOQA's is not."""
    game, policy = prisoners_dilemma(), POLICIES["sigmoid"]
    found = opponent_model_gradients(game, policy, np.array([0.3, -0.2]))
    assert np.max(np.abs(found.ideal)) <= 1e-15
    assert np.max(np.abs(found.taken)) > 0.05


def test_loqa_differs_from_the_chain_rule_on_the_ipd():
    game, policy = ipd(), POLICIES["sigmoid"]
    x = 0.5 * np.random.default_rng(0).standard_normal(10)
    found = opponent_model_gradients(game, policy, x)
    gap = np.linalg.norm(found.taken - found.ideal) / np.linalg.norm(found.ideal)
    assert gap > 1.0  # not a rounding matter: several times the ideal shaping term's size


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_mamaml_is_model_e_with_the_chain_objective(steps):
    """M-FOS's MAMAML over ``S`` inner steps is model E's chain meta-gradient over ``L = S - 1``:
    its sum counts ``V(phi_0) .. V(phi_{S-1})``, the last update's result is never evaluated."""
    compiled = compile_game(ipd(), POLICIES["sigmoid"])
    rng = np.random.default_rng(steps)
    opp, agent = rng.standard_normal(5), rng.standard_normal(5)
    x = np.concatenate([opp, agent])
    assert np.allclose(-np.array(mfos_ipd_losses(opp, agent)), compiled.value(x), rtol=1e-13, atol=0)
    inner_lr, alpha = 1.0, 0.37
    mamaml = mamaml_gradient(opp, agent, steps, inner_lr, alpha)
    chain = expected_update(compiled, x, (inner_lr, alpha), steps - 1, meta_agent=1, objective="chain")
    assert relative_error(chain.total, mamaml) <= TOLERANCE
    if steps > 1:
        longer = expected_update(compiled, x, (inner_lr, alpha), steps, meta_agent=1, objective="chain")
        assert relative_error(longer.total, mamaml) > 1e-3


def test_pola_inner_response_by_the_implicit_function_theorem_matches_differences():
    game, policy = ipd(), POLICIES["sigmoid"]
    compiled = compile_game(game, policy)
    x = 0.5 * np.random.default_rng(0).standard_normal(10)
    problem = lookahead(compiled, policy, identity(compiled.layout), x)
    _, response = inner_solution(problem, x, 1, 0.5)
    step = 1e-5

    def solved(k, sign):
        moved = x.copy()
        moved[k] += sign * step
        return inner_solution(lookahead(compiled, policy, identity(compiled.layout), moved), moved, 1, 0.5)[0][5:]

    differences = np.array([(solved(k, 1) - solved(k, -1)) / (2 * step) for k in range(5)]).T
    assert relative_error(response[:, :5], differences) <= 1e-7  # differences' own error, O(step^2)


@pytest.mark.parametrize("kind", ["scale", "two-logit"])
def test_pola_is_parameterisation_invariant_and_lola_is_not(kind):
    game, policy = ipd(), POLICIES["sigmoid"]
    compiled = compile_game(game, policy)
    x = 0.5 * np.random.default_rng(0).standard_normal(10)
    scales = (np.linspace(0.5, 2.0, 5), np.linspace(2.0, 0.7, 5))
    other = scaled(compiled.layout, scales) if kind == "scale" else two_logit(compiled.layout)
    pola, lola = invariance_claim(compiled, policy, x, other)
    assert pola.passed, pola.summary
    assert not lola.passed and lola.figures["policy gap"] > 0.1, lola.summary


@pytest.mark.parametrize("kind", ["scale", "shift", "sigmoid"])
def test_pola_with_softmax_policies_is_invariant(kind):
    """Softmax logits on the IPD (beta = 0.2, where the outer solve converges to 1e-13): POLA reaches
    the same policies under per-state scales, per-state shifts and against sigmoid policies; LOLA does
    not under scales or against the sigmoid (a step twice as long in the logits' difference), but a
    shift leaves LOLA's step unchanged too: its gradient is a function of the policy alone."""
    softmax = compile_game(ipd(), POLICIES["softmax"])
    x = 0.5 * np.random.default_rng(0).standard_normal(20)
    beta = (0.2, 0.2)
    if kind == "scale":
        other = scaled(softmax.layout, (np.linspace(0.5, 2.0, 5), np.linspace(2.0, 0.7, 5)))
        pola, lola = invariance_claim(softmax, POLICIES["softmax"], x, other, beta)
    elif kind == "shift":
        pola, lola = shift_claim(softmax, POLICIES["softmax"], x, (np.linspace(-1, 2, 5), np.linspace(3, -1, 5)), beta)
    else:
        pola, lola = kind_claim(softmax, compile_game(ipd(), POLICIES["sigmoid"]), x, beta)
    assert pola.passed, pola.summary
    if kind == "shift":
        assert lola.passed and lola.figures["policy gap"] <= 1e-12, lola.summary
    else:
        assert not lola.passed and lola.figures["policy gap"] > 0.1, lola.summary


def test_invariance_is_untested_where_the_outer_solve_stops_short(monkeypatch):
    compiled = compile_game(prisoners_dilemma(), POLICIES["sigmoid"])
    monkeypatch.setattr(newer, "_step", lambda *args: (np.zeros(4), 0.5))
    pola, _ = invariance_claim(compiled, POLICIES["sigmoid"], np.zeros(2), two_logit(compiled.layout))
    assert pola.verdict == "untested" and "0.5" in pola.summary
