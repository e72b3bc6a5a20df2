"""Compiled kernels (numba) of :mod:`mapg_verify.exact.baselines` on sampled batches: one pass over
the trajectories each, with the arithmetic of the numpy functions there in the same order, so the
same figures bit for bit.

- :func:`advantages`: GAE (of chosen agents) ``A^k_t = delta^k_t + gamma lam A^k_{t+1}`` with
  ``delta^k_t = r^k_t + gamma V^k_{t+1} - V^k_t`` (``V_H = A_H = 0``) and ``V^k_t = table[g, t, s_t, k]``
  read along trajectory ``n`` of group ``g = n // (N / G)``; without a table, the returns from ``t``
  ``R^k_t = r^k_t + gamma R^k_{t+1}`` (:func:`mapg_verify.exact.baselines.returns_from_t`);
- :func:`linear_statistics`: the linear fit's counts and target sums per batch
  (:func:`mapg_verify.exact.baselines.linear_statistics`) on the returns from ``t``, taken batch by
  batch in the same pass (by :func:`advantages`' kernel), the as-shipped targets read in place;
- :func:`state_values`: the exact state values ``V^k_t(s) = sum_a pi(a|s) (r^k(s, a) + gamma sum_s'
  P(s'|s, a) V^k_{t+1}(s'))`` (:func:`mapg_verify.exact.baselines.state_values`; sums over ``a`` and
  ``s'`` in another order than numpy's products, so equal up to rounding).

Like :mod:`mapg_verify.exact.kernels` they run where :func:`mapg_verify.exact.kernels.enabled` says so.
"""

from __future__ import annotations

import functools

import numpy as np

from mapg_verify.exact import kernels
from mapg_verify.problem.game import Game


def _advantages(states, actions, rewards, strides, table, gamma, factor, agents, out):
    count, horizon, m = out.shape
    n, valued = actions.shape[2], table.shape[0] > 0
    per = count // table.shape[0] if valued else count
    for b in range(count):
        g = b // per
        for j in range(m):  # V^k_{t+1} and A^k_{t+1} carried back from step t + 1
            k, following, later = agents[j], 0.0, 0.0
            for t in range(horizon - 1, -1, -1):
                state, joint = states[b, t], 0
                for q in range(n):
                    joint += actions[b, t, q] * strides[q]
                value = table[g, t, state, k] if valued else 0.0
                later = (rewards[k, state, joint] + gamma * following - value) + factor * later
                following = value
                out[b, t, j] = later
    return out


def _linear_statistics(states, actions, rewards, strides, gamma, size, shipped, counts, sums):
    count, horizon = states.shape
    n = actions.shape[2]
    returns, agents, none = np.empty((size, horizon, n)), np.arange(n), np.zeros((0, 0, 0, 0))
    flat = returns.reshape(size * horizon, n)  # the batch's returns, batch-major: row j H + t
    for g in range(count // size):
        first = g * size  # the batch's returns from t, then its counts and sums
        _advantages(states[first : first + size], actions[first : first + size], rewards, strides, none, gamma,
                    gamma, agents, returns)  # fmt: skip
        for j in range(size):
            for t in range(horizon):
                state, row = states[first + j, t], t * size + j if shipped else j * horizon + t
                counts[g, t, state] += 1.0
                for k in range(n):
                    sums[g, t, state, k] += flat[row, k]


def _state_values(joint, transitions, rewards, gamma, out):
    groups, horizon, n_states, n = out.shape
    for g in range(groups):
        for t in range(horizon - 1, -1, -1):
            for s in range(n_states):
                for k in range(n):
                    total = 0.0
                    for a in range(joint.shape[2]):
                        ahead = 0.0
                        for following in range(n_states if t + 1 < horizon else 0):
                            ahead += transitions[s, a, following] * out[g, t + 1, following, k]
                        total += joint[g, s, a] * (rewards[s, a, k] + gamma * ahead)
                    out[g, t, s, k] = total
    return out


@functools.cache
def _compiled():
    advantages = kernels.jitted([_advantages])["_advantages"]
    globals()["_advantages"] = advantages  # so that the fit's statistics call it compiled
    return {"_advantages": advantages, **kernels.jitted([_linear_statistics, _state_values])}


def advantages(
    game: Game, states: np.ndarray, actions: np.ndarray, table: np.ndarray | None, lam: float = 1.0, agents=None
) -> np.ndarray:
    """GAE advantages ``(N, H, len(agents))`` of chosen agents (default: all ``n``) on the values
    ``table (G, H, S, n)`` along trajectories ``states (N, H)``, ``actions (N, H, n)``; with
    ``table = None``, the returns from ``t``."""
    rewards, strides = kernels.joint_rewards(game)
    table = np.zeros((0, 0, 0, 0)) if table is None else np.ascontiguousarray(table)
    agents = np.arange(game.n_agents) if agents is None else np.asarray(agents, dtype=np.int64)
    out = np.empty((*states.shape, len(agents)))
    arguments = (states, actions, rewards, strides, table, game.gamma, game.gamma * lam, agents, out)
    return _compiled()["_advantages"](*arguments)


def linear_statistics(game: Game, states: np.ndarray, actions: np.ndarray, size: int, shipped: bool):
    """Counts ``(G, H, S)`` and target sums ``(G, H, S, n)`` of batches of ``size`` consecutive
    trajectories ``states (N, H)``, ``actions (N, H, n)``, the targets their returns from ``t``
    (``shipped``: as the as-shipped fit reads them, :func:`mapg_verify.exact.baselines.shipped_targets`),
    taken batch by batch in the same pass."""
    groups, horizon = len(states) // size, states.shape[1]
    counts = np.zeros((groups, horizon, game.n_states))
    sums = np.zeros((groups, horizon, game.n_states, game.n_agents))
    rewards, strides = kernels.joint_rewards(game)
    _compiled()["_linear_statistics"](states, actions, rewards, strides, game.gamma, size, shipped, counts, sums)
    return counts, sums


def state_values(game: Game, joint: np.ndarray, horizon: int) -> np.ndarray:
    """``V^k_t(s)`` ``(G, H, S, n)`` under the joint policies ``joint (G, S, A)``
    (:func:`mapg_verify.exact.baselines.joint_policy`)."""
    n, n_states = game.n_agents, game.n_states
    transitions = np.ascontiguousarray(game.transitions.reshape(n_states, -1, n_states))
    rewards = np.ascontiguousarray(np.moveaxis(game.rewards.reshape(n, n_states, -1), 0, -1))  # (S, A, n)
    out = np.empty((len(joint), horizon, n_states, n))
    return _compiled()["_state_values"](np.ascontiguousarray(joint), transitions, rewards, game.gamma, out)
