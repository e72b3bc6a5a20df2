"""``V^k`` at 50 significant digits with mpmath's own LU solve (infinite horizons) or the forward
recursion (finite ones), and its gradient by mpmath's differentiation: independent of numpy
and of the symbolic path."""

from __future__ import annotations

import mpmath
import numpy as np

from mapg_verify.problem.game import DifferentiableGame, Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy


def mpmath_values(game: Game | DifferentiableGame, policy: Policy | None, x, dps: int = 50) -> list:
    """``V^k(theta)`` as mpmath floats at ``dps`` digits (LU solve for infinite horizons)."""
    with mpmath.workdps(dps):
        return _mp_values(game, policy, [mpmath.mpf(v) for v in np.asarray(x, dtype=float)])


def mpmath_gradient(game, policy, x, dps: int = 50) -> list[list]:
    """``dV^k/dx_j`` at ``dps`` digits by mpmath's high-precision differentiation."""
    with mpmath.workdps(dps):
        x = [mpmath.mpf(v) for v in np.asarray(x, dtype=float)]

        def partial(j: int, k: int):
            return mpmath.diff(lambda t: _mp_values(game, policy, [*x[:j], t, *x[j + 1 :]])[k], x[j])

        return [[partial(j, k) for j in range(len(x))] for k in range(game.n_agents)]


def mpmath_derivative(game, policy, x, agent: int, index: tuple[int, ...], dps: int = 50):
    """``d^k V^agent / dx_j1 .. dx_jk`` at ``dps`` digits by mpmath's multivariate differentiation."""
    with mpmath.workdps(dps):
        x = [mpmath.mpf(v) for v in np.asarray(x, dtype=float)]
        variables = sorted(set(index))

        def value(*moved):
            point = list(x)
            for j, v in zip(variables, moved, strict=True):
                point[j] = v
            return _mp_values(game, policy, point)[agent]

        return mpmath.diff(value, [x[j] for j in variables], [index.count(j) for j in variables])


def _mp_values(game: Game | DifferentiableGame, policy: Policy | None, flat: list) -> list:
    """The values at the working precision of mpmath's context."""
    theta = layout_of(game, policy).unflatten(np.array(flat, dtype=object))
    if isinstance(game, DifferentiableGame):
        return list(game.values(theta))
    probs = [[_mp_probs(policy, part[game.views[k, s]]) for s in range(game.n_states)] for k, part in enumerate(theta)]
    transition, reward = _mp_averaged(game, probs)
    if game.infinite:
        matrix = mpmath.eye(game.n_states) - mpmath.mpf(game.gamma) * transition
        occupancy = mpmath.lu_solve(matrix.T, mpmath.matrix([mpmath.mpf(p) for p in game.initial]))
        return [sum(reward[k, s] * occupancy[s] for s in range(game.n_states)) for k in range(game.n_agents)]
    totals = [mpmath.mpf(0)] * game.n_agents
    distribution = mpmath.matrix([[mpmath.mpf(p) for p in game.initial]])
    for t in range(int(game.horizon)):
        step = reward * distribution.T
        totals = [totals[k] + mpmath.mpf(game.gamma) ** t * step[k] for k in range(game.n_agents)]
        distribution = distribution * transition
    return totals


def _mp_probs(policy: Policy, row) -> list:
    if policy.two_actions_only:
        return [1 / (1 + mpmath.exp(-row)), 1 / (1 + mpmath.exp(row))]
    logits = list(row)
    top = max(logits)
    weights = [mpmath.exp(v - top) for v in logits]
    total = sum(weights)
    return [w / total for w in weights]


def _mp_averaged(game: Game, probs) -> tuple[mpmath.matrix, mpmath.matrix]:
    transition = mpmath.zeros(game.n_states, game.n_states)
    reward = mpmath.zeros(game.n_agents, game.n_states)
    for s in range(game.n_states):
        for joint in np.ndindex(*game.n_actions):
            weight = mpmath.fprod(probs[k][s][a] for k, a in enumerate(joint))
            for s_next in np.flatnonzero(game.transitions[(s, *joint)]):
                transition[s, s_next] += weight * mpmath.mpf(game.transitions[(s, *joint, s_next)])
            for k in range(game.n_agents):
                reward[k, s] += weight * mpmath.mpf(game.rewards[(k, s, *joint)])
    return transition, reward
