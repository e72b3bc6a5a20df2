"""POLA (Zhao et al., NeurIPS 2022) exactly, LOLA beside it, under linear reparameterisations.

A reparameterisation writes each agent's base parameters as ``x^k = R^k y^k`` (per-state logit
scales ``R = diag(c)``; a two-logit softmax for a sigmoid, ``x = a - b``, ``R = I kron [1, -1]``);
values, gradients and the simultaneous Jacobian follow by the chain rule
(``grad_y = R^T grad_x``, ``J_y = R^T J_x R``). The proximity is
``D^k(y) = sum_rows KL(pi_old(.|row) || pi(R^k y)(.|row))``, a function of the policy alone.

- POLA's inner (opponent ``j``) step: ``y^j* = argmax V^j(y^i, y^j) - D^j(y^j) / beta_in``, solved
  by Newton's method (least squares where the Hessian is singular, as along a two-logit softmax's
  common shift), differentiated by the implicit function theorem,
  ``dy^j*/dy^i = -H_jj^+ H_ji``;
- POLA's outer step: ``y^i* = argmax V^i(y^i, y^j*(y^i)) - D^i(y^i) / beta_out``, by BFGS on that
  gradient (``scipy.optimize``), to ``gtol``;
- LOLA's step: ``y^i + alpha^i d/dy^i V^i(y^i, y^j + alpha^j grad_{y^j} V^j(y))``, exact.

Directions of ``y`` that leave the policy unchanged (a softmax's per-state shift, the two-logit map's
common part) make both problems' Hessians singular; a penalty ``|P y|^2 / 2`` on them
(:meth:`Lookahead.gauge`) fixes the gauge without moving the policies reached.

The maximisers depend on ``y`` only through ``R y``'s policy, so POLA's update is the same policy in
every parameterisation (to the precision of the solves); LOLA's gradient steps are not.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.problem.params import Layout
from mapg_verify.problem.policies import Policy


@dataclass(frozen=True, eq=False)
class Reparameterisation:
    """``x^k = maps[k] @ y^k``, named."""

    name: str
    maps: tuple[np.ndarray, ...]

    @property
    def matrix(self) -> np.ndarray:
        """The block-diagonal ``R`` on the flat vectors."""
        rows, cols = sum(m.shape[0] for m in self.maps), sum(m.shape[1] for m in self.maps)
        out, r, c = np.zeros((rows, cols)), 0, 0
        for m in self.maps:
            out[r : r + m.shape[0], c : c + m.shape[1]] = m
            r, c = r + m.shape[0], c + m.shape[1]
        return out

    def slices(self) -> tuple[slice, ...]:
        ends = np.cumsum([0, *(m.shape[1] for m in self.maps)])
        return tuple(slice(int(a), int(b)) for a, b in itertools.pairwise(ends))

    def lift(self, x: np.ndarray) -> np.ndarray:
        """A ``y`` with ``R y = x`` (least squares: exact, as every map here is onto)."""
        return np.linalg.lstsq(self.matrix, x, rcond=None)[0]


def identity(layout: Layout) -> Reparameterisation:
    return Reparameterisation("identity", tuple(np.eye(n) for n in layout.sizes))


def scaled(layout: Layout, scales: tuple[np.ndarray, ...]) -> Reparameterisation:
    """``x^k[s] = c^k[s] y^k[s]``: each state's logits scaled by its own ``c`` (``scales[k] (S,)``)."""
    maps = tuple(
        np.diag(np.repeat(np.asarray(c, dtype=float), n // len(c))) for c, n in zip(scales, layout.sizes, strict=True)
    )
    return Reparameterisation("per-state scale", maps)


def two_logit(layout: Layout) -> Reparameterisation:
    """A sigmoid's logit as a two-logit softmax's difference, ``x[s] = a[s] - b[s]``."""
    return Reparameterisation("two-logit softmax", tuple(np.kron(np.eye(n), [[1.0, -1.0]]) for n in layout.sizes))


@dataclass(frozen=True, eq=False)
class Lookahead:
    """Values and derivatives in ``y`` coordinates, and each agent's proximity to its old policy."""

    compiled: CompiledValues
    policy: Policy
    reparameterisation: Reparameterisation
    old: tuple[np.ndarray, ...]  # each agent's base policy probabilities (rows, A) at the start

    def derivatives(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``grad_y V (n, D_y)`` and the simultaneous Jacobian ``J_y``."""
        matrix = self.reparameterisation.matrix
        gradients, jacobian = self.compiled.gradient_and_jacobian(matrix @ y)
        return gradients @ matrix, matrix.T @ jacobian @ matrix

    def gauge(self, agent: int) -> np.ndarray:
        """The projector onto the directions of ``y^k`` that leave the policy unchanged: the null space
        of ``C R^k``, ``C`` centring each state's logits (a softmax's common shift) or the identity (a
        sigmoid). The proximal objectives are constant along them, so a penalty ``|P y^k|^2 / 2`` fixes the
        solves' gauge (their Hessians singular there otherwise) without moving the policy they reach."""
        block = self.reparameterisation.maps[agent]
        rows, width = self.compiled.layout.shapes[agent][0], block.shape[0] // self.compiled.layout.shapes[agent][0]
        centring = np.eye(width) - 1.0 / width if self.policy.name == "softmax" else np.eye(width)
        null = linalg.null_space(np.kron(np.eye(rows), centring) @ block)
        return null @ null.T

    def proximity(self, y: np.ndarray, agent: int) -> tuple[float, np.ndarray, np.ndarray]:
        """``D^k``, its gradient and Hessian in ``y^k``: ``-sum p_old score`` and ``-sum p_old hess log pi``."""
        block = self.reparameterisation.maps[agent]
        x = block @ y[self.reparameterisation.slices()[agent]]
        theta = x.reshape(self.compiled.layout.shapes[agent])
        _, scores, hessians = self.policy.derivatives(theta)
        old = self.old[agent]
        value = float(np.sum(old * (np.log(old) - self.policy.log_probs(theta))))
        rows, width = len(theta), x.size // len(theta)
        gradient = np.zeros((rows, width))
        hessian = np.zeros((rows, width, rows, width))
        local = -np.einsum("ra,raw->rw", old, scores.reshape(rows, -1, width))
        curvature = -np.einsum("ra,rawv->rwv", old, hessians.reshape(rows, -1, width, width))
        gradient[:] = local
        hessian[np.arange(rows), :, np.arange(rows), :] = curvature
        flat = hessian.reshape(x.size, x.size)
        return value, block.T @ gradient.ravel(), block.T @ flat @ block


def lookahead(compiled: CompiledValues, policy: Policy, reparameterisation: Reparameterisation, y) -> Lookahead:
    """The proximal problems' data at the starting point ``y``."""
    x = reparameterisation.matrix @ y
    old = tuple(np.exp(policy.log_probs(t)) for t in compiled.layout.unflatten(x))
    return Lookahead(compiled, policy, reparameterisation, old)


TRUST = "trust-exact"  # scipy's trust-region Newton method: safe where the objective is not concave
POLISH = 3  # Newton steps after the trust region's: it stops early where the Hessian is singular


def polished(point: np.ndarray, gradient, hessian) -> np.ndarray:
    """Up to :data:`POLISH` Newton steps (least squares along flat directions), each kept only where
    it shrinks the gradient."""
    size = np.max(np.abs(gradient(point)))
    for _ in range(POLISH):
        candidate = point - np.linalg.lstsq(hessian(point), gradient(point), rcond=None)[0]
        found = np.max(np.abs(gradient(candidate)))
        if not found < size:
            break
        point, size = candidate, found
    return point


def inner_solution(problem: Lookahead, y, opponent: int, beta: float, gtol: float = 1e-12):
    """POLA's inner step: ``y`` with the opponent's block replaced by its proximal maximiser (a
    trust-region Newton method from its old parameters, safe where the objective is not concave), and
    ``dy^j*/dy`` (rows ``j``, every column; by the implicit function theorem)."""
    rows = problem.reparameterisation.slices()[opponent]
    matrix = problem.reparameterisation.matrix
    start = np.array(y, dtype=float)

    def at(block):
        point = start.copy()
        point[rows] = block
        return point

    gauge = problem.gauge(opponent)

    def negative(block):
        point = at(block)
        value = problem.proximity(point, opponent)[0] / beta - problem.compiled.value(matrix @ point)[opponent]
        return value + block @ gauge @ block / 2

    def gradient(block):
        point = at(block)
        return (
            problem.proximity(point, opponent)[1] / beta - problem.derivatives(point)[0][opponent, rows] + gauge @ block
        )

    def hessian(block):
        point = at(block)
        return problem.proximity(point, opponent)[2] / beta - problem.derivatives(point)[1][rows, rows] + gauge

    options = {"gtol": gtol, "maxiter": 1000}
    block = optimize.minimize(negative, start[rows], jac=gradient, hess=hessian, method=TRUST, options=options).x
    block = polished(block, gradient, hessian)
    y = at(block)
    jacobian = problem.derivatives(y)[1]
    mixed = jacobian[rows].copy()
    mixed[:, rows] = 0.0
    return y, np.linalg.lstsq(hessian(block), mixed, rcond=None)[0]


def pola_outer_gradient(problem: Lookahead, y, meta_agent: int, beta_in: float, beta_out: float):
    """``(F, dF/dy^i, y with the opponent's response)`` of POLA's outer objective at ``y``."""
    opponent = 1 - meta_agent
    own, theirs = problem.reparameterisation.slices()[meta_agent], problem.reparameterisation.slices()[opponent]
    responded, response = inner_solution(problem, y, opponent, beta_in)
    gradients, _ = problem.derivatives(responded)
    value = problem.compiled.value(problem.reparameterisation.matrix @ responded)[meta_agent]
    penalty, kl_gradient, _ = problem.proximity(responded, meta_agent)
    gradient = gradients[meta_agent, own] + gradients[meta_agent, theirs] @ response[:, own] - kl_gradient / beta_out
    return value - penalty / beta_out, gradient, responded


def pola_update(problem: Lookahead, y, meta_agent: int, beta_in: float, beta_out: float, gtol: float = 1e-11):
    """POLA's update of both agents, ``(y^i*, y^j*(y^i*))`` as a flat ``y``, and the outer gradient's
    size at it: a trust-region Newton method on the exact gradient and its central-difference
    Hessian, then Newton's steps."""
    own = problem.reparameterisation.slices()[meta_agent]
    start = np.array(y, dtype=float)

    def at(theta_i):
        point = start.copy()
        point[own] = theta_i
        return point

    gauge = problem.gauge(meta_agent)

    def negative(theta_i):
        return (
            -pola_outer_gradient(problem, at(theta_i), meta_agent, beta_in, beta_out)[0] + theta_i @ gauge @ theta_i / 2
        )

    def gradient(theta_i):
        return -pola_outer_gradient(problem, at(theta_i), meta_agent, beta_in, beta_out)[1] + gauge @ theta_i

    def hessian(theta_i):
        steps = DIFFERENCE_STEP * np.eye(len(theta_i))
        rows = np.array([gradient(theta_i + e) - gradient(theta_i - e) for e in steps]) / (2 * DIFFERENCE_STEP)
        return (rows + rows.T) / 2

    options = {"gtol": gtol, "maxiter": 200}
    theta_i = optimize.minimize(negative, start[own], jac=gradient, hess=hessian, method=TRUST, options=options).x
    theta_i = polished(theta_i, gradient, hessian)
    _, outer, responded = pola_outer_gradient(problem, at(theta_i), meta_agent, beta_in, beta_out)
    return responded, float(np.max(np.abs(outer)))


DIFFERENCE_STEP = 1e-6  # the outer Hessian's central differences (of an exact gradient: error O(h^2))


def lola_update(problem: Lookahead, y, meta_agent: int, alpha: tuple[float, float]) -> np.ndarray:
    """LOLA's exact step for the meta-agent and the opponent's naive lookahead step, in ``y``."""
    opponent = 1 - meta_agent
    own, theirs = problem.reparameterisation.slices()[meta_agent], problem.reparameterisation.slices()[opponent]
    gradients, jacobian = problem.derivatives(y)
    ahead = np.array(y, dtype=float)
    ahead[theirs] += alpha[opponent] * gradients[opponent, theirs]
    later, _ = problem.derivatives(ahead)
    meta = later[meta_agent, own] + alpha[opponent] * later[meta_agent, theirs] @ jacobian[theirs, own]
    updated = ahead.copy()
    updated[own] = y[own] + alpha[meta_agent] * meta
    return updated


def policies(problem: Lookahead, y) -> np.ndarray:
    """Every agent's base policy probabilities at ``y``, concatenated."""
    x = problem.reparameterisation.matrix @ y
    layout = problem.compiled.layout
    return np.concatenate([np.exp(problem.policy.log_probs(t)).ravel() for t in layout.unflatten(x)])
