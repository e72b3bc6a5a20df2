"""Exact values ``V^k(theta)`` as symengine expressions in the policy parameters.

Finite horizon: ``V^k = sum_{t<H} gamma^t d_t . r^k_pi`` with ``d_0 = rho0`` and
``d_{t+1} = d_t P_pi``. Infinite horizon: ``V^k = x . r^k_pi`` where the
discounted occupancy ``x`` solves ``(I - gamma P_pi)^T x = rho0``, by Gaussian
elimination without pivoting (``I - gamma P_pi`` is strictly diagonally
dominant for ``gamma < 1``, so no pivot vanishes). Here
``P_pi[s, s'] = sum_a prod_k pi^k(a^k|s) P[s, a, s']`` and
``r^k_pi[s] = sum_a prod_k pi^k(a^k|s) R[k, s, a]``. Structural zeros of
``P`` and ``R`` are skipped, so sparse games give small expressions.

symengine rather than sympy builds and differentiates these trees: on the IPD
it is orders of magnitude faster (``benchmarks/bench_values.py``). Constants
enter as exact rationals of their shortest decimal form (0.96 -> 24/25).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import symengine as se
import sympy

from mapg_verify.problem.game import DifferentiableGame, Game
from mapg_verify.problem.params import Layout, layout_of
from mapg_verify.problem.policies import Policy

ZERO = se.Integer(0)


@dataclass(frozen=True, eq=False)
class SymbolicValues:
    """``values[k] = V^k`` as expressions in ``symbols``, the flat row-major ``theta``."""

    layout: Layout
    symbols: tuple[se.Symbol, ...]
    values: tuple[se.Basic, ...]

    def to_sympy(self) -> tuple[sympy.Expr, ...]:
        """The values as sympy expressions (for LaTeX and ``mpmath`` evaluation)."""
        return tuple(sympy.sympify(value) for value in self.values)


def constant(number: float) -> se.Basic:
    """An exact rational for a float, from its shortest round-tripping decimal."""
    fraction = Fraction(repr(float(number)))
    return se.Rational(fraction.numerator, fraction.denominator)


def parameter_symbols(layout: Layout) -> tuple[np.ndarray, ...]:
    """Per agent, an object array of symbols ``theta{k}_{index}`` shaped like ``theta^k``."""
    arrays = []
    for k, shape in enumerate(layout.shapes):
        names = [f"theta{k}_" + "_".join(map(str, index)) for index in np.ndindex(*shape)]
        arrays.append(np.array([se.Symbol(name) for name in names], dtype=object).reshape(shape))
    return tuple(arrays)


def symbolic_values(game: Game | DifferentiableGame, policy: Policy | None) -> SymbolicValues:
    """Build ``V^k(theta)`` for every agent ``k`` of ``game`` under ``policy``."""
    layout = layout_of(game, policy)
    theta = parameter_symbols(layout)
    symbols = tuple(symbol for part in theta for symbol in part.reshape(-1))
    if isinstance(game, DifferentiableGame):
        return SymbolicValues(layout, symbols, tuple(se.sympify(v) for v in game.values(theta)))
    transition, reward = policy_averaged(game, policy, theta)
    if game.infinite:
        occupancy = solve_transposed(game.gamma, transition, [constant(p) for p in game.initial])
        values = tuple(_dot(occupancy, row) for row in reward)
    else:
        values = _finite_values(game, transition, reward)
    return SymbolicValues(layout, symbols, values)


def policy_averaged(game: Game, policy: Policy, theta: tuple[np.ndarray, ...]):
    """``P_pi`` as ``{s: {s': expr}}`` (nonzero entries) and ``r_pi`` as ``[k][s]`` lists."""
    probs = [
        [policy.symbolic_probs(part[game.views[k, s]]) for s in range(game.n_states)] for k, part in enumerate(theta)
    ]
    transition = {s: {} for s in range(game.n_states)}
    reward = [[ZERO] * game.n_states for _ in range(game.n_agents)]
    for s in range(game.n_states):
        for joint in itertools.product(*(range(a) for a in game.n_actions)):
            weight = se.Mul(*(probs[k][s][a] for k, a in enumerate(joint)))
            for s_next in np.flatnonzero(game.transitions[(s, *joint)]):
                term = weight * constant(game.transitions[(s, *joint, s_next)])
                transition[s][s_next] = transition[s].get(s_next, ZERO) + term
            for k in range(game.n_agents):
                if game.rewards[(k, s, *joint)] != 0:
                    reward[k][s] += weight * constant(game.rewards[(k, s, *joint)])
    return transition, reward


def solve_transposed(gamma: float, transition: dict, initial: list[se.Basic]) -> list[se.Basic]:
    """``x`` with ``(I - gamma P)^T x = initial``, by elimination without pivoting."""
    n = len(initial)
    g = constant(gamma)
    matrix = [{i: se.Integer(1)} for i in range(n)]  # row i of (I - gamma P)^T, sparse
    for s, row in transition.items():
        for s_next, p in row.items():
            matrix[s_next][s] = matrix[s_next].get(s, ZERO) - g * p
    rhs = list(initial)
    for k in range(n):
        for i in range(k + 1, n):
            if k not in matrix[i]:
                continue
            factor = matrix[i].pop(k) / matrix[k][k]
            for j, entry in matrix[k].items():
                if j > k:
                    matrix[i][j] = matrix[i].get(j, ZERO) - factor * entry
            rhs[i] = rhs[i] - factor * rhs[k]
    solution = [ZERO] * n
    for i in reversed(range(n)):
        known = se.Add(*(entry * solution[j] for j, entry in matrix[i].items() if j > i))
        solution[i] = (rhs[i] - known) / matrix[i][i]
    return solution


def _finite_values(game: Game, transition: dict, reward: list) -> tuple[se.Basic, ...]:
    distribution = [constant(p) for p in game.initial]
    totals = [ZERO] * game.n_agents
    g = constant(game.gamma)
    for t in range(int(game.horizon)):
        discount = g**t
        for k in range(game.n_agents):
            totals[k] += discount * _dot(distribution, reward[k])
        if t + 1 < game.horizon:
            distribution = _step(distribution, transition)
    return tuple(totals)


def _step(distribution: list[se.Basic], transition: dict) -> list[se.Basic]:
    """``d P_pi``: the state distribution one step later."""
    terms: dict[int, list] = {}
    for s, row in transition.items():
        if distribution[s] != 0:
            for s_next, p in row.items():
                terms.setdefault(s_next, []).append(distribution[s] * p)
    return [se.Add(*terms.get(s, [])) for s in range(len(distribution))]


def _dot(left: list[se.Basic], right: list[se.Basic]) -> se.Basic:
    return se.Add(*(a * b for a, b in zip(left, right, strict=True) if a != 0 and b != 0))
