"""The conventions a plug-in's code writes its game in, declared once, and the conversions both ways.

A :class:`Convention` says how the code's representation of a game differs from the toolkit's
(:mod:`mapg_verify.problem.catalog`: IPD states ``start, CC, CD, DC, DD`` from agent 0, own action
first; action 0 is C; ``sigmoid(theta[s])`` is the probability of action 0; agent 1 indexes its
parameters from its own view; LOLA's payoffs):

- ``states``: the code's state ``j`` is the toolkit's state ``states[j]`` (read from agent 0);
- ``actions``: agent ``k``'s action ``a'`` in the code is the toolkit's ``actions[k][a']``;
- ``sign``: for sigmoid policies, the code's parameter is ``sign`` times the toolkit's (``-1`` where
  the code's sigmoid is the probability of the toolkit's action 1);
- ``views``: ``own``, each agent observes the state from its own point of view (own action first)
  and indexes its parameters by it; ``shared``, both observe agent 0's state;
- ``payoff_shift``: the code's rewards are the toolkit's plus this; ``rewards``: their dtype;
- ``columns``: each agent's observation a column of ``states`` (below), or (``False``) ``states``
  kept as the toolkit's ``(..., K, H)``, relabelled by ``states`` (code that indexes as the toolkit
  does, with ``settings.game.views``: the relabellings a failed claim's diagnosis tries);
- ``swap_rewards``: the code reads each agent's rewards (and values) in the other's column (two agents).

So agent ``k`` observes ``o = inv(states)[v_k(s)]`` at the toolkit's state ``s``, ``v_k(s)`` its
own view (``game.views[k, s]``) or ``s`` (shared), and its parameter row ``o`` is the toolkit's row
``r_k(o) = views[k][v(states[o])]`` (``states[o]`` for own views): ``theta'[o] = sign theta[r_k(o)]``
(softmax: ``theta'[o, a'] = theta[r_k(o), actions[k][a']]``). A gradient or a ``phi`` handed back
goes the other way: ``g[r_k(o)] = sign g'[o]``. Under a convention a plug-in's batches hold
``states (..., K, H, n)``, agent ``k``'s observation in column ``k``, actions in the code's labels,
rewards shifted (and values, by ``shift sum_{t <= t' < H} gamma^(t' - t)``).

Named conventions of public code (:data:`CONVENTIONS`), on the IPD:

- ``lola-dice`` (alexis-jacq/LOLA_DiCE ``ipd_DiCE.py``): action 0 is defect, ``sigmoid(theta[s])``
  is P(defect), states ``start, DD, DC, CD, CC`` (own action first): ``theta' = -theta[[0, 4, 3, 2, 1]]``;
- ``meta-mapg`` (dkkim93/meta-mapg ``gym_env/ipd``): the same labels, but both agents see agent 0's
  state (no CD/DC swap), payoffs shifted by +1.5 (CC 0.5, DD -0.5), rewards float32;
- ``pax`` (ucl-dark/pax ``iterated_matrix_game.py``): action 0 is C, states ``CC, CD, DC, DD,
  start`` (own action first, the start state last);
- ``m-fos`` (luchris429/model-free-opponent-shaping ``src/environments.py``): the toolkit's own
  (``start, CC, CD, DC, DD``, own view, ``sigmoid`` the probability of C).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mapg_verify.estimators.records import Batch
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game

VIEWS = ("own", "shared")
DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass(frozen=True)
class Convention:
    """A code's conventions (see the module's docstring); ``None`` for the toolkit's own."""

    name: str
    states: tuple[int, ...] | None = None
    actions: tuple[tuple[int, ...], ...] | None = None
    sign: float = 1.0
    views: str = "own"
    payoff_shift: float = 0.0
    rewards: str = "float64"
    columns: bool = True
    swap_rewards: bool = False


_DEFECT_FIRST = ((1, 0), (1, 0))
CONVENTIONS: dict[str, Convention] = {
    "lola-dice": Convention("lola-dice", (0, 4, 3, 2, 1), _DEFECT_FIRST, -1.0),
    "meta-mapg": Convention("meta-mapg", (0, 4, 3, 2, 1), _DEFECT_FIRST, -1.0, "shared", 1.5, "float32"),
    "pax": Convention("pax", (1, 2, 3, 4, 0)),
    "m-fos": Convention("m-fos"),
}
FIELDS = ("states", "actions", "sign", "views", "payoff_shift", "rewards")


def parse_convention(value: object, key: str) -> Convention:
    """A named convention, or one spelled out as a table of :data:`FIELDS` (``name`` optional);
    an input error at ``key`` otherwise."""
    if isinstance(value, Convention):
        return value
    if isinstance(value, str):
        if value not in CONVENTIONS:
            raise InputError(
                key, f"unknown convention {value!r}; known: {', '.join(CONVENTIONS)}, or a table of {FIELDS}"
            )
        return CONVENTIONS[value]
    if not isinstance(value, dict) or set(value) - {*FIELDS, "name"}:
        raise InputError(
            key, f"a convention is a name ({', '.join(CONVENTIONS)}) or a table of {FIELDS}, got {value!r}"
        )
    states, actions = value.get("states"), value.get("actions")
    if states is not None and not _permutation(states):
        raise InputError(key, f"states must list a permutation of 0 .. S-1, got {states!r}")
    if actions is not None and not (isinstance(actions, list | tuple) and all(map(_permutation, actions))):
        raise InputError(key, f"actions must list one permutation of each agent's actions, got {actions!r}")
    sign, shift = value.get("sign", 1.0), value.get("payoff_shift", 0.0)
    if sign not in (1, -1) or isinstance(sign, bool):
        raise InputError(key, f"sign must be 1 or -1, got {sign!r}")
    if isinstance(shift, bool) or not isinstance(shift, int | float) or not math.isfinite(shift):
        raise InputError(key, f"payoff_shift must be a finite number, got {shift!r}")
    views, rewards = value.get("views", "own"), value.get("rewards", "float64")
    if views not in VIEWS or rewards not in DTYPES:
        raise InputError(
            key, f"views must be one of {VIEWS} and rewards one of {tuple(DTYPES)}, got {views!r}, {rewards!r}"
        )
    return Convention(
        str(value.get("name", "spelled out")),
        None if states is None else tuple(states),
        None if actions is None else tuple(map(tuple, actions)),
        float(sign),
        views,
        float(shift),
        rewards,
    )


def _permutation(values: object) -> bool:
    return isinstance(values, list | tuple) and sorted(values) == list(range(len(values)))


def check_fits(convention: Convention, game: Game, key: str) -> None:
    """The convention's states and actions match the game's counts (an input error otherwise)."""
    if convention.states is not None and len(convention.states) != game.n_states:
        raise InputError(
            key, f"convention {convention.name!r} has {len(convention.states)} states, the game {game.n_states}"
        )
    if convention.actions is not None and tuple(map(len, convention.actions)) != game.n_actions:
        raise InputError(
            key, f"convention {convention.name!r} labels actions {convention.actions}, the game has {game.n_actions}"
        )


def _states(convention: Convention, game: Game) -> np.ndarray:
    return np.arange(game.n_states) if convention.states is None else np.array(convention.states)


def _actions(convention: Convention, game: Game, k: int) -> np.ndarray:
    return np.arange(game.n_actions[k]) if convention.actions is None else np.array(convention.actions[k])


def rows(convention: Convention, game: Game, k: int) -> np.ndarray:
    """``r_k(o)``: the toolkit's parameter row of agent ``k`` behind the code's row ``o``."""
    states = _states(convention, game)
    return states if convention.views == "own" else np.asarray(game.views[k])[states]


def observations(convention: Convention, game: Game, states: np.ndarray) -> np.ndarray:
    """Each agent's observation in the code's state labels, ``(..., n)`` from the toolkit's states."""
    inverse = np.argsort(_states(convention, game))
    seen = [np.asarray(game.views[k])[states] if convention.views == "own" else states for k in range(game.n_agents)]
    return np.stack([inverse[s] for s in seen], axis=-1)


def their_actions(convention: Convention, game: Game, actions: np.ndarray) -> np.ndarray:
    """Joint actions ``(..., n)`` in the code's labels."""
    inverse = [np.argsort(_actions(convention, game, k)) for k in range(game.n_agents)]
    return np.stack([inverse[k][actions[..., k]] for k in range(game.n_agents)], axis=-1)


def their_parameters(convention: Convention, game: Game, k: int, theta, softmax: bool = False) -> np.ndarray:
    """Agent ``k``'s parameters ``(..., S)`` (``softmax``: ``(..., S, A)``) as the code writes them."""
    theta, order = np.asarray(theta, dtype=float), rows(convention, game, k)
    if softmax:
        return theta[..., order, :][..., _actions(convention, game, k)]
    return convention.sign * theta[..., order]


def our_parameters(convention: Convention, game: Game, k: int, theirs, softmax: bool = False) -> np.ndarray:
    """The inverse of :func:`their_parameters`: the code's parameters, a gradient in them or a
    ``phi``, in the toolkit's layout."""
    theirs, inverse = np.asarray(theirs, dtype=float), np.argsort(rows(convention, game, k))
    if softmax:
        return theirs[..., inverse, :][..., np.argsort(_actions(convention, game, k))]
    return convention.sign * theirs[..., inverse]


def to_theirs(convention: Convention, game: Game, batch: Batch | None, softmax: bool = False) -> Batch | None:
    """A batch as the code would have recorded it (see the module's docstring)."""
    if batch is None:
        return None
    horizon = batch.states.shape[-1]
    remaining = np.array([sum(game.gamma**u for u in range(horizon - t)) for t in range(horizon)])
    shift, columns = convention.payoff_shift, slice(None, None, -1 if convention.swap_rewards else 1)
    states = (
        observations(convention, game, batch.states)
        if convention.columns
        else np.argsort(_states(convention, game))[batch.states]
    )
    return Batch(
        states,
        their_actions(convention, game, batch.actions),
        (batch.rewards[..., columns] + shift).astype(DTYPES[convention.rewards]),
        tuple(their_parameters(convention, game, k, p, softmax) for k, p in enumerate(batch.phi)),
        batch.values[..., columns] + shift * remaining[:, None],
    )


def adapted(call: Callable, convention: Convention | None, game: Game, agent: int, softmax: bool) -> Callable:
    """``call(inner, outer, theta)`` of a plug-in written in ``convention``: its batches and ``theta``
    converted to the code's, its estimate (of the gradient in its own ``theta^i``) and its
    ``phi_1 .. phi_L`` (one array per agent) back to the toolkit's; ``call`` itself without a convention."""
    if convention is None:
        return call

    def ours(k: int, value):
        return our_parameters(convention, game, k, value, softmax)

    def converted(inner, outer, theta):
        value, phis = call(
            tuple(to_theirs(convention, game, b, softmax) for b in inner),
            tuple(to_theirs(convention, game, b, softmax) for b in outer),
            tuple(their_parameters(convention, game, k, t, softmax) for k, t in enumerate(theta)),
        )
        return ours(agent, value), None if phis is None else [
            tuple(ours(k, part) for k, part in enumerate(p)) for p in phis
        ]

    return converted


def convention_for(declared: dict, plugin) -> Convention | None:
    """The convention a plug-in's code uses: the case's (``[estimators.conventions]``, ``declared``
    by plug-in name), else its function's ``conventions`` attribute; ``None`` for the toolkit's own."""
    value = declared.get(plugin.name, getattr(plugin.function, "conventions", None))
    return None if value is None else parse_convention(value, f"estimators.conventions.{plugin.name}")
