"""Baselines and advantages of a batch of trajectories, and the exact state values they may use.

All in "from t" units, per agent ``k``, step ``t`` and trajectory ``b`` of a batch of ``K``:
the return ``R^k_t = sum_{t' >= t} gamma^(t'-t) r^k_t'`` (the official Meta-MAPG ``get_return``) and
a baseline ``b^k_t``:

- ``none``: 0;
- ``value``: the exact state value ``V^k_t(s_t) = E[R^k_t | s_t]`` of the policy that drew the batch
  (finite horizon ``H``, by backward recursion), the ideal of the official code's value network;
- ``linear``: a ridge fit on the official ``LinearFeatureBaseline``'s features
  ``x(b, t) = (onehot(s_t), onehot(s_t)^2, t/100, (t/100)^2, (t/100)^3, 1)`` over the batch's
  ``(b, t)``, regularised by ``1e-5`` (Duan et al. 2016), predicting ``x(b, t) . w``. Fit
  ``aligned``: ``w`` regresses ``R^k_t(b)`` on ``x(b, t)``. Fit ``as-shipped`` (the official
  ``meta/linear_baseline.py``, whose features are flattened time-major, row ``t K + b``, and its
  returns batch-major, row ``b H + t``): ``x(b, t)`` is regressed on the return at flat index
  ``t K + b`` of the batch-major returns, another trajectory's and step's unless ``K = 1`` or
  ``H = 1``; the prediction is ordered correctly. That fit depends on the batch's order, so exact
  expectations enumerate ordered batches (:func:`ordered_fit`);
- ``batch-mean``: ``mean_b' R^k_t(b')``; ``leave-one-out``: ``mean_{b' != b} R^k_t(b')``.

The advantage is GAE (Schulman et al. 2016) with these values,
``A_t = sum_l (gamma lambda)^l delta_{t+l}``, ``delta_t = r_t + gamma b_{t+1} - b_t``, ``b_H = 0``;
``lambda = 1`` gives ``R_t - b_t``, and without a baseline it is ``R_t`` whatever ``lambda``.
"From zero" terms weight step ``t`` by ``gamma^t A_t`` (for ``lambda = 1``: ``G_t - gamma^t b_t``
with ``G_t`` the discounted reward-to-go of :mod:`mapg_verify.exact.enumeration`).
"""

from __future__ import annotations

import numpy as np

from mapg_verify.exact.enumeration import Trajectories, rewards_of
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import Layout
from mapg_verify.problem.policies import Policy

BATCH_BASELINES = ("linear", "batch-mean", "leave-one-out")  # functions of the batch's returns
RIDGE = 1e-5  # the official LinearFeatureBaseline's reg_coeff


def ordered_fit(kind: str, fit: str, size: int, horizon: int) -> bool:
    """Whether a baseline fitted on batches of ``size`` trajectories of ``horizon`` steps depends on
    their order (the as-shipped linear fit with ``K, H >= 2``); the others depend on the multiset."""
    return kind == "linear" and fit == "as-shipped" and size > 1 and horizon > 1


def shipped_targets(returns: np.ndarray) -> np.ndarray:
    """The as-shipped fit's targets ``(G, K H, n)`` of returns ``(G, K, H, n)``: at feature row
    ``b H + t``, the batch-major flat return at index ``t K + b``."""
    groups, size, horizon = returns.shape[:3]
    flat = returns.reshape(groups, size * horizon, -1)
    index = np.arange(horizon)[None, :] * size + np.arange(size)[:, None]  # (K, H): t K + b
    return flat[:, index.ravel()]


def discounts(game: Game, horizon: int) -> np.ndarray:
    """``gamma^t`` for ``t < H``."""
    return game.gamma ** np.arange(horizon, dtype=float)


def returns_from_t(game: Game, rewards: np.ndarray) -> np.ndarray:
    """``R_t = r_t + gamma R_{t+1}`` along axis ``-2`` of ``rewards (..., H, n)``."""
    return _backwards(rewards, game.gamma)


def gae(game: Game, rewards: np.ndarray, values: np.ndarray, lam: float) -> np.ndarray:
    """GAE advantages ``(..., H, n)`` from rewards and values of the same shape (``V_H = 0``)."""
    following = np.concatenate([values[..., 1:, :], np.zeros_like(values[..., :1, :])], axis=-2)
    delta = rewards + game.gamma * following - values
    return _backwards(delta, game.gamma * lam)


def _backwards(terms: np.ndarray, factor: float) -> np.ndarray:
    """``x_t = terms_t + factor x_{t+1}`` along axis ``-2`` (``x_H = 0``), over a time-major copy
    (contiguous steps)."""
    steps = np.moveaxis(terms, -2, 0).copy()
    running = np.zeros_like(steps[0])
    for t in reversed(range(len(steps))):
        running = steps[t] + factor * running
        steps[t] = running
    return np.moveaxis(steps, 0, -2)


def fitted_values(kind: str, game: Game, trajectories: Trajectories, size: int, fit: str = "aligned") -> np.ndarray:
    """The baseline ``b_t`` ``(N, H, n)`` of each trajectory, fitted on consecutive batches of ``size``
    (the linear baseline's ``fit``: ``aligned`` or ``as-shipped``)."""
    n, horizon = trajectories.states.shape
    returns = returns_from_t(game, rewards_of(game, trajectories.states, trajectories.actions))
    groups = n // size
    fitted = batch_baseline(
        kind, game, trajectories.states.reshape(groups, size, horizon), returns.reshape(groups, size, horizon, -1), fit
    )
    return fitted.reshape(returns.shape)


def trajectory_values(
    game: Game, policy: Policy, layout: Layout, trajectories: Trajectories, phi, gradients: bool = False
):
    """``V_t(s_t)`` ``(N, H, n)`` along each trajectory, trajectory ``n`` drawn at row
    ``n // (N / G)`` of ``phi (G, D)``; with ``gradients`` also ``dV_t(s_t)/dphi`` ``(N, H, n, D)``."""
    phi = np.atleast_2d(phi)
    n, horizon = trajectories.states.shape
    at = (np.arange(n) // (n // len(phi)))[:, None]
    steps = np.arange(horizon)[None, :]
    found = state_values(game, policy, layout, phi, horizon, gradients)
    if not gradients:  # one flat gather: (g, t, s_t) -> (g H + t) S + s_t
        flat = (at * horizon + steps) * game.n_states + trajectories.states
        return np.take(found.reshape(-1, found.shape[-1]), flat, axis=0)
    values, derivatives = found
    return values[at, steps, trajectories.states], derivatives[at, steps, trajectories.states]


def batch_baseline(kind: str, game: Game, states: np.ndarray, returns: np.ndarray, fit: str = "aligned") -> np.ndarray:
    """A baseline fitted on each batch: ``states (G, K, H)`` and returns ``(G, K, H, n)`` to values
    of the same shape, for ``kind`` in :data:`BATCH_BASELINES` (``fit``: the linear one's)."""
    if kind == "batch-mean":
        return np.broadcast_to(returns.mean(axis=1, keepdims=True), returns.shape).copy()
    if kind == "leave-one-out":
        size = returns.shape[1]
        return (returns.sum(axis=1, keepdims=True) - returns) / (size - 1)
    targets = shipped_targets(returns) if fit == "as-shipped" else returns.reshape(len(returns), -1, returns.shape[-1])
    counts, sums = linear_statistics(game.n_states, states, targets.reshape(returns.shape))
    table = linear_table(states.shape[1], counts, sums)
    return table.reshape(-1, returns.shape[-1])[_cells(game.n_states, states)].reshape(returns.shape)


def _cells(n_states: int, states: np.ndarray) -> np.ndarray:
    """The flat index ``(g H + t) S + s_t`` of each ``(g, b, t)`` of ``states (G, K, H)``, raveled."""
    groups, _, horizon = states.shape
    return ((np.arange(groups)[:, None, None] * horizon + np.arange(horizon)) * n_states + states).ravel()


def linear_statistics(n_states: int, states: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the linear fit needs of each batch of ``states (G, K, H)`` and targets ``y (G, K, H, n)``:
    the count ``N[g, t, s]`` of ``s_t = s`` over the batch and the sum of ``y(b, t)`` over those ``b``
    ``(G, H, S, n)``, accumulated in the order of the ``(g, b, t)``."""
    groups, _, horizon = states.shape
    at, cells, agents = _cells(n_states, states), groups * horizon * n_states, targets.shape[-1]
    counts = np.bincount(at, minlength=cells).reshape(groups, horizon, n_states).astype(float)
    flat = targets.reshape(-1, agents)
    sums = np.stack([np.bincount(at, flat[:, k], minlength=cells) for k in range(agents)], axis=-1)
    return counts, sums.reshape(groups, horizon, n_states, agents)


def linear_table(size: int, counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """The ridge fit's prediction ``x(b, t) . w`` at each step and state ``(G, H, S, n)``, from
    :func:`linear_statistics` of batches of ``size``: ``w = (X^T X + 1e-5 I)^-1 X^T y`` without
    forming ``X``. With ``p(t) = (t/100, (t/100)^2, (t/100)^3, 1)`` (rows of ``P``), ``X^T X`` has
    the blocks ``diag(sum_t N[t])`` (four times: the one-hot columns are there twice), ``N^T P`` and
    ``K P^T P``, ``X^T y`` the blocks ``sum_t sums[t]`` (twice) and ``P^T sum_s sums``; the prediction
    at ``(t, s)`` is ``w_s + w_{S+s} + p(t) . w_p``."""
    groups, horizon, n_states = counts.shape
    time = np.arange(horizon, dtype=float) / 100.0
    polynomial = np.stack([time, time**2, time**3, np.ones(horizon)], axis=-1)  # P (H, 4)
    one_hot = np.arange(2 * n_states) % n_states  # the state of each one-hot column
    cross = (np.swapaxes(counts, 1, 2) @ polynomial)[:, one_hot]  # N^T P (G, 2S, 4)
    diagonal = one_hot[:, None] == one_hot[None, :]
    gram = np.zeros((groups, 2 * n_states + 4, 2 * n_states + 4))
    gram[:, : 2 * n_states, : 2 * n_states] = diagonal * counts.sum(axis=1)[:, None, one_hot]
    gram[:, : 2 * n_states, 2 * n_states :] = cross
    gram[:, 2 * n_states :, : 2 * n_states] = np.swapaxes(cross, 1, 2)
    gram[:, 2 * n_states :, 2 * n_states :] = size * (polynomial.T @ polynomial)
    gram += RIDGE * np.eye(2 * n_states + 4)
    by_time = polynomial.T @ sums.sum(axis=2)  # P^T sum_s sums (G, 4, n)
    weights = np.linalg.solve(gram, np.concatenate([sums.sum(axis=1)[:, one_hot], by_time], axis=1))
    trend = polynomial @ weights[:, 2 * n_states :]  # p(t) . w_p (G, H, n)
    return (weights[:, :n_states] + weights[:, n_states : 2 * n_states])[:, None] + trend[:, :, None]


def joint_policy(game: Game, policy: Policy, layout: Layout, phi: np.ndarray) -> np.ndarray:
    """The joint action's probabilities ``prod_k pi^k(a^k | s)`` ``(G, S, A)`` at rows ``phi (G, D)``,
    ``A = prod_k A_k`` (agent 0's action most significant)."""
    count, agents = len(phi), game.n_agents
    joint = np.ones((count, game.n_states, *game.n_actions))
    for k, shape in enumerate(layout.shapes):
        theta = phi[:, layout.slice(k)].reshape(count, *shape)
        axes = [1] * agents
        axes[k] = game.n_actions[k]
        probs = np.exp(policy.log_probs(theta))[:, game.views[k]]  # (G, S, A_k)
        joint = joint * probs.reshape(count, game.n_states, *axes)
    return joint.reshape(count, game.n_states, -1)


def state_values(game: Game, policy: Policy, layout: Layout, phi, horizon: int, gradients: bool = False):
    """``V^k_t(s)`` ``(G, H, S, n)`` at rows ``phi (G, D)`` by backward recursion over the finite
    horizon; with ``gradients``, also ``dV^k_t(s)/dphi`` ``(G, H, S, n, D)``, by the same recursion
    on ``grad V_t(s) = sum_a pi(a|s) (grad log pi(a|s) Q_t(s, a) + gamma sum_s' P(s'|s,a) grad V_{t+1}(s'))``."""
    phi = np.atleast_2d(np.asarray(phi, dtype=float))
    count, n_states, agents = len(phi), game.n_states, game.n_agents
    actions = game.n_actions
    joint_flat = joint_policy(game, policy, layout, phi)  # (G, S, A)
    scores = np.zeros((count, n_states, *actions, layout.size))
    for k, shape in enumerate(layout.shapes if gradients else ()):
        theta = phi[:, layout.slice(k)].reshape(count, *shape)
        rows, width = game.views[k], int(np.prod(shape[1:]))  # (S,)
        axes = [1] * agents
        axes[k] = actions[k]
        local = policy.scores(theta)[:, rows].reshape(count, n_states, actions[k], width)
        placed = np.zeros((count, n_states, actions[k], shape[0], width))
        placed[:, np.arange(n_states), :, rows] = np.moveaxis(local, 1, 0)
        block = placed.reshape(count, n_states, *axes, shape[0] * width)
        scores[..., layout.slice(k)] += block
    transitions = game.transitions.reshape(n_states, -1, n_states)  # (S, A, S')
    rewards = np.moveaxis(game.rewards.reshape(agents, n_states, -1), 0, -1)  # (S, A, n)
    score_flat = scores.reshape(count, n_states, -1, layout.size)
    values, value_grads = [], []
    following = np.zeros((count, n_states, agents))
    following_grad = np.zeros((count, n_states, agents, layout.size))
    successors = transitions.reshape(n_states * transitions.shape[1], n_states)  # (S A, S')
    for _ in range(horizon):
        ahead = (successors @ following).reshape(count, n_states, -1, agents)  # sum_s' P(s'|s, a) V(s')
        q = rewards[None] + game.gamma * ahead
        if gradients:
            carried = game.gamma * np.einsum("sap,gpkd->gsakd", transitions, following_grad)
            inner = score_flat[:, :, :, None, :] * q[..., None] + carried
            following_grad = np.einsum("gsa,gsakd->gskd", joint_flat, inner)
            value_grads.append(following_grad)
        following = (joint_flat[:, :, None, :] @ q)[:, :, 0, :]
        values.append(following)
    values = np.stack(values[::-1], axis=1)
    if not gradients:
        return values
    return values, np.stack(value_grads[::-1], axis=1)
