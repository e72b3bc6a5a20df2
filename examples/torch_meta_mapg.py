"""Meta-MAPG in PyTorch, as the official code writes it (dkkim93/meta-mapg), as ``torch:`` plug-ins.

``meta_mapg_official`` is the official outer loss with DiCE's magic box, written in the code's
vocabulary (``magic_box``, ``get_return``, ``get_gae``, a linear feature baseline, ``get_dice_loss``):

- inner step, every agent ``k``: ``phi^k <- phi^k - alpha^k grad_{phi^k} dice_loss^k`` with
  ``dice_loss^k = -(1/K) sum_b sum_t [box(sum_{t' <= t} sum_j log pi^j_t') gamma^t r^k_t
  + (1 - box(sum_j log pi^j_t)) gamma^t b^k_t]``, ``b^k`` the linear baseline fitted on the
  batch's from-t returns as the code fits it, rows misaligned (a constant);
- outer surrogate: every step's log-probability, the meta-agent's on ``B_0`` and both agents' on
  ``B_1 .. B_{L-1}`` and on the last batch at ``phi_L``, times the last batch's GAE(0.95) advantage
  at the same ``(b, t)``, from exact state values (``Batch.values``: the code's value network, made
  exact). It is handed over as the objective to ascend (the code minimises its negation).

Its claim is the built-in ``meta-mapg-official`` (``examples/torch_meta_mapg.toml``);
``official_not_causal`` is the same code with one plausible bug, the inner magic box over each
step's log-probabilities instead of their running sum, and its claim fails. ``meta_mapg`` is
``examples.dice_meta_mapg:meta_mapg`` in torch (the DiCE estimator, batch pairing), for the
cross-framework test and the benchmark. All three are batched: every array carries whatever leading
replicate axes the toolkit hands over, and ``torch.autograd.grad`` of the replicates' sum is each
replicate's own gradient.
"""

import torch
import torch.nn.functional as F

RIDGE = 1e-5  # the linear baseline's regulariser


def magic_box(x):
    """DiCE's magic box: 1 in value, ``box(x) dx`` in derivative (at every order)."""
    return torch.exp(x - x.detach())


def log_probs(params, batch, settings, agent):
    """``(..., K, H)``: ``log pi^k(a^k_t | s_t)`` under ``params[agent]`` (sigmoid or softmax rows)."""
    theta = params[agent]
    if settings.policy == "sigmoid":
        table = torch.stack([F.logsigmoid(theta), F.logsigmoid(-theta)], dim=-1)
    else:
        table = torch.log_softmax(theta, dim=-1)
    rows = torch.tensor(settings.game.views[agent])[batch.states]
    index = rows * table.shape[-1] + batch.actions[..., agent]
    return torch.gather(table.flatten(-2), -1, index.flatten(-2)).reshape(index.shape)


def discount(batch, settings):
    return settings.gamma ** torch.arange(batch.states.shape[-1], dtype=torch.float64)


def get_return(reward, gamma):
    """``G_t = sum_{t' >= t} gamma^(t' - t) r_t'`` along the last axis."""
    out, running = [], torch.zeros_like(reward[..., 0])
    for t in reversed(range(reward.shape[-1])):
        running = reward[..., t] + gamma * running
        out.insert(0, running)
    return torch.stack(out, dim=-1)


def get_gae(value, reward, gamma, lam):
    """GAE(lambda) advantages from values ``V_t(s_t)`` (0 after the last step)."""
    following = torch.cat([value[..., 1:], torch.zeros_like(value[..., :1])], dim=-1)
    delta = reward + gamma * following - value
    out, running = [], torch.zeros_like(delta[..., 0])
    for t in reversed(range(delta.shape[-1])):
        running = delta[..., t] + gamma * lam * running
        out.insert(0, running)
    return torch.stack(out, dim=-1)


def linear_baseline(batch, reward, settings):
    """The linear feature baseline as ``meta/linear_baseline.py`` fits it: ridge (``RIDGE``) on one-hot
    states, their squares, ``t / 100`` to the third power and 1, the features flattened time-major
    (``_feature`` transposes to ``(H, K)``) but the from-t returns batch-major (``return_.view(-1, 1)``),
    so a row's features meet another trajectory's return unless ``K`` or ``H`` is 1; predicted in order."""
    onehot = F.one_hot(batch.states, settings.game.n_states).to(torch.float64)  # (..., K, H, S)
    step = (torch.arange(batch.states.shape[-1], dtype=torch.float64) / 100.0).expand(batch.states.shape)[..., None]
    features = torch.cat([onehot, onehot**2, step, step**2, step**3, torch.ones_like(step)], dim=-1)
    flat = features.transpose(-3, -2).flatten(-3, -2)  # (..., H K, F), row t K + b
    target = get_return(reward, settings.gamma).flatten(-2)[..., None]  # (..., K H, 1), row b H + t
    gram = flat.transpose(-1, -2) @ flat + RIDGE * torch.eye(flat.shape[-1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, flat.transpose(-1, -2) @ target)
    return (features @ weights[..., None, :, :])[..., 0]  # weights broadcast over K


def get_dice_loss(params, batch, settings, agent, causal=True):
    """The inner DiCE loss of ``agent`` (to minimise), with the linear baseline's term."""
    reward = batch.rewards[..., agent]
    stochastic_nodes = sum(log_probs(params, batch, settings, k) for k in range(settings.game.n_agents))
    dependencies = torch.cumsum(stochastic_nodes, dim=-1) if causal else stochastic_nodes
    gamma_t = discount(batch, settings)
    dice = (magic_box(dependencies) * reward * gamma_t).sum(-1).mean(-1)
    value = linear_baseline(batch, reward, settings)
    baseline = ((1 - magic_box(stochastic_nodes)) * value * gamma_t).sum(-1).mean(-1)
    return -(dice + baseline)


def inner_update(theta, inner, settings, causal=True):
    """``phi_0 = theta .. phi_L``: every agent's step on its DiCE loss, differentiable in ``theta``."""
    phis = [tuple(theta)]
    for batch in inner:
        phi = phis[-1]
        step = []
        for k, part in enumerate(phi):
            if settings.alpha[k] == 0:
                step.append(part)
                continue
            loss = get_dice_loss(phi, batch, settings, k, causal).sum()
            (gradient,) = torch.autograd.grad(loss, part, create_graph=True)
            step.append(part - settings.alpha[k] * gradient)
        phis.append(tuple(step))
    return phis


def _official(inner, outer, theta, settings, causal=True):
    if settings.objective != "terminal" or settings.game.n_agents != 2:
        raise ValueError("the official loss is written for two agents and the terminal objective")
    i = settings.meta_agent
    phis = inner_update(theta, inner, settings, causal)
    last = outer[-1]
    advantage = get_gae(last.values[..., i], last.rewards[..., i], settings.gamma, 0.95)
    total = (log_probs(phis[0], inner[0], settings, i) * advantage).sum(-1).mean(-1)
    for phi, batch in zip(phis[1:], (*inner[1:], last), strict=True):
        for k in (i, 1 - i):  # self-shaping, then opponent-shaping
            total = total + (log_probs(phi, batch, settings, k) * advantage).sum(-1).mean(-1)
    return total, phis[1:]  # phi_1 .. phi_L, for the toolkit's inner-update check


def meta_mapg_official(inner, outer, theta, settings):
    """The official outer loss as an objective to ascend (see the module's docstring), and its
    ``phi_1 .. phi_L``."""
    return _official(inner, outer, theta, settings)


def official_not_causal(inner, outer, theta, settings):
    """Bug: the inner magic box over each step's own log-probabilities, not their running sum."""
    return _official(inner, outer, theta, settings, causal=False)


def meta_mapg(inner, outer, theta, settings):
    """Meta-MAPG as DiCE code writes it: inner DiCE steps (every agent's log-probabilities, no
    baseline), REINFORCE at ``phi_L``, and the current term ``(box(sum_l log P(B_l)) - 1) mean G_0``."""
    i, n = settings.meta_agent, settings.game.n_agents
    phi, inner_log_probs = tuple(theta), 0.0
    for batch in inner:
        inner_log_probs = inner_log_probs + sum(log_probs(phi, batch, settings, k) for k in range(n)).sum((-1, -2))
        step = []
        for k, part in enumerate(phi):
            if settings.alpha[k] == 0:
                step.append(part)
                continue
            joint = torch.cumsum(sum(log_probs(phi, batch, settings, j) for j in range(n)), dim=-1)
            objective = (magic_box(joint) * batch.rewards[..., k] * discount(batch, settings)).sum(-1).mean(-1)
            (gradient,) = torch.autograd.grad(objective.sum(), part, create_graph=True)
            step.append(part + settings.alpha[k] * gradient)
        phi = tuple(step)
    last = outer[-1]
    to_go = (get_return(last.rewards[..., i], settings.gamma) * discount(last, settings)).detach()
    outer_term = (sum(log_probs(phi, last, settings, k) for k in range(n)) * to_go).sum(-1).mean(-1)
    return outer_term + (magic_box(inner_log_probs) - 1.0) * to_go[..., 0].mean(-1)


for _function in (meta_mapg_official, official_not_causal, meta_mapg):
    _function.batched = True
