"""The symbolic-to-numeric bridge: values, gradients and Hessians compiled by symengine.

For flat parameters ``x`` (row-major ``theta``): ``value(x)[k] = V^k``,
``gradient(x)[k, j] = dV^k/dx_j``, ``hessian(x)[k, j, l] = d^2 V^k / dx_j dx_l``.
The Jacobian of the simultaneous gradient ``xi_k = grad_{theta^k} V^k`` is the
block ``hessian(x)[k, slice(k), :]`` for each agent, see :func:`simultaneous_jacobian`.

Expressions are differentiated by symengine and compiled with common
subexpression elimination by symengine's ``Lambdify``; the LLVM backend is
used where symengine was built with it, else its ``lambda`` backend
(``benchmarks/bench_values.py`` measures both, and plain sympy).
Only the upper triangle of each Hessian is derived and compiled, one function
per agent: symengine's CSE grows faster than linearly in the size of its input
(on the 10-step IPD, 17 s for both agents' Hessians at once, 2 x 2 s apart).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import symengine as se

from .params import Layout
from .symbolic import SymbolicValues, symbolic_values

Function = Callable[[np.ndarray], np.ndarray]


def llvm_available() -> bool:
    """Whether this symengine can compile with LLVM."""
    try:
        se.Lambdify([se.Symbol("x")], [se.Symbol("x")], backend="llvm")
    except (ValueError, RuntimeError, TypeError):
        return False
    return True


DEFAULT_BACKEND = "llvm" if llvm_available() else "lambda"


def lambdify(symbols, expressions, backend: str = DEFAULT_BACKEND) -> Function:
    """One compiled function ``x -> [e(x) for e in expressions]`` with CSE."""
    options = {"opt_level": 0} if backend == "llvm" else {}
    compiled = se.Lambdify(list(symbols), list(expressions), backend=backend, cse=True, **options)
    return lambda x: compiled(np.asarray(x, dtype=float))


@dataclass(frozen=True, eq=False)
class CompiledValues:
    """Compiled ``V``, ``grad V`` and ``hess V`` of every agent, with build timings in seconds."""

    layout: Layout
    n_agents: int
    value: Function
    gradient: Function
    hessian: Function
    backend: str
    seconds: dict

    def simultaneous_jacobian(self, x: np.ndarray) -> np.ndarray:
        """``d xi / d x`` where ``xi = (grad_{theta^0} V^0, .., grad_{theta^{n-1}} V^{n-1})``."""
        return self.simultaneous_block(self.hessian(x))

    def simultaneous_block(self, hessians: np.ndarray) -> np.ndarray:
        """``d xi / d x`` from already evaluated Hessians: agent ``k``'s own rows of ``hess V^k``."""
        return np.concatenate([hessians[k, self.layout.slice(k), :] for k in range(self.n_agents)])


def compile_values(symbolic: SymbolicValues, backend: str = DEFAULT_BACKEND) -> CompiledValues:
    """Differentiate ``symbolic`` twice and compile values, gradients and Hessians."""
    x = symbolic.symbols
    n, d = len(symbolic.values), len(x)
    start = time.perf_counter()
    gradients = [[se.diff(value, xj) for xj in x] for value in symbolic.values]
    upper = np.triu_indices(d)
    hessians = [[se.diff(g[i], x[j]) for i, j in zip(*upper, strict=True)] for g in gradients]
    derived = time.perf_counter()
    value = lambdify(x, symbolic.values, backend)
    gradient = lambdify(x, [g for row in gradients for g in row], backend)
    triangles = [lambdify(x, triangle, backend) for triangle in hessians]
    compiled = time.perf_counter()

    def hessian(point: np.ndarray) -> np.ndarray:
        full = np.zeros((n, d, d))
        full[:, upper[0], upper[1]] = [triangle(point) for triangle in triangles]
        full[:, upper[1], upper[0]] = full[:, upper[0], upper[1]]
        return full

    return CompiledValues(
        symbolic.layout,
        n,
        value,
        lambda point: np.reshape(gradient(point), (*np.shape(point)[:-1], n, d)),
        hessian,
        backend,
        {"derive": derived - start, "compile": compiled - derived},
    )


_CACHE: dict[str, CompiledValues] = {}


def game_key(game, policy) -> str:
    """A content fingerprint of a game and policy kind, for reusing compiled code."""
    digest = hashlib.sha256(f"{game.name}|{policy.name if policy else ''}|{type(game).__name__}".encode())
    for name in ("transitions", "rewards", "initial", "views"):
        if hasattr(game, name):
            array = np.ascontiguousarray(getattr(game, name))
            digest.update(repr(array.shape).encode() + array.tobytes())  # same bytes may come in other shapes
    digest.update(repr((getattr(game, "gamma", None), getattr(game, "horizon", None))).encode())
    return digest.hexdigest()


def compile_game(game, policy) -> CompiledValues:
    """:func:`compile_values` of :func:`symbolic_values`, memoised per process by content."""
    key = game_key(game, policy)
    if key not in _CACHE:
        _CACHE[key] = compile_values(symbolic_values(game, policy))
    return _CACHE[key]
