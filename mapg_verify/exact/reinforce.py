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
Asked for ``compiled`` terms, the step scores are held sparsely (:class:`SparseScores`) and every
sum over steps runs in :mod:`mapg_verify.exact.kernels`; the functions below take either form.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mapg_verify.exact import kernels
from mapg_verify.exact.enumeration import Trajectories, step_rewards
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import Layout
from mapg_verify.problem.policies import Policy


@dataclass(frozen=True, eq=False)
class SparseScores:
    """Step scores ``(N, H, D)`` by their nonzero segments: agent ``k``'s score at step ``t`` of
    trajectory ``n`` is ``values[n, t, k, :W_k]`` at columns ``columns[n, t, k] + (0 .. W_k - 1)``;
    ``owner[j]`` is the agent of column ``j``; ``sums`` is ``sum_t s_t`` ``(N, D)``."""

    columns: np.ndarray
    values: np.ndarray
    widths: np.ndarray
    owner: np.ndarray
    sums: np.ndarray

    @property
    def size(self) -> int:
        return len(self.owner)


@dataclass(frozen=True, eq=False)
class TrajectoryTerms:
    """Per trajectory (leading axis ``N``): ``log_prob``, ``step_scores (N, H, D)`` (the joint
    score of step ``t``; a :class:`SparseScores` when compiled), ``reinforce (N, D)`` (agent
    ``k``'s ``g^k`` in its block) and, when asked for, the pathwise ``reinforce_jacobian`` (block
    diagonal), summed over consecutive groups of ``group`` trajectories: ``(N / group, D, D)``."""

    log_prob: np.ndarray
    step_scores: np.ndarray | SparseScores
    reinforce: np.ndarray
    reinforce_jacobian: np.ndarray | None

    @property
    def score(self) -> np.ndarray:
        """``sum_t s_t``, ``(N, D)`` (of dense step scores)."""
        return self.step_scores.sum(axis=1)


def trajectory_terms(
    game: Game,
    policy: Policy,
    layout: Layout,
    trajectories: Trajectories,
    phi,
    second_order: bool = True,
    group: int = 1,
    compiled: bool = False,
    baseline: np.ndarray | None = None,
) -> TrajectoryTerms:
    """The terms at flat parameters ``phi``: one vector ``(D,)`` for every trajectory, or rows
    ``(G, D)``, trajectory ``n`` drawn at row ``n // (N / G)``. Jacobians are summed over
    consecutive groups of ``group`` trajectories (1: one per trajectory). Step ``t`` is weighted
    by ``to_go`` less ``baseline`` ``(N, H, n)``, if given. ``compiled``: by the kernels, with sparse
    step scores (the baseline subtracted there)."""
    n, horizon, size = trajectories.states.shape[0], trajectories.states.shape[1], layout.size
    phi = np.atleast_2d(np.asarray(phi, dtype=float))
    if compiled:
        return _compiled_terms(game, policy, layout, trajectories, phi, second_order, group, baseline)
    if baseline is not None:
        trajectories = dataclasses.replace(trajectories, to_go=trajectories.to_go - baseline)
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
    return TrajectoryTerms(log_prob, step_scores, reinforce, jacobian)


def _compiled_terms(game, policy, layout: Layout, trajectories: Trajectories, phi, second_order: bool, group: int,
                    baseline: np.ndarray | None):  # fmt: skip
    """:func:`trajectory_terms` by :func:`mapg_verify.exact.kernels.scores`."""
    n, horizon = trajectories.states.shape
    widths, starts, tables = _tables(game, policy, layout, phi, 2 if second_order else 1)
    columns = np.empty((n, horizon, len(widths)), dtype=np.int32)  # half the bytes of int64 to write and read
    values = np.zeros((n, horizon, len(widths), widths.max()))
    log_prob = trajectories.log_environment.copy()
    jacobian = np.zeros((n // group, layout.size, layout.size) if second_order else (0, 0, 0))
    reinforce, sums = np.zeros((n, layout.size)), np.zeros((n, layout.size))
    less = np.zeros((0, 0, 0)) if baseline is None else np.ascontiguousarray(baseline)
    kernels.scores(
        trajectories.states, trajectories.actions, n // len(phi), np.ascontiguousarray(game.views), starts, widths,
        *tables, np.ascontiguousarray(trajectories.to_go), less, group, columns, values, log_prob, reinforce, sums,
        jacobian,
    )  # fmt: skip
    owner = np.repeat(np.arange(len(widths)), layout.sizes)
    return TrajectoryTerms(
        log_prob, SparseScores(columns, values, widths, owner, sums), reinforce, jacobian if second_order else None
    )


def _tables(game, policy, layout: Layout, phi: np.ndarray, order: int):
    """Each agent's row width ``W_k`` and first column, and the tables ``(n, G, S, A, ...)`` of
    log-probabilities, scores and (at ``order`` 2) score Hessians at rows ``phi (G, D)``,
    zero-padded across agents."""
    widths = np.array([int(np.prod(shape[1:])) for shape in layout.shapes])
    tables = [[], [], []]
    for k, shape in enumerate(layout.shapes):
        theta = phi[:, layout.slice(k)].reshape(len(phi), *shape)
        _, scores, hessians = policy.derivatives(theta, order)
        rows = (len(phi), shape[0], game.n_actions[k])
        tables[0].append(policy.log_probs(theta))
        tables[1].append(scores.reshape(*rows, widths[k]))
        tables[2].append(hessians.reshape(*rows, widths[k], widths[k]) if order >= 2 else np.zeros((0,) * 5))
    starts = np.array([layout.slice(k).start for k in range(len(widths))])
    return widths, starts, [_padded(t) for t in tables]


def _padded(tables: list[np.ndarray]) -> np.ndarray:
    """Per-agent arrays of one rank stacked, zero-padded to the largest extent of each axis."""
    out = np.zeros((len(tables), *np.max([t.shape for t in tables], axis=0)))
    for k, table in enumerate(tables):
        out[(k, *(slice(0, e) for e in table.shape))] = table
    return out


def score_sums(
    game: Game, policy: Policy, layout: Layout, trajectories: Trajectories, phi, weights: np.ndarray, compiled=False
) -> np.ndarray:
    """``sum_t s_t w_t`` ``(N, D)`` for weights ``(N, H)`` (an outer REINFORCE gradient), at ``phi``
    as in :func:`trajectory_terms`; ``compiled``: by :func:`mapg_verify.exact.kernels.score_sums`."""
    phi = np.atleast_2d(np.asarray(phi, dtype=float))
    if not compiled:
        terms = trajectory_terms(game, policy, layout, trajectories, phi, second_order=False)
        return np.einsum("nhd,nh->nd", terms.step_scores, weights)
    widths, starts, tables = _tables(game, policy, layout, phi, 1)
    states, actions = trajectories.states, trajectories.actions
    per, views = len(states) // len(phi), np.ascontiguousarray(game.views)
    weights = np.ascontiguousarray(weights)
    return kernels.score_sums(states, actions, per, views, starts, widths, tables[1], weights, layout.size)


def weighted_sums(step_scores: np.ndarray | SparseScores, weights: np.ndarray, groups: int) -> np.ndarray:
    """``sum_b sum_t w_{b,t} s^b_t`` ``(G, D)`` over ``groups`` of consecutive trajectories, for
    weights ``(N, H)``, or ``(N, 1)`` the same at every step (then from the score sums
    ``sum_t s_t``); sparse per-step weights by :func:`mapg_verify.exact.kernels.weighted_sums`."""
    sparse = isinstance(step_scores, SparseScores)
    if weights.shape[1] == 1:
        step_scores = step_scores.sums if sparse else step_scores.sum(axis=1)
    elif sparse:
        columns, values, widths = step_scores.columns, step_scores.values, step_scores.widths
        return kernels.weighted_sums(columns, values, widths, np.ascontiguousarray(weights), groups, step_scores.size)
    per = len(weights) * weights.shape[1] // groups
    return (weights.reshape(groups, 1, per) @ step_scores.reshape(groups, per, -1))[:, 0]


def dice_products(
    layout: Layout,
    trajectories: Trajectories,
    step_scores: np.ndarray | SparseScores,
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
    lam = 1.0 if causal else 0.0
    if isinstance(step_scores, SparseScores):  # W_t: the rewards' tail sums G_t (causal), else gamma^t r_t
        return _sparse_products(step_scores, to_go, lam, group, baseline)
    rewards = step_rewards(to_go) if causal else to_go  # (N, H, n)
    products = _own_weighted_products(layout, rewards, step_scores, lam, False, group)
    if baseline is not None:
        products = products - _own_weighted_products(layout, baseline, step_scores, 0.0, False, group)
    return products


def loaded_products(
    layout: Layout, advantages: np.ndarray, step_scores: np.ndarray | SparseScores, lam: float, group: int = 1
) -> np.ndarray:
    """What Loaded DiCE (Farquhar et al. 2019) adds to the pathwise Jacobian, summed over groups of
    ``group``: its objective ``sum_t (box(w_t) - box(w_t - log pi_t)) A_t`` with the discounted
    dependencies ``w_t = sum_{t' <= t} lam^(t-t') log pi_t'`` gives agent ``k``'s rows
    ``sum_t A^k_t (c^k_t c_t^T - e^k_t e_t^T)``, ``c_t = grad w_t``, ``e_t = c_t - s_t = lam c_{t-1}``
    (``lam = 1`` and ``A_t = G_t``: DiCE's products). Sparse scores: in one pass, as
    ``c_t c_t^T - e_t e_t^T = s_t c_t^T + lam c_{t-1} s_t^T``."""
    if isinstance(step_scores, SparseScores):
        return _sparse_products(step_scores, advantages, lam, group)
    return _own_weighted_products(layout, advantages, step_scores, lam, False, group) - _own_weighted_products(
        layout, advantages, step_scores, lam, True, group
    )


def _own_weighted_products(
    layout: Layout, weights: np.ndarray, step_scores: np.ndarray, lam: float, exclusive: bool, group: int
) -> np.ndarray:
    """``sum_t w^k_t v^k_t v_t^T`` on agent ``k``'s rows, summed over groups of ``group``, with
    ``v_t = c_t``, ``c_t = lam c_{t-1} + s_t`` (``lam = 0``: the step's score), or with
    ``exclusive`` ``v_t = c_t - s_t``."""
    vectors = _decayed(step_scores, lam)
    if exclusive:
        vectors = vectors - step_scores
    n, horizon, size = vectors.shape
    weighted = np.empty_like(vectors)
    for k in range(len(layout.shapes)):  # agent k's weight on its own rows
        weighted[:, :, layout.slice(k)] = weights[:, :, k, None] * vectors[:, :, layout.slice(k)]
    weighted = weighted.reshape(n // group, group * horizon, size)
    return np.swapaxes(weighted, 1, 2) @ vectors.reshape(n // group, group * horizon, size)


def _sparse_products(
    step_scores: SparseScores, tails: np.ndarray, lam: float, group: int, less: np.ndarray | None = None
) -> np.ndarray:
    """:func:`mapg_verify.exact.kernels.products` on ``W = tails``: the tail sums of ``w`` with
    ``lam = 1`` give the products ``sum_t w_t c_t c_t^T``, ``W = w`` Loaded DiCE's difference; minus
    ``sum_t less^k_t s^k_t s_t^T`` with ``less`` (a baseline's term)."""
    columns, values, widths, owner = step_scores.columns, step_scores.values, step_scores.widths, step_scores.owner
    tails, less = np.ascontiguousarray(tails), np.ascontiguousarray(np.zeros((0, 0, 0)) if less is None else less)
    return kernels.products(columns, values, widths, owner, tails, lam, less, group, len(owner))


def _decayed(step_scores: np.ndarray, lam: float) -> np.ndarray:
    """``c_t = lam c_{t-1} + s_t`` along axis 1 (``lam = 1``: the cumulative sum; 0: the scores)."""
    if lam == 1.0:
        return np.cumsum(step_scores, axis=1)
    if lam == 0.0:
        return step_scores
    cumulative = np.empty_like(step_scores)
    running = np.zeros_like(step_scores[:, 0])
    for t in range(step_scores.shape[1]):
        running = lam * running + step_scores[:, t]
        cumulative[:, t] = running
    return cumulative


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
