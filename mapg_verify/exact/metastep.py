"""Model E's meta-gradient for one inner step as one compiled function of ``(theta, alpha)`` (symbolic backend).

With ``phi_1 = x + A xi(x)`` and ``T_1 = E_i + A (d xi/dx) E_i`` (SPEC §3), agent ``i``'s terms are
``own_c = sum_{j in i} grad_j V^i(phi_1) T_1[j, c]`` and ``peer_c = sum_{j not in i} grad_j V^i(phi_1)
T_1[j, c]`` for ``c`` in agent ``i``'s block, plus ``grad_c V^i(x)`` in ``own`` for the chain
objective. Built from the closed forms: ``grad V^i`` with ``x`` replaced by ``phi_1``'s expressions
and ``d xi/dx`` on agent ``i``'s columns, the rates ``alpha^k`` as inputs, compiled by
:func:`~mapg_verify.exact.compiled.lambdify` with common subexpressions shared between the two points.
One call replaces three compiled calls and about twenty numpy calls (a meta-gradient of the IPD in 9 us
against 34).

Compiling a step takes about two-thirds of its game's own compile (0.2 s on the IPD, which the
step's 25 us saving repays after about 8,000 calls), so a step is compiled on the
:data:`FUSE_AFTER`-th call for one game, meta-agent and objective (a key called that often is in a
loop: training, a sweep, a benchmark), and only for games whose closed forms compiled within
:data:`FUSE_SECONDS`; calls before it, larger games and the numeric backend go through
:func:`mapg_verify.exact.metagradient.expected_update`'s general path.
"""

from __future__ import annotations

import collections
import weakref
from collections.abc import Callable

import numpy as np
import symengine as se

from mapg_verify.exact.compiled import CompiledValues, lambdify

FUSE_AFTER = 1000  # calls with one (compiled game, meta-agent, objective) from which its step is compiled
FUSE_SECONDS = 2.0  # the longest a game's closed forms took to compile for its steps to be compiled (IPD: 0.3 s)

Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# per compiled game, held weakly (a campaign's games are freed with it): calls and compiled steps by key
_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def one_step(compiled: CompiledValues, meta_agent: int, objective: str) -> Step | None:
    """``(x, alpha) -> (own, peer)`` for one inner step, once asked for :data:`FUSE_AFTER` times
    for this key (compiled then, kept for the process); ``None`` before, without closed forms, and
    for games that took longer than :data:`FUSE_SECONDS` to compile."""
    if compiled.symbolic is None or compiled.seconds["compile"] > FUSE_SECONDS:
        return None
    key, steps = (meta_agent, objective), _STEPS.setdefault(compiled, {})
    if key not in steps:
        calls = _CALLS.setdefault(compiled, collections.Counter())
        calls[key] += 1
        if calls[key] < FUSE_AFTER:
            return None
        steps[key] = _compile(compiled, meta_agent, objective)
    return steps[key]


def _compile(compiled: CompiledValues, meta_agent: int, objective: str) -> Step:
    """The expressions of the module's docstring, compiled with the game's backend."""
    symbolic, layout = compiled.symbolic, compiled.layout
    x, n = symbolic.symbols, compiled.n_agents
    alpha = [se.Symbol(f"alpha{k}") for k in range(n)]
    owner = [k for k in range(n) for _ in range(layout.sizes[k])]  # whose parameter x_j is
    rates = [alpha[k] for k in owner]
    xi = [se.diff(symbolic.values[k], xj) for k, xj in zip(owner, x, strict=True)]
    gradient = [se.diff(symbolic.values[meta_agent], xj) for xj in x]
    moved = {xj: xj + rate * xi_j for xj, rate, xi_j in zip(x, rates, xi, strict=True)}
    ahead = [g.subs(moved) for g in gradient]  # grad V^i(phi_1)
    block = range(layout.slice(meta_agent).start, layout.slice(meta_agent).stop)
    own, peer = [], []
    for c in block:
        carried = [ahead[j] * rates[j] * se.diff(xi[j], x[c]) for j in range(len(x))]
        first = gradient[c] if objective == "chain" else se.Integer(0)
        own.append(first + ahead[c] + sum((carried[j] for j in block), se.Integer(0)))
        peer.append(sum((carried[j] for j in range(len(x)) if j not in block), se.Integer(0)))
    function, width = lambdify([*x, *alpha], own + peer, compiled.backend), len(block)

    def step(point: np.ndarray, rates_per_agent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = function(np.concatenate((point, rates_per_agent)))
        return out[:width], out[width:]

    return step
