"""Bugs that shipped in public opponent-shaping code, planted in the DiCE port of
:mod:`examples.dice_meta_mapg` (each a one-line variant of ``meta_mapg``, claiming ``meta-mapg``),
with their sources. ``python benchmarks/bench_shipped_bugs.py`` prints whether the toolkit catches
each and how; ``tests/test_shipped_bugs.py`` checks each fails its claim exactly on a small case.

POLA's commits are in ``Silent-Zebra/POLA``; ``pax`` is ``ucl-dark/pax``. Where the bug lived in
code this port does not have (a PPO critic, POLA's proximal loop), the docstring says how it is
translated. Advantages use the exact state values ``batch.values`` (what a critic approximates).
"""

import dataclasses

import numpy as np

from examples.dice_meta_mapg import _estimate
from mapg_verify.casefile.reader import load_case
from mapg_verify.exact.baselines import batch_baseline, returns_from_t
from mapg_verify.plugins import discounts, returns


def pola_stale_lookahead(inner, outer, theta, settings):
    """POLA ``985aad6``: agent 2's multi-step lookahead used stale parameters. Here the co-player's
    inner gradient at every step is taken at its initial parameters, not the updated ones (visible
    from ``L = 2``)."""
    return _estimate(inner, outer, theta, settings, "stale-lookahead")


def pola_batch_axis_sum(inner, outer, theta, settings):
    """POLA ``7f4cc22``: the DiCE dependencies summed over the batch axis instead of time (the inner
    magic box's cumulative log-probabilities run down the batch)."""
    return _estimate(inner, outer, theta, settings, "batch-axis-sum")


def pola_stale_rollouts(inner, outer, theta, settings):
    """POLA ``52472a6``: the updated parameters not used in the rollouts. Here the outer term's
    log-probabilities are taken at the parameters before the inner update."""
    return _estimate(inner, outer, theta, settings, "stale-rollouts")


def _gae(batch, settings, i, lam: float = 0.95, axis: int = 1):
    """GAE from zero, ``A_t = sum_k lam^k delta_{t+k}`` with ``delta_t = gamma^t (r_t + gamma V_{t+1} - V_t)``
    (``V_H = 0``), the recursion run along ``axis`` (1: time)."""
    values = np.asarray(batch.values)[..., i]
    following = np.concatenate([values[:, 1:], np.zeros_like(values[:, :1])], axis=1)
    deltas = discounts(batch, settings) * (batch.rewards[..., i] + settings.gamma * following - values)
    advantages, running = np.zeros_like(deltas), 0.0
    for index in reversed(range(deltas.shape[axis])):
        running = np.take(deltas, index, axis=axis) + lam * running
        if axis == 1:
            advantages[:, index] = running
        else:
            advantages[index] = running
    return advantages


def gae_along_time(inner, outer, theta, settings):
    """The outer term with GAE(0.95) advantages along time: unbiased with exact values."""
    return _estimate(inner, outer, theta, settings, target=_gae)


def pola_gae_batch_axis(inner, outer, theta, settings):
    """POLA ``9a0f75e``: GAE computed along the batch axis instead of time."""
    return _estimate(inner, outer, theta, settings, target=lambda b, s, i: _gae(b, s, i, axis=0))


def td_advantage(inner, outer, theta, settings):
    """The outer term with one-step advantages ``gamma^t (r_t + gamma V_{t+1} - V_t)``: unbiased."""
    return _estimate(inner, outer, theta, settings, target=lambda b, s, i: _gae(b, s, i, lam=0.0))


def pola_advantage_without_discount(inner, outer, theta, settings):
    """POLA ``f166e37``: ``gamma^t`` missing from the Loaded-DiCE advantages. Here in the outer
    term's one-step advantages: ``r_t + gamma V_{t+1} - V_t`` (visible from two steps)."""
    return _estimate(inner, outer, theta, settings, target=lambda b, s, i: _gae(b, s, i, lam=0.0) / discounts(b, s))


def pax_state_swap(inner, outer, theta, settings):
    """pax's IPD CD/DC swap: the co-player reads its memory-1 state from agent 1's point of view
    (CD and DC not swapped), so its log-probabilities are taken at the wrong rows."""
    game = settings.game
    views = np.array(game.views)
    views[1] = views[0]
    return _estimate(inner, outer, theta, dataclasses.replace(settings, game=dataclasses.replace(game, views=views)))


def no_create_graph(inner, outer, theta, settings):
    """``torch.autograd.grad`` without ``create_graph=True`` in the inner step: the inner gradient is a
    constant, so the meta-gradient is silently first order (the update's dependence on theta dropped)."""
    return _estimate(inner, outer, theta, settings, "no-create-graph")


def batch_mean_with_self(inner, outer, theta, settings):
    """A batch-mean outer baseline that includes the sample itself (the ``baseline = "batch-mean"``
    of many PPO ports): ``E[s_b (G_b - mean G)] = (K - 1)/K E[s_b G_b]``, the outer term scaled."""
    return _estimate(inner, outer, theta, settings, "self-in-baseline", baseline=True)


def _linear_target(fit: str):
    """The outer target ``G_t - gamma^t b_t`` with the official linear baseline ``b`` fitted on the
    outer batch (:func:`mapg_verify.exact.baselines.batch_baseline`, ``fit`` aligned or as shipped)."""

    def target(batch, settings, i):
        to_go = returns_from_t(settings.game, np.asarray(batch.rewards, dtype=float))
        fitted = batch_baseline("linear", settings.game, np.asarray(batch.states)[None], to_go[None], fit)[0]
        return returns(batch, settings, i) - discounts(batch, settings) * fitted[..., i]

    return target


def official_baseline_aligned(inner, outer, theta, settings):
    """The outer term with the official linear baseline fitted aligned (row ``b H + t`` on its own
    return): the control, whose claim ``meta-mapg[baseline=linear, inner_baseline=none]`` holds."""
    return _estimate(inner, outer, theta, settings, target=_linear_target("aligned"))


def official_baseline_fit(inner, outer, theta, settings):
    """dkkim93/meta-mapg ``meta/linear_baseline.py`` as shipped: features flattened time-major, returns
    batch-major, so each feature row is regressed on another trajectory's and step's return (K, H >= 2)."""
    return _estimate(inner, outer, theta, settings, target=_linear_target("as-shipped"))


PD, IPD2 = "cases/claims.toml", "examples/shipped_bugs_ipd2.toml"
SHIPPED = {  # name: (source, plug-in, case file, (K, L, K_out))
    "pola_stale_lookahead": ("Silent-Zebra/POLA 985aad6", pola_stale_lookahead, PD, (1, 2, 1)),
    "pola_batch_axis_sum": ("Silent-Zebra/POLA 7f4cc22", pola_batch_axis_sum, PD, (2, 1, 1)),
    "pola_gae_batch_axis": ("Silent-Zebra/POLA 9a0f75e", pola_gae_batch_axis, PD, (1, 1, 2)),
    "pola_advantage_without_discount": ("Silent-Zebra/POLA f166e37", pola_advantage_without_discount, IPD2, (1, 1, 1)),
    "pola_stale_rollouts": ("Silent-Zebra/POLA 52472a6", pola_stale_rollouts, PD, (1, 1, 1)),
    "pax_state_swap": ("ucl-dark/pax, IPD CD/DC state swap", pax_state_swap, IPD2, (1, 1, 1)),
    "no_create_graph": ("a missing create_graph=True (PyTorch ports)", no_create_graph, PD, (1, 1, 1)),
    "batch_mean_with_self": ("a batch-mean baseline including the sample itself", batch_mean_with_self, PD, (1, 1, 2)),
    "official_baseline_fit": ("dkkim93/meta-mapg meta/linear_baseline.py", official_baseline_fit, IPD2, (1, 1, 2)),
}
"""Each shipped bug's source, plug-in and smallest case that shows it (claiming ``meta-mapg``, or
:data:`CLAIMS`'s built-in)."""
CLAIMS = {"official_baseline_fit": "meta-mapg[baseline=linear, inner_baseline=none]"}
"""A bug in a baseline claims the built-in with that baseline fitted right."""


def claim_of(name: str) -> str:
    """The built-in the bug's plug-in claims."""
    return CLAIMS.get(name, "meta-mapg")


UNCATCHABLE = {
    "pola_gae_batch_axis": "with exact state values each TD error has mean 0 given the past, so GAE along either "
    "axis leaves the expectation unchanged: only variance (or a learned critic's error) shows it"
}
"""Bugs whose expectation equals the claim's here: no test of the mean can catch them."""


def small_case(name: str):
    """The bug's case with its ``(K, L, K_out)``."""
    *_, path, (batch, steps, outer) = SHIPPED[name]
    case = load_case(path)
    inner = dataclasses.replace(case.inner, batch=batch, steps=steps)
    return dataclasses.replace(case, inner=inner, estimators=dataclasses.replace(case.estimators, outer_batch=outer))
