"""Autograd oracles for LOQA's opponent model (:mod:`mapg_verify.exact.opponent_model`).

Written from the definitions, sharing nothing with the closed forms but the game's arrays: values
by ``np.linalg.solve`` in autograd numpy, the opponent's ``q`` from them, and autograd's gradients of

- ``theta^i -> V^i(pi^i(theta^i), softmax(q(theta^i, theta^j) / tau))`` (the ideal gradient; with
  ``pi^i`` held at ``theta^i`` for its shaping part alone);
- LOQA's surrogate ``sum_{s, b} w[s, b] log softmax(q'_b[s] / tau)_b``, ``q'_b`` equal to ``q`` in
  entry ``b`` and to ``q``'s value (a constant) elsewhere, ``w = d p A`` at ``theta`` held fixed.
"""

from __future__ import annotations

from collections.abc import Callable

import autograd
import autograd.numpy as anp
import numpy as np

from mapg_verify.problem.game import Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy


def _probabilities(game: Game, policy: Policy, x, agent: int):
    return policy.probs(layout_of(game, policy).unflatten(x)[agent])[game.views[agent]]


def _solve(game: Game, meta_agent: int, mine, theirs):
    """``(v (2, S), Q (2, S, A, B), d (S,))``, the meta-agent first, in autograd numpy."""
    order = [meta_agent, 1 - meta_agent]
    transitions = game.transitions if meta_agent == 0 else np.transpose(game.transitions, (0, 2, 1, 3))
    rewards = game.rewards[order] if meta_agent == 0 else np.transpose(game.rewards[order], (0, 1, 3, 2))
    gamma = game.gamma if game.infinite else 0.0
    joint = mine[:, :, None] * theirs[:, None, :]
    system = anp.eye(game.n_states) - gamma * anp.einsum("sab,sabt->st", joint, transitions)
    v = anp.transpose(anp.linalg.solve(system, anp.transpose(anp.einsum("sab,ksab->ks", joint, rewards))))
    q = rewards + gamma * anp.einsum("sabt,kt->ksab", transitions, v)
    occupancy = anp.linalg.solve(anp.transpose(system), game.initial)
    return v, q, occupancy


def _opponent_q(game: Game, meta_agent: int, mine, theirs):
    _, q, _ = _solve(game, meta_agent, mine, theirs)
    return anp.einsum("sa,sab->sb", mine, q[1])


def _log_softmax(values):
    top = anp.max(values, axis=-1, keepdims=True)
    return values - top - anp.log(anp.sum(anp.exp(values - top), axis=-1, keepdims=True))


def _with_own(x: np.ndarray, own: slice) -> Callable:
    return lambda theta_i: anp.concatenate([x[: own.start], theta_i, x[own.stop :]])


def autograd_ideal(game, policy, x, meta_agent: int = 0, temperature: float = 1.0, shaping_only: bool = False):
    """The ideal gradient (or its shaping part) by autograd through the model's value."""
    x = np.asarray(x, dtype=float)
    own = layout_of(game, policy).slice(meta_agent)
    point = _with_own(x, own)
    fixed = _probabilities(game, policy, x, meta_agent)
    theirs = _probabilities(game, policy, x, 1 - meta_agent)

    def value(theta_i):
        full = point(theta_i)
        mine = _probabilities(game, policy, full, meta_agent)
        q = _opponent_q(game, meta_agent, mine, theirs)
        model = anp.exp(_log_softmax(q / temperature))
        v, _, _ = _solve(game, meta_agent, fixed if shaping_only else mine, model)
        return anp.dot(game.initial, v[0])

    return autograd.grad(value)(x[own])


def autograd_taken(game, policy, x, meta_agent: int = 0, temperature: float = 1.0) -> np.ndarray:
    """LOQA's shaping term as the gradient of its surrogate, only the taken action's ``q`` live."""
    x = np.asarray(x, dtype=float)
    own = layout_of(game, policy).slice(meta_agent)
    point = _with_own(x, own)
    mine = _probabilities(game, policy, x, meta_agent)
    theirs = _probabilities(game, policy, x, 1 - meta_agent)
    q_fixed = _opponent_q(game, meta_agent, mine, theirs)
    model = np.exp(_log_softmax(q_fixed / temperature))
    v, q, occupancy = _solve(game, meta_agent, mine, model)
    weights = occupancy[:, None] * model * (np.einsum("sa,sab->sb", mine, q[0]) - v[0][:, None])
    actions = q_fixed.shape[1]

    def surrogate(theta_i):
        live = _opponent_q(game, meta_agent, _probabilities(game, policy, point(theta_i), meta_agent), theirs)
        total = 0.0
        for b in range(actions):
            mask = np.eye(actions)[b]
            mixed = q_fixed * (1.0 - mask) + live * mask
            total = total + anp.sum(weights[:, b] * _log_softmax(mixed / temperature)[:, b])
        return total

    return autograd.grad(surrogate)(x[own])
