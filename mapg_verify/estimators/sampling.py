"""Vectorised trajectory sampling: ``count`` i.i.d. trajectories of horizon ``H`` under ``pi(phi)``.

One step for all trajectories at once: each agent's action by inverse-CDF
sampling from ``pi^k(.|s_t)`` (uniforms from the ``numpy.random.Generator``),
then the next state likewise from ``P(.|s_t, a_t)``. The result is the same
record as the enumeration's, so REINFORCE terms apply to both alike.
"""

from __future__ import annotations

import numpy as np

from mapg_verify.exact.enumeration import Trajectories, discounted_to_go
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import Layout
from mapg_verify.problem.policies import Policy


def _draw(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of ``probabilities (N, K)`` by inverse-CDF sampling."""
    cumulative = np.cumsum(probabilities, axis=1)
    uniforms = rng.random((len(probabilities), 1)) * cumulative[:, -1:]
    return np.minimum((uniforms >= cumulative).sum(axis=1), probabilities.shape[1] - 1)


def sample_trajectories(
    game: Game, policy: Policy, layout: Layout, phi, horizon: int, count: int, rng: np.random.Generator
) -> Trajectories:
    """``count`` trajectories of ``horizon`` steps drawn from ``rho0``, ``pi(phi)`` and ``P``,
    independently; ``phi`` is one vector ``(D,)`` for all, or rows ``(G, D)`` with trajectory ``n``
    drawn at row ``n // (count / G)`` (a replicate's batch shares its parameters)."""
    phi = np.atleast_2d(np.asarray(phi, dtype=float))
    probs = [policy.probs(phi[:, layout.slice(k)].reshape(len(phi), *shape)) for k, shape in enumerate(layout.shapes)]
    at = np.arange(count) // (count // len(phi))
    trajectory = np.arange(count)
    states = np.empty((count, horizon), dtype=int)
    actions = np.empty((count, horizon, game.n_agents), dtype=int)
    log_environment = np.zeros(count)
    state = _draw(np.broadcast_to(game.initial, (count, game.n_states)), rng)
    log_environment += np.log(game.initial[state])
    for t in range(horizon):
        states[:, t] = state
        for k in range(game.n_agents):
            actions[:, t, k] = _draw(probs[k][at, game.views[k, state]], rng)
        if t + 1 < horizon:
            rows = game.transitions[(state, *actions[:, t].T)]
            state = _draw(rows, rng)
            log_environment += np.log(rows[trajectory, state])
    return Trajectories(states, actions, log_environment, discounted_to_go(game, states, actions))
