"""REINFORCE with discounted reward-to-go, per trajectory, in closed form (model S's inner update).

For agent ``k`` and a trajectory ``tau`` of horizon ``H``:
``g^k(tau; phi^k) = sum_t grad_{phi^k} log pi^k(a^k_t | s_t) G^k_t`` with
``G^k_t = sum_{t' >= t} gamma^{t'} r^k_{t'}`` (so ``E[g^k] = grad_{phi^k} V^k_H``),
and its Jacobian ``dg^k/dphi^k = sum_t hess_{phi^k} log pi^k(a^k_t | s_t) G^k_t``.
``g^k`` depends on ``phi^k`` alone, so ``dg/dphi`` is block diagonal over agents.
Also ``log P(tau | phi)`` and its score ``grad_phi log P(tau | phi) = sum_t sum_k grad log pi^k``.
Scores and Hessians come from the policy's closed forms, not from autodiff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .enumeration import Trajectories
from .game import Game
from .params import Layout
from .policies import Policy


@dataclass(frozen=True, eq=False)
class TrajectoryTerms:
    """Per trajectory (leading axis ``N``): ``log_prob``, ``score (N, D)``, ``reinforce (N, D)``
    (agent ``k``'s ``g^k`` in its block) and ``reinforce_jacobian (N, D, D)`` (block diagonal)."""

    log_prob: np.ndarray
    score: np.ndarray
    reinforce: np.ndarray
    reinforce_jacobian: np.ndarray


def trajectory_terms(game: Game, policy: Policy, layout: Layout, trajectories: Trajectories, phi) -> TrajectoryTerms:
    """Log-probabilities, scores, REINFORCE terms and their Jacobians at flat parameters ``phi``."""
    n, size = len(trajectories.states), layout.size
    log_prob = trajectories.log_environment.copy()
    score = np.zeros((n, size))
    reinforce = np.zeros((n, size))
    jacobian = np.zeros((n, size, size))
    for k, theta in enumerate(layout.unflatten(np.asarray(phi, dtype=float))):
        rows = game.views[k, trajectories.states]  # (N, H): the row of theta^k used at each step
        actions = trajectories.actions[..., k]
        to_go = trajectories.to_go[..., k][..., None]  # (N, H, 1)
        n_states, width = theta.shape[0], int(np.prod(theta.shape[1:]))
        log_prob += policy.log_probs(theta)[rows, actions].sum(axis=1)
        step_scores = policy.scores(theta)[rows, actions].reshape(n, -1, width)
        step_hessians = policy.score_hessians(theta)[rows, actions].reshape(n, -1, width * width)
        block = layout.slice(k)
        score[:, block] = _per_row(rows, step_scores, n_states).reshape(n, -1)
        reinforce[:, block] = _per_row(rows, step_scores * to_go, n_states).reshape(n, -1)
        row_blocks = _per_row(rows, step_hessians * to_go, n_states).reshape(n, n_states, width, width)
        jacobian[:, block, block] = np.einsum("nsij,st->nsitj", row_blocks, np.eye(n_states)).reshape(
            n, n_states * width, n_states * width
        )
    return TrajectoryTerms(log_prob, score, reinforce, jacobian)


def _per_row(rows: np.ndarray, values: np.ndarray, n_states: int) -> np.ndarray:
    """Sum per-step ``values (N, H, W)`` into the parameter row used at each step: ``(N, S, W)``."""
    out = np.zeros((values.shape[0], n_states, values.shape[2]))
    np.add.at(out, (np.arange(values.shape[0])[:, None], rows), values)
    return out
