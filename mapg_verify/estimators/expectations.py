"""Exact expectations of the estimators, by enumerating every inner batch (SPEC §4).

Depth first over batch sequences ``B_0 .. B_{L-1}`` (multisets with multinomial weights, as
model S's truth does; ordered batches where a baseline's fit depends on the order), each level
vectorised over its multisets. At every evaluated level the
outer batch is not enumerated: each outer term is an average over the outer trajectories, so
its conditional expectation given ``phi_l`` is the same sum over every trajectory weighted by
its probability under ``pi(phi_l)``, whatever ``K_out``. For pairings that match inner
trajectory ``b`` with outer trajectory ``b``, the expectation of
``(1/K) sum_b s(tau_l^b) G(tau_L^b)`` given the inner batches is ``(1/K) (sum_b s(tau_l^b)) E[G]``.
Nothing here is shared with :mod:`mapg_verify.montecarlo` but the per-level algebra, so the
implementation check compares two computations of the same estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapg_verify.estimators.surrogate import (
    Plan,
    advance,
    inner_baseline,
    inner_terms,
    outer_advantages,
    outer_parts,
    outer_returns,
    root,
    with_returns,
)
from mapg_verify.estimators.table import Parts, current_weight
from mapg_verify.exact.baselines import BATCH_BASELINES, ordered_fit
from mapg_verify.exact.enumeration import (
    Trajectories,
    check_enumerable,
    count_batches,
    count_trajectories,
    enumerate_batches,
    enumerate_trajectories,
)
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.errors import InputError

EVALUATION_FLOATS = 2_000_000  # leaves times trajectories times steps times parameters held at once
EVALUATIONS_PER_BATCH = 100  # the outer term costs (leaves x trajectories); allowed: cap x this


def expectation(surrogate: Plan) -> Parts:
    """The estimator's exact expectation; an input error (key ``inner.batch``) above the case's cap,
    counting inner batches, and also the outer term's trajectory evaluations (leaves times
    trajectories) against the cap times :data:`EVALUATIONS_PER_BATCH`."""
    case = surrogate.case
    inner, game = case.inner, case.game
    ordered = _ordered(surrogate, surrogate.estimator.inner_baseline, surrogate.batch)
    batches = (
        check_enumerable(game, inner.horizon, inner.batch, surrogate.steps, inner.enumeration_cap, ordered)
        if surrogate.steps
        else 0
    )
    trajectories = count_trajectories(game, inner.horizon)
    multisets = count_batches(trajectories, surrogate.batch, 1, ordered)
    leaves = batches + 1 if inner.objective == "chain" else multisets**surrogate.steps
    limit = inner.enumeration_cap * EVALUATIONS_PER_BATCH
    if leaves * trajectories > limit:
        raise InputError(
            "inner.batch",
            f"the estimators' exact expectations would evaluate {leaves * trajectories:,} outer trajectories "
            f"({leaves:,} inner-batch sequences times {trajectories:,}), above {limit:,} "
            f"([inner] enumeration_cap times {EVALUATIONS_PER_BATCH})",
        )
    drawn = enumerate_trajectories(game, inner.horizon)
    trajectories = with_returns(game, drawn, surrogate.estimator.returns)
    batches = enumerate_batches(len(drawn.states), surrogate.batch, ordered) if surrogate.steps else None
    fitted_inner = _fitted_inner(surrogate, trajectories, batches)
    fitted_outer = _fitted_outer(surrogate, drawn, leaves)
    totals = np.zeros((3, surrogate.width))

    def visit(level: int, weight: float, phi, tangent, paired) -> None:
        baseline = None if fitted_inner else inner_baseline(surrogate, drawn, phi)
        terms, jacobian = inner_terms(surrogate, trajectories, phi, baseline=baseline)
        counts = batches.counts
        weights = weight * np.exp(batches.log_coefficients + counts @ terms.log_prob)
        if fitted_inner:
            reinforce, jacobian = _fitted_update(surrogate, phi, fitted_inner)
        else:
            reinforce = counts @ terms.reinforce / surrogate.batch
            if jacobian is not None:
                jacobian = np.einsum("mn,nde->mde", counts, jacobian) / surrogate.batch
        phis, tangents = advance(
            surrogate, np.tile(phi, (len(counts), 1)), np.tile(tangent, (len(counts), 1, 1)), reinforce, jacobian
        )
        steps = np.einsum("nhd,dj->nhj", terms.step_scores, tangent)
        pairs = paired + np.einsum("mn,nhj->mhj", counts, steps)
        if surrogate.evaluated(level + 1):
            totals[:] += _evaluate(surrogate, drawn, weights, phis, tangents, pairs, fitted_outer)
        if level + 1 < surrogate.steps:
            for m in range(len(counts)):
                visit(level + 1, weights[m], phis[m], tangents[m], pairs[m])

    phi, tangent = root(surrogate, 1)
    paired = np.zeros((1, inner.horizon, surrogate.width))
    if surrogate.evaluated(0):
        totals += _evaluate(surrogate, drawn, np.ones(1), phi, tangent, paired, fitted_outer)
    if surrogate.steps:
        visit(0, 1.0, phi[0], tangent[0], paired[0])
    current, own, peer = totals
    return Parts(current if surrogate.estimator.current else np.zeros_like(current), own, peer)


def _ordered(surrogate: Plan, kind: str, size: int) -> bool:
    """Whether a baseline of ``kind`` fitted on batches of ``size`` needs them enumerated in order."""
    return ordered_fit(kind, surrogate.estimator.baseline_fit, size, surrogate.case.inner.horizon)


def _fitted_inner(surrogate: Plan, trajectories: Trajectories, batches) -> tuple[tuple, ...] | None:
    """For an inner baseline fitted on the batch: every multiset's trajectories, in chunks, with
    their ``gamma^t b_t`` (fixed by the batch's returns, whatever ``phi``); else ``None``."""
    if batches is None or surrogate.estimator.inner_baseline not in BATCH_BASELINES:
        return None
    members = batches.members()
    size = surrogate.compiled.layout.size
    chunk = max(1, EVALUATION_FLOATS // (surrogate.batch * trajectories.states.shape[1] * size * size))
    pieces = []
    for start in range(0, len(members), chunk):
        gathered = trajectories.take(members[start : start + chunk].ravel())
        pieces.append((gathered, inner_baseline(surrogate, gathered, None)))
    return tuple(pieces)


def _fitted_update(surrogate: Plan, phi, pieces) -> tuple[np.ndarray, np.ndarray | None]:
    """Every multiset's update ``g`` ``(M, D)`` and Jacobian ``(M, D, D)`` (or ``None``) at ``phi``
    with the baseline fitted on it."""
    reinforce, jacobians = [], []
    for gathered, baseline in pieces:
        terms, jacobian = inner_terms(surrogate, gathered, phi, group=surrogate.batch, baseline=baseline)
        reinforce.append(terms.reinforce.reshape(-1, surrogate.batch, terms.reinforce.shape[1]).mean(axis=1))
        jacobians.append(None if jacobian is None else jacobian / surrogate.batch)
    jacobian = None if jacobians[0] is None else np.concatenate(jacobians)
    return np.concatenate(reinforce), jacobian


@dataclass(frozen=True, eq=False)
class _FittedOuter:
    """An outer baseline fitted on the outer batch, enumerated: the multisets (or ordered batches)
    of ``K_out`` as counts with their log-coefficients, and ``spread[m, j, t]``, ``1/K_out`` times
    the advantage at ``t`` summed over the copies of trajectory ``j`` in batch ``m`` (fixed by the
    batch's returns)."""

    counts: np.ndarray
    log_coefficients: np.ndarray
    spread: np.ndarray


def _fitted_outer(surrogate: Plan, drawn: Trajectories, leaves: int) -> _FittedOuter | None:
    """The enumerated outer batches when the outer baseline is fitted on them (an input error,
    key ``estimators.outer_batch``, above the case's cap); else ``None``."""
    case = surrogate.case
    if surrogate.outer == "exact" or surrogate.estimator.baseline not in BATCH_BASELINES:
        return None
    n, size = len(drawn.states), surrogate.outer_batch
    ordered = _ordered(surrogate, surrogate.estimator.baseline, size)
    multisets = count_batches(n, size, 1, ordered)
    limit = case.inner.enumeration_cap * EVALUATIONS_PER_BATCH
    if multisets * max(leaves, 1) > limit:
        raise InputError(
            "estimators.outer_batch",
            f"a baseline fitted on the outer batch needs its {multisets:,} multisets enumerated at each of "
            f"{leaves:,} inner-batch sequences, above {limit:,} "
            f"([inner] enumeration_cap times {EVALUATIONS_PER_BATCH})",
        )
    batches = enumerate_batches(n, size, ordered)
    members = batches.members()
    gathered = drawn.take(members.ravel())
    returns = outer_returns(surrogate, gathered)
    advantages = outer_advantages(surrogate, gathered, None, returns).reshape(len(members), size, -1)
    spread = np.zeros((len(members), n, advantages.shape[-1]))
    rows = np.repeat(np.arange(len(members)), size)
    np.add.at(spread, (rows, members.ravel()), advantages.reshape(len(rows), -1) / size)
    return _FittedOuter(batches.counts, batches.log_coefficients, spread)


def _evaluate(surrogate: Plan, drawn, weights, phis, tangents, paired, fitted: _FittedOuter | None) -> np.ndarray:
    """``sum_g weights[g] E[outer term | phi_g]`` as rows (current, own, peer), ``paired (G, H, d)``
    holding ``sum_l sum_b score_t(tau_l^b) T_l`` of each node."""
    n, horizon = drawn.states.shape
    per_node = n * horizon * surrogate.compiled.layout.size
    chunk = max(1, EVALUATION_FLOATS // per_node)
    total = np.zeros((3, surrogate.width))
    for start in range(0, len(weights), chunk):
        part = slice(start, start + chunk)
        total += _evaluate_chunk(surrogate, drawn, weights[part], phis[part], tangents[part], paired[part], fitted)
    return total


def _evaluate_chunk(surrogate: Plan, drawn, weights, phis, tangents, paired, fitted) -> np.ndarray:
    case, i = surrogate.case, surrogate.case.inner.meta_agent
    nodes, n = len(weights), len(drawn.states)
    if surrogate.outer == "exact":
        gradient, mean_return = surrogate.compiled.gradient(phis)[:, i], surrogate.compiled.value(phis)[:, i]
        step_returns = None
    else:
        tiled = drawn.tiled(nodes)
        terms = trajectory_terms(case.game, case.policy, surrogate.compiled.layout, tiled, phis, second_order=False)
        probability = np.exp(terms.log_prob).reshape(nodes, n)
        scores = terms.step_scores.reshape(nodes, n, *terms.step_scores.shape[1:])
        returns = outer_returns(surrogate, tiled).reshape(nodes, n, -1)
        if fitted is None:
            advantages = outer_advantages(surrogate, tiled, phis, returns.reshape(nodes * n, -1)).reshape(returns.shape)
            expected = probability[:, :, None] * advantages  # E[A] split by trajectory
        else:
            multisets = np.exp(fitted.log_coefficients + terms.log_prob.reshape(nodes, n) @ fitted.counts.T)
            expected = np.einsum("gm,mnh->gnh", multisets, fitted.spread)
        gradient = np.einsum("gnhd,gnh->gd", scores, expected)
        if surrogate.estimator.current_advantage:
            step_returns = expected.sum(axis=1)
        else:
            step_returns = np.einsum("gn,gnh->gh", probability, returns)
        mean_return = step_returns[:, 0]
    own, peer = outer_parts(surrogate, gradient, tangents)
    if surrogate.pairing == "timestep":
        current = np.einsum("ghj,gh->gj", paired, step_returns) / surrogate.batch
    else:
        current = paired.sum(axis=1) * mean_return[:, None] * current_weight(surrogate.pairing, surrogate.batch)
    return np.stack([weights @ current, weights @ own, weights @ peer])
