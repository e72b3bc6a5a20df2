"""Tabular policies: analytic scores and Hessians against autograd, stability at |theta| = 50."""

import autograd
import numpy as np
import pytest
import symengine as se

from mapg_verify.problem.policies import POLICIES


def theta_for(policy, rng, scale=1.0, actions=3):
    shape = policy.shape(4, 2 if policy.two_actions_only else actions)
    return scale * rng.standard_normal(shape)


@pytest.mark.parametrize("name", list(POLICIES))
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_scores_and_hessians_match_autograd(name, scale, rng):
    policy = POLICIES[name]
    theta = np.clip(theta_for(policy, rng, scale), -50, 50)
    jacobian = autograd.jacobian(policy.log_probs)(theta)  # (S, A, *theta.shape)
    hessian = autograd.jacobian(autograd.jacobian(policy.log_probs))(theta)
    for s in range(theta.shape[0]):
        np.testing.assert_allclose(policy.scores(theta)[s], jacobian[s, :, s], atol=1e-12)
        if policy.two_actions_only:
            np.testing.assert_allclose(policy.score_hessians(theta)[s], hessian[s, :, s, s], atol=1e-12)
        else:
            np.testing.assert_allclose(policy.score_hessians(theta)[s], hessian[s, :, s, :, s], atol=1e-12)


@pytest.mark.parametrize("name", list(POLICIES))
def test_extreme_logits_stay_finite(name, rng):
    policy = POLICIES[name]
    theta = 50.0 * np.sign(theta_for(policy, rng))
    assert np.all(np.isfinite(policy.log_probs(theta)))
    assert np.all(np.isfinite(policy.scores(theta)))
    assert np.all(np.isfinite(policy.score_hessians(theta)))
    np.testing.assert_allclose(policy.probs(theta).sum(-1), 1.0)


@pytest.mark.parametrize("name", list(POLICIES))
def test_symbolic_probabilities_equal_numeric(name, rng):
    policy = POLICIES[name]
    theta = theta_for(policy, rng)
    for s in range(theta.shape[0]):
        row = theta[s] if policy.two_actions_only else list(theta[s])
        symbolic = [
            float(se.sympify(p).subs({}))
            for p in policy.symbolic_probs(se.Float(row) if policy.two_actions_only else [se.Float(v) for v in row])
        ]
        np.testing.assert_allclose(symbolic, policy.probs(theta)[s], rtol=1e-14)


def test_sigmoid_shape_and_log_probabilities_at_the_extremes():
    policy = POLICIES["sigmoid"]
    assert policy.shape(5, 2) == (5,)
    log_probs = policy.log_probs(np.array([-50.0, 50.0]))
    np.testing.assert_allclose(log_probs, [[-50.0, -1.9287e-22], [-1.9287e-22, -50.0]], rtol=1e-4)
