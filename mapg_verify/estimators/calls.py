"""One call of a user's plug-in, contained and checked: its replicates' batches in, its estimate
(and its own ``phi_l``) out as float arrays of the right shape, the precision it computes in
noted; whatever it raises, ``sys.exit`` and a hang past ``[estimators] plugin_timeout``
included, is a :class:`PluginError` (:mod:`mapg_verify.estimators.plugins` draws and enumerates
with it)."""

from __future__ import annotations

import dataclasses
import signal
import threading
from dataclasses import dataclass

import numpy as np

from mapg_verify.estimators.conventions import adapted, convention_for
from mapg_verify.estimators.frameworks import caller
from mapg_verify.estimators.records import Batch, Plugin, PluginError, settings_of
from mapg_verify.progress import CallMeter
from mapg_verify.spec.case import Case

PER_CALL = 4096  # replicates per call of a batched plug-in: one shape, so a compiled plug-in compiles once


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
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """The plug-in's estimates ``(R, D_i)`` on ``count`` replicates whose outer batches hold
    ``outer_batch`` trajectories, its own ``phi_1 .. phi_L`` flattened ``(R, L, D)`` where it
    returns them (else ``None``), and the machine epsilon of the precision it computes in (the
    coarsest of its declared ``precision`` and the floats it returned); ``meter`` counts the calls."""
    tick = meter.tick if meter is not None else lambda: None
    eps = plugin.declared_precision
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
            eps = max(eps, _epsilon(value), _epsilon(phis))
            rows.append(_checked(value, (PER_CALL, *shape)).reshape(PER_CALL, -1)[: stop - start])
            own.append(None if phis is None else _flat_phis(phis, settings.steps, size, PER_CALL)[: stop - start])
        return np.concatenate(rows), None if own[0] is None else np.concatenate(own), eps
    call, rows, own = calling(()), [], []
    for r in range(count):
        value, phis = _call(call, replicates.take(r), theta, case.estimators.plugin_timeout)
        tick()
        eps = max(eps, _epsilon(value), _epsilon(phis))
        rows.append(_checked(value, shape).reshape(-1))
        own.append(None if phis is None else _flat_phis(phis, settings.steps, size))
    found = None if any(phis is None for phis in own) else np.array(own).reshape(count, settings.steps, size)
    return np.array(rows).reshape(count, -1), found, eps


def _epsilon(value) -> float:
    """The largest machine epsilon among the floating arrays in ``value`` (nested tuples and lists); 0 if none."""
    if isinstance(value, (tuple, list)):
        return max((_epsilon(v) for v in value), default=0.0)
    dtype = getattr(value, "dtype", None)
    return float(np.finfo(dtype).eps) if dtype is not None and np.issubdtype(dtype, np.floating) else 0.0


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
