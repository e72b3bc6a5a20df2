"""REINFORCE with discounted reward-to-go, per trajectory, in closed form (model S's inner update).

For agent ``k`` and a trajectory ``tau`` of horizon ``H``:
``g^k(tau; phi^k) = sum_t grad_{phi^k} log pi^k(a^k_t | s_t) G^k_t`` with
``G^k_t = sum_{t' >= t} gamma^{t'} r^k_{t'}`` (so ``E[g^k] = grad_{phi^k} V^k_H``),
and its pathwise Jacobian ``dg^k/dphi^k = sum_t hess_{phi^k} log pi^k(a^k_t | s_t) G^k_t``
(block diagonal over agents: ``g^k`` depends on ``phi^k`` alone).
DiCE (Foerster et al. 2018) differentiates the magic-box objective
``sum_t box(sum_{t' <= t} log pi(a_t' | s_t')) gamma^t r^k_t`` twice instead, which adds
the causal score products ``sum_t gamma^t r^k_t c^k_t c_t^T`` with
``c_t = sum_{t' <= t} grad_phi log pi(a_t' | s_t')`` (all agents' parameters in the columns).
Also ``log P(tau | phi)``, its score ``grad_phi log P(tau | phi) = sum_t sum_k grad log pi^k``
and the per-step scores. Scores and Hessians come from the policy's closed forms, not autodiff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapg_verify.exact.enumeration import Trajectories, step_rewards
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import Layout
from mapg_verify.problem.policies import Policy


@dataclass(frozen=True, eq=False)
class TrajectoryTerms:
    """Per trajectory (leading axis ``N``): ``log_prob``, ``step_scores (N, H, D)`` (the joint
    score of step ``t``), ``score (N, D)``, ``reinforce (N, D)`` (agent ``k``'s ``g^k`` in its
    block) and, when asked for, the pathwise ``reinforce_jacobian`` (block diagonal), summed over
    consecutive groups of ``group`` trajectories: ``(N / group, D, D)``."""

    log_prob: np.ndarray
    step_scores: np.ndarray
    score: np.ndarray
    reinforce: np.ndarray
    reinforce_jacobian: np.ndarray | None


def trajectory_terms(
    game: Game,
    policy: Policy,
    layout: Layout,
    trajectories: Trajectories,
    phi,
    second_order: bool = True,
    group: int = 1,
) -> TrajectoryTerms:
    """The terms at flat parameters ``phi``: one vector ``(D,)`` for every trajectory, or rows
    ``(G, D)``, trajectory ``n`` drawn at row ``n // (N / G)``. Jacobians are summed over
    consecutive groups of ``group`` trajectories (1: one per trajectory)."""
    n, horizon, size = trajectories.states.shape[0], trajectories.states.shape[1], layout.size
    phi = np.atleast_2d(np.asarray(phi, dtype=float))
    at = (np.arange(n) // (n // len(phi)))[:, None]  # the row of phi each trajectory was drawn at
    log_prob = trajectories.log_environment.copy()
    step_scores = np.zeros((n, horizon, size))
    reinforce = np.zeros((n, size))
    jacobian = np.zeros((n // group, size, size)) if second_order else None
    for k, shape in enumerate(layout.shapes):
        block = layout.slice(k)
        theta = phi[:, block].reshape(len(phi), *shape)
        rows = game.views[k, trajectories.states]  # (N, H): the row of theta^k used at each step
        actions = trajectories.actions[..., k]
        to_go = trajectories.to_go[..., k][..., None]  # (N, H, 1)
        n_states, width = shape[0], int(np.prod(shape[1:]))
        log_prob += policy.log_probs(theta)[at, rows, actions].sum(axis=1)
        scores = policy.scores(theta)[at, rows, actions].reshape(n, horizon, width)
        step_scores[:, :, block] = _embed(rows, scores, n_states)
        each = np.arange(n)[:, None]
        reinforce[:, block] = _per_row(each, rows, scores * to_go, n, n_states).reshape(n, -1)
        if second_order:
            hessians = policy.score_hessians(theta)[at, rows, actions].reshape(n, horizon, width * width)
            groups = np.arange(n)[:, None] // group
            row_blocks = _per_row(groups, rows, hessians * to_go, n // group, n_states)
            row_blocks = row_blocks.reshape(n // group, n_states, width, width)
            jacobian[:, block, block] = np.einsum("nsij,st->nsitj", row_blocks, np.eye(n_states)).reshape(
                n // group, n_states * width, n_states * width
            )
    return TrajectoryTerms(log_prob, step_scores, step_scores.sum(axis=1), reinforce, jacobian)


def dice_products(
    layout: Layout,
    trajectories: Trajectories,
    step_scores: np.ndarray,
    causal: bool = True,
    group: int = 1,
    baseline: np.ndarray | None = None,
) -> np.ndarray:
    """The score products DiCE adds to the pathwise Jacobian, summed over consecutive groups of
    ``group`` trajectories ``(N / group, D, D)``: agent ``k``'s rows are
    ``sum_t gamma^t r^k_t c^k_t c_t^T``, with ``gamma^t r^k_t`` read off the rewards-to-go as
    ``G^k_t - G^k_{t+1}``; with a ``baseline`` ``gamma^t b^k_t`` ``(N, H, n)`` in DiCE's
    ``(1 - box(log pi_t)) gamma^t b_t`` term, minus ``sum_t gamma^t b^k_t s^k_t s_t^T``. With
    ``causal=False`` (a defect: each step's log-probability alone in the magic box) ``to_go`` holds
    ``gamma^t r_t`` and ``c_t`` is step ``t``'s score alone."""
    to_go = trajectories.to_go
    if causal:
        rewards = step_rewards(to_go)  # (N, H, n)
        cumulative = np.cumsum(step_scores, axis=1)
    else:
        rewards, cumulative = to_go, step_scores
    products = _own_weighted_products(layout, rewards, cumulative, group)
    if baseline is not None:
        products = products - _own_weighted_products(layout, baseline, step_scores, group)
    return products


def loaded_products(
    layout: Layout, advantages: np.ndarray, step_scores: np.ndarray, lam: float, group: int = 1
) -> np.ndarray:
    """What Loaded DiCE (Farquhar et al. 2019) adds to the pathwise Jacobian, summed over groups of
    ``group``: its objective ``sum_t (box(w_t) - box(w_t - log pi_t)) A_t`` with the discounted
    dependencies ``w_t = sum_{t' <= t} lam^(t-t') log pi_t'`` gives agent ``k``'s rows
    ``sum_t A^k_t (c^k_t c_t^T - e^k_t e_t^T)``, ``c_t = grad w_t``, ``e_t = c_t - s_t = lam c_{t-1}``
    (``lam = 1`` and ``A_t = G_t``: DiCE's products)."""
    cumulative = np.empty_like(step_scores)
    running = np.zeros_like(step_scores[:, 0])
    for t in range(step_scores.shape[1]):
        running = lam * running + step_scores[:, t]
        cumulative[:, t] = running
    exclusive = cumulative - step_scores
    return _own_weighted_products(layout, advantages, cumulative, group) - _own_weighted_products(
        layout, advantages, exclusive, group
    )


def _own_weighted_products(layout: Layout, weights: np.ndarray, vectors: np.ndarray, group: int) -> np.ndarray:
    """``sum_t w^k_t v^k_t v_t^T`` on agent ``k``'s rows, summed over groups of ``group``."""
    n, horizon, size = vectors.shape
    weighted = np.empty_like(vectors)
    for k in range(len(layout.shapes)):  # agent k's weight on its own rows
        weighted[:, :, layout.slice(k)] = weights[:, :, k, None] * vectors[:, :, layout.slice(k)]
    weighted = weighted.reshape(n // group, group * horizon, size)
    return np.swapaxes(weighted, 1, 2) @ vectors.reshape(n // group, group * horizon, size)


def _per_row(groups: np.ndarray, rows: np.ndarray, values: np.ndarray, n_groups: int, n_states: int) -> np.ndarray:
    """Sum per-step ``values (N, H, W)`` into each group's parameter row used at each step: ``(G, S, W)``."""
    index = np.broadcast_to(groups * n_states + rows, rows.shape).ravel()
    flat = values.reshape(-1, values.shape[2])
    columns = [np.bincount(index, weights=flat[:, w], minlength=n_groups * n_states) for w in range(flat.shape[1])]
    return np.stack(columns, axis=-1).reshape(n_groups, n_states, values.shape[2])


def _embed(rows: np.ndarray, values: np.ndarray, n_states: int) -> np.ndarray:
    """Place per-step ``values (N, H, W)`` at the parameter row used at each step: ``(N, H, S*W)``."""
    n, horizon, width = values.shape
    out = np.zeros((n, horizon, n_states, width))
    out[np.arange(n)[:, None], np.arange(horizon)[None, :], rows] = values
    return out.reshape(n, horizon, n_states * width)
