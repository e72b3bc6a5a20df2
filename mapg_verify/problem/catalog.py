"""The game catalog (SPEC §1): ``GAMES`` maps each builtin name to its builder.

Payoff tables are ``U[k][a^0][a^1]``. Builders take keyword options only;
a case file's ``[game]`` keys other than ``builtin`` are passed to them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import MAX_TRANSITION_ENTRIES, DifferentiableGame, Game, make_game

PD_PAYOFFS = ((((-1, -3), (0, -2))), (((-1, 0), (-3, -2))))
MP_PAYOFFS = (((1, -1), (-1, 1)), ((-1, 1), (1, -1)))
MEMORY_ONE_STATES = ("start", "CC", "CD", "DC", "DD")


def _matrix_game(name: str, payoffs, actions: tuple[str, str], description: str) -> Game:
    payoffs = np.array(payoffs, dtype=float)
    transitions = np.ones((1, 2, 2, 1))
    return make_game(
        name,
        transitions,
        payoffs[:, None],
        [1.0],
        1.0,
        1,
        state_labels=("s0",),
        action_labels=(actions, actions),
        description=description,
    )


def prisoners_dilemma() -> Game:
    """One-shot prisoner's dilemma, actions (C, D); payoffs of LOLA (Foerster et al. 2017):
    CC (-1,-1), CD (-3,0), DC (0,-3), DD (-2,-2)."""
    return _matrix_game("prisoners_dilemma", PD_PAYOFFS, ("C", "D"), prisoners_dilemma.__doc__)


def matching_pennies() -> Game:
    """One-shot matching pennies, actions (H, T); agent 0 wins (+1, -1) on a match,
    agent 1 on a mismatch (von Neumann & Morgenstern 1944)."""
    return _matrix_game("matching_pennies", MP_PAYOFFS, ("H", "T"), matching_pennies.__doc__)


def stag_hunt() -> Game:
    """One-shot stag hunt, actions (Stag, Hare); SS (4,4), SH (0,3), HS (3,0), HH (3,3):
    the common textbook numbers with SS > HS = HH > SH (after Skyrms 2004)."""
    payoffs = (((4, 0), (3, 3)), ((4, 3), (0, 3)))
    return _matrix_game("stag_hunt", payoffs, ("Stag", "Hare"), stag_hunt.__doc__)


def chicken() -> Game:
    """One-shot chicken (hawk-dove), actions (Swerve, Straight); SS (0,0), S-St (-1,1),
    St-S (1,-1), St-St (-10,-10) (Rapoport & Chammah 1966, textbook numbers)."""
    payoffs = (((0, -1), (1, -10)), ((0, 1), (-1, -10)))
    return _matrix_game("chicken", payoffs, ("Swerve", "Straight"), chicken.__doc__)


def battle_of_the_sexes() -> Game:
    """One-shot battle of the sexes, actions (Opera, Football); OO (3,2), FF (2,3),
    miscoordination (0,0) (Luce & Raiffa 1957)."""
    payoffs = (((3, 0), (0, 2)), ((2, 0), (0, 3)))
    return _matrix_game("battle_of_the_sexes", payoffs, ("Opera", "Football"), battle_of_the_sexes.__doc__)


def _memory_one(name: str, payoffs, gamma: float, horizon, description: str) -> Game:
    """A repeated 2x2 game whose state is the last joint action (LOLA's memory-1 games).

    States ``start, CC, CD, DC, DD`` read from agent 0 (own action first); after
    joint action ``(a0, a1)`` the state is ``1 + 2 a0 + a1`` whatever it was.
    Agent 1 indexes its parameters from its own point of view, so its view
    swaps CD and DC. Rewards do not depend on the state.
    """
    payoffs = np.array(payoffs, dtype=float)
    transitions = np.zeros((5, 2, 2, 5))
    for a0 in range(2):
        for a1 in range(2):
            transitions[:, a0, a1, 1 + 2 * a0 + a1] = 1.0
    rewards = np.repeat(payoffs[:, None], 5, axis=1)
    initial = np.eye(5)[0]
    views = [[0, 1, 2, 3, 4], [0, 1, 3, 2, 4]]
    return make_game(
        name,
        transitions,
        rewards,
        initial,
        gamma,
        horizon,
        views,
        state_labels=MEMORY_ONE_STATES,
        action_labels=(("C", "D"), ("C", "D")),
        description=description,
    )


def ipd(gamma: float = 0.96, horizon: int | str = "inf") -> Game:
    """Iterated prisoner's dilemma with memory-1 policies in LOLA's conventions
    (Foerster et al. 2017): states start, CC, CD, DC, DD from agent 0's point of
    view, agent 1's parameters indexed from its own (CD and DC swapped); payoffs
    CC (-1,-1), CD (-3,0), DC (0,-3), DD (-2,-2); gamma 0.96, infinite horizon."""
    return _memory_one("ipd", PD_PAYOFFS, gamma, horizon, ipd.__doc__)


def ipd_finite(gamma: float = 0.96, horizon: int | str = 10) -> Game:
    """The finite-horizon IPD: as ``ipd`` but ``horizon`` steps (default 10, our choice:
    long enough for reciprocity to matter, short enough to enumerate)."""
    return _memory_one("ipd_finite", PD_PAYOFFS, gamma, horizon, ipd_finite.__doc__)


def imp(gamma: float = 0.96, horizon: int | str = "inf") -> Game:
    """Iterated matching pennies with memory-1 policies, the structure and conventions
    of ``ipd`` (LOLA, Foerster et al. 2017); actions (H, T) labelled C, D in the state
    names; agent 0 wins (+1, -1) on a match. gamma defaults to ipd's 0.96."""
    return _memory_one("imp", MP_PAYOFFS, gamma, horizon, imp.__doc__)


def noisy_ipd(seed: int = 0, noise: float = 0.5, gamma: float = 0.96, horizon: int | str = "inf") -> Game:
    """One task of the paper's noisy-IPD distribution (Kim et al., Meta-MAPG): IPD
    payoffs plus i.i.d. Uniform(-noise, noise) noise on each of the 8 payoff entries,
    drawn from ``numpy.random.default_rng(seed)``."""
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise < math.inf:
        raise InputError("game.noise", f"must be a finite number >= 0, got {noise!r}")
    rng = np.random.default_rng(_seed(seed, "game.seed"))
    payoffs = np.array(PD_PAYOFFS, dtype=float) + rng.uniform(-noise, noise, size=(2, 2, 2))
    return _memory_one(f"noisy_ipd[{seed}]", payoffs, gamma, horizon, noisy_ipd.__doc__)


def bilinear() -> DifferentiableGame:
    """The stateless zero-sum game of the paper's Remark 1 (Kim et al.): scalar
    parameters ``x = theta^0``, ``y = theta^1``; ``V^0 = x y``, ``V^1 = -x y``;
    the unique equilibrium is the origin."""
    return DifferentiableGame("bilinear", ((1,), (1,)), _bilinear_values, bilinear.__doc__)


def _bilinear_values(theta) -> tuple:
    product = theta[0][0] * theta[1][0]
    return (product, -product)


def random_game(
    seed: int = 0,
    states: int = 2,
    actions: list[int] | tuple[int, ...] = (2, 2),
    gamma: float = 0.9,
    horizon: int | str = "inf",
    reward_scale: float = 1.0,
    sparsity: float = 0.0,
) -> Game:
    """A random game from ``numpy.random.default_rng(seed)``: rewards
    ``Normal(0, reward_scale^2)``; each transition row Dirichlet(1) with a fraction
    ``sparsity`` of its entries set to zero (at least one kept) and renormalised;
    initial distribution Dirichlet(1)."""
    rng = np.random.default_rng(_seed(seed, "game.seed"))
    if isinstance(states, bool) or not isinstance(states, int) or states < 1:
        raise InputError("game.states", f"must be a positive integer, got {states!r}")
    if (
        not isinstance(actions, list | tuple)
        or len(actions) < 2
        or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in actions)
    ):
        raise InputError("game.actions", f"must list two or more agents' positive action counts, got {actions!r}")
    entries = states * states * math.prod(actions)
    if entries > MAX_TRANSITION_ENTRIES:
        raise InputError(
            "game.states",
            f"{states} states and actions {list(actions)} make {entries:,} transition entries, above the "
            f"{MAX_TRANSITION_ENTRIES:,} a tabular game may have here",
        )
    if isinstance(reward_scale, bool) or not isinstance(reward_scale, int | float) or not 0 <= reward_scale < math.inf:
        raise InputError("game.reward_scale", f"must be a finite number >= 0, got {reward_scale!r}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0 <= sparsity < 1:
        raise InputError("game.sparsity", f"must be in [0, 1), got {sparsity!r}")
    n = len(actions)
    rewards = reward_scale * rng.standard_normal((n, states, *actions))
    weights = rng.dirichlet(np.ones(states), size=(states, *actions))
    mask = rng.random(weights.shape) >= sparsity
    mask[..., 0] |= ~mask.any(axis=-1)
    weights = weights * mask
    transitions = weights / weights.sum(axis=-1, keepdims=True)
    initial = rng.dirichlet(np.ones(states))
    return make_game(f"random[{seed}]", transitions, rewards, initial, gamma, horizon, description=random_game.__doc__)


def _seed(seed: object, key: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(key, f"must be a non-negative integer, got {seed!r}")
    return seed


@dataclass(frozen=True)
class GameEntry:
    """A catalog row: the builder and a one-line summary for ``list``."""

    build: Callable[..., Game | DifferentiableGame]
    summary: str

    def options(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.build).parameters)


GAMES: dict[str, GameEntry] = {
    "prisoners_dilemma": GameEntry(prisoners_dilemma, "one-shot prisoner's dilemma (LOLA payoffs)"),
    "matching_pennies": GameEntry(matching_pennies, "one-shot matching pennies"),
    "stag_hunt": GameEntry(stag_hunt, "one-shot stag hunt"),
    "chicken": GameEntry(chicken, "one-shot chicken"),
    "battle_of_the_sexes": GameEntry(battle_of_the_sexes, "one-shot battle of the sexes"),
    "ipd": GameEntry(ipd, "iterated prisoner's dilemma, memory-1, gamma 0.96, infinite horizon"),
    "ipd_finite": GameEntry(ipd_finite, "iterated prisoner's dilemma, memory-1, 10 steps"),
    "imp": GameEntry(imp, "iterated matching pennies, memory-1"),
    "noisy_ipd": GameEntry(noisy_ipd, "one noisy-IPD task (IPD payoffs + uniform noise)"),
    "bilinear": GameEntry(bilinear, "the differentiable zero-sum game V = (xy, -xy) of Remark 1"),
    "random": GameEntry(random_game, "a random tabular game from a seed"),
}


def build_game(name: str, options: dict[str, object]) -> Game | DifferentiableGame:
    """Build catalog game ``name``; unknown names or options are input errors."""
    if name not in GAMES:
        raise InputError("game.builtin", f"unknown game {name!r}; known: {', '.join(GAMES)}")
    entry = GAMES[name]
    unknown = sorted(set(options) - set(entry.options()))
    if unknown:
        allowed = ", ".join(entry.options()) or "none"
        raise InputError(f"game.{unknown[0]}", f"is not an option of {name!r} (options: {allowed})")
    return entry.build(**options)
