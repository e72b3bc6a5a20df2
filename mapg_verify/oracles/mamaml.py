"""M-FOS's MAMAML (Lu et al., ICML 2022; ``luchris429/model-free-opponent-shaping``,
``src/environments.py``, ``generate_mamaml``) rewritten from its definition in autograd numpy, as an
oracle independent of the compiled values: its IPD losses and its meta-gradient."""

from __future__ import annotations

import autograd
import autograd.numpy as anp


def mfos_ipd_losses(opp, agent, gamma: float = 0.96):
    """M-FOS's ``ipd_batched`` (``src/environments.py``) for one pair, rewritten in autograd numpy
    from its definition: ``p = sigmoid`` is the probability of cooperating, the agent's four memory
    entries read CC, DC, CD, DD (its own view), ``L = -p0 (I - gamma P)^-1 payoffs``."""
    payoffs = anp.array([[-1.0, -3.0], [0.0, -2.0]])
    p1, p2 = 1 / (1 + anp.exp(-opp)), 1 / (1 + anp.exp(-agent[anp.array([0, 1, 3, 2, 4])]))

    def outcomes(a, b):
        return anp.stack([a * b, a * (1 - b), (1 - a) * b, (1 - a) * (1 - b)], axis=-1)

    start, moves = outcomes(p1[0], p2[0]), outcomes(p1[1:], p2[1:])
    visits = anp.dot(start, anp.linalg.inv(anp.eye(4) - gamma * moves))
    return -anp.dot(visits, payoffs.reshape(-1)), -anp.dot(visits, payoffs.T.reshape(-1))


def mamaml_gradient(opp, agent, steps: int, inner_lr: float, alpha: float):
    """``generate_mamaml``'s meta-gradient: ``steps`` exact gradient steps, the agent's loss summed
    at every step before its update, differentiated through all of them (descent on the losses)."""

    def total(initial):
        o, a, loss = opp, initial, 0.0
        for _ in range(steps):
            loss = loss + mfos_ipd_losses(o, a)[1]
            opp_grad = autograd.grad(lambda v, a=a: mfos_ipd_losses(v, a)[0])(o)
            agent_grad = autograd.grad(lambda v, o=o: mfos_ipd_losses(o, v)[1])(a)
            o, a = o - inner_lr * opp_grad, a - alpha * agent_grad
        return loss

    return -autograd.grad(total)(agent)
