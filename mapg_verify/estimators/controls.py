"""Control variates of exactly zero mean on the batches a plug-in received, for the paired claim
test: each batch's score at the parameters that drew it, and the outer term's baseline terms (the
advantage replaced by a feature of the state, the step and the other trajectories)."""

from __future__ import annotations

import numpy as np

from mapg_verify.estimators.surrogate import outer_parts, outer_returns
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case


def batch_scores(surrogate, draws, count: int) -> np.ndarray:
    """``(R, m)``: each recorded batch's score summed over its trajectories, at the parameters that
    drew it, inner and outer batches side by side; each has mean 0 given those parameters."""
    case, layout = surrogate.case, surrogate.compiled.layout
    found = []
    drawn = [*zip(draws.inner, draws.phis, strict=False), *zip(draws.outer, draws.phis, strict=True)]
    for batch, phi in drawn:
        if batch is not None:
            terms = trajectory_terms(case.game, case.policy, layout, batch, phi, second_order=False)
            found.append(terms.score.reshape(count, -1, layout.size).sum(axis=1))
    return np.hstack(found) if found else np.zeros((count, 0))


BASELINE_ROWS_PER_CONTROL = 20  # baseline controls only where the samples number 20 per control or more


def baselines_fit(case: Case, samples: int) -> bool:
    """Whether :func:`baseline_controls` fit this budget and are drawn: ``(H S + H) d`` controls (``d`` the meta-agent's
    parameters) with at least :data:`BASELINE_ROWS_PER_CONTROL` samples each (the regression's
    degrees of freedom stay near ``samples``)."""
    game, horizon = case.game, case.inner.horizon
    if not isinstance(game, Game):
        return False
    controls = (game.n_states + 1) * horizon * int(np.size(case.theta[case.inner.meta_agent]))
    return controls * BASELINE_ROWS_PER_CONTROL <= samples


def baseline_controls(surrogate, draws, count: int) -> np.ndarray:
    """``(R, F d)``: at each level with an outer batch, the outer term with the advantage replaced by
    a baseline feature ``f``, ``mean_b sum_t grad_theta log pi(a_bt | s_bt; phi_L(theta)) f_bt``
    (projected through ``d phi_L / d theta`` as the outer term is). Features: ``1[t = u, s_bt = s]``
    for every step ``u`` and state ``s`` (every state-and-time baseline, a critic's included, is
    their combination) and, with ``K_out > 1``, the other trajectories' mean return at ``t``
    (a leave-one-out baseline). Each has mean exactly 0: ``f_bt`` depends on ``s_bt`` and other
    trajectories only, independent of ``a_bt`` given ``phi_L`` (the baseline theorem); so a
    plug-in that differs from its partner by a baseline of these kinds differs by the controls."""
    case, layout = surrogate.case, surrogate.compiled.layout
    found = []
    for trajectories, phi, tangent in zip(draws.outer, draws.phis, draws.tangents, strict=True):
        if trajectories is None:
            continue
        states = trajectories.states  # (N, H)
        n, horizon = states.shape
        size, n_states = n // count, case.game.n_states
        indicators = np.zeros((n, horizon, horizon * n_states))
        steps = np.arange(horizon)
        indicators[np.arange(n)[:, None], steps, steps * n_states + states] = 1.0
        features = [indicators]
        if size > 1:
            returns = outer_returns(surrogate, trajectories).reshape(count, size, horizon)
            others = (returns.sum(axis=1, keepdims=True) - returns) / (size - 1)
            features.append(np.einsum("nh,hu->nhu", others.reshape(n, horizon), np.eye(horizon)))
        features = np.concatenate(features, axis=2)  # (N, H, F)
        terms = trajectory_terms(case.game, case.policy, layout, trajectories, phi, second_order=False)
        gradients = np.einsum("nhd,nhf->nfd", terms.step_scores, features)
        gradients = gradients.reshape(count, size, features.shape[2], -1).mean(axis=1)  # (R, F, D)
        width = gradients.shape[1]
        own, peer = outer_parts(surrogate, gradients.reshape(count * width, -1), np.repeat(tangent, width, axis=0))
        found.append((own + peer).reshape(count, -1))
    return np.hstack(found) if found else np.zeros((count, 0))
