"""Monte-Carlo draws of an estimator: one row per independent replicate (inner batches and outer batch).

Replicates are vectorised: at every level the ``R`` replicates' ``K`` trajectories are drawn at
once, each from its own replicate's ``phi_l`` (:func:`mapg_verify.sampling.sample_trajectories`),
and their terms come from the closed-form scores and Hessians (:mod:`mapg_verify.estimators`).
Replicates run in chunks of a size fixed by the case, which bounds memory; the same seed gives
the same rows. Draws of at least :data:`mapg_verify.exact.kernels.MIN_STEPS` trajectory steps run
compiled, with sparse step scores (:mod:`mapg_verify.exact.kernels`): the same draws, the same
rows up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapg_verify.estimators.sampling import sample_trajectories
from mapg_verify.estimators.surrogate import (
    Plan,
    advance,
    inner_baseline,
    inner_terms,
    outer_parts,
    outer_terms,
    root,
    with_returns,
)
from mapg_verify.estimators.table import Parts, current_weight
from mapg_verify.exact import kernels
from mapg_verify.exact.enumeration import Trajectories
from mapg_verify.exact.reinforce import SparseScores, weighted_sums

CHUNK_FLOATS = 4_000_000  # per-trajectory Jacobians held at once: about 32 MB


@dataclass(frozen=True, eq=False)
class Draws:
    """Per-replicate estimates (``Parts`` with a leading axis ``R``) and, when recorded, the batches
    as drawn: ``inner[l]`` holds ``B_l`` of every replicate (``R * K`` trajectories, replicate-major),
    ``outer[l]`` the outer batch at level ``l`` (``R * K_out``; ``None`` where nothing is evaluated
    or the outer term is exact), ``phis[l]`` every replicate's ``phi_l`` ``(R, D)`` and
    ``tangents[l]`` its ``d phi_l / d theta^i`` ``(R, D, d)``."""

    parts: Parts
    inner: tuple[Trajectories, ...] = ()
    outer: tuple[Trajectories | None, ...] = ()
    phis: tuple[np.ndarray, ...] = ()
    tangents: tuple[np.ndarray, ...] = ()


def chunk_size(surrogate: Plan) -> int:
    """Replicates per chunk."""
    size = surrogate.compiled.layout.size
    return max(1, CHUNK_FLOATS // (max(surrogate.batch, surrogate.outer_batch) * size * size))


def compiled_for(surrogate: Plan, samples: int) -> bool:
    """Whether ``samples`` draws run compiled: their trajectory steps, every inner and outer batch
    at every level, reach :data:`mapg_verify.exact.kernels.MIN_STEPS` (and the kernels are on)."""
    levels = surrogate.steps + 1
    per_sample = surrogate.steps * surrogate.batch + levels * surrogate.outer_batch
    return kernels.enabled(samples * per_sample * surrogate.case.inner.horizon)


def draw(surrogate: Plan, samples: int, rng: np.random.Generator) -> Parts:
    """``samples`` independent estimates from ``rng``, one row each."""
    chunk, compiled = chunk_size(surrogate), compiled_for(surrogate, samples)
    pieces = [
        _draw_chunk(surrogate, min(chunk, samples - start), rng, compiled).parts for start in range(0, samples, chunk)
    ]
    return Parts(*(np.concatenate([getattr(p, f) for p in pieces]) for f in ("current", "own", "peer")))


def draw_recorded(surrogate: Plan, samples: int, rng: np.random.Generator) -> Draws:
    """Like :func:`draw` in one chunk, keeping the batches (for the autograd reference)."""
    return _draw_chunk(surrogate, samples, rng, compiled_for(surrogate, samples))


def _draw_chunk(surrogate: Plan, count: int, rng: np.random.Generator, compiled: bool) -> Draws:
    case = surrogate.case
    game, policy, layout, horizon, batch = (
        case.game,
        case.policy,
        surrogate.compiled.layout,
        case.inner.horizon,
        surrogate.batch,
    )
    phi, tangent = root(surrogate, count)
    current, own, peer = (np.zeros((count, surrogate.width)) for _ in range(3))
    levels = []  # (step scores of B_l, T_l) for the levels so far: what the current term pairs
    inner_record, outer_record, phis, tangents = [], [], [], []
    for level in range(surrogate.steps + 1):
        phis.append(phi)
        tangents.append(tangent)
        outer = None
        if surrogate.evaluated(level):
            parts, outer = _outer(surrogate, phi, tangent, levels, rng, compiled)
            current, own, peer = current + parts.current, own + parts.own, peer + parts.peer
        outer_record.append(outer)
        if level == surrogate.steps:
            break
        drawn = sample_trajectories(game, policy, layout, phi, horizon, count * batch, rng, compiled)
        inner_record.append(drawn)
        baseline = inner_baseline(surrogate, drawn, phi, compiled)
        weighted = with_returns(game, drawn, surrogate.estimator.returns)
        terms, jacobian = inner_terms(surrogate, weighted, phi, batch, baseline, compiled)
        levels.append((terms.step_scores, tangent))
        reinforce = terms.reinforce.reshape(count, batch, -1).mean(axis=1)
        phi, tangent = advance(surrogate, phi, tangent, reinforce, None if jacobian is None else jacobian / batch)
    if not surrogate.estimator.current:
        current = np.zeros_like(current)
    return Draws(Parts(current, own, peer), tuple(inner_record), tuple(outer_record), tuple(phis), tuple(tangents))


def _outer(surrogate: Plan, phi, tangent, levels, rng, compiled: bool) -> tuple[Parts, Trajectories | None]:
    """The outer term at one level (current, own and peer parts) and the outer batch drawn."""
    case, i = surrogate.case, surrogate.case.inner.meta_agent
    count, batch = len(phi), surrogate.batch
    if surrogate.outer == "exact":
        gradient, mean_return = surrogate.compiled.gradient(phi)[:, i], surrogate.compiled.value(phi)[:, i]
        weights = np.repeat(mean_return * current_weight(surrogate.pairing, batch), batch)[:, None]
        return Parts(_current(surrogate, levels, weights), *outer_parts(surrogate, gradient, tangent)), None
    size = surrogate.outer_batch
    drawn = sample_trajectories(
        case.game, case.policy, surrogate.compiled.layout, phi, case.inner.horizon, count * size, rng, compiled
    )
    returns, gradients = outer_terms(surrogate, drawn, phi, compiled)
    own, peer = outer_parts(surrogate, gradients.reshape(count, size, -1).mean(axis=1), tangent)
    if surrogate.pairing == "batch":  # every score times the batch's mean G_0
        weights, over = np.repeat(returns[:, 0].reshape(count, size).mean(axis=1), batch)[:, None], 1
    else:  # K_out = K: trajectory b's G^b_0 (trajectory) or G^b_t (timestep), over K
        weights, over = returns[:, :1] if surrogate.pairing == "trajectory" else returns, batch
    return Parts(_current(surrogate, levels, weights) / over, own, peer), drawn


def _current(surrogate: Plan, levels: list[tuple[np.ndarray | SparseScores, np.ndarray]], weights) -> np.ndarray:
    """The current term ``sum_l (sum_{b,t} w_{b,t} s_{l,t}(tau_l^b)) T_l`` ``(R, d)`` over the levels'
    inner scores and tangents, for weights ``(R K, H)`` (the timestep pairing) or ``(R K, 1)``: the
    scores contracted with the weights before the tangent, no ``(R K, H, d)`` projection formed."""
    count = len(weights) // surrogate.batch
    current = np.zeros((count, surrogate.width))
    for scores, tangent in levels:
        current = current + (weighted_sums(scores, weights, count)[:, None] @ tangent)[:, 0]
    return current
