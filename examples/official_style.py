"""Meta-MAPG's official loss as dkkim93/meta-mapg writes it, in that code's own conventions.

Written here after ``meta/dice.py``, ``meta/linear_baseline.py``, ``meta/base.py`` and
``meta/meta_agent.py`` (not copied). The conventions are declared once (``OFFICIAL``): both
agents observe agent 0's state ``start, DD, DC, CD, CC`` (no CD/DC swap), action 0 is defect and
``sigmoid(theta[s])`` its probability (the code's two-logit softmax, in one logit). The code's
payoffs are the LOLA payoffs plus 1.5; a shift changes every sampled term, so the case plays the
code's own payoffs (``examples/official_style.toml``) and the convention declares no shift.

- ``linear_baseline``: ``LinearFeatureBaseline.forward``: ridge on the one-hot observation, its
  square, ``t / 100`` to the third power and 1; as shipped the features are flattened time-major
  and ``return_.view(-1, 1)`` batch-major, rows misaligned (``aligned`` transposes the returns);
- ``get_dice_loss``: DiCE over both agents' log-probabilities with the baseline's ``(1 - box)`` term;
- ``inner_update``: ``phi^k <- phi^k - alpha^k grad dice_loss^k`` for both agents;
- ``_get_outer_actor_loss``: base + self-shaping + opponent-shaping, each log-probability at
  ``(b, t)`` times the last batch's GAE(0.95) advantage there, on exact values (``Batch.values``).

``official`` claims ``meta-mapg-official`` and passes; ``official_aligned`` claims
``meta-mapg-official[baseline_fit=aligned]`` and passes. Batched.
"""

import torch
import torch.nn.functional as F

from examples.torch_meta_mapg import RIDGE, get_gae, get_return, magic_box

OFFICIAL = {"states": [0, 4, 3, 2, 1], "actions": [[1, 0], [1, 0]], "sign": -1, "views": "shared"}


def log_probs(params, batch, agent):
    """``(..., K, H)``: the log-probability of each action under ``sigmoid(theta[obs]) = P(defect)``."""
    theta = params[agent]
    table = torch.stack([F.logsigmoid(theta), F.logsigmoid(-theta)], dim=-1)
    index = batch.states[..., agent] * 2 + batch.actions[..., agent]
    return torch.gather(table.flatten(-2), -1, index.flatten(-2)).reshape(index.shape)


def linear_baseline(obs, reward, gamma, aligned):
    """``LinearFeatureBaseline.forward`` on this batch (see the module's docstring)."""
    onehot = F.one_hot(obs, 5).to(torch.float64)  # (..., K, H, 5)
    step = (torch.arange(obs.shape[-1], dtype=torch.float64) / 100.0).expand(obs.shape)[..., None]
    features = torch.cat([onehot, onehot**2, step, step**2, step**3, torch.ones_like(step)], dim=-1)
    featmat = features.transpose(-3, -2).flatten(-3, -2)  # _feature: (H, K), then view(-1, F)
    return_ = get_return(reward, gamma)  # (..., K, H)
    returns = (return_.transpose(-1, -2) if aligned else return_).flatten(-2)[..., None]  # view(-1, 1)
    gram = featmat.transpose(-1, -2) @ featmat + RIDGE * torch.eye(featmat.shape[-1], dtype=torch.float64)
    coeffs = torch.linalg.solve(gram, featmat.transpose(-1, -2) @ returns)
    return (features @ coeffs[..., None, :, :])[..., 0]


def get_dice_loss(params, batch, agent, gamma, aligned):
    reward = batch.rewards[..., agent]
    cum_discount = gamma ** torch.arange(reward.shape[-1], dtype=torch.float64)
    stochastic_nodes = log_probs(params, batch, 0) + log_probs(params, batch, 1)
    dependencies = torch.cumsum(stochastic_nodes, dim=-1)
    value = linear_baseline(batch.states[..., agent], reward, gamma, aligned)
    dice_loss = (magic_box(dependencies) * reward * cum_discount).sum(-1).mean(-1)
    baseline_term = ((1 - magic_box(stochastic_nodes)) * value * cum_discount).sum(-1).mean(-1)
    return -(dice_loss + baseline_term)


def _official(inner, outer, theta, settings, aligned=False):
    i, gamma = settings.meta_agent, settings.gamma
    phis = [tuple(theta)]
    for batch in inner:  # inner_update, every agent
        phi = phis[-1]
        step = []
        for k, actor in enumerate(phi):
            loss = get_dice_loss(phi, batch, k, gamma, aligned).sum()
            (actor_grad,) = torch.autograd.grad(loss, actor, create_graph=True)
            step.append(actor - settings.alpha[k] * actor_grad)
        phis.append(tuple(step))
    last = outer[-1]
    advantage = get_gae(last.values[..., i], last.rewards[..., i], gamma, 0.95)
    base = (log_probs(phis[0], inner[0], i) * advantage).sum(-1).mean(-1)
    for phi, batch in zip(phis[1:], (*inner[1:], last), strict=True):
        for k in (i, 1 - i):  # self-shaping, opponent-shaping
            base = base + (log_probs(phi, batch, k) * advantage).sum(-1).mean(-1)
    return base, phis[1:]


def official(inner, outer, theta, settings):
    """The official outer loss (to ascend), its linear baseline as shipped."""
    return _official(inner, outer, theta, settings)


def official_aligned(inner, outer, theta, settings):
    """The same, the linear baseline's rows aligned."""
    return _official(inner, outer, theta, settings, aligned=True)


for _function in (official, official_aligned):
    _function.batched = True
    _function.conventions = OFFICIAL
