"""Exact derivatives of order 1 to 3 of one agent's value with respect to every agent's parameters.

``derivative(x)[j1, .., jk] = d^k V^i / dx_j1 .. dx_jk`` over the flat ``theta`` of all agents
(``D^k`` entries). symengine differentiates the value once per distinct multi-index
``j1 <= .. <= jk`` (the tensor is symmetric), each from its parent ``(j1, .., j(k-1))``, and
compiles the distinct entries with common-subexpression elimination; the tensor is filled by
symmetry. The value is the game's, or its ``H``-step truncation (what estimators on trajectories
of ``H`` steps estimate): :func:`truncated`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import symengine as se

from mapg_verify.exact.compiled import default_backend, lambdify
from mapg_verify.exact.symbolic import SymbolicValues, symbolic_values
from mapg_verify.problem.game import Game
from mapg_verify.problem.policies import Policy

ORDERS = (1, 2, 3)


def truncated(game: Game, horizon: int) -> Game:
    """The game played for ``horizon`` steps: ``V_H = E[sum_{t < H} gamma^t r_t]``."""
    return dataclasses.replace(game, horizon=horizon)


@dataclass(frozen=True, eq=False)
class Derivative:
    """The compiled ``order``-th derivative of agent ``agent``'s value: ``self(x)`` is ``(D,) * order``."""

    agent: int
    order: int
    dimension: int
    indices: tuple[tuple[int, ...], ...]  # the distinct sorted multi-indices, in output order
    function: Callable[[np.ndarray], np.ndarray]

    def __call__(self, x) -> np.ndarray:
        entries = np.asarray(self.function(np.asarray(x, dtype=float)), dtype=float)
        tensor = np.empty((self.dimension,) * self.order)
        for value, index in zip(entries, self.indices, strict=True):
            for permuted in set(itertools.permutations(index)):
                tensor[permuted] = value
        return tensor


def distinct_indices(dimension: int, order: int) -> tuple[tuple[int, ...], ...]:
    """``j1 <= .. <= jk``: ``C(D + k - 1, k)`` of them."""
    return tuple(itertools.combinations_with_replacement(range(dimension), order))


def compile_derivative(symbolic: SymbolicValues, agent: int, order: int, backend: str | None = None) -> Derivative:
    """Differentiate ``V^agent`` ``order`` times (each distinct entry once) and compile the entries."""
    if order not in (0, *ORDERS):
        raise ValueError(f"order must be one of {ORDERS} (or 0, the value), got {order}")
    x = symbolic.symbols
    found: dict[tuple[int, ...], se.Basic] = {(): symbolic.values[agent]}
    for level in range(1, order + 1):
        for index in distinct_indices(len(x), level):
            found[index] = se.diff(found[index[:-1]], x[index[-1]])
    indices = distinct_indices(len(x), order)
    function = lambdify(x, [found[index] for index in indices], backend or default_backend())
    return Derivative(agent, order, len(x), indices, function)


def derivative_of(game: Game, policy: Policy, agent: int, order: int, horizon: int | None = None) -> Derivative:
    """:func:`compile_derivative` of the game's value, or of its ``horizon``-step truncation."""
    target = game if horizon is None else truncated(game, horizon)
    return compile_derivative(symbolic_values(target, policy), agent, order)
