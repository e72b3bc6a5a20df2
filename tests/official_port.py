"""An independent port of the official Meta-MAPG loss (dkkim93/meta-mapg: ``meta/dice.py``
``get_dice_loss``, ``meta/base.py`` ``inner_update``, ``meta/meta_agent.py``
``_get_outer_actor_loss``, ``misc/rl_utils.py`` ``get_return`` and ``get_gae``,
``meta/linear_baseline.py``), written against the code's structure in autograd: memories of
per-agent log-probabilities and rewards, one per trajectory batch, the last one at ``phi_L``.
It shares nothing with :mod:`mapg_verify.estimators` but the policy's log-probabilities.
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np

RIDGE = 1e-5


def magic_box(x):
    return anp.exp(x - _detach(x))


@autograd.extend.primitive
def _detach(x):
    return x


autograd.extend.defvjp(_detach, lambda answer, x: lambda g: anp.zeros_like(g))


def memory(case, layout, phi, batch) -> dict:
    """``collect_trajectory``'s record of a batch at ``phi``: per-agent log-probs and rewards ``(K, H)``."""
    game, policy = case.game, case.policy
    theta = layout.unflatten(phi)
    states, actions = batch.states, batch.actions
    logprobs = [policy.log_probs(theta[k])[game.views[k, states], actions[..., k]] for k in range(game.n_agents)]
    rewards = [game.rewards[(k, states, *np.moveaxis(actions, -1, 0))] for k in range(game.n_agents)]
    return {"obs": states, "logprobs": logprobs, "rewards": rewards}


def get_return(reward, gamma):
    running, out = 0.0, []
    for t in reversed(range(reward.shape[1])):
        running = reward[:, t] + gamma * running
        out.insert(0, running)
    return np.stack(out, axis=1)


def get_gae(value, reward, gamma, lam):
    value = np.concatenate([value, np.zeros((value.shape[0], 1))], axis=1)
    gae, out = 0.0, []
    for t in reversed(range(reward.shape[1])):
        delta = reward[:, t] + gamma * value[:, t + 1] - value[:, t]
        gae = gae * gamma * lam + delta
        out.insert(0, gae)
    return np.stack(out, axis=1)


def linear_baseline(obs, reward, n_states, gamma, aligned: bool = False):
    """``LinearFeatureBaseline.forward``: fit on this batch's returns, predict them. As the code
    ships it, ``fit`` flattens the features time-major (``_feature`` transposes to ``(H, K)``) and
    ``return_.view(-1, 1)`` the returns batch-major; ``aligned`` transposes the returns too."""
    size, horizon = obs.shape
    onehot = np.eye(n_states)[obs.T]  # (H, K, S): the code's sequence-major layout
    step = (np.arange(horizon)[:, None, None] * np.ones((horizon, size, 1))) / 100.0
    features = np.concatenate([onehot, onehot**2, step, step**2, step**3, np.ones((horizon, size, 1))], axis=2)
    flat = features.reshape(-1, features.shape[-1])
    return_ = get_return(reward, gamma)  # (K, H)
    returns = (return_.T if aligned else return_).reshape(-1, 1)
    weights = np.linalg.solve(flat.T @ flat + RIDGE * np.eye(flat.shape[1]), flat.T @ returns)
    return (flat @ weights).reshape(horizon, size).T


def get_dice_loss(logprobs, reward, value, gamma, opponent_shaping: bool, i_agent: int):
    discount = gamma ** np.arange(reward.shape[1])[None, :]
    discounted_reward = reward * discount
    if opponent_shaping:
        stochastic_nodes = sum(logprobs)
        dependencies = anp.cumsum(stochastic_nodes, axis=1)
    else:
        stochastic_nodes = logprobs[i_agent]
        dependencies = anp.cumsum(stochastic_nodes, axis=1)
    dice_loss = anp.mean(anp.sum(magic_box(dependencies) * discounted_reward, axis=1))
    baseline_term = 0.0
    if value is not None:
        baseline_term = anp.mean(anp.sum((1 - magic_box(stochastic_nodes)) * value * discount, axis=1))
    return -(dice_loss + baseline_term)


def inner_loop(case, layout, phi, batches, baseline: bool, opponent_shaping: bool, aligned: bool = False):
    """``Base.inner_update`` for every agent on ``B_0 .. B_{L-1}``: the memories and ``phi_L``."""
    game, memories = case.game, []
    for batch in batches:
        memories.append(memory(case, layout, phi, batch))
        parts = []
        for k in range(game.n_agents):
            block = layout.slice(k)

            def actor_loss(part, k=k, block=block, batch=batch, phi=phi):
                record = memory(case, layout, anp.concatenate([phi[: block.start], part, phi[block.stop :]]), batch)
                reward = record["rewards"][k]
                obs = record["obs"]
                value = linear_baseline(obs, reward, game.n_states, game.gamma, aligned) if baseline else None
                return get_dice_loss(record["logprobs"], reward, value, game.gamma, opponent_shaping, k)

            parts.append(phi[block] - case.inner.alpha[k] * autograd.grad(actor_loss)(phi[block]))
        phi = anp.concatenate(parts)
    return memories, phi


def official_gradient(
    case,
    layout,
    batches,
    outer_values=None,
    baseline: bool = False,
    opponent_shaping: bool = True,
    lam=0.95,
    aligned: bool = False,
):
    """The meta-agent's ``d/dtheta (base + self-shaping + opponent-shaping)`` on ``batches``
    (``B_0 .. B_{L-1}`` then the last batch, at ``phi_L``); ``outer_values(phi_L)`` gives the value
    baseline ``(K, H)`` of the last batch for GAE (``None``: the advantage is ``get_return``);
    ``aligned`` fits the linear baseline on aligned rows (as shipped otherwise)."""
    game, i = case.game, case.inner.meta_agent
    theta, own = case.flat_theta, layout.slice(i)
    *inner, last = batches
    reward = game.rewards[(i, last.states, *np.moveaxis(last.actions, -1, 0))]
    if outer_values is None:
        advantage = get_return(reward, game.gamma)
    else:
        _, adapted = inner_loop(case, layout, theta, inner, baseline, opponent_shaping, aligned)
        advantage = get_gae(outer_values(np.asarray(adapted)), reward, game.gamma, lam)

    def loss(own_part):
        phi = anp.concatenate([theta[: own.start], own_part, theta[own.stop :]])
        memories, adapted = inner_loop(case, layout, phi, inner, baseline, opponent_shaping, aligned)
        memories.append(memory(case, layout, adapted, last))
        total = anp.mean(anp.sum(memories[0]["logprobs"][i] * advantage, axis=1))
        agents = [i, 1 - i] if opponent_shaping else [i]  # the code assumes two agents
        for record in memories[1:]:
            for k in agents:
                total = total + anp.mean(anp.sum(record["logprobs"][k] * advantage, axis=1))
        return total

    return autograd.grad(loss)(theta[own])
