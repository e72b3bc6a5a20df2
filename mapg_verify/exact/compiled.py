"""The symbolic-to-numeric bridge: values, gradients and the simultaneous Jacobian, compiled by symengine.

For flat parameters ``x`` (row-major ``theta``): ``value(x)[k] = V^k``,
``gradient(x)[k, j] = dV^k/dx_j``, and ``step(x) = (gradient(x), d xi / dx)``
where ``xi = (grad_{theta^0} V^0, .., grad_{theta^{n-1}} V^{n-1})`` is the
simultaneous gradient: row block ``k`` of its Jacobian is the block of rows of
``hess V^k`` that belongs to agent ``k``. These are the second derivatives
that meta-gradients and LOLA compose; the rest of each Hessian is never used.

Expressions are differentiated by symengine and compiled with common
subexpression elimination by symengine's ``Lambdify``; the LLVM backend is
used where symengine was built with it, else its ``lambda`` backend
(``benchmarks/bench_values.py`` measures both, and plain sympy).
``step`` is one compiled function per agent (its gradient and its rows of
the Jacobian): symengine's CSE grows faster than linearly in the size of its
input (on the 10-step IPD, 21 s for both agents at once, 13 s apart).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import symengine as se

from mapg_verify.exact.symbolic import SymbolicValues, symbolic_values
from mapg_verify.problem.params import Layout, layout_of

Function = Callable[[np.ndarray], np.ndarray]


def llvm_available() -> bool:
    """Whether this symengine can compile with LLVM."""
    try:
        se.Lambdify([se.Symbol("x")], [se.Symbol("x")], backend="llvm")
    except (ValueError, RuntimeError, TypeError):
        return False
    return True


@functools.cache
def default_backend() -> str:
    """``llvm`` where this symengine has it, else ``lambda`` (probed once, on first use)."""
    return "llvm" if llvm_available() else "lambda"


def lambdify(symbols, expressions, backend: str | None = None) -> Function:
    """One compiled function ``x -> [e(x) for e in expressions]`` with CSE; ``x`` of shape
    ``(D,)`` or ``(..., D)``. A single point goes through ``unsafe_real`` (no checks inside
    symengine, so the length is checked here), which saves most of the call's overhead."""
    backend = backend or default_backend()
    options = {"opt_level": 0} if backend == "llvm" else {}
    compiled = se.Lambdify(list(symbols), list(expressions), backend=backend, cse=True, **options)
    n_inputs, n_outputs = len(symbols), len(expressions)

    def evaluate(x):
        x = np.ascontiguousarray(x, dtype=float)
        if x.shape != (n_inputs,):
            return compiled(x)
        out = np.empty(n_outputs)
        compiled.unsafe_real(x, out)
        return out

    return evaluate


@dataclass(frozen=True, eq=False)
class CompiledValues:
    """Compiled ``V``, ``grad V`` and ``(grad V, d xi/dx)`` of every agent, with build timings in
    seconds; a backend may add ``gradient_and_vjp``, ``x -> (grad V, w -> w^T d xi/dx)``, which
    model E then runs backwards through the inner loop instead of forming ``d xi/dx``; the symbolic
    one keeps its closed forms (``symbolic``) for what is compiled from them later
    (:mod:`mapg_verify.exact.metastep`)."""

    layout: Layout
    n_agents: int
    value: Function
    gradient: Function
    gradient_and_jacobian: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    backend: str
    seconds: dict
    gradient_and_vjp: Callable[[np.ndarray], tuple[np.ndarray, Callable]] | None = None
    symbolic: SymbolicValues | None = None


def compile_values(symbolic: SymbolicValues, backend: str | None = None) -> CompiledValues:
    """Differentiate ``symbolic`` twice and compile values, gradients and the simultaneous Jacobian."""
    x, layout = symbolic.symbols, symbolic.layout
    n, d = len(symbolic.values), len(x)
    backend = backend or default_backend()
    start = time.perf_counter()
    gradients = [[se.diff(value, xj) for xj in x] for value in symbolic.values]
    rows = [
        [se.diff(gradients[k][r], xj) for r in range(layout.slice(k).start, layout.slice(k).stop) for xj in x]
        for k in range(n)
    ]
    derived = time.perf_counter()
    value = lambdify(x, symbolic.values, backend)
    gradient = lambdify(x, [g for row in gradients for g in row], backend)
    agents = [lambdify(x, gradients[k] + rows[k], backend) for k in range(n)]
    compiled = time.perf_counter()

    def step(point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = [agent(point) for agent in agents]
        return np.array([out[:d] for out in outputs]), np.concatenate([out[d:] for out in outputs]).reshape(d, d)

    return CompiledValues(
        layout,
        n,
        value,
        lambda point: np.reshape(gradient(point), (*np.shape(point)[:-1], n, d)),
        step,
        backend,
        {"derive": derived - start, "compile": compiled - derived},
        symbolic=symbolic,
    )


MAX_COMPILED = 64  # compiled games compile_game keeps, the least recently used dropped first
_CACHE: collections.OrderedDict[str, CompiledValues] = collections.OrderedDict()


def game_key(game, policy) -> str:
    """A content fingerprint of a game and policy kind, for reusing compiled code."""
    digest = hashlib.sha256(f"{game.name}|{policy.name if policy else ''}|{type(game).__name__}".encode())
    for name in ("transitions", "rewards", "initial", "views"):
        if hasattr(game, name):
            array = np.ascontiguousarray(getattr(game, name))
            digest.update(repr(array.shape).encode() + array.tobytes())  # same bytes may come in other shapes
    digest.update(repr((getattr(game, "gamma", None), getattr(game, "horizon", None))).encode())
    return digest.hexdigest()


def closed_form_size(game, policy) -> int:
    """A structural proxy for the size of the closed forms and their derivatives, known before
    any is built: ``D * A * S^3`` (elimination on ``I - gamma P_pi``) for an infinite horizon,
    ``D * H * nnz(P)`` (one step of ``d_t P_pi`` per step) for a finite one, with ``D`` the
    parameters, ``A`` the joint actions, ``S`` the states. Measured: the expression graphs
    symengine compiles hold 2 to 6 times this many distinct nodes."""
    if not hasattr(game, "transitions"):
        return 0
    parameters = layout_of(game, policy).size
    if math.isinf(game.horizon):
        return parameters * math.prod(game.n_actions) * game.n_states**3
    return parameters * int(game.horizon) * int(np.count_nonzero(game.transitions))


def compile_seconds(game, policy) -> float:
    """A rough estimate of the time to compile a game's closed forms: ``0.5 (size / 1333)^2``
    seconds, fitted on random games of 2 to 8 states and the IPD (2 cores; off by up to 10x
    either way, see :func:`closed_form_size`); symengine's CSE is superlinear in the size."""
    return 0.5 * (closed_form_size(game, policy) / 1333.0) ** 2


def compile_game(game, policy) -> CompiledValues:
    """:func:`compile_values` of :func:`symbolic_values`, memoised per process by content (the
    :data:`MAX_COMPILED` most recently used: a campaign's stream of games does not accumulate)."""
    key = game_key(game, policy)
    if key not in _CACHE:
        _CACHE[key] = compile_values(symbolic_values(game, policy))
        while len(_CACHE) > MAX_COMPILED:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]
