"""The first two moments of the truncated return ``G^k = sum_{t<H} beta^t r^k_t``, exactly, by
backward recursion over the game's transition matrices (no enumeration, any ``H``).

With ``R_t = sum_{t' >= t} beta^(t' - t) r_t'`` (``R_H = 0``) and ``m1_t(s) = E[R_t | s_t = s]``,
``m2_t(s) = E[R_t^2 | s_t = s]``, the policy's joint action probabilities ``u[s, a]``, rewards
``r[s, a]`` and ``(P m)[s, a] = sum_s' P[s, a, s'] m(s')``:

- ``m1_t(s) = sum_a u[s, a] (r[s, a] + beta (P m1_{t+1})[s, a])``,
- ``m2_t(s) = sum_a u[s, a] (r[s, a]^2 + 2 beta r[s, a] (P m1_{t+1})[s, a] + beta^2 (P m2_{t+1})[s, a])``,

since rewards depend on ``(s_t, a_t)`` only and ``R_{t+1}`` on what follows ``s_{t+1}``. Then
``E[G] = rho0 . m1_0`` and ``E[G^2] = rho0 . m2_0``; ``beta = gamma`` gives the discounted return
(``V_H = sum_{t<H} gamma^t d_t^T r_u`` at ``H`` the game's horizon), ``beta = 1`` the plain sum.
``O(H S^2 A)`` per parameter point; ``tests/test_audit.py`` checks both moments against every
trajectory enumerated and the mean against the exact backends.
"""

from __future__ import annotations

import numpy as np

from mapg_verify.exact.numeric import local_policy, structure
from mapg_verify.problem.game import Game
from mapg_verify.problem.policies import Policy


def return_moments(
    game: Game, policy: Policy, points: np.ndarray, horizon: int, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(E[G^k], E[(G^k)^2])``, each ``(N, n)``, at flat parameter points ``(N, D)`` for
    ``G^k = sum_{t < horizon} beta^t r^k_t``."""
    fixed = structure(game, policy)
    u = np.stack([local_policy(fixed, np.asarray(x, dtype=float), order=0)[0] for x in points])  # (N, S, A)
    rewards = fixed.rewards[None]  # (1, n, S, A)
    first = np.zeros((len(points), game.n_agents, game.n_states))
    second = np.zeros_like(first)
    for _ in range(horizon):
        ahead1, ahead2 = ((m @ fixed.successors).reshape(*m.shape, -1) for m in (first, second))  # (P m)[s, a]
        first = np.einsum("isa,iksa->iks", u, rewards + beta * ahead1)
        second = np.einsum("isa,iksa->iks", u, rewards**2 + 2 * beta * rewards * ahead1 + beta**2 * ahead2)
    return first @ game.initial, second @ game.initial
