"""Compiled kernels (numba) of :mod:`mapg_verify.exact.baselines` on sampled batches: one pass over
the trajectories each, with the arithmetic of the numpy functions there in the same order, so the
same figures bit for bit.

- :func:`advantages`: GAE ``A^k_t = delta^k_t + gamma lam A^k_{t+1}`` with
  ``delta^k_t = r^k_t + gamma V^k_{t+1} - V^k_t`` (``V_H = A_H = 0``) and ``V^k_t = table[g, t, s_t, k]``
  read along trajectory ``n`` of group ``g = n // (N / G)``; without a table, the returns from ``t``
  ``R^k_t = r^k_t + gamma R^k_{t+1}`` (:func:`mapg_verify.exact.baselines.returns_from_t`);
- :func:`linear_statistics`: the linear fit's counts and target sums per batch
  (:func:`mapg_verify.exact.baselines.linear_statistics`), the as-shipped targets read in place.

Like :mod:`mapg_verify.exact.kernels` they run where :func:`mapg_verify.exact.kernels.enabled` says so.
"""

from __future__ import annotations

import functools

import numpy as np

from mapg_verify.exact import kernels
from mapg_verify.problem.game import Game


def _advantages(states, actions, rewards, strides, table, gamma, factor, out):
    count, horizon, n = out.shape
    valued = table.shape[0] > 0
    per = count // table.shape[0] if valued else count
    for b in range(count):
        g = b // per
        for k in range(n):
            running, following = 0.0, 0.0
            for t in range(horizon - 1, -1, -1):
                state, joint = states[b, t], 0
                for q in range(n):
                    joint += actions[b, t, q] * strides[q]
                value = table[g, t, state, k] if valued else 0.0
                running = (rewards[k, state, joint] + gamma * following - value) + factor * running
                out[b, t, k] = running
                following = value
    return out


def _linear_statistics(states, targets, size, shipped, counts, sums):
    count, horizon, n = targets.shape
    for b in range(count):
        g, j = b // size, b % size
        for t in range(horizon):
            state, source, step = states[b, t], b, t
            if shipped:  # the batch-major target at flat index t K + b
                flat = t * size + j
                source, step = g * size + flat // horizon, flat % horizon
            counts[g, t, state] += 1.0
            for k in range(n):
                sums[g, t, state, k] += targets[source, step, k]


@functools.cache
def _compiled():
    return kernels.jitted([_advantages, _linear_statistics])


def advantages(game: Game, states: np.ndarray, actions: np.ndarray, table: np.ndarray | None, lam: float = 1.0):
    """GAE advantages ``(N, H, n)`` on the values ``table (G, H, S, n)`` along trajectories ``states
    (N, H)``, ``actions (N, H, n)``; with ``table = None``, the returns from ``t``."""
    n, joint = game.n_agents, int(np.prod(game.n_actions))
    strides = np.array([int(np.prod(game.n_actions[k + 1 :])) for k in range(n)])
    rewards = np.ascontiguousarray(game.rewards.reshape(n, game.n_states, joint))
    table = np.zeros((0, 0, 0, 0)) if table is None else np.ascontiguousarray(table)
    out = np.empty((*states.shape, n))
    return _compiled()["_advantages"](states, actions, rewards, strides, table, game.gamma, game.gamma * lam, out)


def linear_statistics(n_states: int, states: np.ndarray, returns: np.ndarray, size: int, shipped: bool):
    """Counts ``(G, H, S)`` and target sums ``(G, H, S, n)`` of batches of ``size`` consecutive
    trajectories ``states (N, H)`` with returns ``(N, H, n)``, the targets those returns (``shipped``:
    as the as-shipped fit reads them, :func:`mapg_verify.exact.baselines.shipped_targets`)."""
    groups, horizon = len(states) // size, states.shape[1]
    counts = np.zeros((groups, horizon, n_states))
    sums = np.zeros((groups, horizon, n_states, returns.shape[-1]))
    _compiled()["_linear_statistics"](states, np.ascontiguousarray(returns), size, shipped, counts, sums)
    return counts, sums
