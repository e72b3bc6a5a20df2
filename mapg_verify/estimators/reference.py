"""The generic reference for the estimators: DiCE surrogates differentiated by autograd.

Nothing here uses the closed-form scores or Hessians of :mod:`mapg_verify.reinforce`. On the
batches one replicate drew (:func:`mapg_verify.montecarlo.draw_recorded`), the surrogate is a
function of ``theta^i`` whose gradient is the estimate:

- ``box(x) = exp(x - stop(x))``, DiCE's magic box, with ``stop`` an autograd primitive whose
  derivative is 0, so that ``box = 1`` and ``grad box(x) = box(x) grad x`` at every order;
- inner step: agent ``k``'s DiCE objective ``(1/K) sum_b sum_t box(sum_{t' <= t} log pi(a_t'|s_t'; phi))
  gamma^t r^k_t`` (or, for the pathwise estimator, ``(1/K) sum_b sum_t log pi^k(a^k_t|s_t) stop(G^k_t)``),
  differentiated by autograd to give ``g^k``; ``phi^k <- phi^k + alpha^k g^k``, through ``stop`` for
  the agents whose update the estimator does not differentiate;
- outer term: agent ``i``'s DiCE objective on the outer batch at ``phi`` (the peers' parameters
  entering as ``stop(phi) + sign (phi - stop(phi))`` for the flipped-sign variant); with
  ``outer = "exact"``, ``V^i`` itself through the autograd oracle;
- current term: ``(box(log P) - 1) stop(G)`` with the pairing's log-probabilities and returns.
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive

from mapg_verify.estimators.montecarlo import Draws
from mapg_verify.estimators.surrogate import Plan, with_returns
from mapg_verify.exact.enumeration import step_rewards
from mapg_verify.oracles.autodiff import autograd_values


@primitive
def stop(x):
    """The identity, with derivative 0 (``stop_gradient``)."""
    return x


defvjp(stop, lambda answer, x: lambda g: anp.zeros_like(g))


def magic_box(x):
    """DiCE's operator: 1 in value, ``box(x) grad x`` in derivative."""
    return anp.exp(x - stop(x))


def reference(run: Plan, draws: Draws, replicate: int) -> np.ndarray:
    """Replicate ``replicate``'s estimate, by autograd through the DiCE surrogate."""
    case, layout = run.case, run.compiled.layout
    i, own_rows = case.inner.meta_agent, layout.slice(case.inner.meta_agent)
    theta = case.flat_theta
    inner = [_batch(run, t, replicate, run.batch) for t in draws.inner]
    outer = [None if t is None else _batch(run, t, replicate, case.estimators.outer_batch) for t in draws.outer]

    def surrogate(own):
        phi = anp.concatenate([theta[: own_rows.start], own, theta[own_rows.stop :]])
        total, paired = 0.0, []  # paired: per inner batch, step log-probabilities (K, H) at phi_l
        for level in range(run.steps + 1):
            if run.evaluated(level):
                total = total + _outer_term(run, phi, outer[level], paired, i)
            if level == run.steps:
                break
            batch = inner[level]
            paired.append(_joint_log_probs(run, phi, batch))
            phi = _inner_step(run, phi, batch)
        return total

    return autograd.grad(surrogate)(theta[own_rows])


def _batch(run: Plan, trajectories, replicate: int, size: int) -> dict:
    """One replicate's batch: states, actions and per-step rewards ``gamma^t r_t`` ``(K, H, n)``
    as the estimator computes them, and its rewards-to-go."""
    part = slice(replicate * size, (replicate + 1) * size)
    to_go = with_returns(run.case.game, trajectories, run.estimator.returns).to_go[part]
    rewards = to_go
    if run.estimator.returns != "immediate":
        rewards = step_rewards(to_go)
    return {
        "states": trajectories.states[part],
        "actions": trajectories.actions[part],
        "rewards": rewards,
        "to_go": to_go,
    }


def _agent_log_probs(run: Plan, phi, batch: dict, k: int):
    """``log pi^k(a^k_t | s_t; phi^k)`` per trajectory and step, ``(K, H)``."""
    layout, policy, game = run.compiled.layout, run.case.policy, run.case.game
    theta = anp.reshape(phi[layout.slice(k)], layout.shapes[k])
    return policy.log_probs(theta)[game.views[k, batch["states"]], batch["actions"][..., k]]


def _joint_log_probs(run: Plan, phi, batch: dict):
    return sum(_agent_log_probs(run, phi, batch, k) for k in range(run.case.game.n_agents))


def _dice_objective(step_log_probs, rewards, causal: bool = True):
    """``(1/K) sum_b sum_t box(sum_{t' <= t} log p_t') r_t`` (``box(log p_t)`` alone if not causal)."""
    log_probs = anp.cumsum(step_log_probs, axis=1) if causal else step_log_probs
    return anp.mean(anp.sum(magic_box(log_probs) * rewards, axis=1))


def _inner_step(run: Plan, phi, batch: dict):
    """``phi + A g(B; phi)``, each agent's ``g^k`` by autograd of its objective over all of ``phi``."""
    layout = run.compiled.layout
    parts = []
    for k in range(run.case.game.n_agents):
        block = layout.slice(k)
        step = run.rates[block] * autograd.grad(_inner_objective)(phi, run, batch, k)[block]
        parts.append(phi[block] + (step if run.differentiated[block].any() else stop(step)))
    return anp.concatenate(parts)


def _inner_objective(phi, run: Plan, batch: dict, k: int):
    """Agent ``k``'s inner objective: DiCE's, or the pathwise ``(1/K) sum log pi^k stop(G^k_t)``."""
    if run.estimator.jacobian == "pathwise":
        return anp.mean(anp.sum(_agent_log_probs(run, phi, batch, k) * batch["to_go"][..., k], axis=1))
    return _dice_objective(_joint_log_probs(run, phi, batch), batch["rewards"][..., k], _causal(run))


def _causal(run: Plan) -> bool:
    return run.estimator.returns != "immediate"


def _outer_term(run: Plan, phi, batch: dict | None, paired: list, i: int):
    """The outer DiCE objective and the current term at one level."""
    signs = run.signs
    shown = stop(phi) + signs * (phi - stop(phi))
    if batch is None:  # outer = "exact"
        value = autograd_values(run.case.game, run.case.policy, shown)[i]
        mean_return = stop(value)
        returns = None
    else:
        value = _dice_objective(_joint_log_probs(run, shown, batch), batch["rewards"][..., i], _causal(run))
        returns = batch["to_go"][..., i]
        mean_return = returns[:, 0].mean()
    if not run.estimator.current or not paired:
        return value
    if run.pairing == "batch":
        log_p = sum(anp.sum(p) for p in paired)
        return value + (magic_box(log_p) - 1.0) * mean_return
    if run.pairing == "trajectory":
        log_p = sum(anp.sum(p, axis=1) for p in paired)  # (K,)
        per = returns[:, 0] if returns is not None else mean_return
        return value + anp.sum((magic_box(log_p) - 1.0) * per) / run.batch
    log_p = sum(paired)  # (K, H): the score of step t alone
    return value + anp.sum((magic_box(log_p) - 1.0) * returns) / run.batch
