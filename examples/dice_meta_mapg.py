"""A Meta-MAPG estimator written as DiCE code is written, as a plug-in, with plausible bugs.

``meta_mapg`` builds one surrogate of ``theta^i`` and returns its autograd gradient:

- inner steps: each agent ``k`` ascends its DiCE objective
  ``(1/K) sum_b sum_t box(sum_{t' <= t} sum_j log pi^j(a^j_t'|s_t'; phi^j)) gamma^t r^k_t``
  (causal, every agent's log-probabilities), ``phi^k <- phi^k + alpha^k grad_{phi^k}``;
- outer term at ``phi_L``: ``(1/K_out) sum_b sum_t log pi(a_t|s_t; phi_L) stop(G_t - b_t)``,
  REINFORCE with no baseline (``b_t = 0``, ``meta_mapg``) or a leave-one-out one (``b_t`` the
  other outer trajectories' returns, ``meta_mapg_loo``);
- current term: ``(box(sum_l log P(B_l | phi_l)) - 1) stop(mean outer return)``, the batch pairing.

Either's expectation is the built-in ``meta-mapg``'s with ``pairing = "batch"``: claim it with
``"examples.dice_meta_mapg:meta_mapg" = "meta-mapg"`` (``cases/claims.toml``). The other
functions are the same code with one plausible bug each (no baseline, except where the bug is
in the baseline); their claims fail
(``python -m mapg_verify run examples/claims_buggy.toml``, exit 1).
"""

import autograd
import autograd.numpy as anp
from autograd.extend import defvjp, primitive
from autograd.tracer import isbox

from mapg_verify.plugins import discounts, joint_log_probs, returns


@primitive
def stop(x):
    """Stop-gradient at every order: its derivative is 0 however often it is differentiated."""
    return x


defvjp(stop, lambda ans, x: lambda g: 0.0 * g)


def _one_level(x):
    """A stop-gradient that unwraps one level of autograd's boxes: right for first derivatives,
    wrong inside a nested one (the inner update's Jacobian)."""
    return x._value if isbox(x) else x


def magic(x, stop_gradient=stop):
    """DiCE's magic box: 1 in value, ``box(x) dx`` in derivative."""
    return anp.exp(x - stop_gradient(x))


def _estimate(inner, outer, theta, settings, bug=None, baseline=False, target=None):
    """The surrogate's gradient; ``bug`` names one defect, ``target(batch, settings, i)`` replaces the
    outer REINFORCE target (the discounted reward-to-go) by an advantage (:mod:`examples.shipped_bugs`)."""
    if settings.objective != "terminal":
        raise ValueError("this example implements the terminal objective")
    i, agents = settings.meta_agent, range(settings.game.n_agents)
    stop_gradient = _one_level if bug == "stop-one-level" else stop

    def inner_objective(part, phi, batch, k):
        local = [part if j == k else p for j, p in enumerate(phi)]
        dependencies = [k] if bug == "no-peer-log-probs" else agents
        rewards = batch.rewards[..., k] * discounts(batch, settings)
        if bug == "whole-batch-magic":
            box = magic(anp.sum(joint_log_probs(batch, local, settings, dependencies)), stop_gradient)
            return box * anp.mean(anp.sum(rewards, axis=1))
        axis = 0 if bug == "batch-axis-sum" else 1
        cumulative = anp.cumsum(joint_log_probs(batch, local, settings, dependencies), axis=axis)
        return anp.mean(anp.sum(magic(cumulative, stop_gradient) * rewards, axis=1))

    def surrogate(theta_i):
        phi = initial = [theta_i if k == i else anp.asarray(theta[k], dtype=float) for k in agents]
        batch_log_probs = 0.0
        for batch in inner:
            batch_log_probs = batch_log_probs + anp.sum(joint_log_probs(batch, phi, settings))
            at = [initial[k] if bug == "stale-lookahead" and k != i else phi[k] for k in agents]
            steps = [autograd.grad(inner_objective)(at[k], phi, batch, k) for k in agents]
            if bug == "no-create-graph":
                steps = [stop(step) for step in steps]
            if bug == "peer-step-detached":
                steps = [step if k == i else stop(step) for k, step in enumerate(steps)]
            phi = [phi[k] + settings.alpha[k] * steps[k] if settings.alpha[k] else phi[k] for k in agents]
        batch = outer[-1]
        step_log_probs = joint_log_probs(batch, initial if bug == "stale-rollouts" else phi, settings)
        to_go = returns(batch, settings, i)
        if bug == "reward-target":
            to_go = batch.rewards[..., i] * discounts(batch, settings)
        aim = to_go if target is None else target(batch, settings, i)
        offset = 0.0
        if baseline:
            weighted = magic(anp.cumsum(step_log_probs, axis=1)) * returns(batch, settings, i)
            others = anp.sum(weighted, axis=0, keepdims=True) - weighted  # the other trajectories' returns
            offset = others / (len(batch.states) - 1)
            if bug == "self-in-baseline":
                offset = anp.mean(weighted, axis=0, keepdims=True)
            if bug != "baseline-unstopped":
                offset = stop(offset)
        outer_term = anp.mean(anp.sum(step_log_probs * (stop(aim) - offset), axis=1))
        mean_return = anp.mean(to_go[:, 0])
        return outer_term + (magic(batch_log_probs) - 1.0) * stop(mean_return)

    return autograd.grad(surrogate)(anp.asarray(theta[i], dtype=float))


def meta_mapg(inner, outer, theta, settings):
    """The correct estimator (see the module's docstring)."""
    return _estimate(inner, outer, theta, settings)


def meta_mapg_loo(inner, outer, theta, settings):
    """The correct estimator with a leave-one-out baseline in its outer term."""
    return _estimate(inner, outer, theta, settings, baseline=True)


def stop_one_level(inner, outer, theta, settings):
    """Bug: a stop-gradient that strips only one level of nesting."""
    return _estimate(inner, outer, theta, settings, "stop-one-level")


def whole_batch_magic(inner, outer, theta, settings):
    """Bug: the inner magic box over the whole batch, not causally per trajectory and step."""
    return _estimate(inner, outer, theta, settings, "whole-batch-magic")


def no_peer_log_probs(inner, outer, theta, settings):
    """Bug: each agent's inner DiCE objective boxes only its own log-probabilities."""
    return _estimate(inner, outer, theta, settings, "no-peer-log-probs")


def baseline_unstopped(inner, outer, theta, settings):
    """Bug: the outer baseline, computed from the surrogate's weighted returns, is not stopped."""
    return _estimate(inner, outer, theta, settings, "baseline-unstopped", baseline=True)


def reward_target(inner, outer, theta, settings):
    """Bug: the outer REINFORCE target is each step's reward, not its reward-to-go."""
    return _estimate(inner, outer, theta, settings, "reward-target")
