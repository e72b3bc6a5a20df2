"""Helpers for plug-in authors, written in autograd numpy so that a DiCE surrogate can be
differentiated through them (any order). ``batch`` is a :class:`~mapg_verify.estimators.plugins.Batch`,
``settings`` the plug-in's :class:`~mapg_verify.estimators.plugins.Settings`, ``params`` one
parameter array per agent (``theta``, or a ``phi_l`` the plug-in computed).

Return conventions (the README says which each built-in uses):

- ``"from-zero"``: ``G_t = sum_{t' >= t} gamma^{t'} r_{t'}`` (SPEC §3, every built-in estimator);
- ``"from-t"``: ``G_t = sum_{t' >= t} gamma^{t' - t} r_{t'}`` (the official Meta-MAPG code's
  ``get_return``).
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np

from mapg_verify.problem.policies import POLICIES

CONVENTIONS = ("from-zero", "from-t")


def policy_rows(batch, settings, agent: int) -> np.ndarray:
    """``(K, H)``: the row of agent ``agent``'s policy table used at each step (its view of the state)."""
    return np.asarray(settings.game.views)[agent][batch.states]


def log_probs(batch, params, settings, agent: int):
    """``(K, H)``: ``log pi^k(a^k_t | s_t; params[k])`` for ``k = agent``."""
    table = POLICIES[settings.policy].log_probs(params[agent])  # (S, A)
    rows, actions = policy_rows(batch, settings, agent), batch.actions[..., agent]
    return table[rows, actions]


def joint_log_probs(batch, params, settings, agents=None):
    """``(K, H)``: the sum of :func:`log_probs` over ``agents`` (default: every agent)."""
    agents = range(settings.game.n_agents) if agents is None else agents
    return sum(log_probs(batch, params, settings, k) for k in agents)


def discounts(batch, settings) -> np.ndarray:
    """``(H,)``: ``gamma^t``."""
    return settings.gamma ** np.arange(batch.states.shape[1])


def returns(batch, settings, agent: int, convention: str = "from-zero") -> np.ndarray:
    """``(K, H)``: agent ``agent``'s discounted rewards-to-go in either convention (see above)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    weights = discounts(batch, settings)
    discounted = batch.rewards[..., agent] * weights
    to_go = np.flip(np.cumsum(np.flip(discounted, axis=1), axis=1), axis=1)
    return to_go if convention == "from-zero" else to_go / weights


def scores(batch, params, settings, agent: int) -> np.ndarray:
    """``(K, H, *shape of params[agent])``: ``grad log pi^k(a_t | s_t)`` of each step, by autograd."""

    def own(part):
        return log_probs(batch, [part if k == agent else p for k, p in enumerate(params)], settings, agent)

    return autograd.jacobian(own)(anp.asarray(params[agent], dtype=float))
