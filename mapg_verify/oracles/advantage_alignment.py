"""Autograd oracle for Advantage Alignment's terms (:mod:`mapg_verify.exact.advantage_alignment`).

Written from the definitions, sharing nothing with the closed forms but the game's arrays: every
trajectory of ``T`` steps from ``rho0`` enumerated with its probability, the exact advantages (values
by ``np.linalg.solve``) held fixed along it, and autograd's gradient in ``theta^i`` of the expected
REINFORCE surrogate ``sum_tau P(tau) sum_t w_t(tau) log pi^i(a_t | s_t)``, whose gradient is
``E[sum_t w_t grad log pi^i_t]`` by definition. The weights ``w_t`` per variant:

- ``paper``: ``beta gamma gamma^t sum_{k<t} gamma^{t-k} A^i_k A^j_t`` (the README's ``A*`` minus ``A^i_t``);
- ``derived``: ``beta gamma^t sum_{k<=t} Abar^i(s_k, b_k) A^j_t``;
- ``code``: ``1/(t (T-2)) sum_{k<t} A^i_k A^j_t`` for ``1 <= t <= T-2`` (``train.py``'s ``linear_aa_loss``);
- ``code_direct``: ``A^i_t / (T-1)`` for ``t <= T-2``.
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np

from mapg_verify.problem.game import Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy


def _values(game: Game, meta_agent: int, mine: np.ndarray, theirs: np.ndarray):
    """``(P[s, a, b, s'], Q (2, S, A, B), v (2, S))``, the meta-agent's action ``a`` first."""
    order = [meta_agent, 1 - meta_agent]
    transitions = game.transitions if meta_agent == 0 else np.transpose(game.transitions, (0, 2, 1, 3))
    rewards = game.rewards[order] if meta_agent == 0 else np.transpose(game.rewards[order], (0, 1, 3, 2))
    gamma = game.gamma if game.infinite else 0.0
    joint = np.einsum("sa,sb->sab", mine, theirs)
    system = np.eye(game.n_states) - gamma * np.einsum("sab,sabt->st", joint, transitions)
    v = np.linalg.solve(system, np.einsum("sab,ksab->sk", joint, rewards)).T
    return transitions, rewards + gamma * np.einsum("sabt,kt->ksab", transitions, v), v


def _trajectories(game: Game, transitions, mine, theirs, steps: int):
    """Every ``((s_t, a_t, b_t) for t < steps)`` of positive probability, with that probability."""
    paths = [((), float(p), s) for s, p in enumerate(game.initial) if p > 0]
    for _ in range(steps):
        grown = []
        for path, weight, s in paths:
            for a in range(mine.shape[1]):
                for b in range(theirs.shape[1]):
                    for t in np.flatnonzero(transitions[s, a, b]):
                        p = weight * mine[s, a] * theirs[s, b] * transitions[s, a, b, t]
                        grown.append(((*path, (s, a, b)), p, int(t)))
        paths = grown
    return [(path, weight) for path, weight, _ in paths]


def _weights(path, q, v, mine, variant: str, steps: int, beta: float, gamma: float) -> list[float]:
    own = [q[0, s, a, b] - v[0, s] for s, a, b in path]
    theirs = [q[1, s, a, b] - v[1, s] for s, a, b in path]
    bar = [mine[s] @ q[0, s, :, b] - v[0, s] for s, _, b in path]
    out = []
    for t in range(steps):
        if variant == "paper":
            past = sum(gamma ** (t - k) * own[k] for k in range(t))
            out.append(beta * gamma * gamma**t * past * theirs[t])
        elif variant == "derived":
            out.append(beta * gamma**t * sum(bar[: t + 1]) * theirs[t])
        elif variant == "code":
            out.append(sum(own[:t]) * theirs[t] / (t * (steps - 2)) if 1 <= t <= steps - 2 else 0.0)
        else:
            out.append(own[t] / (steps - 1) if t <= steps - 2 else 0.0)
    return out


def autograd_alignment(
    game: Game, policy: Policy, x, variant: str, steps: int, meta_agent: int = 0, beta: float = 1.0
) -> np.ndarray:
    """``variant``'s expected gradient over episodes of ``steps`` steps, by enumeration and autograd."""
    x = np.asarray(x, dtype=float)
    layout = layout_of(game, policy)
    thetas = layout.unflatten(x)
    mine = np.exp(policy.log_probs(thetas[meta_agent]))[game.views[meta_agent]]
    theirs = np.exp(policy.log_probs(thetas[1 - meta_agent]))[game.views[1 - meta_agent]]
    transitions, q, v = _values(game, meta_agent, mine, theirs)
    gamma = game.gamma if game.infinite else 0.0
    rows, actions, weights = [], [], []
    for path, probability in _trajectories(game, transitions, mine, theirs, steps):
        w = _weights(path, q, v, mine, variant, steps, beta, gamma)
        for (s, a, _), w_t in zip(path, w, strict=True):
            rows.append(game.views[meta_agent][s])
            actions.append(a)
            weights.append(probability * w_t)
    rows, actions, weights = np.array(rows), np.array(actions), np.array(weights)
    shape = layout.shapes[meta_agent]

    def surrogate(theta_i):
        log_probs = policy.log_probs(anp.reshape(theta_i, shape))
        return anp.sum(weights * log_probs[rows, actions])

    return autograd.grad(surrogate)(thetas[meta_agent].ravel())
