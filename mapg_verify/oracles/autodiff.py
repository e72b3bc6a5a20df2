"""Oracles independent of the symbolic path: autograd, Richardson finite differences, mpmath.

- autograd: ``V^k`` by numpy linear algebra (``np.linalg.solve`` for infinite
  horizons, the forward recursion for finite ones), differentiated by autograd;
- finite differences: central differences with step ``h`` and ``h/2``
  combined by Richardson extrapolation, ``(4 D(h/2) - D(h)) / 3``, error ``O(h^4)``;
- mpmath: the same values at 50 significant digits with mpmath's own LU solve.
"""

from __future__ import annotations

from collections.abc import Callable

import autograd
import autograd.numpy as anp
import numpy as np

from mapg_verify.exact.baselines import BATCH_BASELINES, discounts, fitted_values, ordered_fit
from mapg_verify.exact.enumeration import enumerate_batches, enumerate_trajectories
from mapg_verify.problem.game import DifferentiableGame, Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy


def _joint_policy(game: Game, probs: list) -> object:
    """``prod_k pi^k(a^k|s)`` flattened over joint actions, shape ``(|S|, prod |A^k|)``."""
    joint = probs[0]
    for k in range(1, game.n_agents):
        joint = joint[..., None] * anp.reshape(probs[k], (game.n_states,) + (1,) * k + (-1,))
    return anp.reshape(joint, (game.n_states, -1))


def autograd_values(game: Game | DifferentiableGame, policy: Policy | None, x) -> object:
    """``V^k(theta)`` for flat ``x``, written in autograd numpy."""
    theta = layout_of(game, policy).unflatten(x)
    if isinstance(game, DifferentiableGame):
        return anp.stack(game.values(theta))
    probs = [policy.probs(part)[game.views[k]] for k, part in enumerate(theta)]
    joint = _joint_policy(game, probs)
    transition = anp.einsum("sa,sat->st", joint, game.transitions.reshape(game.n_states, joint.shape[1], -1))
    reward = anp.einsum("sa,ksa->ks", joint, game.rewards.reshape(game.n_agents, game.n_states, -1))
    if game.infinite:
        occupancy = anp.linalg.solve(anp.eye(game.n_states) - game.gamma * transition.T, game.initial)
        return anp.dot(reward, occupancy)
    total, distribution = 0.0, game.initial
    for t in range(int(game.horizon)):
        total = total + game.gamma**t * anp.dot(reward, distribution)
        distribution = anp.dot(distribution, transition)
    return total


def autograd_derivatives(game, policy, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values ``(n,)``, gradients ``(n, D)`` and Hessians ``(n, D, D)`` by autograd."""

    def values(point):
        return autograd_values(game, policy, point)

    gradient = autograd.jacobian(values)
    x = np.asarray(x, dtype=float)
    return values(x), gradient(x), autograd.jacobian(gradient)(x)


def autograd_value_derivative(game, policy, x: np.ndarray, agent: int, order: int) -> np.ndarray:
    """``d^order V^agent / dx^order`` ``(D,) * order`` by nesting autograd's Jacobian."""
    function = lambda point: autograd_values(game, policy, point)[agent]  # noqa: E731
    for _ in range(order):
        function = autograd.jacobian(function)
    return function(np.asarray(x, dtype=float))


def autograd_meta_objective(game, policy, x, alpha, steps: int, meta_agent: int, objective: str) -> Callable:
    """``theta^i -> J^i`` of model E written directly in autograd (the inner loop unrolled)."""
    layout = layout_of(game, policy)
    own = layout.slice(meta_agent)
    rates = layout.per_parameter(alpha)

    def values(point):
        return autograd_values(game, policy, point)

    def objective_of(theta_i):
        phi = anp.concatenate([x[: own.start], theta_i, x[own.stop :]])
        total = 0.0
        for step in range(steps + 1):
            if objective == "chain" or step == steps:
                total = total + values(phi)[meta_agent]
            if step < steps:
                gradients = autograd.jacobian(values)(phi)
                xi = anp.concatenate([gradients[k, layout.slice(k)] for k in range(len(layout.shapes))])
                phi = phi + rates * xi
        return total

    return objective_of


def _reinforce_pieces(game: Game, policy: Policy, layout, trajectories, baseline=None) -> tuple[Callable, Callable]:
    """Autograd functions of flat ``phi``: every trajectory's log-probability ``(N,)``, and its
    single-trajectory REINFORCE update ``(N, D)`` (agent ``k``'s ``g^k`` in its block), each
    ``g^k`` the gradient in ``phi^k`` of the surrogate ``sum_t log pi^k(a_t|s_t) (G^k_t - w^k_t)``
    with the weights ``w = baseline(phi)`` held fixed there (``(N, H, n)``, or 0) but not in ``phi``."""
    agents = range(len(layout.shapes))

    def step_log_probs(phi, k):
        theta = layout.unflatten(phi)[k]
        return policy.log_probs(theta)[game.views[k, trajectories.states], trajectories.actions[..., k]]

    def surrogate(part, phi, k, weights):
        point = anp.concatenate([phi[: layout.slice(k).start], part, phi[layout.slice(k).stop :]])
        return anp.sum(step_log_probs(point, k) * weights[..., k], axis=1)

    def log_prob(phi):
        return trajectories.log_environment + sum(anp.sum(step_log_probs(phi, k), axis=1) for k in agents)

    def updates(phi):
        weights = trajectories.to_go if baseline is None else trajectories.to_go - baseline(phi)
        return anp.concatenate(
            [autograd.jacobian(surrogate)(phi[layout.slice(k)], phi, k, weights) for k in agents], axis=1
        )

    return log_prob, updates


def _discounted_state_values(game: Game, policy: Policy, layout, trajectories, phi):
    """``gamma^t V^k_t(s_t; phi)`` along each trajectory ``(N, H, n)``, by the backward recursion
    over the horizon written in autograd numpy."""
    horizon = trajectories.states.shape[1]
    probs = [policy.probs(part)[game.views[k]] for k, part in enumerate(layout.unflatten(phi))]
    joint = _joint_policy(game, probs)
    transitions = game.transitions.reshape(game.n_states, joint.shape[1], -1)
    rewards = game.rewards.reshape(game.n_agents, game.n_states, -1)
    following, per_step = anp.zeros((game.n_agents, game.n_states)), []
    for _ in range(horizon):
        q = rewards + game.gamma * anp.einsum("sap,kp->ksa", transitions, following)
        following = anp.einsum("sa,ksa->ks", joint, q)
        per_step.append(following)
    values = anp.stack(per_step[::-1])  # (H, n, S)
    along = values[np.arange(horizon)[None, :], :, trajectories.states]  # (N, H, n)
    return (game.gamma ** np.arange(horizon))[None, :, None] * along


def autograd_sampled_objective(
    game: Game, policy: Policy, x, inner, baseline: str = "none", fit: str = "aligned"
) -> Callable:
    """``theta^i -> J^i`` of model S written directly in autograd over the enumerated batches.

    The REINFORCE update is autograd's gradient of the surrogate
    ``(1/K) sum_b sum_t log pi^k(a_t|s_t) G^k_t``, the batch probabilities are
    multinomials of autograd trajectory probabilities, and autograd
    differentiates the whole expectation: it shares only the list of
    trajectories and multisets with the closed-form path. With a ``baseline``, ``G_t`` less
    ``gamma^t b_t``: exact state values by their own autograd recursion (differentiated with
    ``phi``), or fitted on each multiset (:func:`mapg_verify.exact.baselines.fitted_values`, fixed
    by the batch; on each ordered batch where the ``fit`` depends on the order).
    """
    layout = layout_of(game, policy)
    own = layout.slice(inner.meta_agent)
    rates = layout.per_parameter(inner.alpha)
    trajectories = enumerate_trajectories(game, inner.horizon)
    batches = enumerate_batches(
        len(trajectories.states), inner.batch, ordered_fit(baseline, fit, inner.batch, inner.horizon)
    )
    log_prob, updates = _reinforce_pieces(game, policy, layout, trajectories)
    if baseline == "value":
        _, updates = _reinforce_pieces(
            game,
            policy,
            layout,
            trajectories,
            lambda phi: _discounted_state_values(game, policy, layout, trajectories, phi),
        )
    if baseline in BATCH_BASELINES:
        gathered = trajectories.take(batches.members().ravel())
        fitted = discounts(game, inner.horizon)[None, :, None] * fitted_values(
            baseline, game, gathered, inner.batch, fit
        )
        _, member_updates = _reinforce_pieces(game, policy, layout, gathered, lambda phi: fitted)

        def mean_updates(phi):
            return anp.mean(anp.reshape(member_updates(phi), (len(batches.counts), inner.batch, -1)), axis=1)

    def children(phi):
        weights = anp.exp(batches.log_coefficients + anp.dot(batches.counts, log_prob(phi)))
        if baseline in BATCH_BASELINES:
            return weights, phi + rates * mean_updates(phi)
        return weights, phi + rates * anp.dot(batches.counts, updates(phi)) / inner.batch

    def expected(phi, level):
        value = autograd_values(game, policy, phi)[inner.meta_agent]
        if level == inner.steps:
            return value
        weights, phis = children(phi)
        later = sum(weights[m] * expected(phis[m], level + 1) for m in range(len(batches.counts)))
        return later + value if inner.objective == "chain" else later

    def objective_of(theta_i):
        return expected(anp.concatenate([x[: own.start], theta_i, x[own.stop :]]), 0)

    return objective_of


def autograd_gap_coefficient(game: Game, policy: Policy, x, inner) -> np.ndarray:
    """``c = grad_{theta^i} (1/2) tr(A H A Sigma_1)``: model S's meta-gradient is model E's plus
    ``c / K + O(K^-2)`` for one inner step (either objective), when the inner trajectories are
    as long as the game's.

    Why: with ``u`` one trajectory's update ``A g`` (mean ``A xi``, covariance ``A Sigma_1 A``)
    and ``u_K`` the mean of ``K`` of them, ``E[V^i(theta + u_K)] = V^i(theta + A xi) +
    (1/2K) tr(H A Sigma_1 A) + O(K^-2)`` (second-order expansion about the expected update; the
    third and fourth central moments of a mean are ``O(K^-2)``), ``H`` the Hessian of ``V^i`` at
    ``theta + A xi``; differentiate in ``theta^i``. Everything here is autograd, through the
    enumerated single trajectories."""
    layout = layout_of(game, policy)
    own = layout.slice(inner.meta_agent)
    rates = layout.per_parameter(inner.alpha)
    log_prob, updates = _reinforce_pieces(game, policy, layout, enumerate_trajectories(game, inner.horizon))

    def value(phi):
        return autograd_values(game, policy, phi)[inner.meta_agent]

    def half_trace(theta_i):
        phi = anp.concatenate([x[: own.start], theta_i, x[own.stop :]])
        weights, steps = anp.exp(log_prob(phi)), rates * updates(phi)
        mean = anp.dot(weights, steps)
        centred = steps - mean
        covariance = anp.dot(centred.T * weights, centred)
        return 0.5 * anp.sum(autograd.hessian(value)(phi + mean) * covariance)

    return autograd.grad(half_trace)(np.asarray(x, dtype=float)[own])
