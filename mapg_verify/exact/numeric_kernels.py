"""Compiled kernels (numba) of the numeric backend (:mod:`mapg_verify.exact.numeric`): a point's tables,
its gradient and the elementwise parts of its Hessian-vector products, one pass each.

- :func:`tables`: for flat parameters ``x``, per state ``s`` and joint action ``a`` (agent ``k``
  plays ``a^k``, reads the row ``theta^k[views[k, s]]``): ``u[s, a] = prod_k pi^k(a^k | s)``; over
  the ``m`` local parameters, agent ``k``'s part of ``g = grad log u`` and the block of ``h = hess
  log u`` in closed form (softmax: ``e_a - pi`` and ``pi pi^T - diag(pi)``; sigmoid, ``pi_0 =
  sigmoid(theta)``: ``pi_1`` or ``-pi_0``, and ``-pi_0 pi_1``, as :mod:`mapg_verify.problem.policies`
  states them); ``P_u``, ``r^k_u`` and, for an infinite horizon, ``M = I - gamma P_u``. It replaces
  the policy's evaluation through autograd's wrappers and about twenty small numpy calls;
- :func:`gradient`: ``dV^k/dx = E^T sum_t d_t[s] sum_a u Q^k_t g``;
- :func:`directions` and :func:`assembled`: around the two solves and the products with ``P``, which
  stay in BLAS, the Hessian-vector products' elementwise work (:func:`~mapg_verify.exact.numeric.xi_vjp`).

They run from :data:`~mapg_verify.exact.kernels.MIN_STATES` states, with numba, unless
``MAPG_VERIFY_KERNELS=numpy`` (:func:`enabled`); the numpy path gives the same figures to rounding.
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


def _gradient(index, u, g, q, d, out):
    steps, n, n_states, n_actions = q.shape
    for k in range(n):
        for s in range(n_states):
            for a in range(n_actions):
                weight = 0.0
                for t in range(steps):
                    weight += d[t, s] * q[t, k, s, a]
                weight *= u[s, a]
                for e in range(index.shape[1]):
                    out[k, index[s, e]] += weight * g[s, a, e]


def _directions(w, index, owner, u, g, q, d, gamma, du, rhs, weighted):
    n, r, n_states, n_actions = du.shape
    for k in range(n):
        for j in range(r):
            for s in range(n_states):
                for a in range(n_actions):
                    total = 0.0
                    for e in range(index.shape[1]):
                        if owner[e] == k:
                            total += w[j, index[s, e]] * g[s, a, e]
                    value = u[s, a] * total
                    du[k, j, s, a] = value
                    rhs[k, j, s] += value * q[k, s, a]
                    weighted[k, j, s, a] = gamma * d[s] * value


def _assembled(w, index, owner, u, g, h, q, d, du, pushed, occupied, out):
    n, r, n_states, n_actions = du.shape
    m = index.shape[1]
    y, curvature, local = np.empty(m), np.empty((m, m)), np.empty(m)
    for k in range(n):
        for s in range(n_states):
            y[:], curvature[:, :] = 0.0, 0.0
            for a in range(n_actions):
                uq = u[s, a] * q[k, s, a]
                for e in range(m):
                    y[e] += uq * g[s, a, e]
                    for f in range(m):
                        curvature[e, f] += uq * h[s, a, e, f]
            for j in range(r):
                for f in range(m):
                    local[f] = w[j, index[s, f]] if owner[f] == k else 0.0
                for a in range(n_actions):
                    weight = d[s] * (du[k, j, s, a] * q[k, s, a] + u[s, a] * pushed[k, j, s, a])
                    for e in range(m):
                        out[j, index[s, e]] += weight * g[s, a, e]
                for e in range(m):
                    total = 0.0
                    for f in range(m):
                        total += curvature[e, f] * local[f]
                    out[j, index[s, e]] += d[s] * total + occupied[k, j, s] * y[e]


@functools.cache
def _compiled():
    """The kernels, compiled (or loaded from numba's cache) on first use."""
    return kernels.jitted([_fill, _gradient, _directions, _assembled])


def enabled(structure) -> bool:
    """Whether ``structure``'s points are computed here: the numeric kernels run on its game
    (:func:`~mapg_verify.exact.kernels.numeric_enabled`) and its policy has closed forms here."""
    return structure.policy.name in KINDS and kernels.numeric_enabled(structure.game.n_states)


def tables(structure, x: np.ndarray, order: int) -> tuple[np.ndarray | None, ...]:
    """``(u, g, h, P_u, r_u, M)`` at ``x``: ``g`` from ``order`` 1 and ``h`` at ``order`` 2 (else
    ``None``), ``M = I - gamma P_u`` for an infinite horizon (else ``None``)."""
    game = structure.game
    S, A = structure.transitions.shape[:2]
    m = structure.index.shape[1]
    u, transition, reward = np.empty((S, A)), np.empty((S, S)), np.zeros((game.n_agents, S))
    g = np.empty((S, A, m) if order else (0, 0, 0))
    h = np.zeros((S, A, m, m) if order > 1 else (0, 0, 0, 0))
    matrix = np.empty((S, S) if game.infinite else (0, 0))
    kind, rows = KINDS[structure.policy.name], structure.rows
    arrays = (u, g, h, transition, reward, matrix)
    _compiled()["_fill"](kind, x, *rows, structure.transitions, structure.rewards, float(game.gamma), order, *arrays)
    return u, g if order else None, h if order > 1 else None, transition, reward, matrix if game.infinite else None


def gradient(index, u, g, q, d, size: int) -> np.ndarray:
    """``dV^k/dx (n, D) = E^T sum_t d_t[s] sum_a u Q^k_t g`` (:func:`mapg_verify.exact.numeric.gradient`)."""
    out = np.zeros((q.shape[1], size))
    _compiled()["_gradient"](index, u, g, q, d, out)
    return out


def directions(w, index, owner, u, g, q, d, gamma: float):
    """The Hessian-vector products' directions at an infinite-horizon point of the numeric backend
    (:func:`mapg_verify.exact.numeric.xi_vjp`): along agent ``k``'s rows of ``w (r, D)``, ``du (n, r,
    S, A)``, the right side ``sum_a du q^k (n, r, S)`` and ``gamma d du (n, r, S, A)``."""
    n, r, (n_states, n_actions) = len(q), len(w), u.shape
    du, rhs, weighted = (
        np.empty((n, r, n_states, n_actions)),
        np.zeros((n, r, n_states)),
        np.empty((n, r, n_states, n_actions)),
    )
    _compiled()["_directions"](w, index, owner, u, g, q, d, float(gamma), du, rhs, weighted)
    return du, rhs, weighted


def assembled(w, index, owner, u, g, h, q, d, du, pushed, occupied, size: int) -> np.ndarray:
    """``sum_k hess V^k w_k (r, D)`` from :func:`directions`, ``pushed = gamma P d v (n, r, S, A)`` and
    ``occupied = d d (n, r, S)`` (see :func:`mapg_verify.exact.numeric.xi_vjp`)."""
    out = np.zeros((len(w), size))
    _compiled()["_assembled"](w, index, owner, u, g, h, q, d, du, pushed, occupied, out)
    return out
