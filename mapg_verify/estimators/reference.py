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
from mapg_verify.estimators.surrogate import Plan, inner_baseline, outer_advantages, outer_returns, with_returns
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


def reference(surrogate: Plan, draws: Draws, replicate: int) -> np.ndarray:
    """Replicate ``replicate``'s estimate, by autograd through the DiCE surrogate."""
    case, layout = surrogate.case, surrogate.compiled.layout
    i, own_rows = case.inner.meta_agent, layout.slice(case.inner.meta_agent)
    theta = case.flat_theta
    phis, inner = [theta], []  # phi_l by a plain forward pass, for baselines that read the values at phi_l
    for trajectories in draws.inner:
        inner.append(_batch(surrogate, trajectories, replicate, surrogate.batch, phis[-1], outer=False))
        phis.append(np.asarray(_inner_step(surrogate, phis[-1], inner[-1])))
    outer = [
        None if t is None else _batch(surrogate, t, replicate, surrogate.outer_batch, phi, outer=True)
        for t, phi in zip(draws.outer, phis, strict=False)
    ]

    def dice_objective(own):
        phi = anp.concatenate([theta[: own_rows.start], own, theta[own_rows.stop :]])
        total, paired = 0.0, []  # paired: per inner batch, step log-probabilities (K, H) at phi_l
        for level in range(surrogate.steps + 1):
            if surrogate.evaluated(level):
                total = total + _outer_term(surrogate, phi, outer[level], paired, i)
            if level == surrogate.steps:
                break
            batch = inner[level]
            paired.append(_joint_log_probs(surrogate, phi, batch))
            phi = _inner_step(surrogate, phi, batch)
        return total

    return autograd.grad(dice_objective)(theta[own_rows])


def _batch(surrogate: Plan, trajectories, replicate: int, size: int, phi, outer: bool) -> dict:
    """One replicate's batch: states, actions and per-step rewards ``gamma^t r_t`` ``(K, H, n)``
    as the estimator computes them, its rewards-to-go, the inner baseline's ``gamma^t b_t`` and
    agent ``i``'s outer returns and advantages in the estimator's convention."""
    part = slice(replicate * size, (replicate + 1) * size)
    mine = trajectories.take(part)
    to_go = with_returns(surrogate.case.game, trajectories, surrogate.estimator.returns).to_go[part]
    rewards = to_go
    if surrogate.estimator.returns != "immediate":
        rewards = step_rewards(to_go)
    found = {"states": mine.states, "actions": mine.actions, "rewards": rewards, "to_go": to_go}
    if not outer:
        found["baseline"] = inner_baseline(surrogate, mine, phi)
        return found
    found["returns"] = outer_returns(surrogate, mine)
    found["advantages"] = outer_advantages(surrogate, mine, phi, found["returns"])
    return found


def _agent_log_probs(surrogate: Plan, phi, batch: dict, k: int):
    """``log pi^k(a^k_t | s_t; phi^k)`` per trajectory and step, ``(K, H)``."""
    layout, policy, game = surrogate.compiled.layout, surrogate.case.policy, surrogate.case.game
    theta = anp.reshape(phi[layout.slice(k)], layout.shapes[k])
    return policy.log_probs(theta)[game.views[k, batch["states"]], batch["actions"][..., k]]


def _joint_log_probs(surrogate: Plan, phi, batch: dict):
    return sum(_agent_log_probs(surrogate, phi, batch, k) for k in range(surrogate.case.game.n_agents))


def _dice_objective(step_log_probs, rewards, causal: bool = True):
    """``(1/K) sum_b sum_t box(sum_{t' <= t} log p_t') r_t`` (``box(log p_t)`` alone if not causal)."""
    log_probs = anp.cumsum(step_log_probs, axis=1) if causal else step_log_probs
    return anp.mean(anp.sum(magic_box(log_probs) * rewards, axis=1))


def _inner_step(surrogate: Plan, phi, batch: dict):
    """``phi + A g(B; phi)``, each agent's ``g^k`` by autograd of its objective over all of ``phi``."""
    layout = surrogate.compiled.layout
    parts = []
    for k in range(surrogate.case.game.n_agents):
        block = layout.slice(k)
        step = surrogate.rates[block] * autograd.grad(_inner_objective)(phi, surrogate, batch, k)[block]
        parts.append(phi[block] + (step if surrogate.differentiated[block].any() else stop(step)))
    return anp.concatenate(parts)


def _inner_objective(phi, surrogate: Plan, batch: dict, k: int):
    """Agent ``k``'s inner objective: DiCE's with its baseline term
    ``(1/K) sum_b sum_t (1 - box(log pi_t)) gamma^t b^k_t``, or the pathwise
    ``(1/K) sum log pi^k stop(G^k_t - gamma^t b^k_t)``."""
    baseline = batch["baseline"]
    weights = batch["to_go"][..., k] - (0.0 if baseline is None else baseline[..., k])  # G_t - gamma^t b_t
    if surrogate.estimator.jacobian == "pathwise":
        return anp.mean(anp.sum(_agent_log_probs(surrogate, phi, batch, k) * weights, axis=1))
    step_log_probs = _joint_log_probs(surrogate, phi, batch)
    if surrogate.estimator.jacobian == "loaded-dice":
        return _loaded_objective(step_log_probs, weights, surrogate.estimator.dice_lambda)
    objective = _dice_objective(step_log_probs, batch["rewards"][..., k], _causal(surrogate))
    if baseline is None:
        return objective
    return objective + anp.mean(anp.sum((1.0 - magic_box(step_log_probs)) * baseline[..., k], axis=1))


def _loaded_objective(step_log_probs, advantages, lam: float):
    """Loaded DiCE: ``(1/K) sum_b sum_t (box(w_t) - box(w_t - log p_t)) A_t`` with
    ``w_t = sum_{t' <= t} lam^(t-t') log p_t'``."""
    running, weighted = 0.0, []
    for t in range(step_log_probs.shape[1]):
        running = lam * running + step_log_probs[:, t]
        weighted.append(running)
    dependencies = anp.stack(weighted, axis=1)
    boxes = magic_box(dependencies) - magic_box(dependencies - step_log_probs)
    return anp.mean(anp.sum(boxes * advantages, axis=1))


def _causal(surrogate: Plan) -> bool:
    return surrogate.estimator.returns != "immediate"


def _outer_term(surrogate: Plan, phi, batch: dict | None, paired: list, i: int):
    """The outer objective and the current term at one level: DiCE's, or, where the advantage
    is not the rewards-to-go, ``(1/K) sum_b sum_t box(log pi_t) A_t`` as the official loss writes it."""
    signs = surrogate.signs
    shown = stop(phi) + signs * (phi - stop(phi))
    if batch is None:  # outer = "exact"
        value = autograd_values(surrogate.case.game, surrogate.case.policy, shown)[i]
        mean_return = stop(value)
        returns = None
    else:
        step_log_probs = _joint_log_probs(surrogate, shown, batch)
        if surrogate.estimator.baseline == "none" and surrogate.estimator.convention == "from-zero":
            value = _dice_objective(step_log_probs, batch["rewards"][..., i], _causal(surrogate))
        else:
            value = anp.mean(anp.sum(magic_box(step_log_probs) * batch["advantages"], axis=1))
        returns = batch["advantages"] if surrogate.estimator.current_advantage else batch["returns"]
        mean_return = returns[:, 0].mean()
    if not surrogate.estimator.current or not paired:
        return value
    if surrogate.pairing == "batch":
        log_p = sum(anp.sum(p) for p in paired)
        return value + (magic_box(log_p) - 1.0) * mean_return
    if surrogate.pairing == "trajectory":
        log_p = sum(anp.sum(p, axis=1) for p in paired)  # (K,)
        per = returns[:, 0] if returns is not None else mean_return
        return value + anp.sum((magic_box(log_p) - 1.0) * per) / surrogate.batch
    log_p = sum(paired)  # (K, H): the score of step t alone
    return value + anp.sum((magic_box(log_p) - 1.0) * returns) / surrogate.batch
