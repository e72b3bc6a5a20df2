"""Exact expectations of the estimators, by enumerating every inner batch (SPEC §4).

Depth first over batch sequences ``B_0 .. B_{L-1}`` (multisets with multinomial weights, as
model S's truth does), each level vectorised over its multisets. At every evaluated level the
outer batch is not enumerated: each outer term is an average over the outer trajectories, so
its conditional expectation given ``phi_l`` is the same sum over every trajectory weighted by
its probability under ``pi(phi_l)``, whatever ``K_out``. For pairings that match inner
trajectory ``b`` with outer trajectory ``b``, the expectation of
``(1/K) sum_b s(tau_l^b) G(tau_L^b)`` given the inner batches is ``(1/K) (sum_b s(tau_l^b)) E[G]``.
Nothing here is shared with :mod:`mapg_verify.montecarlo` but the per-level algebra, so the
implementation check compares two computations of the same estimator.
"""

from __future__ import annotations

import math

import numpy as np

from mapg_verify.estimators.surrogate import Plan, advance, inner_terms, outer_parts, outer_terms, root, with_returns
from mapg_verify.estimators.table import Parts, current_weight
from mapg_verify.exact.enumeration import (
    check_enumerable,
    count_trajectories,
    enumerate_batches,
    enumerate_trajectories,
)
from mapg_verify.problem.errors import InputError

EVALUATION_FLOATS = 2_000_000  # leaves times trajectories times steps times parameters held at once
EVALUATIONS_PER_BATCH = 100  # the outer term costs (leaves x trajectories); allowed: cap x this


def expectation(surrogate: Plan) -> Parts:
    """The estimator's exact expectation; an input error (key ``inner.batch``) above the case's cap,
    counting inner batches, and also the outer term's trajectory evaluations (leaves times
    trajectories) against the cap times :data:`EVALUATIONS_PER_BATCH`."""
    case = surrogate.case
    inner, game = case.inner, case.game
    batches = (
        check_enumerable(game, inner.horizon, inner.batch, surrogate.steps, inner.enumeration_cap)
        if surrogate.steps
        else 0
    )
    trajectories = count_trajectories(game, inner.horizon)
    multisets = math.comb(trajectories + surrogate.batch - 1, surrogate.batch)
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
    batches = enumerate_batches(len(drawn.states), surrogate.batch) if surrogate.steps else None
    totals = np.zeros((3, surrogate.width))

    def visit(level: int, weight: float, phi, tangent, paired) -> None:
        terms, jacobian = inner_terms(surrogate, trajectories, phi)
        counts = batches.counts
        weights = weight * np.exp(batches.log_coefficients + counts @ terms.log_prob)
        reinforce = counts @ terms.reinforce / surrogate.batch
        if jacobian is not None:
            jacobian = np.einsum("mn,nde->mde", counts, jacobian) / surrogate.batch
        phis, tangents = advance(
            surrogate, np.tile(phi, (len(counts), 1)), np.tile(tangent, (len(counts), 1, 1)), reinforce, jacobian
        )
        steps = np.einsum("nhd,dj->nhj", terms.step_scores, tangent)
        pairs = paired + np.einsum("mn,nhj->mhj", counts, steps)
        if surrogate.evaluated(level + 1):
            totals[:] += _evaluate(surrogate, drawn, weights, phis, tangents, pairs)
        if level + 1 < surrogate.steps:
            for m in range(len(counts)):
                visit(level + 1, weights[m], phis[m], tangents[m], pairs[m])

    phi, tangent = root(surrogate, 1)
    paired = np.zeros((1, inner.horizon, surrogate.width))
    if surrogate.evaluated(0):
        totals += _evaluate(surrogate, drawn, np.ones(1), phi, tangent, paired)
    if surrogate.steps:
        visit(0, 1.0, phi[0], tangent[0], paired[0])
    current, own, peer = totals
    return Parts(current if surrogate.estimator.current else np.zeros_like(current), own, peer)


def _evaluate(surrogate: Plan, drawn, weights, phis, tangents, paired) -> np.ndarray:
    """``sum_g weights[g] E[outer term | phi_g]`` as rows (current, own, peer), ``paired (G, H, d)``
    holding ``sum_l sum_b score_t(tau_l^b) T_l`` of each node."""
    n, horizon = drawn.states.shape
    per_node = n * horizon * surrogate.compiled.layout.size
    chunk = max(1, EVALUATION_FLOATS // per_node)
    total = np.zeros((3, surrogate.width))
    for start in range(0, len(weights), chunk):
        part = slice(start, start + chunk)
        total += _evaluate_chunk(surrogate, drawn, weights[part], phis[part], tangents[part], paired[part])
    return total


def _evaluate_chunk(surrogate: Plan, drawn, weights, phis, tangents, paired) -> np.ndarray:
    case, i = surrogate.case, surrogate.case.inner.meta_agent
    nodes, n = len(weights), len(drawn.states)
    if case.estimators.outer == "exact":
        gradient, mean_return = surrogate.compiled.gradient(phis)[:, i], surrogate.compiled.value(phis)[:, i]
        step_returns = None
    else:
        terms, to_go, gradients = outer_terms(surrogate, drawn.tiled(nodes), phis)
        probability = np.exp(terms.log_prob).reshape(nodes, n)
        gradient = np.einsum("gn,gnd->gd", probability, gradients.reshape(nodes, n, -1))
        step_returns = np.einsum("gn,gnh->gh", probability, to_go.reshape(nodes, n, -1))
        mean_return = step_returns[:, 0]
    own, peer = outer_parts(surrogate, gradient, tangents)
    if surrogate.pairing == "timestep":
        current = np.einsum("ghj,gh->gj", paired, step_returns) / surrogate.batch
    else:
        current = paired.sum(axis=1) * mean_return[:, None] * current_weight(surrogate.pairing, surrogate.batch)
    return np.stack([weights @ current, weights @ own, weights @ peer])
