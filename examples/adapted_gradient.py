"""A worked plug-in: REINFORCE for agent i at the adapted parameters, with no meta-gradient at all.

``estimate = (1/K_out) sum_b sum_t grad_{phi^i} log pi^i(a^i_t | s_t; phi^i_L) G^i_t`` on the outer
batch, the discounted reward-to-go ``G^i_t = sum_{t' >= t} gamma^t' r^i_t'``. Its expectation is
``grad_{phi^i} V^i(phi_L)`` averaged over the inner loop: the ``adapted`` term of the fingerprint,
with no current, self-shaping or opponent-shaping term. Run it with::

    python -m mapg_verify run cases/plugin.toml
"""

import numpy as np


def score(theta: np.ndarray, row: int, action: int) -> np.ndarray:
    """grad_theta log pi(action | row) for a softmax row (theta of shape (S, A)) or a sigmoid one (S,)."""
    gradient = np.zeros_like(theta)
    if theta.ndim == 1:  # sigmoid: pi(0) = sigmoid(theta)
        p0 = 1.0 / (1.0 + np.exp(-theta[row]))
        gradient[row] = 1.0 - p0 if action == 0 else -p0
    else:
        logits = theta[row] - theta[row].max()
        probs = np.exp(logits) / np.exp(logits).sum()
        gradient[row] = -probs
        gradient[row, action] += 1.0
    return gradient


def adapted_gradient(inner, outer, theta, settings):
    """The plug-in: (inner batches, outer batches, theta, settings) -> array shaped like theta[i]."""
    i, batch = settings.meta_agent, outer[-1]
    phi = batch.phi[i]
    discounts = settings.gamma ** np.arange(batch.states.shape[1])
    estimate = np.zeros_like(phi)
    for states, actions, rewards in zip(batch.states, batch.actions, batch.rewards, strict=True):
        to_go = np.cumsum((discounts * rewards[:, i])[::-1])[::-1]
        for t, state in enumerate(states):
            row = settings.game.views[i, state]
            estimate += score(phi, row, actions[t, i]) * to_go[t]
    return estimate / len(batch.states)
