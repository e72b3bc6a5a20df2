"""Estimators of the derivatives of one agent's ``H``-step value (``[derivatives]``), each a surrogate
objective on sampled trajectories whose ``k``-th derivative is the estimate, batch-averaged.

With ``l_t = sum_j log pi^j(a^j_t | s_t)`` (every agent's), ``L_t = sum_{t' <= t} l_t'``,
``c_t = gamma^t r_t`` (agent ``of``'s rewards), ``R_t = sum_{t' >= t} c_t'`` and ``V_t`` the exact
state value (from ``t``):

- ``dice`` (Foerster et al. 2018): ``sum_t box(L_t) c_t``;
- ``dice-baseline`` (Mao et al. 2019): ``dice`` plus ``sum_t (1 - box(l_t)) box(L_{t-1}) gamma^t V_t``;
- ``loaded-dice`` (Farquhar et al. 2019): ``sum_t (box(w_t) - box(w_t - l_t)) (R_t - gamma^t V_t)``,
  ``w_t = sum_{t' <= t} lambda^{t - t'} l_t'`` (``dice_lambda``);
- ``lvc`` (Rothfuss et al. 2019): ``sum_t box(l_t) R_t``;
- ``surrogate`` (the plain score-function surrogate, as the original LOLA): ``sum_t l_t stop(R_t)``.

The ``k``-th derivative of ``box(X)`` at its value is the moment form ``M_k(X)``: ``X'``,
``X' X'^T + X''``, ``X'^3 + 3 sym(X' X'') + X'''``, from the derivatives of ``X``; those of ``l_t``
come from tables of ``d^m log pi^j(a | row)`` (autograd, once per parameter point), so an estimate
is sums of outer products, per trajectory. Every estimator here is a mean of per-trajectory terms,
so its exact expectation is one sum over the enumerated trajectories.
"""

from __future__ import annotations

import autograd
import numpy as np

from mapg_verify.estimators.sampling import sample_trajectories
from mapg_verify.exact.baselines import trajectory_values
from mapg_verify.exact.enumeration import Trajectories, enumerate_trajectories, step_rewards
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.params import layout_of
from mapg_verify.spec.case import Case

DERIVATIVE_ESTIMATORS = {
    "dice": "DiCE: box of every earlier log-probability times each reward",
    "dice-baseline": "DiCE with Mao et al.'s baseline (1 - box(l_t)) box(L_{t-1}) gamma^t V_t",
    "loaded-dice": "Loaded DiCE: dependencies discounted by dice_lambda, advantages R_t - gamma^t V_t",
    "lvc": "low-variance curvature: box of the step's own log-probability times its reward-to-go",
    "surrogate": "the plain score-function surrogate sum_t log pi_t R_t (LOLA's)",
}
UNBIASED = ("dice", "dice-baseline")  # at every order, by construction (loaded-dice with lambda = 1 too)
CHUNK_ENTRIES = 20_000_000  # floats per chunk of per-step derivative arrays


def log_prob_tables(case: Case, x: np.ndarray, order: int) -> list[list[np.ndarray]]:
    """``tables[m - 1][j]``: ``d^m log pi^j(a | row) / dx^m`` ``(rows, actions, D^m)`` for ``m <= order``;
    each row's derivatives by autograd in that row's own parameters, placed at their flat indices."""
    layout = layout_of(case.game, case.policy)
    theta, d = layout.unflatten(np.asarray(x, dtype=float)), layout.size
    tables = []
    for agent, part in enumerate(theta):
        width = int(np.prod(part.shape[1:]))
        actions = case.policy.log_probs(part).shape[-1]
        levels = [np.zeros((part.shape[0], actions) + (d,) * m) for m in range(1, order + 1)]
        for row in range(part.shape[0]):

            def row_log_probs(v, shape=part.shape[1:]):
                return case.policy.log_probs(v.reshape((1, *shape)))[0]

            where = layout.slice(agent).start + row * width + np.arange(width)
            function, point = row_log_probs, part[row].reshape(-1)
            for m, level in enumerate(levels, start=1):
                function = autograd.jacobian(function)
                level[row][np.ix_(range(actions), *[where] * m)] = function(point)
        tables.append(levels)
    return [[tables[j][m] for j in range(case.game.n_agents)] for m in range(order)]


def step_derivatives(case: Case, tables, trajectories: Trajectories) -> list[np.ndarray]:
    """``d^m l_t / dx^m`` ``(N, H, D^m)`` for each ``m``, gathered from the tables."""
    views = case.game.views
    return [
        sum(level[j][views[j][trajectories.states], trajectories.actions[..., j]] for j in range(case.game.n_agents))
        for level in tables
    ]


def moments(first, second=None, third=None) -> np.ndarray:
    """``M_k(X)`` from the derivatives of ``X`` (see the module's docstring), ``k`` = how many are given."""
    if second is None:
        return first
    products = np.einsum("...i,...j->...ij", first, first)
    if third is None:
        return products + second
    mixed = np.einsum("...i,...jk->...ijk", first, second)
    cubes = np.einsum("...ij,...k->...ijk", products, first)
    return cubes + mixed + np.moveaxis(mixed, -3, -2) + np.moveaxis(mixed, -3, -1) + third


def _discounted_sums(steps: list[np.ndarray], lam: float) -> list[np.ndarray]:
    """``W_t = sum_{t' <= t} lam^{t - t'} X_t'`` along axis 1 of each array."""
    out = []
    for array in steps:
        running, rows = np.zeros_like(array[:, 0]), []
        for t in range(array.shape[1]):
            running = lam * running + array[:, t]
            rows.append(running)
        out.append(np.stack(rows, axis=1))
    return out


def _shifted(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """``X_{t-1}`` (0 before the first step) along axis 1."""
    return [np.concatenate([np.zeros_like(a[:, :1]), a[:, :-1]], axis=1) for a in arrays]


def trajectory_estimates(case: Case, name: str, trajectories: Trajectories, x: np.ndarray, tables=None) -> np.ndarray:
    """Each trajectory's estimate of ``d^k V^of_H`` at ``x``, ``(N, D^k)``."""
    settings = case.derivatives
    order, of = settings.order, settings.of
    tables = tables if tables is not None else log_prob_tables(case, x, order)
    steps = step_derivatives(case, tables, trajectories)
    to_go = trajectories.to_go[..., of]  # R_t, from zero
    rewards = step_rewards(to_go)  # c_t
    expand = (slice(None), slice(None)) + (None,) * order
    if name == "surrogate":
        return np.sum(steps[-1] * to_go[expand], axis=1)
    if name == "lvc":
        return np.sum(moments(*steps) * to_go[expand], axis=1)
    lam = settings.dice_lambda if name == "loaded-dice" else 1.0
    dependencies = _discounted_sums(steps, lam)
    boxed = moments(*dependencies)
    if name == "dice":
        return np.sum(boxed * rewards[expand], axis=1)
    layout = layout_of(case.game, case.policy)
    values = trajectory_values(case.game, case.policy, layout, trajectories, x)[..., of]
    baseline = case.game.gamma ** np.arange(to_go.shape[1]) * values  # gamma^t V_t
    before = moments(*(lam * d for d in _shifted(dependencies)))  # M_k(w_t - l_t) = M_k(lam w_{t-1})
    if name == "dice-baseline":
        return np.sum(boxed * rewards[expand] - (boxed - before) * baseline[expand], axis=1)
    return np.sum((boxed - before) * (to_go - baseline)[expand], axis=1)


def derivative_expectation(case: Case, name: str) -> np.ndarray:
    """The estimator's exact expectation: ``sum_tau p(tau) estimate(tau)`` over every trajectory of
    ``H`` steps at the case's ``theta``, ``(D,) * k``, in chunks of trajectories."""
    x, horizon, order = case.flat_theta, case.derivatives.horizon, case.derivatives.order
    trajectories = enumerate_trajectories(case.game, horizon)
    layout = layout_of(case.game, case.policy)
    probability = np.exp(trajectory_terms(case.game, case.policy, layout, trajectories, x, False).log_prob)
    tables, total = log_prob_tables(case, x, order), np.zeros(layout.size**order)
    step = max(1, CHUNK_ENTRIES // (horizon * layout.size**order * 4))
    for start in range(0, len(probability), step):
        chunk = trajectories.take(slice(start, start + step))
        estimates = trajectory_estimates(case, name, chunk, x, tables).reshape(len(chunk.states), -1)
        total += probability[start : start + step] @ estimates
    return total.reshape((layout.size,) * order)


def draw_derivatives(case: Case, name: str, rng: np.random.Generator) -> np.ndarray:
    """``samples`` estimates ``(samples, D^k)``, each the mean over ``batch`` fresh trajectories."""
    settings, x = case.derivatives, case.flat_theta
    layout = layout_of(case.game, case.policy)
    tables = log_prob_tables(case, x, settings.order)
    width = layout.size**settings.order
    per_chunk = max(1, CHUNK_ENTRIES // (settings.batch * settings.horizon * width * 4))
    rows = []
    for start in range(0, settings.samples, per_chunk):
        count = min(per_chunk, settings.samples - start)
        drawn = sample_trajectories(case.game, case.policy, layout, x, settings.horizon, count * settings.batch, rng)
        estimates = trajectory_estimates(case, name, drawn, x, tables).reshape(count, settings.batch, width)
        rows.append(estimates.mean(axis=1))
    return np.concatenate(rows)
