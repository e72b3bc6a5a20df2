"""The records a plug-in receives and is described by (:mod:`mapg_verify.estimators.plugins`).

A :class:`Batch` holds ``K`` trajectories: ``states (K, H)``, ``actions (K, H, n)``, raw
``rewards (K, H, n)`` (undiscounted; ``settings.gamma`` is the discount), ``phi``, the
parameters it was drawn at, one array per agent, and ``values (K, H, n)``, every agent's exact
state value at ``phi``, ``V^k_t(s_t) = E[sum_{t <= t' < H} gamma^(t' - t) r^k_t' | s_t]``: what a
learned critic approximates, exact here (a constant: no gradient flows through it). A batched
plug-in receives every field with a leading replicate axis: ``states (R, K, H)``,
``phi[k] (R, *shape of theta^k)``. The arrays are numpy's, JAX's or torch's, as the plug-in's
framework says; states and actions are 64-bit integers, the rest 64-bit floats.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case


@dataclass(frozen=True, eq=False)
class Batch:
    """``K`` trajectories as a plug-in sees them (see the module's docstring)."""

    states: object
    actions: object
    rewards: object
    phi: tuple
    values: object


@dataclass(frozen=True)
class Settings:
    """The case's game and inner-loop settings, for a plug-in (plain Python and numpy, whatever
    the plug-in's framework); hashable, so that ``jax.jit`` can take it as a static argument."""

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


@dataclass(frozen=True)
class Plugin:
    """A user's estimator: the function, its framework (``numpy``, ``jax`` or ``torch``) and whether
    it is batched (called once with every replicate, its ``batched`` attribute)."""

    name: str
    function: Callable
    framework: str = "numpy"

    @property
    def batched(self) -> bool:
        return getattr(self.function, "batched", False) is True

    @property
    def declared_precision(self) -> float:
        """The machine epsilon of the precision the plug-in declares it computes in (its
        ``precision`` attribute, ``"float32"`` or ``"float64"``, the default)."""
        declared = getattr(self.function, "precision", "float64")
        if declared not in ("float32", "float64"):
            raise PluginError(f"declares precision = {declared!r}; use 'float32' or 'float64'")
        return float(np.finfo(declared).eps)


def as_plugin(target: Plugin | Callable, framework: str = "numpy") -> Plugin:
    """A :class:`Plugin` as it is, or a function of ``framework`` as one."""
    if isinstance(target, Plugin):
        return target
    return Plugin(getattr(target, "__qualname__", "estimator"), target, framework)


class PluginError(Exception):
    """A plug-in raised, or returned something that is not a finite array of the right shape."""


def settings_of(case: Case) -> Settings:
    inner = case.inner
    return Settings(
        shown_game(case.game),
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


@functools.lru_cache(maxsize=32)
def shown_game(game: Game) -> Game:
    """The game as plug-ins see it: ``views`` a writable copy (torch warns about read-only arrays),
    one per game, so that a JAX plug-in's compiled call is reused."""
    return dataclasses.replace(game, views=np.array(game.views))
