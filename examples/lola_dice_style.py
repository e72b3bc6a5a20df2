"""LOLA-DiCE as alexis-jacq/LOLA_DiCE's ``ipd_DiCE.py`` writes it, in that code's own conventions.

Written here after the structure of ``ipd_DiCE.py`` (``act``, ``Memory.dice_objective``,
``in_lookahead``, ``out_lookahead``), not copied. The code's conventions are declared once,
``conventions = "lola-dice"`` (:mod:`mapg_verify.estimators.conventions`): its states are
``start, DD, DC, CD, CC`` from each agent's own point of view, action 0 is defect and
``sigmoid(theta[s])`` is the probability of defecting; the toolkit hands over batches and
``theta`` in them and converts the gradient and the ``phi`` back. So the lines below are the
code's own:

- ``act``: ``Bernoulli(1 - sigmoid(theta)[state])`` samples action 1 (cooperate);
- ``dice_objective``: ``mean_b sum_t box(sum_{t' <= t} (log p_t' + log q_t')) gamma^t r_t +
  (1 - box(log p_t + log q_t)) gamma^t v_t``, the critic ``v`` exact here (``Batch.values``);
- ``in_lookahead``: the opponent's step ``theta_j - lr_in grad(-objective_j)`` on each inner batch,
  differentiable in the meta-agent's ``theta_i``;
- ``out_lookahead``: the meta-agent's objective on the outer batch at ``(theta_i, theta_j')``.

Its claim is ``lola-dice[baseline=value]`` (``examples/lola_dice_style.toml``), which it passes.
Batched: every array carries a leading replicate axis.
"""

import torch


def magic_box(x):
    return torch.exp(x - x.detach())


def act_log_probs(theta, states, actions):
    """``act``'s log-probability of ``actions``: ``Bernoulli(1 - sigmoid(theta)[states])``."""
    probs = torch.gather(torch.sigmoid(theta), -1, states.flatten(-2)).reshape(states.shape)
    return actions * torch.log(1 - probs) + (1 - actions) * torch.log(probs)


def dice_objective(self_logprobs, other_logprobs, values, rewards, gamma):
    """``Memory.dice_objective`` with its baseline, as an objective (the code returns its negation)."""
    cum_discount = gamma ** torch.arange(rewards.shape[-1], dtype=torch.float64)
    dependencies = torch.cumsum(self_logprobs + other_logprobs, dim=-1)
    stochastic_nodes = self_logprobs + other_logprobs
    dice = torch.mean(torch.sum(magic_box(dependencies) * rewards * cum_discount, dim=-1), dim=-1)
    baseline = torch.mean(torch.sum((1 - magic_box(stochastic_nodes)) * values * cum_discount, dim=-1), dim=-1)
    return dice + baseline


def memory_objective(thetas, batch, agent, gamma):
    """The objective of ``agent`` on ``batch``: its own and the other's log-probabilities, its values and rewards."""
    other = 1 - agent
    mine = act_log_probs(thetas[agent], batch.states[..., agent], batch.actions[..., agent])
    theirs = act_log_probs(thetas[other], batch.states[..., other], batch.actions[..., other])
    return dice_objective(mine, theirs, batch.values[..., agent], batch.rewards[..., agent], gamma)


def lola_dice(inner, outer, theta, settings):
    """The meta-agent's LOLA-DiCE surrogate (its ``out_lookahead`` objective) and the lookahead's phis."""
    i, gamma = settings.meta_agent, settings.gamma
    j = 1 - i
    thetas, phis = list(theta), []
    for batch in inner:  # in_lookahead
        (grad,) = torch.autograd.grad(-memory_objective(thetas, batch, j, gamma).sum(), thetas[j], create_graph=True)
        thetas[j] = thetas[j] - settings.alpha[j] * grad
        phis.append(tuple(thetas))
    return memory_objective(thetas, outer[-1], i, gamma), phis


lola_dice.batched = True
lola_dice.conventions = "lola-dice"
