"""The field's newer estimators (README, "The field's newer estimators"): each exact expectation
against an autograd oracle written from its definition, to 1e-10, and the published claims settled."""

import numpy as np
import pytest

from mapg_verify.checks.result import relative_error
from mapg_verify.exact.opponent_model import opponent_model_gradients
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
