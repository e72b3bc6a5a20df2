"""The numeric backend's tables at a point, in one compiled pass: the joint policy and the averaged dynamics.

For flat parameters ``x``, per state ``s`` and joint action ``a`` (agent ``k`` plays ``a^k``, reads
the row ``theta^k[views[k, s]]``): ``u[s, a] = prod_k pi^k(a^k | s)``; over the ``m`` local
parameters, agent ``k``'s part of ``g[s, a] = grad log u`` and the block of ``h[s, a] = hess log u``
in closed form (softmax: ``e_a - pi`` and ``pi pi^T - diag(pi)``; sigmoid, ``pi_0 = sigmoid(theta)``:
``pi_1`` or ``-pi_0``, and ``-pi_0 pi_1``, as :mod:`mapg_verify.problem.policies` states them);
``P_u[s] = sum_a u[s, a] P[s, a]``, ``r^k_u[s] = sum_a u[s, a] R^k[s, a]`` and, for an infinite
horizon, ``M = I - gamma P_u``. It replaces, from :data:`~mapg_verify.exact.kernels.MIN_STATES`
states, the policy's evaluation through autograd's wrappers and about twenty small numpy calls
(:func:`mapg_verify.exact.numeric.local_policy`, the numpy path, gives the same figures to rounding).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from mapg_verify.exact import kernels

KINDS = {"softmax": 0, "sigmoid": 1}  # the policies with closed forms here; others stay in numpy


def _fill(kind, x, offsets, widths, views, actions, transitions, rewards, gamma, order,
          u, g, h, transition, reward, matrix):  # fmt: skip
    n_states, n_joint = u.shape
    n = len(offsets)
    probs, start = np.empty((n, widths.max() + 1)), np.zeros(n, dtype=np.int64)
    for k in range(1, n):
        start[k] = start[k - 1] + widths[k - 1]
    for s in range(n_states):
        for k in range(n):
            row = offsets[k] + views[k, s] * widths[k]
            if kind == 1:
                probs[k, 0] = 1.0 / (1.0 + math.exp(-x[row]))
                probs[k, 1] = 1.0 / (1.0 + math.exp(x[row]))
            else:
                top, total = x[row], 0.0
                for e in range(1, widths[k]):
                    top = max(top, x[row + e])
                for e in range(widths[k]):
                    probs[k, e] = math.exp(x[row + e] - top)
                    total += probs[k, e]
                for e in range(widths[k]):
                    probs[k, e] /= total
        for a in range(n_joint):
            value = 1.0
            for k in range(n):
                b, c = actions[k, a], start[k]
                value *= probs[k, b]
                if order and kind == 1:
                    g[s, a, c] = probs[k, 1] if b == 0 else -probs[k, 0]
                    if order == 2:
                        h[s, a, c, c] = -probs[k, 0] * probs[k, 1]
                elif order:
                    for e in range(widths[k]):
                        g[s, a, c + e] = (1.0 if e == b else 0.0) - probs[k, e]
                        for f in range(widths[k] if order == 2 else 0):
                            h[s, a, c + e, c + f] = probs[k, e] * probs[k, f] - (probs[k, e] if e == f else 0.0)
            u[s, a] = value
            for k in range(len(rewards)):
                reward[k, s] += value * rewards[k, s, a]
        for t in range(n_states):
            transition[s, t] = 0.0
        for a in range(n_joint):
            for t in range(n_states):
                transition[s, t] += u[s, a] * transitions[s, a, t]
        if matrix.shape[0]:
            for t in range(n_states):
                matrix[s, t] = -gamma * transition[s, t]
            matrix[s, s] += 1.0


@functools.cache
def _compiled():
    """The kernel, compiled (or loaded from numba's cache) on first use."""
    return kernels._numba().njit(cache=True, nogil=True)(_fill)


def enabled(structure) -> bool:
    """Whether ``structure``'s tables are built here: the numeric kernels run on its game
    (:func:`~mapg_verify.exact.kernels.numeric_enabled`) and its policy has closed forms here."""
    return structure.policy.name in KINDS and kernels.numeric_enabled(structure.game.n_states)


def tables(structure, x: np.ndarray, order: int):
    """``(u, g, h, P_u, r_u, M)`` at ``x``: ``g`` from ``order`` 1 and ``h`` at ``order`` 2 (else
    ``None``), ``M = I - gamma P_u`` for an infinite horizon (else ``None``)."""
    game = structure.game
    S, A = structure.transitions.shape[:2]
    m = structure.index.shape[1]
    u, transition, reward = np.empty((S, A)), np.empty((S, S)), np.zeros((game.n_agents, S))
    g = np.empty((S, A, m) if order else (0, 0, 0))
    h = np.zeros((S, A, m, m) if order > 1 else (0, 0, 0, 0))
    matrix = np.empty((S, S) if game.infinite else (0, 0))
    _compiled()(
        KINDS[structure.policy.name],
        x,
        *structure.rows,
        structure.transitions,
        structure.rewards,
        float(game.gamma),
        order,
        u,
        g,
        h,
        transition,
        reward,
        matrix,
    )
    return u, g if order else None, h if order > 1 else None, transition, reward, matrix if game.infinite else None
