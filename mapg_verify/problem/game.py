"""Tabular stochastic games and differentiable games, as validated frozen records.

A tabular game has agents ``k = 0..n-1``, states ``s``, transitions
``P[s, a^0, .., a^{n-1}, s']``, rewards ``R[k, s, a^0, .., a^{n-1}]``, an initial
distribution ``rho0[s]``, a discount ``gamma`` and a horizon ``H`` (an int, or
``math.inf`` which needs ``gamma < 1``). ``views[k, s]`` is the row of
``theta^k`` that agent ``k`` uses in state ``s`` (identity unless an agent sees
states from its own point of view, as in LOLA's IPD).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mapg_verify.problem.errors import InputError

Horizon = int | float  # a positive int, or math.inf


MAX_TRANSITION_ENTRIES = 2**24  # P[s, a, s'] entries (128 MB; 1024 states, 2 x 2 actions: 32 MB); checked first


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=float)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Game:
    """A tabular stochastic game; build it with :func:`make_game`, which validates."""

    name: str
    transitions: np.ndarray
    rewards: np.ndarray
    initial: np.ndarray
    gamma: float
    horizon: Horizon
    views: np.ndarray
    state_labels: tuple[str, ...] = ()
    action_labels: tuple[tuple[str, ...], ...] = ()
    description: str = ""

    @property
    def n_agents(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> tuple[int, ...]:
        return tuple(self.transitions.shape[1:-1])

    @property
    def infinite(self) -> bool:
        return math.isinf(self.horizon)

    def discount_mass(self) -> float:
        """``sum_{t<H} gamma^t``: per-step average reward is ``V / discount_mass``."""
        if self.infinite:
            return 1.0 / (1.0 - self.gamma)
        if self.gamma == 1.0:
            return float(self.horizon)
        return (1.0 - self.gamma**self.horizon) / (1.0 - self.gamma)


@dataclass(frozen=True, eq=False)
class DifferentiableGame:
    """A game given directly by its values ``V^k(theta)`` in unconstrained parameters.

    ``values(theta)`` takes one array per agent (of numbers, autograd boxes,
    mpmath floats or symbols) and returns one value per agent, so that every
    backend evaluates the same formula.
    """

    name: str
    param_shapes: tuple[tuple[int, ...], ...]
    values: Callable[[Sequence], tuple] = field(repr=False)
    description: str = ""

    @property
    def n_agents(self) -> int:
        return len(self.param_shapes)


def parse_horizon(value: object, key: str) -> Horizon:
    """A positive int, or ``"inf"``/``math.inf`` for an infinite horizon."""
    if isinstance(value, str) and value.lower() in ("inf", "infinite"):
        return math.inf
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(key, f'must be a positive integer or "inf", got {value!r}')
    return value


def _array(value: object, key: str, ndim: int | None) -> np.ndarray:
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(key, f"must be a nested list of numbers ({error})") from None
    if ndim is not None and array.ndim != ndim:
        raise InputError(key, f"must have {ndim} dimensions, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(key, "must hold finite numbers only")
    return array


def _check_distribution(array: np.ndarray, key: str, what: str) -> None:
    if np.any(array < 0):
        index = tuple(int(i) for i in np.argwhere(array < 0)[0])
        raise InputError(key, f"negative probability {float(array[index]):g} at {what} {index}")
    sums = np.atleast_1d(array.sum(axis=-1))
    bad = np.argwhere(np.abs(sums - 1.0) > 1e-9)
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        where = f"row at {what} {index}" if array.ndim > 1 else "the distribution"
        raise InputError(key, f"{where} sums to {float(sums[index]):g}, not 1")


def _views(views: object, n_agents: int, n_states: int) -> np.ndarray:
    """``views[k][s]``: integer state indices, one list of ``n_states`` per agent."""
    rows = views if isinstance(views, list | tuple) else None
    if (
        rows is None
        or len(rows) != n_agents
        or not all(isinstance(row, list | tuple) and len(row) == n_states for row in rows)
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_states for row in rows for i in row)
    ):
        raise InputError(
            "game.views",
            f"must be {n_agents} lists of {n_states} integer state indices in [0, {n_states}), got {views!r}",
        )
    array = np.array(rows, dtype=int)
    array.setflags(write=False)
    return array


def make_game(
    name: str,
    transitions: object,
    rewards: object,
    initial: object,
    gamma: object,
    horizon: object,
    views: object = None,
    **labels: object,
) -> Game:
    """Validate the pieces of a tabular game; errors name the ``game.*`` key at fault. A game has
    at least two agents (a meta-gradient's peers) and at most :data:`MAX_ENTRIES` entries in ``P``."""
    if not isinstance(name, str) or not name:
        raise InputError("game.name", f"must be a non-empty string, got {name!r}")
    rewards = _array(rewards, "game.rewards", None)
    if rewards.ndim < 4 or rewards.ndim != rewards.shape[0] + 2 or 0 in rewards.shape:
        raise InputError(
            "game.rewards", f"must be R[k][s][a0][a1]... for two or more agents k, got shape {rewards.shape}"
        )
    n_agents, n_states = rewards.shape[:2]
    entries = n_states * n_states * math.prod(rewards.shape[2:])
    if entries > MAX_TRANSITION_ENTRIES:
        raise InputError("game.transitions", f"has {entries:,} entries, above the {MAX_TRANSITION_ENTRIES:,} allowed")
    transitions = _array(transitions, "game.transitions", n_agents + 2)
    expected = (n_states, *rewards.shape[2:], n_states)
    if transitions.shape != expected:
        raise InputError(
            "game.transitions",
            f"shape {transitions.shape} does not match the rewards: expected P[s][a0][a1][s'] of shape {expected}",
        )
    _check_distribution(transitions, "game.transitions", "(state, actions)")
    initial = _array(initial, "game.initial", 1)
    if initial.shape != (n_states,):
        raise InputError("game.initial", f"must have {n_states} entries, got {initial.shape[0]}")
    _check_distribution(initial, "game.initial", "index")
    horizon = parse_horizon(horizon, "game.horizon")
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0.0 <= gamma <= 1.0:
        raise InputError("game.gamma", f"must be a number in [0, 1], got {gamma!r}")
    if math.isinf(horizon) and gamma >= 1.0:
        raise InputError("game.gamma", f"must be < 1 with an infinite horizon, got {gamma!r}")
    views = _views(np.tile(np.arange(n_states), (n_agents, 1)).tolist() if views is None else views, n_agents, n_states)
    return Game(name, _frozen(transitions), _frozen(rewards), _frozen(initial), float(gamma), horizon, views, **labels)
