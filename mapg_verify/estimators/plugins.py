"""Users' own estimators, named ``module:function`` in a case file (SPEC §4, §5), or
``jax:module:function`` and ``torch:module:function`` for estimators written in those frameworks
(:mod:`mapg_verify.estimators.frameworks`).

The toolkit runs the inner loop of SPEC §3 (model S: REINFORCE with discounted reward-to-go,
``phi_{l+1} = phi_l + A g(B_l; phi_l)``), hands one replicate's batches to the plug-in, and
takes back one estimate of ``grad_{theta^i} J^i``::

    def estimator(inner, outer, theta, settings) -> array shaped like theta[settings.meta_agent]

- ``inner``: the ``L`` inner batches ``B_0 .. B_{L-1}``, each a :class:`Batch`;
- ``outer``: ``L + 1`` entries; entry ``l`` is the outer batch drawn from ``pi(phi_l)`` where the
  objective has a term at level ``l`` (the last one for ``terminal``, all for ``chain``), else ``None``;
- ``theta``: the initial parameters, one array per agent (shapes of SPEC §1);
- ``settings``: :class:`Settings`, the game and the inner-loop settings.

Agent ``k`` sees state ``s`` as its policy row ``settings.game.views[k, s]``; ``Batch.phi`` is given
for convenience (a meta-gradient estimator recomputes the ``phi_l`` from ``theta`` to
differentiate through them).

It may return ``(estimate, phis)`` instead, ``phis`` its own ``phi_1 .. phi_L`` (each one array
per agent, or flat): the toolkit then checks them against the parameters that drew the batches
(check ``inner-update:NAME``), so that an estimator whose inner update differs from model S's is
not scored, unsaid, on batches its own update would not draw.

A plug-in written in another code's conventions (its function's ``conventions``, or the case's
``[estimators.conventions]``) receives its batches and ``theta`` in them and hands back its
estimate and phis in them (:mod:`mapg_verify.estimators.conventions`).

A plug-in whose function has ``batched = True`` is called with :data:`PER_CALL` replicates at a
time (the last call padded with copies of the last replicate, so that a compiled plug-in sees one
shape), every array with a leading replicate axis (:mod:`mapg_verify.estimators.records`),
``theta[k]`` as ``(R, *shape)``, and returns ``(R, *shape)`` (its phis ``(R, ...)``). Its exact expectation
enumerates every ordered sequence of inner and outer trajectories (a plug-in may pair them by
position) under the case's ``enumeration_cap``, as replicates of one weighted mean. A plug-in
that raises, returns a non-finite value or the wrong shape fails its own checks; the run goes on.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mapg_verify.estimators.conventions import adapted, convention_for
from mapg_verify.estimators.frameworks import caller, require, split_framework
from mapg_verify.estimators.montecarlo import chunk_size, draw_recorded
from mapg_verify.estimators.records import Batch, Plugin, PluginError, as_plugin, settings_of
from mapg_verify.estimators.surrogate import inner_step, plan
from mapg_verify.estimators.table import FROZEN, Estimator, Parts, outer_of
from mapg_verify.exact.baselines import trajectory_values
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.enumeration import Trajectories, enumerate_trajectories, rewards_of
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.errors import InputError
from mapg_verify.progress import CallMeter
from mapg_verify.spec.case import Case

PER_CALL = 4096  # replicates per call of a batched plug-in: one shape, so a compiled plug-in compiles once


def resolve_plugin(name: str, key: str = "estimators.names") -> Plugin:
    """Import ``[jax:|torch:]module:function`` (an absolute dotted module name and a function name);
    any failure, a missing framework and the module's own errors at import included, is an input
    error naming the key."""
    framework, target = split_framework(name)
    module_name, _, attribute = target.partition(":")
    if not all(part.isidentifier() for part in module_name.split(".")) or not attribute.isidentifier():
        raise InputError(key, f"plug-in {name!r} must be [jax:|torch:]module:function with an absolute module name")
    require(framework, key, name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(key, f"plug-in {name!r} cannot be imported: {error}") from None
    except (Exception, SystemExit) as error:  # the module's own code failed: a syntax error, an exception at import
        raise InputError(
            key, f"plug-in {name!r}: importing {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, attribute, None)
    if function is None:
        raise InputError(key, f"plug-in {name!r}: module {module_name!r} has no {attribute!r}")
    if not callable(function):
        raise InputError(key, f"plug-in {name!r} is not callable")
    return Plugin(name, function, framework)


def plugin_path(case_file: str) -> None:
    """Let plug-ins named in ``case_file`` import from its folder and that folder's parent too,
    after everything already on the path (so nothing installed is shadowed)."""
    folder = Path(case_file).resolve().parent
    for entry in (str(folder), str(folder.parent)):
        if entry not in sys.path:
            sys.path.append(entry)


@dataclass(frozen=True, eq=False)
class Replicates:
    """``R`` replicates' batches, every field of every :class:`Batch` with a leading replicate axis."""

    inner: tuple[Batch, ...]
    outer: tuple[Batch | None, ...]

    def take(self, rows) -> Replicates:
        """Replicate ``rows`` (an int drops the axis, a slice keeps it)."""

        def part(b: Batch | None):
            if b is None:
                return None
            return Batch(b.states[rows], b.actions[rows], b.rewards[rows], _rows(b.phi, rows), b.values[rows])

        return Replicates(tuple(map(part, self.inner)), tuple(map(part, self.outer)))


def _rows(phi: tuple, rows) -> tuple:
    return tuple(p[rows] for p in phi)


def evaluate(
    plugin: Plugin, replicates: Replicates, count: int, case: Case, outer_batch: int, meter: CallMeter | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The plug-in's estimates ``(R, D_i)`` on ``count`` replicates whose outer batches hold
    ``outer_batch`` trajectories, and its own ``phi_1 .. phi_L`` flattened ``(R, L, D)`` where it
    returns them (else ``None``); ``meter`` counts the calls."""
    tick = meter.tick if meter is not None else lambda: None
    settings, theta = dataclasses.replace(settings_of(case), outer_batch=outer_batch), case.theta
    shape, size = theta[settings.meta_agent].shape, sum(np.size(t) for t in theta)
    convention = convention_for(dict(case.estimators.conventions), plugin)

    def calling(surrogate_shape: tuple[int, ...]):
        call = caller(plugin.framework, plugin.function, settings, surrogate_shape)
        return adapted(call, convention, case.game, settings.meta_agent, settings.policy == "softmax")

    if plugin.batched:
        tiled = tuple(np.broadcast_to(t, (PER_CALL, *np.shape(t))).copy() for t in theta)
        call, rows, own = calling((PER_CALL,)), [], []
        for start in range(0, count, PER_CALL):
            stop = min(start + PER_CALL, count)
            picked = replicates.take(np.minimum(np.arange(start, start + PER_CALL), stop - 1))
            value, phis = _call(call, picked, tiled, case.estimators.plugin_timeout)
            tick()
            rows.append(_checked(value, (PER_CALL, *shape)).reshape(PER_CALL, -1)[: stop - start])
            own.append(None if phis is None else _flat_phis(phis, settings.steps, size, PER_CALL)[: stop - start])
        return np.concatenate(rows), None if own[0] is None else np.concatenate(own)
    call, rows, own = calling(()), [], []
    for r in range(count):
        value, phis = _call(call, replicates.take(r), theta, case.estimators.plugin_timeout)
        tick()
        rows.append(_checked(value, shape).reshape(-1))
        own.append(None if phis is None else _flat_phis(phis, settings.steps, size))
    found = None if any(phis is None for phis in own) else np.array(own).reshape(count, settings.steps, size)
    return np.array(rows).reshape(count, -1), found


def _call(call, replicates: Replicates, theta, timeout: float):
    """One call of the plug-in, contained: whatever it raises (``SystemExit`` and a
    ``KeyboardInterrupt`` of its own included; a real Ctrl-C still stops the run), or a call that
    outlasts ``timeout`` seconds (in the main thread, by ``SIGALRM``), is a :class:`PluginError`."""
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    handlers = {}
    if main:
        handlers[signal.SIGALRM] = signal.signal(signal.SIGALRM, _timed_out)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            handlers[signal.SIGINT] = signal.signal(signal.SIGINT, _ctrl_c)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return call(replicates.inner, replicates.outer, theta)
    except PluginTimeout:
        raise PluginError(f"did not return within {timeout:g} s ([estimators] plugin_timeout)") from None
    except SystemExit as error:
        raise PluginError(f"called sys.exit({error.code!r})") from None
    except KeyboardInterrupt as error:
        if isinstance(error, CtrlC) or not main:
            raise KeyboardInterrupt from None  # the user's Ctrl-C (a worker's is the parent's): stop
        raise PluginError("raised KeyboardInterrupt itself") from None
    except Exception as error:  # a plug-in's own failure is a verdict, not a crash
        raise PluginError(f"raised {type(error).__name__}: {error}") from error
    finally:
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for number, handler in handlers.items():
                signal.signal(number, handler)


class PluginTimeout(Exception):
    """A plug-in's call outlasted its time."""


class CtrlC(KeyboardInterrupt):
    """SIGINT arrived during a plug-in's call: the user's, not the plug-in's."""


def _timed_out(signum, frame) -> None:
    raise PluginTimeout


def _ctrl_c(signum, frame) -> None:
    raise CtrlC


def _checked(value, shape: tuple[int, ...]) -> np.ndarray:
    """The plug-in's estimate as a finite float array of ``shape``, or a :class:`PluginError`."""
    try:
        value = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise PluginError(f"returned {type(value).__name__}, not an array of numbers") from None
    if value.shape != shape:
        raise PluginError(f"returned shape {value.shape}, expected {shape} (the shape of theta^i)")
    if not np.all(np.isfinite(value)):
        raise PluginError(f"returned a non-finite value: {value.ravel()[:8].tolist()}")
    return value


def _parts(phi) -> tuple:
    """One array per agent, or a flat array as one part."""
    return tuple(phi) if isinstance(phi, (tuple, list)) else (phi,)


def _flat_phis(phis, steps: int, size: int, count: int | None = None) -> np.ndarray:
    """The plug-in's ``phi_1 .. phi_L`` as ``(L, D)`` (``(R, L, D)`` batched): each entry flat or
    one array per agent."""
    lead = () if count is None else (count,)
    try:
        flat = [
            np.concatenate([np.asarray(p, dtype=float).reshape(*lead, -1) for p in _parts(phi)], axis=-1)
            for phi in phis
        ]
    except (TypeError, ValueError):
        raise PluginError("returned phis that are not arrays of numbers") from None
    if len(flat) != steps or any(phi.shape != (*lead, size) for phi in flat):
        shapes = [phi.shape for phi in flat]
        raise PluginError(f"returned {len(flat)} phis of shapes {shapes}, expected phi_1 .. phi_{steps} of size {size}")
    return np.stack(flat, axis=-2)


@dataclass(frozen=True, eq=False)
class PluginDraws:
    """A plug-in's Monte-Carlo rows, the partner estimator's rows on the very same batches, and the
    largest deviation of the plug-in's own ``phi_l`` from the parameters that drew ``B_l``
    (relative to ``max(|phi_l|, 1)``, over replicates and levels; ``None`` when it returns none)."""

    rows: np.ndarray
    partner: np.ndarray
    inner_update: float | None


def plugin_draws(
    case: Case, compiled: CompiledValues, plugin: Plugin | Callable, samples: int, rng, partner: Estimator = FROZEN
) -> PluginDraws:
    """``samples`` estimates, one row each, on batches from the inner loop of ``partner`` (model S's
    by default), beside the estimates of ``partner`` itself from the same batches."""
    plugin = as_plugin(plugin)
    surrogate = plan(case, compiled, partner)
    rows, theirs, deviation = [], [], None
    meter = CallMeter(plugin.name, -(-samples // PER_CALL) if plugin.batched else samples, f"{samples:,} samples")
    for start in range(0, samples, chunk_size(surrogate)):
        count = min(chunk_size(surrogate), samples - start)
        draws = draw_recorded(surrogate, count, rng)
        phis = draws.phis
        theirs.append(draws.parts.total)
        replicates = replicates_of(surrogate, draws, count)
        found, own = evaluate(plugin, replicates, count, case, surrogate.outer_batch, meter)
        rows.append(found)
        if own is not None and own.shape[1]:
            drawn = np.stack(phis[1:], axis=1)  # (R, L, D)
            gap = float(np.max(np.abs(own - drawn) / np.maximum(np.abs(drawn), 1.0)))
            deviation = gap if deviation is None else max(deviation, gap)
    meter.close()
    return PluginDraws(np.concatenate(rows), np.concatenate(theirs), deviation)


def replicates_of(surrogate, draws, count: int) -> Replicates:
    """The batches of ``count`` replicates drawn by :func:`draw_recorded`, as a plug-in receives them."""
    phis = draws.phis
    return Replicates(
        tuple(_stacked(surrogate, t, count, phis[level]) for level, t in enumerate(draws.inner)),
        tuple(None if t is None else _stacked(surrogate, t, count, phis[level]) for level, t in enumerate(draws.outer)),
    )


def draw_plugin(
    case: Case, compiled: CompiledValues, plugin: Plugin | Callable, samples: int, rng, loop: Estimator = FROZEN
) -> np.ndarray:
    """``samples`` estimates, one row each, on batches from the inner loop of ``loop`` (model S's by default)."""
    return plugin_draws(case, compiled, plugin, samples, rng, loop).rows


def _stacked(surrogate, trajectories: Trajectories, count: int, phi: np.ndarray) -> Batch:
    """``count`` replicates' batches from trajectories laid out replicate after replicate, at ``phi (R, D)``."""
    case, layout = surrogate.case, surrogate.compiled.layout
    game, size = case.game, len(trajectories.states) // count
    states = np.asarray(trajectories.states, dtype=np.int64).reshape(count, size, -1)
    actions = np.asarray(trajectories.actions, dtype=np.int64).reshape(*states.shape, -1)
    rewards = rewards_of(game, states, actions)
    phi = np.asarray(phi, dtype=float).reshape(count, -1)
    values = trajectory_values(game, case.policy, layout, trajectories, phi).reshape(rewards.shape)
    parts = tuple(phi[:, layout.slice(k)].reshape(count, *shape) for k, shape in enumerate(layout.shapes))
    return Batch(states, actions, rewards, parts, values)


def count_sequences(case: Case, outer_batch: int | None = None) -> int:
    """Replicates the plug-in's exact expectation evaluates: ordered inner batches at every step,
    ordered outer batches (of ``outer_batch``, default the case's) at every evaluated level."""
    inner, outer_batch = case.inner, outer_batch or case.estimators.outer_batch
    n = len(enumerate_trajectories(case.game, inner.horizon).states)
    evaluated = inner.steps + 1 if inner.objective == "chain" else 1
    return n ** (inner.batch * inner.steps + outer_batch * evaluated)


def plugin_calls(case: Case, plugin: Plugin, loop: Estimator = FROZEN) -> int:
    """Calls the plug-in's exact expectation with the inner loop of ``loop`` makes: one per
    sequence, or per :data:`PER_CALL` sequences for a batched plug-in."""
    count = count_sequences(case, outer_of(loop, case)[1])
    return -(-count // PER_CALL) if plugin.batched else count


def plugin_expectation(
    case: Case, compiled: CompiledValues, plugin: Plugin | Callable, loop: Estimator = FROZEN
) -> Parts:
    """The plug-in's exact expectation over every ordered sequence of trajectories drawn with the
    inner loop of ``loop`` (model S's by default); an input error (key ``estimators.plugin_calls``)
    when that takes more calls than the case allows. The whole estimate is reported as ``own``."""
    plugin = as_plugin(plugin)
    surrogate = plan(case, compiled, loop)
    calls = plugin_calls(case, plugin, loop)
    if calls > case.estimators.plugin_calls:
        count = count_sequences(case, surrogate.outer_batch)
        raise InputError(
            "estimators.plugin_calls",
            f"the plug-in's exact expectation needs {count_text(calls)} calls ({count_text(count)} ordered "
            f"batch sequences), above [estimators] plugin_calls = {case.estimators.plugin_calls:,}",
        )
    weights, replicates = _sequences(surrogate)
    meter = CallMeter(plugin.name, calls, "its exact expectation")
    total = weights @ evaluate(plugin, replicates, len(weights), case, surrogate.outer_batch, meter)[0]
    meter.close()
    zero = np.zeros_like(total)
    return Parts(zero, total, zero)


def count_text(count: int) -> str:
    """A count as people read it: with thousands separators up to ten million, else 3 significant digits."""
    return f"{count:,}" if count < 10_000_000 else f"{count:.3g}"


def _sequences(surrogate) -> tuple[np.ndarray, Replicates]:
    """Every ordered sequence of inner and outer batches with its probability, as replicates,
    each inner batch drawn at the ``phi_l`` the surrogate's inner update reaches from the ones before."""
    case, layout, steps = surrogate.case, surrogate.compiled.layout, surrogate.steps
    trajectories = enumerate_trajectories(case.game, case.inner.horizon)
    records = []

    def sequences(phi, size: int):
        """Every ordered batch of ``size`` trajectories at ``phi``: (indices, log-probability)."""
        lp = trajectory_terms(case.game, case.policy, layout, trajectories, phi, second_order=False).log_prob
        for indices in itertools.product(range(len(lp)), repeat=size):
            yield np.array(indices), float(lp[list(indices)].sum())

    def visit(level: int, phi, log_weight: float, inner: tuple, outer: tuple, phis: tuple) -> None:
        options = list(sequences(phi, surrogate.outer_batch)) if surrogate.evaluated(level) else [(None, 0.0)]
        for chosen, outer_weight in options:
            if level == steps:
                records.append((inner, (*outer, chosen), (*phis, phi), log_weight + outer_weight))
                continue
            for indices, inner_weight in sequences(phi, case.inner.batch):
                step = inner_step(surrogate, trajectories.take(indices), phi[None])[0]
                visit(
                    level + 1,
                    step,
                    log_weight + outer_weight + inner_weight,
                    (*inner, indices),
                    (*outer, chosen),
                    (*phis, phi),
                )

    visit(0, case.flat_theta, 0.0, (), (), ())
    inner, outer, phis, log_weights = zip(*records, strict=True)
    count = len(records)

    def level_batch(chosen: list, level: int) -> Batch | None:
        if chosen[0] is None:
            return None
        at = np.array([p[level] for p in phis])
        return _stacked(surrogate, trajectories.take(np.concatenate(chosen)), count, at)

    stacked = Replicates(
        tuple(level_batch([i[level] for i in inner], level) for level in range(steps)),
        tuple(level_batch([o[level] for o in outer], level) for level in range(steps + 1)),
    )
    return np.exp(np.array(log_weights)), stacked
