"""Plug-ins with one planted relabelling or slip each, for the diagnosis of a failed claim
(``tests/test_diagnosis.py``): the DiCE port of ``examples/dice_meta_mapg.py`` (claim ``meta-mapg``)
and a cheap numpy REINFORCE at its own ``phi_L`` (claim ``{ adapted = 1 }``), each told a changed
game or settings, or its estimate changed."""

import dataclasses

import numpy as np
from plugins_for_tests import _reinforce, _scores

from examples.dice_meta_mapg import meta_mapg


def _without_views(settings):
    """The settings with every agent indexing its table by agent 0's state (no views)."""
    game = settings.game
    identity = np.tile(np.arange(game.n_states), (game.n_agents, 1))
    return dataclasses.replace(settings, game=dataclasses.replace(game, views=identity))


def dice_forgets_views(inner, outer, theta, settings):
    """A port that forgets the second player's view."""
    return meta_mapg(inner, outer, theta, _without_views(settings))


def dice_peer_rate_zero(inner, outer, theta, settings):
    """The peer's rate taken as 0 in its own inner update."""
    alpha = tuple(a if k == settings.meta_agent else 0.0 for k, a in enumerate(settings.alpha))
    return meta_mapg(inner, outer, theta, dataclasses.replace(settings, alpha=alpha))


def dice_inner_sum(inner, outer, theta, settings):
    """The inner steps' gradients summed over the batch, not averaged: every rate K times."""
    batch = inner[0].states.shape[0] if inner else 1
    return meta_mapg(inner, outer, theta, dataclasses.replace(settings, alpha=tuple(batch * a for a in settings.alpha)))


def dice_peer_detached(inner, outer, theta, settings):
    """The peer's inner step left out of the derivative (a stop-gradient on it): meta-pg's estimator."""
    from examples.dice_meta_mapg import _estimate

    return _estimate(inner, outer, theta, settings, bug="peer-step-detached")


def _own_phi(inner, theta, settings):
    """``phi_L`` by model S's inner update (REINFORCE with rewards-to-go, sigmoid tables)."""
    phi = [np.asarray(t, dtype=float) for t in theta]
    for batch in inner:
        phi = [
            p + a * _reinforce(phi, batch, settings, k)
            for k, (p, a) in enumerate(zip(phi, settings.alpha, strict=True))
        ]
    return phi


def adapted(inner, outer, theta, settings, convention="from-zero"):
    """REINFORCE at its own ``phi_L``, the returns in ``convention``."""
    return _reinforce(_own_phi(inner, theta, settings), outer[-1], settings, settings.meta_agent, convention=convention)


def forgets_views(inner, outer, theta, settings):
    return adapted(inner, outer, theta, _without_views(settings))


def from_t(inner, outer, theta, settings):
    return adapted(inner, outer, theta, settings, convention="from-t")


def no_gamma(inner, outer, theta, settings):
    return adapted(inner, outer, theta, dataclasses.replace(settings, gamma=1.0))


def missing_one_over_k(inner, outer, theta, settings):
    return settings.outer_batch * adapted(inner, outer, theta, settings)


def sign_flipped(inner, outer, theta, settings):
    """``sigmoid(theta)`` read as the probability of action 1: the parameters negated in and out."""
    return -adapted(inner, outer, tuple(-np.asarray(t) for t in theta), settings)


def actions_swapped(inner, outer, theta, settings):
    """Agent 1's actions read with the labels swapped."""

    def swapped(batch):
        actions = batch.actions.copy()
        actions[..., 1] = 1 - actions[..., 1]
        return dataclasses.replace(batch, actions=actions)

    return adapted(tuple(map(swapped, inner)), tuple(swapped(b) if b else b for b in outer), theta, settings)


def rewards_for_returns(inner, outer, theta, settings):
    """No relabelling and no slip of the list: each step's score weighted by its own discounted reward."""
    i, batch = settings.meta_agent, outer[-1]
    rewards = batch.rewards[..., i] * settings.gamma ** np.arange(batch.rewards.shape[1])
    scores = _scores(_own_phi(inner, theta, settings), batch, settings, i)
    return np.einsum("khs,kh->s", scores, rewards) / len(rewards)
