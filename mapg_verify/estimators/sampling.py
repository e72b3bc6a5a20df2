"""Vectorised trajectory sampling: ``count`` i.i.d. trajectories of horizon ``H`` under ``pi(phi)``.

One step for all trajectories at once: each agent's action by inverse-CDF
sampling from ``pi^k(.|s_t)`` (uniforms from the ``numpy.random.Generator``),
then the next state likewise from ``P(.|s_t, a_t)``. The result is the same
record as the enumeration's, so REINFORCE terms apply to both alike. Large draws run the same
steps compiled (:func:`mapg_verify.exact.kernels.sample`) on the same uniforms, drawn beforehand.
"""

from __future__ import annotations

import numpy as np

from mapg_verify.exact import kernels
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
    game: Game,
    policy: Policy,
    layout: Layout,
    phi,
    horizon: int,
    count: int,
    rng: np.random.Generator,
    compiled: bool = False,
) -> Trajectories:
    """``count`` trajectories of ``horizon`` steps drawn from ``rho0``, ``pi(phi)`` and ``P``,
    independently; ``phi`` is one vector ``(D,)`` for all, or rows ``(G, D)`` with trajectory ``n``
    drawn at row ``n // (count / G)`` (a replicate's batch shares its parameters). ``compiled``: by
    the kernel, the same trajectories."""
    phi = np.atleast_2d(np.asarray(phi, dtype=float))
    probs = [policy.probs(phi[:, layout.slice(k)].reshape(len(phi), *shape)) for k, shape in enumerate(layout.shapes)]
    if compiled:
        return _compiled(game, probs, horizon, count, rng)
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


def _compiled(game: Game, probs: list[np.ndarray], horizon: int, count: int, rng: np.random.Generator) -> Trajectories:
    """:func:`sample_trajectories` by :func:`mapg_verify.exact.kernels.sample`: the uniforms in the
    order the steps above draw them (``s_0``; then per step each agent's action and, but for the
    last step, the next state), inverted against the same cumulative sums."""
    n, n_states, joint = game.n_agents, game.n_states, int(np.prod(game.n_actions))
    blocks = 1 + horizon * n + horizon - 1
    uniforms = rng.random((blocks, count))
    policy_cdf = np.zeros((n, len(probs[0]), max(p.shape[1] for p in probs), max(game.n_actions)))
    for k, p in enumerate(probs):
        policy_cdf[k, :, : p.shape[1], : p.shape[2]] = np.cumsum(p, axis=-1)
    transitions = game.transitions.reshape(n_states, joint, n_states)
    with np.errstate(divide="ignore"):
        logs = np.log(game.initial), np.log(transitions)
    rewards, strides = kernels.joint_rewards(game)
    states = np.empty((count, horizon), dtype=np.int32)  # half the bytes of int64 for every kernel to read
    actions = np.empty((count, horizon, n), dtype=np.int32)
    log_environment, to_go = np.empty(count), np.empty((count, horizon, n))
    kernels.sample(
        uniforms, count // len(probs[0]), policy_cdf, np.asarray(game.n_actions), np.ascontiguousarray(game.views),
        np.cumsum(game.initial), logs[0], np.cumsum(transitions, axis=-1), logs[1], strides,
        rewards, game.gamma ** np.arange(horizon), states, actions,
        log_environment, to_go,
    )  # fmt: skip
    return Trajectories(states, actions, log_environment, to_go)
