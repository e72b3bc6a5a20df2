"""Users' own estimators, named ``module:function`` in a case file (SPEC §4, §5).

The toolkit runs the inner loop of SPEC §3 (model S: REINFORCE with discounted reward-to-go,
``phi_{l+1} = phi_l + A g(B_l; phi_l)``), hands one replicate's batches to the plug-in, and
takes back one estimate of ``grad_{theta^i} J^i``::

    def estimator(inner, outer, theta, settings) -> array shaped like theta[settings.meta_agent]

- ``inner``: the ``L`` inner batches ``B_0 .. B_{L-1}``, each a :class:`Batch`;
- ``outer``: ``L + 1`` entries; entry ``l`` is the outer batch drawn from ``pi(phi_l)`` where the
  objective has a term at level ``l`` (the last one for ``terminal``, all for ``chain``), else ``None``;
- ``theta``: the initial parameters, one array per agent (shapes of SPEC §1);
- ``settings``: :class:`Settings`, the game and the inner-loop settings.

A :class:`Batch` holds ``K`` trajectories: ``states (K, H)``, ``actions (K, H, n)``, raw
``rewards (K, H, n)`` (undiscounted; ``settings.gamma`` is the discount) and ``phi``, the
parameters it was drawn at (given for convenience; a meta-gradient estimator recomputes them
from ``theta`` to differentiate through them). Agent ``k`` sees state ``s`` as its policy row
``settings.game.views[k, s]``.

It may return ``(estimate, phis)`` instead, ``phis`` its own ``phi_1 .. phi_L`` (each one array
per agent, or flat): the toolkit then checks them against the parameters that drew the batches
(check ``inner-update:NAME``), so that an estimator whose inner update differs from model S's is
not scored, unsaid, on batches its own update would not draw.

The plug-in is called once per replicate. Its exact expectation enumerates every ordered
sequence of inner and outer trajectories (a plug-in may pair them by position) under the
case's ``enumeration_cap``. A plug-in that raises, returns a non-finite value or the wrong
shape fails its own checks; the run goes on.
"""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mapg_verify.estimators.montecarlo import chunk_size, draw_recorded
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import FROZEN, Estimator, Parts
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.enumeration import Trajectories, enumerate_trajectories
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case


def resolve_plugin(name: str, key: str = "estimators.names") -> Callable:
    """Import ``module:function`` (an absolute dotted module name and a function name); any
    failure, the module's own errors at import included, is an input error naming the key."""
    module_name, _, attribute = name.partition(":")
    if not all(part.isidentifier() for part in module_name.split(".")) or not attribute.isidentifier():
        raise InputError(key, f"plug-in {name!r} must be module:function with an absolute module name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(key, f"plug-in {name!r} cannot be imported: {error}") from None
    except Exception as error:  # the module's own code failed: a syntax error, an exception at import
        raise InputError(
            key, f"plug-in {name!r}: importing {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, attribute, None)
    if function is None:
        raise InputError(key, f"plug-in {name!r}: module {module_name!r} has no {attribute!r}")
    if not callable(function):
        raise InputError(key, f"plug-in {name!r} is not callable")
    return function


def plugin_path(case_file: str) -> None:
    """Let plug-ins named in ``case_file`` import from its folder and that folder's parent too,
    after everything already on the path (so nothing installed is shadowed)."""
    folder = Path(case_file).resolve().parent
    for entry in (str(folder), str(folder.parent)):
        if entry not in sys.path:
            sys.path.append(entry)


@dataclass(frozen=True, eq=False)
class Batch:
    """``K`` trajectories as a plug-in sees them."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    phi: tuple[np.ndarray, ...]


@dataclass(frozen=True, eq=False)
class Settings:
    """The case's game and inner-loop settings, for a plug-in."""

    game: Game
    policy: str
    alpha: tuple[float, ...]
    steps: int
    batch: int
    outer_batch: int
    horizon: int
    gamma: float
    meta_agent: int
    objective: str


class PluginError(Exception):
    """A plug-in raised, or returned something that is not a finite array of the right shape."""


def settings_of(case: Case) -> Settings:
    inner = case.inner
    return Settings(
        case.game,
        case.policy.name,
        inner.alpha,
        inner.steps,
        inner.batch,
        case.estimators.outer_batch,
        inner.horizon,
        case.game.gamma,
        inner.meta_agent,
        inner.objective,
    )


def call(function: Callable, inner, outer, theta, settings: Settings, shape: tuple[int, ...]):
    """One call, its result checked: a flat finite vector of ``prod(shape)`` entries, and the
    plug-in's own ``phi_1 .. phi_L`` flattened ``(L, D)`` where it returns them (else ``None``)."""
    try:
        value = function(inner, outer, theta, settings)
    except Exception as error:  # a plug-in's own failure is a verdict, not a crash
        raise PluginError(f"raised {type(error).__name__}: {error}") from error
    phis = None
    if isinstance(value, tuple) and len(value) == 2:
        value, phis = value[0], _flat_phis(value[1], len(inner), sum(np.size(t) for t in theta))
    try:
        value = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise PluginError(f"returned {type(value).__name__}, not an array of numbers") from None
    if value.shape != shape:
        raise PluginError(f"returned shape {value.shape}, expected {shape} (the shape of theta^i)")
    if not np.all(np.isfinite(value)):
        raise PluginError(f"returned a non-finite value: {value.ravel().tolist()}")
    return value.reshape(-1), phis


def _parts(phi) -> tuple:
    """One array per agent, or a flat array as one part."""
    return tuple(phi) if isinstance(phi, (tuple, list)) else (phi,)


def _flat_phis(phis, steps: int, size: int) -> np.ndarray:
    """The plug-in's ``phi_1 .. phi_L`` as ``(L, D)``: each entry flat or one array per agent."""
    try:
        flat = [np.concatenate([np.ravel(np.asarray(p, dtype=float)) for p in _parts(phi)]) for phi in phis]
    except (TypeError, ValueError):
        raise PluginError("returned phis that are not arrays of numbers") from None
    if len(flat) != steps or any(len(phi) != size for phi in flat):
        shapes = [len(phi) for phi in flat]
        raise PluginError(f"returned {len(flat)} phis of sizes {shapes}, expected phi_1 .. phi_{steps} of size {size}")
    return np.array(flat).reshape(steps, size)


@dataclass(frozen=True, eq=False)
class PluginDraws:
    """A plug-in's Monte-Carlo rows, the partner estimator's rows on the very same batches, and the
    largest deviation of the plug-in's own ``phi_l`` from the parameters that drew ``B_l``
    (relative to ``max(|phi_l|, 1)``, over replicates and levels; ``None`` when it returns none)."""

    rows: np.ndarray
    partner: np.ndarray
    inner_update: float | None


def plugin_draws(
    case: Case, compiled: CompiledValues, function: Callable, samples: int, rng, partner: Estimator = FROZEN
) -> PluginDraws:
    """``samples`` estimates, one row each, on batches from the model-S inner loop, beside the
    estimates of ``partner`` (a built-in on the same inner loop) from the same batches."""
    if not partner.plain_inner_loop:
        raise ValueError("the partner must run model S's inner loop, unchanged")
    surrogate = plan(case, compiled, partner)
    settings, shape = settings_of(case), case.theta[case.inner.meta_agent].shape
    rows, theirs, deviation = [], [], None
    for start in range(0, samples, chunk_size(surrogate)):
        count = min(chunk_size(surrogate), samples - start)
        draws = draw_recorded(surrogate, count, rng)
        phis = draws.phis
        theirs.append(draws.parts.total)
        for r in range(count):
            inner = tuple(
                _batch(surrogate, t, r, case.inner.batch, phis[level][r]) for level, t in enumerate(draws.inner)
            )
            outer = tuple(
                None if t is None else _batch(surrogate, t, r, case.estimators.outer_batch, phis[level][r])
                for level, t in enumerate(draws.outer)
            )
            row, own = call(function, inner, outer, case.theta, settings, shape)
            rows.append(row)
            if own is not None and len(own):
                drawn = np.array([phi[r] for phi in phis[1:]])
                gap = float(np.max(np.abs(own - drawn) / np.maximum(np.abs(drawn), 1.0)))
                deviation = gap if deviation is None else max(deviation, gap)
    return PluginDraws(np.array(rows), np.concatenate(theirs), deviation)


def draw_plugin(case: Case, compiled: CompiledValues, function: Callable, samples: int, rng) -> np.ndarray:
    """``samples`` estimates, one row each, on batches from the model-S inner loop."""
    return plugin_draws(case, compiled, function, samples, rng).rows


def _batch(surrogate, trajectories: Trajectories, replicate: int, size: int, phi) -> Batch:
    return _as_batch(surrogate, trajectories.take(slice(replicate * size, (replicate + 1) * size)), phi)


def _as_batch(surrogate, trajectories: Trajectories, phi) -> Batch:
    game, states, actions = surrogate.case.game, trajectories.states, trajectories.actions
    rewards = np.stack([game.rewards[(k, states, *np.moveaxis(actions, -1, 0))] for k in range(game.n_agents)], -1)
    return Batch(states, actions, rewards, surrogate.compiled.layout.unflatten(np.asarray(phi, dtype=float)))


def count_sequences(case: Case) -> int:
    """Calls the plug-in's exact expectation makes: ordered inner batches at every step, ordered
    outer batches at every evaluated level."""
    inner = case.inner
    n = len(enumerate_trajectories(case.game, inner.horizon).states)
    evaluated = inner.steps + 1 if inner.objective == "chain" else 1
    return n ** (inner.batch * inner.steps + case.estimators.outer_batch * evaluated)


def plugin_expectation(case: Case, compiled: CompiledValues, function: Callable) -> Parts:
    """The plug-in's exact expectation over every ordered sequence of trajectories; an input error
    (key ``inner.enumeration_cap``) above the cap. The whole estimate is reported as ``own``."""
    count = count_sequences(case)
    if count > case.inner.enumeration_cap:
        raise InputError(
            "inner.enumeration_cap",
            f"the plug-in's expectation needs {count:,} calls (ordered batches), above the cap of "
            f"{case.inner.enumeration_cap:,}",
        )
    surrogate = plan(case, compiled, FROZEN)
    layout, settings = compiled.layout, settings_of(case)
    shape = case.theta[case.inner.meta_agent].shape
    trajectories = enumerate_trajectories(case.game, case.inner.horizon)
    total = np.zeros(int(np.prod(shape)))

    def log_probs(phi) -> np.ndarray:
        return trajectory_terms(case.game, case.policy, layout, trajectories, phi, second_order=False).log_prob

    def sequences(phi, size: int):
        """Every ordered batch of ``size`` trajectories at ``phi``: (indices, log-probability)."""
        lp = log_probs(phi)
        for indices in itertools.product(range(len(lp)), repeat=size):
            yield np.array(indices), float(lp[list(indices)].sum())

    def visit(level: int, phi, log_weight: float, inner: tuple, outer: tuple) -> None:
        nonlocal total
        options = [(None, 0.0)]
        if surrogate.evaluated(level):
            options = list(sequences(phi, case.estimators.outer_batch))
        for chosen, outer_weight in options:
            batch = None if chosen is None else _as_batch(surrogate, trajectories.take(chosen), phi)
            outer_now = (*outer, batch)
            if level == surrogate.steps:
                value, _ = call(function, inner, outer_now, case.theta, settings, shape)
                total = total + np.exp(log_weight + outer_weight) * value
                continue
            for indices, inner_weight in sequences(phi, case.inner.batch):
                drawn = trajectories.take(indices)
                terms = trajectory_terms(case.game, case.policy, layout, drawn, phi, second_order=False)
                step = phi + surrogate.rates * terms.reinforce.mean(axis=0)
                drawn = _as_batch(surrogate, drawn, phi)
                visit(level + 1, step, log_weight + outer_weight + inner_weight, (*inner, drawn), outer_now)

    visit(0, case.flat_theta, 0.0, (), ())
    zero = np.zeros_like(total)
    return Parts(zero, total, zero)
