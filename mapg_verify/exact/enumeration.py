"""Exact enumeration of trajectories and inner batches, for model S (SPEC §3).

A trajectory of horizon ``H`` is ``(s_0, a_0, .., s_{H-1}, a_{H-1})`` with
``rho0(s_0) > 0`` and ``P(s_{t+1} | s_t, a_t) > 0``; tabular policies give
every action positive probability, so these are exactly the trajectories of
positive probability. An inner batch is a multiset of ``K`` trajectories
drawn i.i.d.: with counts ``m_j`` its probability is the multinomial
``K! / prod_j m_j! * prod_j p_j^{m_j}``. ``L`` inner steps visit
``M + M^2 + .. + M^L`` batches, ``M = C(N + K - 1, K)``. Where an estimate depends on the batch's
order (a baseline fitted as the official code ships it), every ordered batch is visited instead:
``M = N^K``, each with probability ``prod_b p_b``.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import DEFAULT_CAP


@dataclass(frozen=True, eq=False)
class Trajectories:
    """All ``N`` trajectories of positive probability: states ``(N, H)``, joint actions
    ``(N, H, n)``, the environment's log-probability ``(N,)`` (``rho0`` and ``P``), and the
    discounted rewards-to-go ``to_go[b, t, k] = sum_{t' >= t} gamma^{t'} r^k_{t'}``."""

    states: np.ndarray
    actions: np.ndarray
    log_environment: np.ndarray
    to_go: np.ndarray

    def tiled(self, times: int) -> Trajectories:
        """The ``N`` trajectories repeated ``times`` times, block after block."""
        return self.take(np.tile(np.arange(len(self.states)), times))

    def take(self, indices) -> Trajectories:
        """The trajectories at ``indices`` (an index array or a slice), in that order."""
        fields = (self.states, self.actions, self.log_environment, self.to_go)
        return Trajectories(*(a[indices] for a in fields))


@dataclass(frozen=True, eq=False)
class Batches:
    """All multisets of ``K`` out of ``N`` trajectories: ``counts (M, N)`` and ``log K!/prod m_j!``;
    or, with ``order`` ``(M, K)``, all ordered batches (log-coefficients 0)."""

    counts: np.ndarray
    log_coefficients: np.ndarray
    order: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.counts.sum(axis=1)[0])

    def members(self) -> np.ndarray:
        """Each batch's trajectories, ``(M, K)``: a multiset's in index order, an ordered batch's in
        its order (for baselines fitted on a batch)."""
        if self.order is not None:
            return self.order
        counts = self.counts.astype(int)
        return np.repeat(np.tile(np.arange(counts.shape[1]), len(counts)), counts.ravel()).reshape(len(counts), -1)


def count_trajectories(game: Game, horizon: int) -> int:
    """``N`` by dynamic programming over the support, without listing them."""
    paths = (game.initial > 0).astype(np.int64)
    joint = math.prod(game.n_actions)
    support = (game.transitions > 0).reshape(game.n_states, joint, game.n_states).astype(np.int64)
    for _ in range(horizon - 1):
        paths = np.einsum("s,sat->t", paths, support)
    return int(paths.sum()) * joint


def count_batches(n_trajectories: int, batch: int, steps: int, ordered: bool = False) -> int:
    """Inner batches visited: ``M + M^2 + .. + M^L`` with ``M = C(N + K - 1, K)`` (``N^K`` ``ordered``)."""
    multisets = n_trajectories**batch if ordered else math.comb(n_trajectories + batch - 1, batch)
    return sum(multisets**level for level in range(1, steps + 1))


def check_enumerable(
    game: Game, horizon: int, batch: int, steps: int, cap: int = DEFAULT_CAP, ordered: bool = False
) -> int:
    """The number of inner batches to enumerate (``ordered`` ones, if so); an input error above ``cap``."""
    n = count_trajectories(game, horizon)
    total = count_batches(n, batch, steps, ordered)
    if total > cap:
        raise InputError(
            "inner.batch",
            f"model S would enumerate {total:,} {'ordered ' if ordered else ''}inner batches "
            f"({n:,} trajectories of {horizon} steps, "
            f"K = {batch}, L = {steps}), above the cap of {cap:,}: lower [inner] batch, steps or horizon, "
            'raise [inner] enumeration_cap, or drop "sampled" from [inner] model',
        )
    return total


def enumerate_trajectories(game: Game, horizon: int) -> Trajectories:
    """Every trajectory of positive probability, with its fixed parts."""
    rows: list[tuple[list[int], list[tuple[int, ...]], float]] = [
        ([s], [], math.log(p)) for s, p in enumerate(game.initial) if p > 0
    ]
    joints = list(itertools.product(*(range(a) for a in game.n_actions)))
    for t in range(horizon):
        grown = []
        for states, actions, log_p in rows:
            for joint in joints:
                if t == horizon - 1:
                    grown.append((states, [*actions, joint], log_p))
                    continue
                row = game.transitions[(states[-1], *joint)]
                grown.extend(
                    ([*states, int(s)], [*actions, joint], log_p + math.log(row[s])) for s in np.flatnonzero(row)
                )
        rows = grown
    states = np.array([r[0] for r in rows], dtype=int)
    actions = np.array([r[1] for r in rows], dtype=int)
    return Trajectories(states, actions, np.array([r[2] for r in rows]), discounted_to_go(game, states, actions))


def discounted_to_go(game: Game, states: np.ndarray, actions: np.ndarray, gamma: float | None = None) -> np.ndarray:
    """``to_go[b, t, k] = sum_{t' >= t} gamma^{t'} r^k_{t'}`` for states ``(N, H)`` and actions ``(N, H, n)``;
    ``gamma`` defaults to the game's."""
    rewards = rewards_of(game, states, actions)
    discounted = rewards * (game.gamma if gamma is None else gamma) ** np.arange(states.shape[1])[None, :, None]
    return np.flip(np.cumsum(np.flip(discounted, axis=1), axis=1), axis=1)


def rewards_of(game: Game, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Every agent's reward ``r^k_t`` at each step, ``(N, H, n)``."""
    flat = np.ravel_multi_index((states, *np.moveaxis(actions, -1, 0)), game.rewards.shape[1:])
    return np.moveaxis(np.take(game.rewards.reshape(game.n_agents, -1), flat, axis=1), 0, -1)


def step_rewards(to_go: np.ndarray) -> np.ndarray:
    """``gamma^t r_t = G_t - G_{t+1}`` along axis 1 of rewards-to-go ``G`` (``G_H = 0``)."""
    rewards = to_go.copy()
    rewards[:, :-1] -= to_go[:, 1:]
    return rewards


@functools.lru_cache(maxsize=16)
def enumerate_batches(n_trajectories: int, batch: int, ordered: bool = False) -> Batches:
    """Every multiset of ``batch`` trajectories out of ``n_trajectories``, as counts, or every
    ``ordered`` batch with its order (cached; the arrays are read-only)."""
    choose = (
        itertools.product(range(n_trajectories), repeat=batch)
        if ordered
        else (itertools.combinations_with_replacement(range(n_trajectories), batch))
    )
    combos = np.array(list(choose), dtype=int).reshape(-1, batch)
    rows = np.repeat(np.arange(len(combos)), batch)
    counts = np.bincount(rows * n_trajectories + combos.ravel(), minlength=len(combos) * n_trajectories)
    counts = counts.reshape(len(combos), n_trajectories).astype(float)
    log_coefficients = np.zeros(len(combos)) if ordered else gammaln(batch + 1) - gammaln(counts + 1).sum(axis=1)
    for array in (counts, log_coefficients, combos):
        array.flags.writeable = False
    return Batches(counts, log_coefficients, combos if ordered else None)
