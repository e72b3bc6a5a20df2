"""Advantage Alignment (Duque et al., ICLR 2025, "Advantage Alignment Algorithms"), exactly.

Two agents, the meta-agent ``i`` (the paper's agent 1) and its opponent ``j`` (agent 2), tabular
policies, everything exact under the current policies ``(pi^i, pi^j)``: ``A^k(s, a, b) = Q^k(s, a, b)
- v^k(s)``; the meta-agent's advantage of the opponent's action ``Abar^i(s, b) = sum_a pi^i(a|s)
Q^i(s, a, b) - v^i(s)``; the opponent's ``q(s, b) = sum_a pi^i(a|s) Q^j(s, a, b)`` and ``G = dq/dtheta^i``
(:func:`mapg_verify.exact.opponent_model.opponent_q_jacobian`). Flat over ``theta^i``:

- ``direct``: ``E[sum_t gamma^t A^i_t grad log pi^i_t]``, the policy gradient, the opponent fixed;
- ``paper``: the README's and paper's alignment term, ``beta gamma E[sum_t gamma^t (sum_{k<t}
  gamma^{t-k} A^i_k) A^j_t grad log pi^i_t]`` (infinite horizon; 0 for one step);
- ``code(T)``: ``train.py``'s ``linear_aa_loss`` (not proximal) over episodes of ``T`` steps from
  ``rho0``: advantages at ``t = 0..T-2``, ``(1/(T-2)) sum_{t=1}^{T-2} E[(1/t) sum_{k<t} A^i_k A^j_t
  grad log pi^i_t]`` (an undiscounted cumulative sum divided by ``arange(1..)``, a mean over time);
  ``code_direct(T) = (1/(T-1)) sum_{t<T-1} E[A^i_t grad log pi^i_t]`` (no ``gamma^t``);
- ``derived``: ``beta E[sum_t gamma^t (sum_{k<=t} Abar^i(s_k, b_k)) A^j_t grad log pi^i_t]``;
- ``chain``: ``beta sum_s d(s) sum_b pi^j(b|s) Abar^i(s, b) G[s, b]``, the shaping term of an opponent
  whose logits move by ``beta dq/dtheta^i`` (LOQA's ``pi^j ~ exp(beta q)``; ``d`` the discounted occupancy).

``derived == chain`` exactly: the policy gradient theorem for ``G`` (``G[s, b] = E[sum_{t>=k} gamma^{t-k}
A^j_t grad log pi^i_t | s_k = s, b_k = b]``) and the exchange of the two sums (``gamma^k gamma^{t-k} =
gamma^t``: the inner sum is undiscounted, includes ``k = t``, and carries ``Abar^i``, not ``A^i``).

Closed forms: with ``P`` the state chain, ``Y[s, s'] = sum_ab pi pi A^i(s, a, b) P(s'|s, a, b)`` and
``h[s] = sum_ab dpi^i(a|s) pi^j(b|s) A^j(s, a, b)``, the discounted trace ``m_t(s) = E[e_t; s_t = s]`` of
``e_{t+1} = gamma (e_t + A^i_t)`` sums to ``M = gamma^2 d Y (I - gamma^2 P)^-1`` and ``paper = beta gamma
M h``; finite sums run the same recursions step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from mapg_verify.exact.opponent_model import (
    agent_probabilities,
    effective_gamma,
    evaluate,
    opponent_q_jacobian,
    oriented,
    probability_jacobian,
)
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy


@dataclass(frozen=True)
class Alignment:
    """Per-state data under the current policies: the state chain ``P (S, S)``, ``rho0``, the
    occupancy ``d``, ``A (2, S, A, B)`` (the meta-agent first), ``Abar (S, B)``, the meta-agent's
    probabilities ``mine``, their Jacobian ``dmine (S, A, D)``, the opponent's ``theirs``, ``G (S, B, D)``,
    the joint transitions ``T (S, A, B, S)`` and ``gamma``."""

    chain: np.ndarray
    initial: np.ndarray
    occupancy: np.ndarray
    advantages: np.ndarray
    opponent_action: np.ndarray
    mine: np.ndarray
    dmine: np.ndarray
    theirs: np.ndarray
    q_jacobian: np.ndarray
    transitions: np.ndarray
    gamma: float

    def inflow(self, advantage: np.ndarray) -> np.ndarray:
        """``Y[s, s'] = sum_ab pi^i pi^j advantage(s, a, b) P(s'|s, a, b)`` for ``advantage (S, A, B)``."""
        joint = self.mine[:, :, None] * self.theirs[:, None, :]
        return np.einsum("sab,sab,sabt->st", joint, advantage, self.transitions)

    @property
    def opponent_score(self) -> np.ndarray:
        """``h[s] (S, D) = sum_ab dpi^i(a|s) pi^j(b|s) A^j(s, a, b)``."""
        return np.einsum("sad,sb,sab->sd", self.dmine, self.theirs, self.advantages[1])


def alignment(game: Game, policy: Policy, x: np.ndarray, meta_agent: int = 0) -> Alignment:
    """The exact per-state data of the module's docstring at flat parameters ``x``."""
    transitions, _ = oriented(game, meta_agent)
    mine = agent_probabilities(game, policy, x, meta_agent)
    theirs = agent_probabilities(game, policy, x, 1 - meta_agent)
    dmine = probability_jacobian(game, policy, x, meta_agent)
    current = evaluate(game, meta_agent, mine, theirs)
    _, q_jacobian = opponent_q_jacobian(game, meta_agent, mine, theirs, dmine)
    advantages = current.q - current.v[:, :, None, None]
    opponent_action = np.einsum("sa,sab->sb", mine, current.q[0]) - current.v[0][:, None]
    joint = mine[:, :, None] * theirs[:, None, :]
    chain = np.einsum("sab,sabt->st", joint, transitions)
    gamma = effective_gamma(game)
    return Alignment(
        chain, game.initial, current.occupancy, advantages, opponent_action, mine, dmine, theirs, q_jacobian,
        transitions, gamma,
    )  # fmt: skip


def direct(data: Alignment) -> np.ndarray:
    """``E[sum_t gamma^t A^i_t grad log pi^i_t]``."""
    return np.einsum("s,sad,sb,sab->d", data.occupancy, data.dmine, data.theirs, data.advantages[0])


def paper(data: Alignment, beta: float) -> np.ndarray:
    """The paper's term, infinite horizon: ``beta gamma M h``, ``M = gamma^2 d Y (I - gamma^2 P)^-1``."""
    gamma = data.gamma
    inflow = data.inflow(data.advantages[0])
    trace = gamma**2 * np.linalg.solve((np.eye(len(data.chain)) - gamma**2 * data.chain).T, inflow.T @ data.occupancy)
    return beta * gamma * trace @ data.opponent_score


def derived(data: Alignment, beta: float) -> np.ndarray:
    """``beta E[sum_t gamma^t (sum_{k<=t} Abar^i_k) A^j_t grad log pi^i_t]``: the past part ``gamma d Y'
    (I - gamma P)^-1 h`` (``Y'`` with ``Abar^i``), and the ``k = t`` part ``sum_s d(s) sum_ab dpi pi Abar A^j``."""
    gamma = data.gamma
    past = np.broadcast_to(data.opponent_action[:, None, :], data.advantages[0].shape)
    inflow = data.inflow(past)
    trace = gamma * np.linalg.solve((np.eye(len(data.chain)) - gamma * data.chain).T, inflow.T @ data.occupancy)
    now = np.einsum("s,sad,sb,sb,sab->d", data.occupancy, data.dmine, data.theirs, data.opponent_action,
                    data.advantages[1])  # fmt: skip
    return beta * (trace @ data.opponent_score + now)


def chain_shaping(data: Alignment, beta: float) -> np.ndarray:
    """``beta sum_s d(s) sum_b pi^j(b|s) Abar^i(s, b) G[s, b]`` (the centring of ``G`` cancels, as
    ``sum_b pi^j Abar^i = 0``)."""
    return beta * np.einsum("s,sb,sb,sbd->d", data.occupancy, data.theirs, data.opponent_action, data.q_jacobian)


def truncated(data: Alignment, steps: int, beta: float) -> dict[str, np.ndarray]:
    """Episodes of ``steps`` steps from ``rho0``: ``paper`` and ``derived`` cut at ``steps``, ``code``
    and ``code_direct`` (``train.py``'s normalisations, see the module's docstring), step by step."""
    gamma, size = data.gamma, data.dmine.shape[-1]
    score = data.opponent_score
    own_now = np.einsum("sad,sb,sab->sd", data.dmine, data.theirs, data.advantages[0])
    bar_now = np.einsum("sad,sb,sb,sab->sd", data.dmine, data.theirs, data.opponent_action, data.advantages[1])
    inflow_a = data.inflow(data.advantages[0])
    inflow_bar = data.inflow(np.broadcast_to(data.opponent_action[:, None, :], data.advantages[0].shape))
    out = {name: np.zeros(size) for name in ("paper", "derived", "code", "code_direct")}
    reach = data.initial.astype(float)
    discounted, plain, bar = (np.zeros(len(reach)) for _ in range(3))
    for t in range(steps):
        out["paper"] += beta * gamma * gamma**t * discounted @ score
        out["derived"] += beta * gamma**t * ((bar @ score) + reach @ bar_now)
        if 1 <= t <= steps - 2:
            out["code"] += (plain @ score) / (t * (steps - 2))
        if t <= steps - 2:
            out["code_direct"] += reach @ own_now / (steps - 1)
        discounted = gamma * (discounted @ data.chain + reach @ inflow_a)
        plain = plain @ data.chain + reach @ inflow_a
        bar = bar @ data.chain + reach @ inflow_bar
        reach = reach @ data.chain
    return out


def self_consistent(game: Game, policy: Policy, x: np.ndarray, meta_agent: int = 0, temperature: float = 1.0):
    """``x`` with the opponent's parameters replaced by a fixed point ``pi^j = softmax(q(pi^i, pi^j) / tau)``
    (LOQA's assumption made true; ``scipy.optimize.root`` on ``theta^j - logits(q / tau)``, the logits
    ``q / tau`` for a softmax, ``(q_0 - q_1) / tau`` for a sigmoid), and the residual left."""
    layout = layout_of(game, policy)
    theirs_slice, rows = layout.slice(1 - meta_agent), game.views[1 - meta_agent]
    if sorted(rows) != list(range(game.n_states)):
        raise InputError("game.views", "a self-consistent opponent needs its view to be a permutation of the states")
    point = np.array(x, dtype=float)
    mine = agent_probabilities(game, policy, point, meta_agent)
    dmine = probability_jacobian(game, policy, point, meta_agent)

    def residual(theta_j):
        point[theirs_slice] = theta_j
        theirs = agent_probabilities(game, policy, point, 1 - meta_agent)
        q, _ = opponent_q_jacobian(game, meta_agent, mine, theirs, dmine)
        logits = q / temperature if policy.name == "softmax" else (q[:, 0] - q[:, 1]) / temperature
        target = np.zeros_like(logits)
        target[rows] = logits
        return theta_j - target.ravel()

    found = optimize.root(residual, point[theirs_slice], method="hybr", options={"xtol": 1e-14})
    point[theirs_slice] = found.x
    return point, float(np.max(np.abs(residual(found.x))))
