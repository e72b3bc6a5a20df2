"""LOQA's opponent model (Aghajohari et al., ICLR 2024), exactly: the opponent as ``softmax(Q / tau)``.

Two agents, the meta-agent ``i`` and its opponent ``j``. The opponent's action values
``q[s, b] = sum_a pi^i(a|s) (R^j(s, a, b) + gamma sum_s' P(s'|s, a, b) v^j(s'))`` are exact under the
current policies ``(pi^i(theta^i), pi^j(theta^j))``, and so is their Jacobian ``G = dq / dtheta^i``
(``dv^j = N sum_a dpi^i(a|s) Q^j(s, a)``, ``N = (I - gamma P_pi)^-1``). The model
``p(b|s) = softmax(q[s] / tau)`` replaces the opponent; ``d`` (the discounted occupancy from ``rho0``)
and agent ``i``'s advantages ``A[s, b] = Q^i(s, b) - v^i(s)`` are taken under ``(pi^i, p)``.

- ``ideal``: the chain rule through the model, ``d/dtheta^i V^i(pi^i, softmax(q(theta) / tau))``'s
  shaping part ``sum_s d(s) sum_b p_b (A_b - sum_c p_c A_c) G[s, b] / tau`` (two actions:
  ``p_0 p_1 (A_0 - A_1)(G_0 - G_1) / tau``);
- ``taken``: what LOQA's ``agent_policy_loss`` differentiates (``MiladInk/loqa``, ``ipd.py``): the
  log-probability of the taken action ``b`` with only ``q_b`` differentiable, whose expectation is
  ``sum_s d(s) sum_b p_b (1 - p_b) G[s, b] A_b / tau`` (here with ``q`` exact, where LOQA
  estimates ``q_b`` and its gradient by a Loaded-DiCE return);
- ``direct``: the meta-agent's own policy gradient with the model held fixed, common to both.

Infinite horizons, or one step (``gamma`` then plays no part).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy


@dataclass(frozen=True)
class OpponentModelGradients:
    """Flat over ``theta^i``: the direct term, the ideal and LOQA's shaping terms, and the model's
    probabilities ``p (S, B)``."""

    direct: np.ndarray
    ideal: np.ndarray
    taken: np.ndarray
    model: np.ndarray

    @property
    def ideal_total(self) -> np.ndarray:
        return self.direct + self.ideal

    @property
    def loqa_total(self) -> np.ndarray:
        return self.direct + self.taken


@dataclass(frozen=True)
class Evaluation:
    """Under per-state policies ``(mine (S, A), theirs (S, B))``: state values ``v (2, S)`` (mine
    first), joint action values ``Q (2, S, A, B)``, discounted occupancy ``d (S,)`` and ``N``."""

    v: np.ndarray
    q: np.ndarray
    occupancy: np.ndarray
    resolvent: np.ndarray


def effective_gamma(game: Game) -> float:
    """``gamma`` for an infinite horizon, 0 for one step; an input error otherwise."""
    if game.infinite:
        return game.gamma
    if game.horizon == 1:
        return 0.0
    raise InputError("game.horizon", "the opponent-model estimators need an infinite horizon or one step")


def oriented(game: Game, meta_agent: int) -> tuple[np.ndarray, np.ndarray]:
    """``P[s, a, b, s']`` and ``R[(i, j), s, a, b]`` with the meta-agent's action ``a`` first."""
    if game.n_agents != 2:
        raise InputError("game", "the opponent-model estimators need two agents")
    transitions, rewards = game.transitions, game.rewards[[meta_agent, 1 - meta_agent]]
    if meta_agent == 1:
        transitions, rewards = transitions.transpose(0, 2, 1, 3), rewards.transpose(0, 1, 3, 2)
    return transitions, rewards


def agent_probabilities(game: Game, policy: Policy, x: np.ndarray, agent: int) -> np.ndarray:
    """``pi^k(a|s)`` per game state ``(S, A^k)``, through agent ``k``'s view."""
    theta = layout_of(game, policy).unflatten(np.asarray(x, dtype=float))[agent]
    return np.exp(policy.log_probs(theta))[game.views[agent]]


def probability_jacobian(game: Game, policy: Policy, x: np.ndarray, agent: int) -> np.ndarray:
    """``d pi^k(a|s) / d theta^k`` ``(S, A^k, |theta^k|)``: ``pi * score`` on the row agent ``k`` sees at ``s``."""
    theta = layout_of(game, policy).unflatten(np.asarray(x, dtype=float))[agent]
    probs, scores, _ = policy.derivatives(theta, order=1)
    rows, actions = probs.shape
    local = probs[..., None] * scores.reshape(rows, actions, -1)
    out = np.zeros((game.n_states, actions, rows, local.shape[-1]))
    out[np.arange(game.n_states), :, game.views[agent], :] = local[game.views[agent]]
    return out.reshape(game.n_states, actions, -1)


def evaluate(game: Game, meta_agent: int, mine: np.ndarray, theirs: np.ndarray) -> Evaluation:
    """``v = N r_pi``, ``Q = R + gamma P v``, ``d = rho0^T N`` under the two per-state policies."""
    transitions, rewards = oriented(game, meta_agent)
    gamma = effective_gamma(game)
    joint = mine[:, :, None] * theirs[:, None, :]
    moves = np.einsum("sab,sabt->st", joint, transitions)
    resolvent = np.linalg.inv(np.eye(game.n_states) - gamma * moves)
    v = np.einsum("st,kt->ks", resolvent, np.einsum("sab,ksab->ks", joint, rewards))
    q = rewards + gamma * np.einsum("sabt,kt->ksab", transitions, v)
    return Evaluation(v, q, game.initial @ resolvent, resolvent)


def softmax_rows(values: np.ndarray) -> np.ndarray:
    """``softmax`` along the last axis."""
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def opponent_q_jacobian(game: Game, meta_agent: int, mine, theirs, mine_jacobian) -> tuple[np.ndarray, np.ndarray]:
    """The opponent's ``q (S, B)`` (the meta-agent's action marginalised) and ``G = dq/dtheta^i``
    ``(S, B, D)`` under the current policies."""
    transitions, _ = oriented(game, meta_agent)
    gamma = effective_gamma(game)
    current = evaluate(game, meta_agent, mine, theirs)
    q_joint = current.q[1]
    marginal = np.einsum("sab,sb->sa", q_joint, theirs)
    dv = current.resolvent @ np.einsum("sad,sa->sd", mine_jacobian, marginal)
    jacobian = np.einsum("sad,sab->sbd", mine_jacobian, q_joint)
    jacobian = jacobian + gamma * np.einsum("sa,sabt,td->sbd", mine, transitions, dv)
    return np.einsum("sa,sab->sb", mine, q_joint), jacobian


def opponent_model_gradients(
    game: Game, policy: Policy, x: np.ndarray, meta_agent: int = 0, temperature: float = 1.0
) -> OpponentModelGradients:
    """The three terms of the module's docstring at flat parameters ``x``."""
    mine = agent_probabilities(game, policy, x, meta_agent)
    theirs = agent_probabilities(game, policy, x, 1 - meta_agent)
    mine_jacobian = probability_jacobian(game, policy, x, meta_agent)
    q, jacobian = opponent_q_jacobian(game, meta_agent, mine, theirs, mine_jacobian)
    model = softmax_rows(q / temperature)
    modelled = evaluate(game, meta_agent, mine, model)
    q_mine = modelled.q[0]
    advantage = np.einsum("sa,sab->sb", mine, q_mine) - modelled.v[0][:, None]
    centred = advantage - np.sum(model * advantage, axis=1, keepdims=True)
    weight = modelled.occupancy[:, None] * model / temperature
    ideal = np.einsum("sb,sbd->d", weight * centred, jacobian)
    taken = np.einsum("sb,sbd->d", weight * (1.0 - model) * advantage, jacobian)
    direct = np.einsum("s,sad,sa->d", modelled.occupancy, mine_jacobian, np.einsum("sab,sb->sa", q_mine, model))
    return OpponentModelGradients(direct, ideal, taken, model)
