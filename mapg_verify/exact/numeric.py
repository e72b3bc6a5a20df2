"""Exact values, gradients, the simultaneous Jacobian and its products by matrix calculus, in float64.

The numeric backend: the same :class:`~mapg_verify.exact.compiled.CompiledValues` as the
symbolic one, for games too large to build in closed form. It is exact up to rounding (no
sampling, no differences). The policy enters only through the joint action probabilities
``u[s, a] = prod_k pi^k(a^k | s)``, and ``V^k`` is a rational function of ``u``:

- infinite horizon: ``M = I - gamma P_u``, ``N = M^-1``; state values ``v^k = N r^k_u``,
  discounted occupancy ``d = rho0^T N``, ``V^k = rho0 . v^k``, action values
  ``Q^k = R^k + gamma P v^k``; ``dV^k / du[s, a] = d[s] Q^k[s, a]`` (the policy-gradient
  theorem) and ``d^2 V^k / du[s, a] du[s', a'] = d[s] (gamma P[s, a] N)[s'] Q^k[s', a'] + (the
  same with (s, a) and (s', a') swapped)``;
- finite horizon: the same per step, ``d_t = gamma^t rho0^T P_u^t``, ``Q^k_t = R^k + gamma P
  v^k_{t+1}``, summed over ``t``; ``N`` becomes the recursions ``x_t = b_t + gamma P_u x_{t+1}``
  (backward, values) and ``y_{t+1} = y_t gamma P_u + c_t`` (forward, occupancies).

With ``x`` the flat parameters and ``J = du/dx``: ``grad V = J^T dV/du`` and ``hess V = J^T
(d^2 V / du^2) J + sum_{s, a} dV/du[s, a] hess u[s, a]``, ``hess u = u (g g^T + h)`` with ``g`` and
``h`` the gradient and Hessian of ``log u``. ``J`` is sparse: ``u[s, .]`` depends only on the
rows ``theta^k[views[k, s]]``, so every product is taken state by state on those ``m = sum_k
|row^k|`` local parameters ``(s, e)`` and summed into ``x`` (``E^T``, a 0/1 matrix with one 1 per
local parameter, applied as a sorted segment sum).

- :func:`jacobian_rows`, the whole simultaneous Jacobian (LOLA, the identities): the middle term
  is ``Z + Z^T``, ``Z[(s, e), (s', e')] = X[(s, e), s'] y^k[s', e']`` with ``X = gamma diag(d)
  dP_u N`` and ``y^k = sum_a Q^k u g``; ``O(S^3 + S^2 D)`` per point.
- :func:`xi_vjp`, ``w^T d xi/dx = sum_k hess V^k (w on agent k's rows)``: Hessian-vector products,
  the directional derivatives of ``grad V^k`` (``d u``, ``d P_u``, ``d v = N (d r + gamma dP v)``,
  ``d d = gamma d dP N``); ``O(S^3)`` per point, so the model-E meta-gradient runs backwards
  through the inner loop (:func:`mapg_verify.exact.metagradient.expected_update`) at the cost of
  a few value evaluations.

``N`` is applied through one LU factorization per point (:class:`~mapg_verify.exact.linear.Solver`)
that the values and every adjoint solve of :func:`xi_vjp` share. From
:data:`~mapg_verify.exact.kernels.MIN_STATES` states, with numba, a point's tables (the policy's
closed forms, ``u``, ``P_u``, ``r_u``, ``M``), its gradient and the elementwise parts of its
Hessian-vector products run compiled (:mod:`mapg_verify.exact.numeric_kernels`); the numpy path
here gives the same figures to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg.blas

from mapg_verify.exact import numeric_kernels
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.linear import Solver
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import Layout, layout_of
from mapg_verify.problem.policies import Policy


@dataclass(frozen=True, eq=False)
class Structure:
    """What does not depend on ``x``: the game's arrays over joint actions ``a``; per state the flat
    indices ``index[s]`` of the ``m`` local parameters ``u[s, .]`` depends on (agent ``k``'s in
    ``parts[k]``); ``E^T`` as segment sums onto every parameter (``scatter``) or agent ``k``'s (``own``)."""

    game: Game
    policy: Policy
    layout: Layout
    transitions: np.ndarray  # (S, A, S)
    successors: np.ndarray  # (S', S A): P[s, a, s'] by s', contiguous, for gamma P v
    rewards: np.ndarray  # (n, S, A)
    index: np.ndarray  # (S, m)
    parts: tuple[slice, ...]
    owner: np.ndarray  # (m,): the agent whose parameter local parameter e is
    scatter: Segments
    own: tuple[Segments, ...]
    gather: np.ndarray  # (n, S A): the flat index of (views[k, s], agent k's action in a) in (S_k, A_k)
    rows: tuple[np.ndarray, ...]  # per agent its first flat index and row width, views (n, S), actions (n, A)


@dataclass(frozen=True, eq=False)
class Segments:
    """``E^T`` for ``E[r, targets[r]] = 1``: entry ``r`` added into ``targets[r]`` of ``size``, by
    ``numpy.add.reduceat`` over the entries sorted by target, or by one assignment where each target
    is hit once (``starts`` ``None``, ``targets`` in entry order)."""

    order: np.ndarray | None
    starts: np.ndarray | None
    targets: np.ndarray
    size: int

    def apply(self, values: np.ndarray, axis: int = -1) -> np.ndarray:
        """``E^T`` along ``axis`` of ``values``."""
        last = axis in (-1, values.ndim - 1)
        values = values if last else np.moveaxis(values, axis, -1)
        out = np.zeros((*values.shape[:-1], self.size))
        if self.starts is None:
            out[..., self.targets] = values
        else:
            out[..., self.targets] = np.add.reduceat(values[..., self.order], self.starts, axis=-1)
        return out if last else np.moveaxis(out, -1, axis)


def _segments(columns: np.ndarray, size: int) -> Segments:  # 53 us to 28 against scipy's sparse product
    if len(np.unique(columns)) == len(columns):
        return Segments(None, None, columns, size)
    order = np.argsort(columns, kind="stable")
    targets, starts = np.unique(columns[order], return_index=True)
    return Segments(order, starts, targets, size)


def structure(game: Game, policy: Policy) -> Structure:
    """The fixed part of the computation for ``game`` under ``policy``."""
    layout = layout_of(game, policy)
    S, joint = game.n_states, math.prod(game.n_actions)
    columns, parts, start = [], [], 0
    for k, shape in enumerate(layout.shapes):
        row = math.prod(shape[1:])
        columns.append(game.views[k][:, None] * row + np.arange(row))
        parts.append(slice(start, start + row))
        start += row
    index = np.concatenate([c + layout.slice(k).start for k, c in enumerate(columns)], axis=1)
    actions = np.array(np.unravel_index(np.arange(joint), game.n_actions))  # (n, A): agent k's in a
    gather = [(v[:, None] * a + c[None]).ravel() for v, a, c in zip(game.views, game.n_actions, actions, strict=True)]
    return Structure(
        game,
        policy,
        layout,
        game.transitions.reshape(S, joint, S),
        np.ascontiguousarray(game.transitions.reshape(S * joint, S).T),
        game.rewards.reshape(game.n_agents, S, joint),
        index,
        tuple(parts),
        np.concatenate([np.full(p.stop - p.start, k) for k, p in enumerate(parts)]),
        _segments(index.ravel(), layout.size),
        tuple(_segments(c.ravel(), layout.sizes[k]) for k, c in enumerate(columns)),
        np.stack(gather),
        (
            np.array([layout.slice(k).start for k in range(game.n_agents)]),
            np.array([p.stop - p.start for p in parts]),
            np.stack(game.views).astype(np.int64),
            actions.astype(np.int64),
        ),
    )


def local_policy(structure: Structure, x: np.ndarray, order: int = 2):
    """``(u, g, h)``: ``u (S, A)``; from ``order`` 1, ``g = grad log u (S, A, m)``; at ``order`` 2,
    ``h = hess log u (S, A, m, m)`` over the local parameters, a block per agent (else ``None``).
    Agents whose parameters have one shape are evaluated in one call of the policy."""
    policy, layout = structure.policy, structure.layout
    S, A = structure.transitions.shape[:2]
    m = structure.index.shape[1]

    def derived(theta):
        return policy.derivatives(theta, order) if order else (np.exp(policy.log_probs(theta)), None, None)

    thetas = layout.unflatten(x)
    if len(set(layout.shapes)) == 1:
        stacked = derived(np.stack(thetas))
        per_agent = [[None if t is None else t[k] for t in stacked] for k in range(len(thetas))]
    else:
        per_agent = [derived(theta) for theta in thetas]
    u, g, h = np.ones((S, A)), np.zeros((S, A, m)) if order else None, np.zeros((S, A, m, m)) if order > 1 else None
    for (probs, scores, hessians), at, part in zip(per_agent, structure.gather, structure.parts, strict=True):
        width = part.stop - part.start
        u *= probs.reshape(-1)[at].reshape(S, A)
        if order:
            g[:, :, part] = scores.reshape(-1, width)[at].reshape(S, A, width)
        if order > 1:
            h[:, :, part, part] = hessians.reshape(-1, width, width)[at].reshape(S, A, width, width)
    return u, g, h


def _averaged(structure: Structure, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``P_u (S, S)`` and ``r_u (n, S)`` (``u`` may carry leading axes)."""
    transition = np.matmul(u[..., None, :], structure.transitions)[..., 0, :]
    return transition, np.einsum("...sa,ksa->...ks", u, structure.rewards)


def _ahead(structure: Structure, v: np.ndarray) -> np.ndarray:
    """``gamma P v``: ``(.., S) -> (.., S, A)``."""
    S, A = structure.transitions.shape[:2]
    return structure.game.gamma * (v @ structure.successors).reshape(*v.shape[:-1], S, A)


@dataclass(frozen=True)
class Point:
    """The quantities at one ``x``, per step ``t`` (one step for an infinite horizon):
    ``d (T, S)`` occupancies, ``ahead (T, n, S)`` the values one step on (``v_{t+1}``, or ``v``),
    ``q (T, n, S, A)`` action values; ``solver`` applies ``N`` (infinite horizon); ``compiled``:
    whether the point's work runs in :mod:`mapg_verify.exact.numeric_kernels`."""

    u: np.ndarray
    g: np.ndarray
    h: np.ndarray
    transition: np.ndarray
    solver: Solver | None
    d: np.ndarray
    ahead: np.ndarray
    q: np.ndarray
    compiled: bool = False


def backward(structure: Structure, transition: np.ndarray, solver: Solver | None, b: np.ndarray) -> np.ndarray:
    """The values one step on of ``x_t = b_t + gamma P_u x_{t+1}`` (``x_H = 0``), for ``b`` of
    shape ``(T, .., S)``: ``x_{t+1}`` per ``t``; for an infinite horizon ``N b``."""
    if solver is not None:
        return solver.right(b)
    out, x, step = np.empty_like(b), np.zeros_like(b[0]), structure.game.gamma * transition.T
    for t in reversed(range(len(b))):
        out[t] = x
        x = b[t] + x @ step
    return out


def forward(structure: Structure, transition: np.ndarray, solver: Solver | None, c: np.ndarray, start=0.0):
    """``y_0 = start``, ``y_{t+1} = y_t gamma P_u + c_t`` for ``c`` of shape ``(T, .., S)``, or for
    an infinite horizon ``(start + c) N``."""
    if solver is not None:
        return solver.left(start + c)
    out, step = np.empty_like(c), structure.game.gamma * transition
    out[0] = start
    for t in range(len(c) - 1):
        out[t + 1] = out[t] @ step + c[t]
    return out


def _tables(structure: Structure, x: np.ndarray, order: int):
    """``(u, g, h, P_u, r_u, M, compiled)`` at ``x`` (:func:`~mapg_verify.exact.numeric_kernels.tables`),
    compiled where :func:`~mapg_verify.exact.numeric_kernels.enabled`, else by numpy."""
    if numeric_kernels.enabled(structure):
        return (*numeric_kernels.tables(structure, x, order), True)
    game, (u, g, h) = structure.game, local_policy(structure, x, order)
    transition, reward = _averaged(structure, u)
    matrix = None
    if game.infinite:  # M = I - gamma P_u
        matrix = transition * -game.gamma
        matrix.flat[:: game.n_states + 1] += 1.0
    return u, g, h, transition, reward, matrix, False


def evaluate(structure: Structure, x: np.ndarray, order: int = 2) -> Point:
    """Occupancies, values and action values at ``x``."""
    game = structure.game
    u, g, h, transition, reward, matrix, compiled = _tables(structure, x, order)
    if game.infinite:
        solver = Solver.of(matrix, overwrite=True)
        ahead, d = solver.right(reward[None]), solver.left(game.initial[None])
    else:
        T, solver = int(game.horizon), None
        ahead = backward(structure, transition, solver, np.repeat(reward[None], T, axis=0))
        d = forward(structure, transition, solver, np.zeros((T, game.n_states)), game.initial)
    return Point(u, g, h, transition, solver, d, ahead, structure.rewards + _ahead(structure, ahead), compiled)


def values(structure: Structure, x: np.ndarray) -> np.ndarray:
    """``V^k (n,)``: ``rho0 . v_0``, for an infinite horizon ``(rho0^T N) . r^k``."""
    game = structure.game
    _, _, _, transition, reward, matrix, _ = _tables(structure, x, 0)
    if game.infinite:
        return reward @ Solver.of(matrix, overwrite=True).left(game.initial[None])[0]
    v = np.zeros_like(reward)
    for _ in range(int(game.horizon)):
        v = reward + game.gamma * v @ transition.T
    return v @ game.initial


def _weighted_scores(weights: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``sum_a weights[.., s, a] g[s, a, :]``, shape ``(.., S, m)``."""
    return np.matmul(weights[..., None, :], g)[..., 0, :]


def _scattered(structure: Structure, local: np.ndarray) -> np.ndarray:
    """``(.., S, m)`` local values summed into the flat parameters, ``(.., D)``."""
    return structure.scatter.apply(local.reshape(*local.shape[:-2], -1))


def gradient(structure: Structure, point: Point) -> np.ndarray:
    """``dV^k/dx (n, D) = E^T sum_t d_t[s] sum_a u Q^k_t g``."""
    if point.compiled:
        return numeric_kernels.gradient(structure.index, point.u, point.g, point.q, point.d, structure.layout.size)
    weights = np.einsum("ts,tksa->ksa", point.d, point.q) * point.u
    return _scattered(structure, _weighted_scores(weights, point.g))


def xi_vjp(structure: Structure, point: Point, w: np.ndarray) -> np.ndarray:
    """``w^T d xi/dx`` for rows ``w (r, D)``: ``sum_k hess V^k w_k`` with ``w_k`` the row restricted
    to agent ``k``'s parameters, by directional derivatives (see the module's docstring). Along
    ``w_k``: ``d r^k + gamma dP v_{t+1} = sum_a du q^k_t`` (``q = r + gamma P v``), and
    ``d_t dP = (d_t du) P`` is one product with ``P (S A, S)``, so ``dP`` is never formed; the score
    Hessians enter once, contracted with ``sum_t d_t u q^k_t``. Compiled at compiled infinite-horizon
    points."""
    game = structure.game
    if point.compiled and point.solver is not None:
        return _compiled_vjp(structure, point, np.ascontiguousarray(w, dtype=float))
    n, r = game.n_agents, len(w)
    u, g, q, d = point.u, point.g, point.q, point.d
    S, A = u.shape
    mask = structure.owner == np.arange(n)[:, None]  # (n, m): agent k's local parameters
    local = mask[:, None, None, :] * w[:, structure.index]  # w_k in local coordinates (n, r, S, m)
    du = u * np.einsum("krse,sae->krsa", local, g)
    # d v_t = sum_a du q_t + gamma P_u d v_{t+1}; d d_{t+1} = d d_t gamma P_u + gamma (d_t du) P
    d_ahead = backward(structure, point.transition, point.solver, np.einsum("krsa,tksa->tkrs", du, q))
    moved = (d[:, None, None, :, None] * du).reshape(-1, S * A) @ structure.transitions.reshape(S * A, S)
    d_d = forward(structure, point.transition, point.solver, game.gamma * moved.reshape(len(d), n, r, S))
    d_q = _ahead(structure, d_ahead)  # (T, n, r, S, A)
    weights = np.einsum("ts,tkrsa->krsa", d, du[None] * q[:, :, None] + u * d_q)
    uq = u * q  # (T, n, S, A)
    curvature = np.einsum("ts,tksa,saef->ksef", d, uq, point.h)  # sum_t d_t u q^k_t hess log u
    out = _weighted_scores(weights, g) + np.matmul(curvature[:, None], local[..., None])[..., 0]
    out += np.einsum("tkrs,tkse->krse", d_d, _weighted_scores(uq, g))
    return _scattered(structure, out.sum(axis=0))


def _compiled_vjp(structure: Structure, point: Point, w: np.ndarray) -> np.ndarray:
    """:func:`xi_vjp` at an infinite-horizon point: two kernels around the solves and products with ``P``."""
    S, A = point.u.shape
    fixed = (w, structure.index, structure.owner, point.u, point.g)
    du, rhs, weighted = numeric_kernels.directions(*fixed, point.q[0], point.d[0], structure.game.gamma)
    d_ahead = point.solver.right(rhs)  # the products by scipy's BLAS too: one thread pool beside the solves
    moved = scipy.linalg.blas.dgemm(1.0, structure.transitions.reshape(S * A, S).T, weighted.reshape(-1, S * A).T).T
    d_d = point.solver.left(moved.reshape(rhs.shape))
    pushed = scipy.linalg.blas.dgemm(structure.game.gamma, structure.successors.T, d_ahead.reshape(-1, S).T).T
    pushed = pushed.reshape(*rhs.shape, A)
    return numeric_kernels.assembled(*fixed, point.h, point.q[0], point.d[0], du, pushed, d_d, structure.layout.size)


def jacobian_rows(structure: Structure, point: Point) -> np.ndarray:
    """The simultaneous Jacobian ``d xi/dx (D, D)``: row block ``k`` is agent ``k``'s rows of
    ``hess V^k``, assembled in local coordinates ``(s, e)`` and scattered by ``E`` (see the
    module's docstring): ``Z[(s, e), (s', e')] = sum_t X_t[(s, e), s'] y^k_t[s', e']``."""
    game, layout = structure.game, structure.layout
    S, m = structure.index.shape
    u, g = point.u, point.g
    slopes = np.matmul((u[..., None] * g).transpose(0, 2, 1), structure.transitions)  # d P_u[s] / d (s, e)
    weighted = game.gamma * (point.d[:, :, None, None] * slopes).reshape(len(point.d), S * m, S)
    xs = forward(structure, point.transition, point.solver, weighted).reshape(len(point.d), S, m, S)
    curvature = u[..., None, None] * (g[..., :, None] * g[..., None, :] + point.h)
    rows = np.empty((layout.size, layout.size))
    for k, part in enumerate(structure.parts):
        y = _weighted_scores(point.q[:, k] * u, g)  # (T, S, m)
        local = np.einsum("tseS,tSf->seSf", xs[:, :, part], y)  # Z's rows (s, e in part)
        local += np.einsum("tse,tSfs->seSf", y[:, :, part], xs)  # Z^T's rows
        blocks = np.einsum("ts,tsa,saef->sef", point.d, point.q[:, k], curvature[:, :, part])
        local[np.arange(S), :, np.arange(S), :] += blocks
        gathered = structure.own[k].apply(local.reshape(-1, S * m), axis=0)  # (D_k, S m)
        rows[layout.slice(k)] = structure.scatter.apply(gathered)
    return rows


def numeric_values(game: Game, policy: Policy) -> CompiledValues:
    """A :class:`CompiledValues` evaluated by matrix calculus (this module); batched points are
    evaluated one by one."""
    fixed = structure(game, policy)
    n, d = game.n_agents, fixed.layout.size

    def batched(function, shape):
        def call(x):
            x = np.asarray(x, dtype=float)
            if x.shape == (d,):
                return function(x)
            flat = x.reshape(-1, d)
            return np.array([function(point) for point in flat]).reshape(*x.shape[:-1], *shape)

        return call

    def step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        point = evaluate(fixed, np.asarray(x, dtype=float))
        return gradient(fixed, point), jacobian_rows(fixed, point)

    def gradient_and_vjp(x: np.ndarray):
        point = evaluate(fixed, np.asarray(x, dtype=float))
        return gradient(fixed, point), lambda w: xi_vjp(fixed, point, np.atleast_2d(w))

    return CompiledValues(
        fixed.layout,
        n,
        batched(lambda x: values(fixed, x), (n,)),
        batched(lambda x: gradient(fixed, evaluate(fixed, x, 1)), (n, d)),
        step,
        "numeric",
        {"derive": 0.0, "compile": 0.0},
        gradient_and_vjp,
    )
