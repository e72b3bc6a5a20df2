"""Exact meta-gradients in model E (expected inner updates), and LOLA's gradients (SPEC §3).

Model E: ``phi_0 = theta``, ``phi_{l+1} = phi_l + A xi(phi_l)`` where
``xi = (grad_{theta^0} V^0, .., grad_{theta^{n-1}} V^{n-1})`` and ``A`` holds
``alpha^k`` on agent ``k``'s block. The tangent ``T_l = dphi_l / dtheta^i``
follows ``T_0 = E_i`` (the embedding of agent ``i``'s block) and
``T_{l+1} = (I + A dxi/dphi(phi_l)) T_l``, composed numerically from the
compiled gradients and simultaneous Jacobians; nothing is substituted
symbolically.

- terminal ``J = V^i(phi_L)``: ``grad J = grad V^i(phi_L)^T T_L``;
- chain ``J = sum_{l=0..L} V^i(phi_l)``: ``grad J = sum_l grad V^i(phi_l)^T T_l``.

Terms: ``own`` pairs ``grad_{phi^i} V^i`` with ``T[i rows]``, ``peer`` pairs
``grad_{phi^-i} V^i`` with ``T[-i rows]`` (summed over ``l`` for the chain);
``current = 0`` in model E.

LOLA (Foerster et al. 2017): the exact gradient of
``V^i(theta^i, theta^-i + alpha^-i xi^-i(theta))`` with respect to ``theta^i``,
which is model E with one step, the meta-agent's rate set to 0, terminal
objective; its first-order form as the paper's Eq. 6 writes it,
``grad_i V^i(theta) + (alpha^-i dxi^-i/dtheta^i (theta))^T grad_{-i} V^i(theta)``;
and the gradient of the complete first-order Taylor expansion
``V^i(theta) + grad_{-i} V^i(theta) . alpha^-i xi^-i(theta)``, which adds
``(d grad_{-i} V^i / dtheta^i)^T alpha^-i xi^-i``. Only the last differs from the
exact gradient by ``O(alpha^2)``; Eq. 6 omits a term of order ``alpha`` (LOLA's
own paper drops it too), so its gap is ``O(alpha)`` wherever that term is not 0.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from mapg_verify.exact.baselines import BATCH_BASELINES, discounts, fitted_values, ordered_fit, trajectory_values
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.enumeration import Trajectories, check_enumerable, enumerate_batches, enumerate_trajectories
from mapg_verify.exact.metastep import one_step
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.game import Game
from mapg_verify.problem.policies import Policy
from mapg_verify.spec.case import Case, InnerLoop


@dataclass(frozen=True)
class MetaGradient:
    """``grad_{theta^i} J^i`` and its decomposition, flat over ``theta^i``."""

    total: np.ndarray
    current: np.ndarray
    own: np.ndarray
    peer: np.ndarray


@dataclass(frozen=True)
class LolaGradient:
    """LOLA's exact gradient, its Eq. 6 form and its complete first-order form, flat over ``theta^i``."""

    exact: np.ndarray
    first_order: np.ndarray
    taylor: np.ndarray


def inner_rates(compiled: CompiledValues, alpha: tuple[float, ...]) -> np.ndarray:
    """The diagonal of ``A``: ``alpha^k`` repeated over agent ``k``'s parameters."""
    return compiled.layout.per_parameter(alpha)


def inner_path(compiled: CompiledValues, x: np.ndarray, alpha: tuple[float, ...], steps: int) -> list[np.ndarray]:
    """``phi_0 .. phi_L`` of model E."""
    rates = inner_rates(compiled, alpha)
    path = [np.asarray(x, dtype=float)]
    for _ in range(steps):
        path.append(path[-1] + rates * compiled.layout.own_parts(compiled.gradient(path[-1])))
    return path


def expected_update(
    compiled: CompiledValues,
    x: np.ndarray,
    alpha: tuple[float, ...],
    steps: int,
    meta_agent: int = 0,
    objective: str = "terminal",
) -> MetaGradient:
    """The exact model-E meta-gradient of agent ``meta_agent``, with its terms: forward through the
    tangents, backwards with ``w^T d xi/dx`` where the backend offers it (:func:`_backwards`), or for
    one step, once called often, in one compiled function (:func:`~mapg_verify.exact.metastep.one_step`)."""
    step = one_step(compiled, meta_agent, objective) if steps == 1 else None
    if step is not None:
        own, peer = step(np.asarray(x, dtype=float), np.asarray(alpha, dtype=float))
        return MetaGradient(own + peer, np.zeros_like(own), own, peer)
    if compiled.gradient_and_vjp is not None:
        return _backwards(compiled, x, alpha, steps, meta_agent, objective)
    rates, own_index, masks, tangent = _forward_constants(compiled, tuple(alpha), meta_agent)
    terms, phi = 0.0, np.asarray(x, dtype=float)
    for step in range(steps + 1):
        gradients, jacobian = compiled.gradient_and_jacobian(phi) if step < steps else (compiled.gradient(phi), None)
        if objective == "chain" or step == steps:
            terms = terms + (masks * gradients[meta_agent]) @ tangent
        if step < steps:
            tangent = tangent + rates[:, None] * (jacobian @ tangent)
            phi = phi + rates * gradients.ravel()[own_index]
    own, peer = terms
    return MetaGradient(own + peer, np.zeros_like(own), own, peer)


@functools.lru_cache(maxsize=64)
def _forward_constants(compiled: CompiledValues, alpha: tuple[float, ...], meta_agent: int):
    """What model E's forward pass fixes once: the rates ``A``, the flat indices of each agent's own
    gradient in ``grad V (n, D)`` (``xi``), the masks of agent ``i``'s rows and the others' ``(2, D)``,
    and ``T_0 = E_i``."""
    layout = compiled.layout
    rates = inner_rates(compiled, alpha)
    own_index = np.concatenate(
        [k * layout.size + np.arange(layout.size)[layout.slice(k)] for k in range(len(layout.sizes))]
    )
    masks = np.zeros((2, layout.size))
    masks[0, layout.slice(meta_agent)], masks[1, layout.others(meta_agent)] = 1.0, 1.0
    tangent = np.eye(layout.size)[:, layout.slice(meta_agent)]
    for array in (rates, own_index, masks, tangent):
        array.flags.writeable = False
    return rates, own_index, masks, tangent


def _backwards(compiled, x, alpha, steps: int, meta_agent: int, objective: str) -> MetaGradient:
    """Model E in reverse: with ``c_l`` agent ``i``'s gradient at ``phi_l`` where the objective counts
    it (masked to its own rows for ``own``, the others for ``peer``), ``lambda_L = c_L``,
    ``lambda_l = c_l + (I + A d xi/dx(phi_l))^T lambda_{l+1}``; the term is ``lambda_0`` on agent
    ``i``'s rows. Each step costs one vector-Jacobian product, never the Jacobian."""
    rates, own_index, masks, _ = _forward_constants(compiled, tuple(alpha), meta_agent)
    own_rows = compiled.layout.slice(meta_agent)
    phi, products, counted = np.asarray(x, dtype=float), [], []
    for step in range(steps + 1):
        if step < steps:
            gradients, product = compiled.gradient_and_vjp(phi)
            products.append(product)
            phi = phi + rates * gradients.ravel()[own_index]
        else:
            gradients = compiled.gradient(phi)
        counted.append(masks * gradients[meta_agent] if objective == "chain" or step == steps else 0.0)
    adjoint = counted[steps]
    for step in reversed(range(steps)):
        adjoint = counted[step] + adjoint + products[step](rates * adjoint)
    own, peer = adjoint[:, own_rows]
    return MetaGradient(own + peer, np.zeros_like(own), own, peer)


def lola(compiled: CompiledValues, x: np.ndarray, alpha: tuple[float, ...], meta_agent: int = 0) -> LolaGradient:
    """LOLA's gradients for agent ``meta_agent``: exact, Eq. 6, complete first order."""
    peers_only = tuple(0.0 if k == meta_agent else a for k, a in enumerate(alpha))
    exact = expected_update(compiled, x, peers_only, 1, meta_agent).total
    own = compiled.layout.slice(meta_agent)
    rates = inner_rates(compiled, peers_only)
    gradients, jacobian = compiled.gradient_and_jacobian(x)
    first_order = gradients[meta_agent][own] + gradients[meta_agent] @ (rates[:, None] * jacobian[:, own])
    step = rates * compiled.layout.own_parts(gradients)
    # agent i's rows of d xi / dx are hess V^i [theta^i rows]: the Taylor term (d grad_{-i} V^i/dtheta^i)^T step
    return LolaGradient(exact, first_order, first_order + jacobian[own] @ step)


def sampled_update(
    compiled: CompiledValues,
    game: Game,
    policy: Policy,
    x: np.ndarray,
    inner: InnerLoop,
    batch: int | None = None,
    baseline: str = "none",
    fit: str = "aligned",
) -> MetaGradient:
    """The exact model-S meta-gradient of agent ``inner.meta_agent``, by enumerating inner batches.

    Depth-first over batch sequences ``B_0 .. B_{L-1}``, each level vectorised over
    its ``M`` multisets: ``phi_{l+1} = phi_l + A g(B_l; phi_l)``, the tangent
    ``T_{l+1} = (I + A dg/dphi) T_l`` with the batch held fixed, and the score
    ``d/dtheta^i log P(B_0..B_l)`` accumulated as ``sum_l grad_phi log P(B_l | phi_l) . T_l``.
    Then ``C = E[score V^i]``, ``O = E[grad_{phi^i} V^i . T[i]]``, ``P = E[grad_{phi^-i} V^i . T[-i]]``
    at ``phi_L`` (or summed over ``l`` for the chain objective). ``batch`` overrides ``inner.batch``.

    With a ``baseline`` (:mod:`mapg_verify.exact.baselines`) the update is
    ``g = (1/K) sum_b sum_t grad log pi_t (G_t - gamma^t b_t)``, a function of ``phi`` and the
    batch, and ``dg/dphi`` is its whole derivative: for ``value``, ``b_t = V_t(s_t; phi)`` moves
    with ``phi`` too (``- (1/K) sum_b sum_t gamma^t grad log pi_t dV_t(s_t)^T``); baselines fitted
    on the batch are fixed by it (the linear one's ``fit``, ``aligned`` or ``as-shipped``; ordered
    batches are enumerated where the fit depends on the order).
    """
    batch = batch or inner.batch
    ordered = ordered_fit(baseline, fit, batch, inner.horizon)
    check_enumerable(game, inner.horizon, batch, inner.steps, inner.enumeration_cap, ordered)
    trajectories = enumerate_trajectories(game, inner.horizon)
    batches = enumerate_batches(len(trajectories.states), batch, ordered)
    rates = inner_rates(compiled, inner.alpha)
    i = inner.meta_agent
    own_rows, peer_rows = compiled.layout.slice(i), compiled.layout.others(i)
    totals = np.zeros((3, own_rows.stop - own_rows.start))  # C, O, P

    def accumulate(weights, phis, tangents, scores) -> None:
        values, gradients = compiled.value(phis)[:, i], compiled.gradient(phis)[:, i]
        own = np.einsum("md,mdj->mj", gradients[:, own_rows], tangents[:, own_rows])
        peer = np.einsum("md,mdj->mj", gradients[:, peer_rows], tangents[:, peer_rows])
        totals[0] += weights @ (scores * values[:, None])
        totals[1] += weights @ own
        totals[2] += weights @ peer

    fitted = _fitted_batches(game, trajectories, batches, baseline, compiled.layout.size, fit)

    def visit(level: int, weight: float, phi, tangent, score) -> None:
        terms = trajectory_terms(game, policy, compiled.layout, trajectories, phi)
        weights = weight * np.exp(batches.log_coefficients + batches.counts @ terms.log_prob)
        if fitted is not None:
            steps = [trajectory_terms(game, policy, compiled.layout, g, phi, group=batch) for g in fitted]
            reinforce = np.concatenate([t.reinforce.reshape(-1, batch, t.reinforce.shape[1]).mean(1) for t in steps])
            phis = phi + rates * reinforce
            jacobians = np.concatenate([t.reinforce_jacobian for t in steps]) / batch
        else:
            update, jacobian = (terms.reinforce, terms.reinforce_jacobian)
            if baseline == "value":
                update, jacobian = _value_baselined(game, policy, compiled.layout, trajectories, phi)
            phis = phi + rates * (batches.counts @ update) / batch
            jacobians = np.einsum("mn,nde->mde", batches.counts, jacobian) / batch
        tangents = tangent + rates[None, :, None] * (jacobians @ tangent)
        scores = score + (batches.counts @ terms.score) @ tangent
        if inner.objective == "chain" or level + 1 == inner.steps:
            accumulate(weights, phis, tangents, scores)
        if level + 1 < inner.steps:
            for m in range(len(weights)):
                visit(level + 1, weights[m], phis[m], tangents[m], scores[m])

    root = np.eye(compiled.layout.size)[:, own_rows]
    x = np.asarray(x, dtype=float)
    if inner.objective == "chain":
        accumulate(np.ones(1), x[None], root[None], np.zeros((1, root.shape[1])))
    visit(0, 1.0, x, root, np.zeros(root.shape[1]))
    current, own, peer = totals
    return MetaGradient(current + own + peer, current, own, peer)


FITTED_FLOATS = 4_000_000  # gathered trajectories' per-step Hessians held at once


def _fitted_batches(
    game: Game, trajectories: Trajectories, batches, baseline: str, width: int, fit: str
) -> list[Trajectories] | None:
    """For a baseline fitted on the batch: each batch's trajectories (in chunks), their
    rewards-to-go less ``gamma^t b_t``; else ``None``."""
    if baseline not in BATCH_BASELINES:
        return None
    size = batches.size
    members = batches.members()
    chunk = max(1, FITTED_FLOATS // (size * trajectories.states.shape[1] * width * width))
    pieces = []
    for start in range(0, len(members), chunk):
        gathered = trajectories.take(members[start : start + chunk].ravel())
        scaled = discounts(game, gathered.states.shape[1])[None, :, None] * fitted_values(
            baseline, game, gathered, size, fit
        )
        pieces.append(dataclasses.replace(gathered, to_go=gathered.to_go - scaled))
    return pieces


def _value_baselined(game: Game, policy: Policy, layout, trajectories: Trajectories, phi):
    """Per trajectory, ``sum_t grad log pi_t (G_t - gamma^t V_t(s_t; phi))`` and its derivative in
    ``phi``, the value's own included."""
    values, derivatives = trajectory_values(game, policy, layout, trajectories, phi, gradients=True)
    scale = discounts(game, values.shape[1])[None, :, None]
    adjusted = dataclasses.replace(trajectories, to_go=trajectories.to_go - scale * values)
    terms = trajectory_terms(game, policy, layout, adjusted, phi)
    moved = np.zeros_like(terms.reinforce_jacobian)
    for k in range(game.n_agents):
        block = layout.slice(k)
        moved[:, block, :] = np.einsum("nhd,nhe->nde", terms.step_scores[:, :, block], scale * derivatives[:, :, k, :])
    return terms.reinforce, terms.reinforce_jacobian - moved


def meta_gradients(compiled: CompiledValues, case: Case) -> dict[str, MetaGradient]:
    """The exact meta-gradient of each inner model the case asks for, by model name."""
    x, inner = case.flat_theta, case.inner
    models = {
        "expected": lambda: expected_update(compiled, x, inner.alpha, inner.steps, inner.meta_agent, inner.objective),
        "sampled": lambda: sampled_update(compiled, case.game, case.policy, x, inner),
    }
    return {model: models[model]() for model in inner.models}
