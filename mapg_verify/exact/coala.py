"""COALA-PG (Meulemans et al., ICLR 2025) exactly: the batched co-player setting of its Theorem 3.1.

The meta-agent ``i`` plays a tabular policy ``theta`` (fixed over the meta-trajectory, memoryless
across inner episodes) against a naive co-player ``j``. ``M`` inner episodes of ``T`` steps (the
game's horizon), each played ``B`` times in parallel; after episode ``m`` the co-player takes one
REINFORCE step on all ``B``: ``phi_{m+1} = phi_m + alpha (1/B) sum_b sum_t grad log pi^j(b_t|s_t) G^j_t``
(``G_t = sum_{t' >= t} gamma^{t'} r_{t'}``, the game's discount inside an episode). Theorem 3.1's
objective, with ``R^i_{m,b} = G^i_0`` of trajectory ``b`` in episode ``m``:

``J(theta) = E[(1/B) sum_b sum_{m<M} R^i_{m,b}] = sum_{m<M} E[V^i(theta, phi_m)]``,

``grad J = sum_m E[sigma_m V^i(theta, phi_m) + grad_theta V^i(theta, phi_m)]``, ``sigma_m`` the
meta-agent's summed score over episodes ``< m``: ``phi_m`` depends on ``theta`` only through the
batches (``d phi_m / d theta = 0`` on every path). Every ordered sequence of ``M`` batches is
enumerated (``N^{BM}`` paths of ``N`` trajectories each).

COALA-PG's estimate of one meta-trajectory (Eq. 3) and the variants around it, each
``sum_{m,b} w_own S^own_{m,b} + w_fut S_{m,b} F_{m,b}`` with ``S^own = sum_t s_t G^i_t`` (own rewards
to the end of the inner episode), ``S = sum_t s_t`` (the meta-agent's scores) and ``F`` the later
episodes' returns: the batch mean ``(1/B) sum_{b'} sum_{m'>m} R_{m',b'}`` (``batch``) or trajectory
``b``'s own ``sum_{m'>m} R_{m',b}`` (``trajectory``, the Meta-MAPG pairing); see :data:`VARIANTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.enumeration import enumerate_batches, enumerate_trajectories
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.problem.policies import Policy
from mapg_verify.spec.case import InnerLoop

PATH_CAP = 2_000_000  # meta-trajectories enumerated at most


@dataclass(frozen=True)
class CoalaSetting:
    """``B`` parallel inner episodes, ``M`` of them, the co-player's REINFORCE rate ``alpha``."""

    batch: int
    episodes: int
    alpha: float
    meta_agent: int = 0

    def inner_loop(self, game: Game) -> InnerLoop:
        """The same objective as model S (SPEC §3): chain objective over ``L = M - 1`` inner steps of
        ``K = B``, the meta-agent's rate 0 (its parameters stay ``theta``), the co-player's ``alpha``."""
        alpha = tuple(0.0 if k == self.meta_agent else self.alpha for k in range(game.n_agents))
        return InnerLoop(("sampled",), self.episodes - 1, alpha, self.batch, game.horizon, "chain", self.meta_agent)


@dataclass(frozen=True)
class Variant:
    """An estimator of the family: weights on the own-episode and later-episode credits, and the pairing."""

    own: str  # "1/B", "1/B^2" or "1"
    future: str  # "1" or "1/B"
    pairing: str  # "batch" or "trajectory"
    source: str

    def weights(self, batch: int) -> tuple[float, float]:
        scale = {"1": 1.0, "1/B": 1.0 / batch, "1/B^2": 1.0 / batch**2}
        return scale[self.own], scale[self.future]


VARIANTS: dict[str, Variant] = {
    "paper": Variant("1/B", "1", "batch", "Theorem 3.1, Eq. 3: (1/B) own + (1/B) sum_b' later, summed over b"),
    "code": Variant(
        "1/B",
        "1",
        "batch",
        "pax coala_pg.py, later: Algorithm 1 (own/B, later = batch mean), loss mean over envs times num_envs",
    ),
    "mean": Variant(
        "1/B^2", "1/B", "batch", "pax coala_pg.py, first version: Algorithm 1, loss averaged over envs (no num_envs)"
    ),
    "mfos": Variant("1", "1", "batch", "M-FOS as App. A, Eq. 7 writes it: own episode not scaled by 1/B"),
    "unaware": Variant("1/B", "1/B", "trajectory", "batch-unaware COALA-PG, Eq. 6: the Meta-MAPG pairing, (1/B) sum_b"),
    "trajectory": Variant("1/B", "1", "trajectory", "the Meta-MAPG pairing at Eq. 3's weights: b's own later returns"),
}


@dataclass(frozen=True)
class Paths:
    """Every meta-trajectory: ``members (P, M, B)`` trajectory indices, ``probability (P,)``; and, per
    episode ``m``, the co-player's parameters ``phis[m] (P_m, D)`` before it with the probability and
    the meta-agent's summed score ``(P_m, D_i)`` of the episodes before it."""

    members: np.ndarray
    probability: np.ndarray
    phis: tuple[np.ndarray, ...]
    prefix_probability: tuple[np.ndarray, ...]
    prefix_score: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Credits:
    """The meta-agent's per-trajectory parts ``(N, ...)``: ``own`` ``S^own``, ``score`` ``S``, ``ret`` ``R``."""

    own: np.ndarray
    score: np.ndarray
    ret: np.ndarray


@dataclass(frozen=True)
class CoalaTruth:
    """``J``, ``grad_theta J = direct + shaping`` (``direct = sum_m E[grad_i V^i(phi_m)]``, the naive
    learner's gradient; ``shaping = sum_m E[sigma_m V^i(phi_m)]``, through the co-player's updates)
    and per variant its estimator's exact mean and covariance."""

    objective: float
    direct: np.ndarray
    shaping: np.ndarray
    means: dict
    covariances: dict

    @property
    def gradient(self) -> np.ndarray:
        return self.direct + self.shaping


def enumerate_paths(game: Game, policy: Policy, compiled: CompiledValues, x, setting: CoalaSetting) -> Paths:
    """Every ordered sequence of ``M`` batches of ``B`` trajectories, breadth first."""
    trajectories = enumerate_trajectories(game, game.horizon)
    n, layout, i = len(trajectories.states), compiled.layout, setting.meta_agent
    batches = enumerate_batches(n, setting.batch, ordered=True)
    count = len(batches.order) ** setting.episodes
    if count > PATH_CAP:
        raise InputError("coala", f"{count:,} meta-trajectories, above {PATH_CAP:,}: lower B, M or the horizon")
    rates = layout.per_parameter(setting.inner_loop(game).alpha)
    own = layout.slice(i)
    phi = np.asarray(x, dtype=float)[None]
    members = np.zeros((1, 0, setting.batch), dtype=int)
    probability, score = np.ones(1), np.zeros((1, own.stop - own.start))
    phis, prefix_probability, prefix_score = [], [], []
    for _ in range(setting.episodes):
        phis.append(phi)
        prefix_probability.append(probability)
        prefix_score.append(score)
        terms = trajectory_terms(game, policy, layout, trajectories.tiled(len(phi)), phi, second_order=False)
        log_prob = terms.log_prob.reshape(len(phi), n)
        update = terms.reinforce.reshape(len(phi), n, -1)
        chosen = log_prob[:, batches.order].sum(axis=2)  # (P, C)
        probability = (probability[:, None] * np.exp(chosen)).ravel()
        steps = update[:, batches.order].mean(axis=2)  # (P, C, D)
        phi = (phi[:, None] + rates * steps).reshape(-1, layout.size)
        meta_score = terms.score.reshape(len(members), n, -1)[:, :, own][:, batches.order].sum(axis=2)
        score = (score[:, None] + meta_score).reshape(-1, own.stop - own.start)
        members = np.concatenate(
            [np.repeat(members, len(batches.order), axis=0), np.tile(batches.order, (len(members), 1))[:, None]], axis=1
        )
    return Paths(members, probability, tuple(phis), tuple(prefix_probability), tuple(prefix_score))


def objective_and_gradient(
    compiled: CompiledValues, paths: Paths, meta_agent: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """``J = sum_m E[V^i(phi_m)]`` and the two parts of its gradient, ``sum_m E[grad_i V^i(phi_m)]``
    and ``sum_m E[sigma_m V^i(phi_m)]``."""
    own = compiled.layout.slice(meta_agent)
    objective, direct, shaping = 0.0, 0.0, 0.0
    for phi, probability, score in zip(paths.phis, paths.prefix_probability, paths.prefix_score, strict=True):
        values = compiled.value(phi)[:, meta_agent]
        objective += float(probability @ values)
        direct = direct + probability @ compiled.gradient(phi)[:, meta_agent, own]
        shaping = shaping + probability @ (score * values[:, None])
    return objective, direct, shaping


def credits(game: Game, policy: Policy, compiled: CompiledValues, x, meta_agent: int) -> Credits:
    """The meta-agent's per-trajectory parts (they depend on ``theta`` alone, not on the co-player)."""
    trajectories = enumerate_trajectories(game, game.horizon)
    terms = trajectory_terms(game, policy, compiled.layout, trajectories, x, second_order=False)
    own = compiled.layout.slice(meta_agent)
    return Credits(terms.reinforce[:, own], terms.score[:, own], trajectories.to_go[:, 0, meta_agent])


def estimates(paths: Paths, parts: Credits, variant: Variant) -> np.ndarray:
    """The variant's estimate on every meta-trajectory ``(P, D_i)`` (see the module's docstring)."""
    batch = paths.members.shape[2]
    w_own, w_future = variant.weights(batch)
    returns = parts.ret[paths.members]  # (P, M, B)
    later = np.flip(np.cumsum(np.flip(returns, axis=1), axis=1), axis=1) - returns  # sum over m' > m
    if variant.pairing == "batch":
        later = np.broadcast_to(later.mean(axis=2, keepdims=True), later.shape)
    own = parts.own[paths.members].sum(axis=(1, 2))
    future = np.einsum("pmbd,pmb->pd", parts.score[paths.members], later)
    return w_own * own + w_future * future


def coala_truth(
    game: Game, policy: Policy, compiled: CompiledValues, x, setting: CoalaSetting, variants=tuple(VARIANTS)
) -> CoalaTruth:
    """The exact objective, its gradient, and each variant's exact mean and covariance."""
    paths = enumerate_paths(game, policy, compiled, x, setting)
    objective, direct, shaping = objective_and_gradient(compiled, paths, setting.meta_agent)
    parts = credits(game, policy, compiled, x, setting.meta_agent)
    means, covariances = {}, {}
    for name in variants:
        rows = estimates(paths, parts, VARIANTS[name])
        means[name] = paths.probability @ rows
        centred = rows - means[name]
        covariances[name] = centred.T @ (paths.probability[:, None] * centred)
    return CoalaTruth(objective, direct, shaping, means, covariances)
