"""A logged training run against the exact truth: each logged figure's z-score, a calibrated test
over the run, and the relabellings that would explain a run that fails it.

A log holds ``N`` parameter points ``theta_n`` and, per agent ``k``, a figure ``y^k_n``: the mean
of a metric of the return over ``B`` trajectories of ``H`` steps drawn at ``theta_n``. Metrics
(:data:`METRICS`): ``normalised`` ``(1 - gamma) sum_{t<H} gamma^t r_t``, ``discounted``
``sum_{t<H} gamma^t r_t``, ``average`` ``(1/H) sum_{t<H} r_t``. Their exact mean ``mu^k_n`` and
variance ``sigma^k_n^2`` per trajectory come from :func:`~mapg_verify.exact.moments.return_moments`
(backward recursion, any ``H``), so ``z^k_n = (y^k_n - mu^k_n) / (sigma^k_n / sqrt(B))``.

The test: if the log is what it says, the ``z^k_n`` are independent and, by the central limit
theorem over the batch, standard normal, so ``Q^k = sum_n (z^k_n)^2 ~ chi2(N)``. Agent ``k`` is
consistent when ``P(chi2_N >= Q^k) >= level / n`` (Bonferroni over the ``n`` agents: the run's
false-alarm rate is at most ``level``; ``tests/test_audit.py`` measures it on simulated logs).
A standard deviation below ``1e-9 max(1, |mu|)`` (a return that cannot vary) is taken as that
floor, so that rounding in the log does not read as an infinite z-score.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mapg_verify.estimators.sampling import sample_trajectories
from mapg_verify.exact.enumeration import discounted_to_go
from mapg_verify.exact.moments import return_moments
from mapg_verify.problem.catalog import MEMORY_ONE_STATES
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy

METRICS = {
    "normalised": "(1 - gamma) sum_{t<H} gamma^t r_t",
    "discounted": "sum_{t<H} gamma^t r_t",
    "average": "(1/H) sum_{t<H} r_t (per step, undiscounted)",
}
SD_FLOOR = 1e-9


@dataclass(frozen=True, eq=False)
class TrainingLog:
    """A logged run: ``params (N, n, *theta_k)``, ``returns (N, n)``, ``batch`` trajectories of
    ``horizon`` steps per figure, the ``metric``; with ``lr`` (one per agent) and a built-in
    ``estimator``, the updates ``params[n+1] - params[n]`` can be audited too."""

    params: np.ndarray
    returns: np.ndarray
    batch: int
    horizon: int
    metric: str
    lr: tuple[float, ...] | None = None
    estimator: str | None = None

    @property
    def points(self) -> np.ndarray:
        """The parameters as flat vectors ``(N, D)``, agent after agent (the toolkit's layout)."""
        return self.params.reshape(len(self.params), -1)


@dataclass(frozen=True, eq=False)
class Residuals:
    """Per point and agent ``(N, n)``: the exact mean, the standard deviation of a batch mean and
    the z-scores; per agent ``(n,)``: ``Q``, its chi-square p-value and whether it is consistent."""

    exact: np.ndarray
    sd: np.ndarray
    z: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    consistent: np.ndarray

    @property
    def all_consistent(self) -> bool:
        return bool(self.consistent.all())


def metric_form(metric: str, gamma: float, horizon: int) -> tuple[float, float]:
    """``(beta, scale)`` with the metric ``= scale * sum_{t<H} beta^t r_t``."""
    return {"normalised": (gamma, 1.0 - gamma), "discounted": (gamma, 1.0), "average": (1.0, 1.0 / horizon)}[metric]


def metric_moments(game: Game, policy: Policy, points: np.ndarray, horizon: int, metric: str):
    """The metric's exact mean and variance per trajectory, each ``(N, n)``."""
    beta, scale = metric_form(metric, game.gamma, horizon)
    first, second = return_moments(game, policy, points, horizon, beta)
    return scale * first, scale**2 * np.maximum(second - first**2, 0.0)


def residuals(logged: np.ndarray, mean: np.ndarray, variance: np.ndarray, batch: int, level: float) -> Residuals:
    """z-scores of ``logged`` batch means against the exact ``mean`` and per-trajectory ``variance``,
    and the chi-square test over the run per agent at ``level / n`` (see the module's docstring)."""
    sd = np.maximum(np.sqrt(variance / batch), SD_FLOOR * np.maximum(1.0, np.abs(mean)))
    z = (logged - mean) / sd
    statistic = np.sum(z**2, axis=0)
    p_value = stats.chi2.sf(statistic, len(z))
    return Residuals(mean, sd, z, statistic, p_value, p_value >= level / z.shape[1])


def audit_returns(game: Game, policy: Policy, log: TrainingLog, level: float) -> Residuals:
    """The log's figures against the exact truth at its own parameters."""
    mean, variance = metric_moments(game, policy, log.points, log.horizon, log.metric)
    return residuals(log.returns, mean, variance, log.batch, level)


def simulate_returns(
    game: Game, policy: Policy, points: np.ndarray, batch: int, horizon: int, metric: str, rng: np.random.Generator
) -> np.ndarray:
    """What a faithful logger writes: at each flat point ``(N, D)``, the metric's mean over ``batch``
    trajectories drawn by the toolkit's sampler, ``(N, n)``."""
    drawn = sample_trajectories(game, policy, layout_of(game, policy), points, horizon, len(points) * batch, rng)
    beta, scale = metric_form(metric, game.gamma, horizon)
    totals = discounted_to_go(game, drawn.states, drawn.actions, beta)[:, 0]
    return scale * totals.reshape(len(points), batch, game.n_agents).mean(axis=1)


@dataclass(frozen=True)
class Relabelling:
    """A convention the log may be in: its agents' returns swapped, agent 1's view of the
    memory-one states ``CD`` and ``DC`` toggled, the action labels of the ``flipped`` agents
    swapped (``theta^k -> -theta^k`` for sigmoid, the two logits exchanged for softmax), and the
    ``metric`` it computed."""

    swap_agents: bool
    toggle_view: bool
    flipped: tuple[int, ...]
    metric: str

    def label(self, game: Game, logged_metric: str) -> str:
        parts = ["agents' returns swapped"] if self.swap_agents else []
        if self.toggle_view:
            own_side = (game.views[1] != game.views[0]).any()  # the game's agent 1 sees CD and DC swapped
            parts.append(
                "both agents index states the same way (CD and DC not swapped for agent 1)"
                if own_side
                else "agent 1 indexes states from its own side (CD and DC swapped)"
            )
        parts += [f"agent {k}'s action labels swapped" for k in self.flipped]
        if self.metric != logged_metric:
            parts.append(f"metric {self.metric} ({METRICS[self.metric]}), not {logged_metric}")
        return "; ".join(parts)


def memory_one(game: Game) -> bool:
    """An IPD-like game: two agents, two actions each, the memory-one states of the catalog."""
    return game.n_agents == 2 and game.n_actions == (2, 2) and tuple(game.state_labels) == MEMORY_ONE_STATES


def relabellings(game: Game, logged_metric: str) -> list[Relabelling]:
    """Every combination of the conventions that apply to ``game``, the log's own excepted."""
    views = (False, True) if memory_one(game) else (False,)
    agents = range(game.n_agents) if all(a == 2 for a in game.n_actions) else ()
    flips = [tuple(k for k in agents if bits[k]) for bits in itertools.product((0, 1), repeat=len(agents))] or [()]
    found = [
        Relabelling(swap, view, flipped, metric)
        for swap in ((False, True) if game.n_agents == 2 else (False,))
        for view in views
        for flipped in flips
        for metric in METRICS
    ]
    return [r for r in found if r != Relabelling(False, False, (), logged_metric)]


def relabelled(game: Game, policy: Policy, points: np.ndarray, relabelling: Relabelling) -> tuple[Game, np.ndarray]:
    """The game and flat points under which the toolkit's conventions read the log's as ``relabelling`` says."""
    if relabelling.toggle_view:
        exchange = np.arange(game.n_states)
        cd, dc = MEMORY_ONE_STATES.index("CD"), MEMORY_ONE_STATES.index("DC")
        exchange[[cd, dc]] = exchange[[dc, cd]]
        views = game.views.copy()
        views[1] = views[1][exchange]
        views.setflags(write=False)
        game = dataclasses.replace(game, views=views)
    layout = layout_of(game, policy)
    points = points.copy()
    for k in relabelling.flipped:
        block = points[:, layout.slice(k)].reshape(len(points), *layout.shapes[k])
        flipped = -block if policy.two_actions_only else block[..., ::-1]
        points[:, layout.slice(k)] = flipped.reshape(len(points), -1)
    return game, points


def search(game: Game, policy: Policy, log: TrainingLog, level: float) -> list[tuple[Relabelling, Residuals]]:
    """The relabellings under which the log is consistent, the most consistent first (by the
    smallest of the agents' p-values); the moments are computed once per game and points."""
    cache: dict = {}
    found = []
    for relabelling in relabellings(game, log.metric):
        key = (relabelling.toggle_view, relabelling.flipped, relabelling.metric)
        if key not in cache:
            relabelled_game, points = relabelled(game, policy, log.points, relabelling)
            cache[key] = metric_moments(relabelled_game, policy, points, log.horizon, relabelling.metric)
        logged = log.returns[:, ::-1] if relabelling.swap_agents else log.returns
        result = residuals(logged, *cache[key], log.batch, level)
        if result.all_consistent:
            found.append((relabelling, result))
    return sorted(found, key=lambda pair: -pair[1].p_value.min())
