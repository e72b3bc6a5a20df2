"""COALA-PG (Meulemans et al., ICLR 2025) on the batched co-player setting, exactly: the objective and
its gradient against autograd through the enumerated objective, and which estimator is unbiased."""

import autograd
import numpy as np
import pytest

from mapg_verify.checks.newer import coala_claims
from mapg_verify.checks.result import relative_error
from mapg_verify.exact.coala import CoalaSetting, coala_truth
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.metagradient import sampled_update
from mapg_verify.oracles.autodiff import autograd_sampled_objective
from mapg_verify.problem.catalog import ipd_finite, prisoners_dilemma
from mapg_verify.problem.policies import POLICIES

TOLERANCE = 1e-10
GAMES = {
    "pd-M2": (prisoners_dilemma(), np.array([0.3, -0.2]), 2),
    "pd-M3": (prisoners_dilemma(), np.array([-0.4, 0.5]), 3),
    "ipd2-M2": (ipd_finite(horizon=2), 0.5 * np.random.default_rng(0).standard_normal(10), 2),
}


@pytest.fixture(scope="module", params=list(GAMES))
def solved(request):
    game, x, episodes = GAMES[request.param]
    policy = POLICIES["sigmoid"]
    compiled = compile_game(game, policy)
    setting = CoalaSetting(batch=2, episodes=episodes, alpha=0.7)
    return game, policy, compiled, x, setting, coala_truth(game, policy, compiled, x, setting)


def test_objective_and_gradient_match_autograd(solved):
    """Autograd through the enumerated objective: model S's chain objective with the meta-agent's
    rate 0 over ``L = M - 1`` steps of ``K = B`` (every multiset, autograd probabilities and updates)."""
    game, policy, compiled, x, setting, truth = solved
    own = compiled.layout.slice(setting.meta_agent)
    objective = autograd_sampled_objective(game, policy, x, setting.inner_loop(game))
    assert abs(truth.objective - objective(x[own])) <= TOLERANCE * abs(truth.objective)
    assert relative_error(truth.gradient, autograd.grad(objective)(x[own])) <= TOLERANCE
    closed = sampled_update(compiled, game, policy, x, setting.inner_loop(game)).total
    assert relative_error(truth.gradient, closed) <= TOLERANCE


def test_the_papers_scale_is_unbiased_and_the_others_are_not(solved):
    *_, setting, truth = solved
    claims = coala_claims(truth, setting.batch)
    assert {n for n, c in claims.items() if c.passed} == {"paper", "code", "trajectory"}
    for name, claim in claims.items():
        assert claim.figures["identity error"] <= TOLERANCE, name  # c_d direct + c_s shaping, exactly
    assert claims["mean"].figures["relative error"] == pytest.approx(1 - 1 / setting.batch, abs=1e-12)
    shaping = np.linalg.norm(truth.shaping)
    assert relative_error(truth.means["unaware"], truth.gradient, 0) > 0 and shaping > 1e-3


def test_cross_batch_credit_only_lowers_the_variance(solved):
    """With a memoryless meta-agent, trajectory ``b``'s later returns have the batch mean's
    expectation given ``phi_m``: the same-trajectory pairing at Eq. 3's weights is unbiased too,
    but Eq. 3's batch mean has the smaller covariance; at Eq. 6's weights it loses ``(B-1)/B`` of
    the shaping term."""
    *_, setting, truth = solved
    assert np.trace(truth.covariances["paper"]) < np.trace(truth.covariances["trajectory"])
    lost = truth.gradient - truth.means["unaware"]
    assert relative_error(lost, (1 - 1 / setting.batch) * truth.shaping) <= TOLERANCE
