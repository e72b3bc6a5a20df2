"""The sampled estimators of SPEC §4, as one parametrised surrogate, and the algebra they share.

Every estimator draws inner batches ``B_0 .. B_{L-1}`` (``K`` trajectories each, from
``pi(phi_l)``) and updates ``phi_{l+1} = phi_l + A g(B_l; phi_l)`` with REINFORCE and
discounted reward-to-go (the value of the update is the same for every estimator). They
differ in how ``d phi_{l+1} / d phi_l`` is taken and which terms they keep:

- the tangent ``T_l = d phi_l / d theta^i`` follows ``T_0 = E_i``,
  ``T_{l+1} = T_l + A M J(B_l) T_l`` with ``J`` the batch mean of the pathwise Jacobian
  ``sum_t hess log pi G_t`` (``pathwise``) or of it plus DiCE's causal score products
  (``dice``, see :mod:`mapg_verify.reinforce`), and ``M`` the rows of the agents whose
  updates are differentiated (``own``: the meta-agent, ``peers``: the others);
- outer term: an outer batch of ``K_out`` trajectories from ``pi(phi_L)`` gives agent ``i``'s
  REINFORCE gradient ``g_out`` over every agent's parameters (or the exact ``grad V^i(phi_L)``
  with ``outer = "exact"``); ``own = g_out[i] T_L[i]``, ``peer = g_out[-i] T_L[-i]``;
- current term: the inner batches' score through the tangent, ``s_l = score(B_l | phi_l) T_l``,
  paired with the outer returns: ``batch`` ``sum_l s_l * mean_b G^i_0(B_L)`` (expectation ``C``),
  ``trajectory`` ``(1/K) sum_l sum_b s_l(tau_l^b) G^i_0(tau_L^b)`` (expectation ``C / K``),
  ``timestep`` ``(1/K) sum_l sum_b sum_t s_{l,t}(tau_l^b) G^i_t(tau_L^b)`` with ``s_{l,t}`` the
  score of step ``t`` alone (the official Meta-MAPG base loss's pairing; the official code's
  returns are discounted from ``t``, which ``meta-mapg-official`` and ``returns = "from-t"`` use);
- returns: "from zero" (``G_t = sum_{t' >= t} gamma^t' r_t'``, the theorem's, every built-in's
  default but the official ones) or "from t" (``R_t = sum_{t' >= t} gamma^(t'-t) r_t'``) in every
  outer score-function term; a baseline (:mod:`mapg_verify.exact.baselines`, the linear one
  fitted ``aligned`` or ``as-shipped``, the official code's misaligned fit) enters the inner
  DiCE objective as ``(1 - box(log pi_t)) gamma^t b_t`` and the outer REINFORCE term as the
  advantage; the current term keeps the return, except where the estimator takes the advantage
  there too (``current_advantage``, the official code);
- the chain objective adds these terms at every ``l = 0..L``, each with a fresh outer batch
  from ``pi(phi_l)``.

``lola-dice`` is the same surrogate with the meta-agent's inner rate set to 0 and no current
term (the LOLA objective ``V^i(theta^i, phi^-i)`` of Foerster et al. 2018); ``naive`` has no
inner loop. A case may also name a plug-in ``module:function`` (see :mod:`mapg_verify.plugins`).

``MUTANTS`` are ``meta-mapg`` with one deliberate defect each; tested against ``meta-mapg``'s
exact expectation, they measure the power of the implementation check (SPEC §5, check 6).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mapg_verify.estimators.table import Estimator, outer_of, pairing_of
from mapg_verify.exact import baseline_kernels, kernels
from mapg_verify.exact.baselines import (
    discounts,
    fitted_values,
    gae,
    joint_policy,
    linear_table,
    returns_from_t,
    trajectory_values,
)
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.enumeration import Trajectories, discounted_to_go, rewards_of, step_rewards
from mapg_verify.exact.reinforce import (
    TrajectoryTerms,
    dice_products,
    loaded_products,
    score_sums,
    trajectory_terms,
)
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case

TABLED = ("value", "linear")  # baselines the kernels read off a table of steps and states


@dataclass(frozen=True, eq=False)
class Plan:
    """What every level of one estimator on one case needs, fixed once."""

    case: Case
    compiled: CompiledValues
    estimator: Estimator
    rates: np.ndarray  # alpha^k on agent k's parameters
    differentiated: np.ndarray  # the rates on the rows whose updates are differentiated, 0 elsewhere
    signs: np.ndarray  # +1 on own rows, peer_sign on the others
    steps: int
    pairing: str
    outer_batch: int
    outer: str

    @property
    def own_rows(self) -> slice:
        return self.compiled.layout.slice(self.case.inner.meta_agent)

    @property
    def width(self) -> int:
        return self.compiled.layout.sizes[self.case.inner.meta_agent]

    @property
    def batch(self) -> int:
        return self.case.inner.batch

    def evaluated(self, level: int) -> bool:
        """Whether the objective has a term at level ``l`` (every level for the chain, else the last)."""
        return level == self.steps or self.case.inner.objective == "chain"


def plan(case: Case, compiled: CompiledValues, estimator: Estimator) -> Plan:
    """Fix an estimator's settings on a case."""
    layout, i = compiled.layout, case.inner.meta_agent
    alpha = tuple(0.0 if k == i and not estimator.self_learns else a for k, a in enumerate(case.inner.alpha))
    rates = layout.per_parameter(alpha)
    rows = np.zeros(layout.size, dtype=bool)
    rows[layout.slice(i)] = estimator.own
    rows[layout.others(i)] = estimator.peers
    signs = np.where(layout.others(i), estimator.peer_sign, 1.0)
    steps = case.inner.steps if estimator.inner else 0
    pairing = pairing_of(estimator, case)
    outer, outer_batch = outer_of(estimator, case)
    return Plan(case, compiled, estimator, rates, rates * rows, signs, steps, pairing, outer_batch, outer)


def with_returns(game: Game, trajectories: Trajectories, kind: str) -> Trajectories:
    """The trajectories with the returns an estimator weights step ``t``'s score by: the recorded
    discounted reward-to-go, the undiscounted one, or the step's own discounted reward ``gamma^t r_t``."""
    if kind == "reward-to-go":
        return trajectories
    if kind == "undiscounted":
        to_go = discounted_to_go(game, trajectories.states, trajectories.actions, gamma=1.0)
    else:
        to_go = step_rewards(trajectories.to_go)
    return dataclasses.replace(trajectories, to_go=to_go)


def baseline_values(surrogate: Plan, kind: str, trajectories: Trajectories, phi, size: int) -> np.ndarray | None:
    """Baseline ``b_t`` ("from t" units, ``(N, H, n)``) of each trajectory, for batches of ``size``
    consecutive trajectories, trajectory ``n`` drawn at row ``n // (N / G)`` of ``phi (G, D)``
    (see :mod:`mapg_verify.exact.baselines`); ``None`` for ``none``."""
    if kind == "none":
        return None
    case = surrogate.case
    if kind == "value":
        return trajectory_values(case.game, case.policy, surrogate.compiled.layout, trajectories, phi)
    return fitted_values(kind, case.game, trajectories, size, surrogate.estimator.baseline_fit)


def baseline_table(surrogate: Plan, kind: str, trajectories: Trajectories, phi, size: int) -> np.ndarray:
    """A baseline of :data:`TABLED` as a table ``b^k_t(s)`` ``(G, H, S, n)`` for batches of ``size``
    consecutive trajectories drawn at the rows of ``phi (G, D)``, by the kernels: the exact state
    values, or the linear fit's prediction (:func:`mapg_verify.exact.baselines.linear_table`)."""
    case, (_, horizon) = surrogate.case, trajectories.states.shape
    if kind == "value":
        joint = joint_policy(case.game, case.policy, surrogate.compiled.layout, np.atleast_2d(phi))
        return baseline_kernels.state_values(case.game, joint, horizon)
    shipped = surrogate.estimator.baseline_fit == "as-shipped"
    counts, sums = baseline_kernels.linear_statistics(
        case.game, trajectories.states, trajectories.actions, size, shipped
    )
    return linear_table(size, counts, sums)


def inner_baseline(surrogate: Plan, trajectories: Trajectories, phi, compiled: bool = False) -> np.ndarray | None:
    """``gamma^t b_t`` of the inner baseline for batches of ``K`` (``None`` without one);
    ``compiled``: a baseline of :data:`TABLED` by the kernels (:func:`mapg_verify.exact.kernels.along`
    reads ``gamma^t b^k_t(s_t)`` off its table)."""
    kind, game = surrogate.estimator.inner_baseline, surrogate.case.game
    if compiled and kind in TABLED:
        table = baseline_table(surrogate, kind, trajectories, phi, surrogate.batch)
        return kernels.along(trajectories.states, table, discounts(game, table.shape[1]), range(game.n_agents))
    values = baseline_values(surrogate, kind, trajectories, phi, surrogate.batch)
    if values is None:
        return None
    return discounts(game, values.shape[1])[None, :, None] * values


def inner_step(surrogate: Plan, trajectories: Trajectories, phi) -> np.ndarray:
    """The estimator's own inner update ``phi + A g`` (its returns and inner baseline, no
    derivative) for batches of ``K`` consecutive trajectories at the rows of ``phi (G, D)``."""
    case = surrogate.case
    weighted = with_returns(case.game, trajectories, surrogate.estimator.returns)
    baseline = inner_baseline(surrogate, trajectories, phi)
    if baseline is not None:
        weighted = dataclasses.replace(weighted, to_go=weighted.to_go - baseline)
    terms = trajectory_terms(case.game, case.policy, surrogate.compiled.layout, weighted, phi, False)
    return phi + surrogate.rates * terms.reinforce.reshape(len(phi), surrogate.batch, -1).mean(axis=1)


def inner_terms(
    surrogate: Plan,
    trajectories: Trajectories,
    phi,
    group: int = 1,
    baseline: np.ndarray | None = None,
    compiled: bool = False,
) -> tuple[TrajectoryTerms, np.ndarray | None]:
    """Per-trajectory terms at ``phi`` (see :func:`mapg_verify.reinforce.trajectory_terms`) and the
    Jacobian ``dg/dphi`` the estimator differentiates with, summed over groups of ``group``
    trajectories (``None`` when no update is differentiated); ``baseline`` ``(N, H, n)`` holds
    ``gamma^t b_t``, whose ``(1 - box(log pi_t))`` term weights step ``t`` by ``G_t - gamma^t b_t``
    and subtracts ``gamma^t b_t s^k_t s_t^T`` from DiCE's score products (the value held fixed);
    ``compiled``: by the kernels, with sparse step scores."""
    case = surrogate.case
    differentiates = bool(np.any(surrogate.differentiated))
    layout = surrogate.compiled.layout
    arguments = (differentiates, group, compiled, baseline)
    terms = trajectory_terms(case.game, case.policy, layout, trajectories, phi, *arguments)
    if not differentiates:
        return terms, None
    jacobian = terms.reinforce_jacobian
    if surrogate.estimator.jacobian == "loaded-dice":
        lam = surrogate.estimator.dice_lambda
        advantages = trajectories.to_go if baseline is None else trajectories.to_go - baseline
        return terms, jacobian + loaded_products(layout, advantages, terms.step_scores, lam, group)
    if surrogate.estimator.jacobian == "dice":
        causal = surrogate.estimator.returns != "immediate"
        products = dice_products(layout, trajectories, terms.step_scores, causal, group, baseline)
        jacobian = jacobian + products
    return terms, jacobian


def advance(surrogate: Plan, phi, tangent, reinforce, jacobian) -> tuple[np.ndarray, np.ndarray]:
    """One inner step for a stack of nodes: ``phi + A g`` and ``T + A M J T`` from the batch means
    ``reinforce (G, D)`` and ``jacobian (G, D, D)`` (or ``None``)."""
    phi = phi + surrogate.rates * reinforce
    if jacobian is not None:
        tangent = tangent + surrogate.differentiated[None, :, None] * (jacobian @ tangent)
    return phi, tangent


def outer_parts(surrogate: Plan, gradient, tangent) -> tuple[np.ndarray, np.ndarray]:
    """``own = g_out[i] T[i]`` and ``peer = sign g_out[-i] T[-i]`` for stacks ``(G, D)``, ``(G, D, d)``."""
    weighted = gradient * surrogate.signs
    own_rows, peer_rows = surrogate.own_rows, surrogate.compiled.layout.others(surrogate.case.inner.meta_agent)
    own = np.einsum("gd,gdj->gj", weighted[:, own_rows], tangent[:, own_rows])
    peer = np.einsum("gd,gdj->gj", weighted[:, peer_rows], tangent[:, peer_rows])
    return own, peer


def outer_returns(surrogate: Plan, trajectories: Trajectories, compiled: bool = False) -> np.ndarray:
    """Agent ``i``'s returns ``(N, H)`` on outer trajectories in the estimator's convention: from
    zero, the rewards-to-go ``G_t`` (with its defect, if any); from ``t``, ``R_t`` (``compiled``: by
    the kernel)."""
    case, estimator, i = surrogate.case, surrogate.estimator, surrogate.case.inner.meta_agent
    if estimator.convention == "from-zero":
        return with_returns(case.game, trajectories, estimator.returns).to_go[..., i]
    if compiled:
        return baseline_kernels.advantages(case.game, trajectories.states, trajectories.actions, None, 1.0, [i])[..., 0]
    return returns_from_t(case.game, rewards_of(case.game, trajectories.states, trajectories.actions))[..., i]


def outer_advantages(
    surrogate: Plan, trajectories: Trajectories, phi, returns: np.ndarray | None, compiled: bool = False
) -> np.ndarray:
    """Agent ``i``'s advantages ``(N, H)`` for batches of the plan's ``K_out`` drawn at the rows of
    ``phi``: the ``returns`` less the baseline, ``G_t - gamma^t b_t`` from zero and ``R_t - b_t``
    from ``t``, or GAE's for ``lambda < 1`` (times ``gamma^t`` from zero); the returns without one;
    ``compiled``: a baseline of :data:`TABLED` and GAE by the kernels."""
    estimator, game, i = surrogate.estimator, surrogate.case.game, surrogate.case.inner.meta_agent
    horizon = trajectories.states.shape[1]
    scale = discounts(game, horizon)[None, :] if estimator.convention == "from-zero" else np.ones((1, horizon))
    if compiled and estimator.baseline in TABLED:
        table = baseline_table(surrogate, estimator.baseline, trajectories, phi, surrogate.outer_batch)
        if estimator.gae_lambda == 1.0:
            return returns - kernels.along(trajectories.states, table, scale[0], [i])[..., 0]
        states, actions = trajectories.states, trajectories.actions
        found = baseline_kernels.advantages(game, states, actions, table, estimator.gae_lambda, [i])[..., 0]
        return found if estimator.convention == "from-t" else scale * found  # from t, the scale is 1
    values = baseline_values(surrogate, estimator.baseline, trajectories, phi, surrogate.outer_batch)
    if values is None:
        return returns
    if estimator.gae_lambda == 1.0:
        return returns - scale * values[..., i]
    rewards = rewards_of(game, trajectories.states, trajectories.actions)
    return scale * gae(game, rewards, values, estimator.gae_lambda)[..., i]


def outer_terms(
    surrogate: Plan, trajectories: Trajectories, phi, compiled: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per outer trajectory at ``phi``: what the current term pairs with (:func:`paired_returns` of
    :func:`outer_returns` and :func:`outer_advantages`) and agent ``i``'s REINFORCE gradient over
    every parameter ``sum_t score_t A^i_t`` ``(N, D)``; ``compiled``: by the kernels (the baselines'
    too). The returns are not computed where neither needs them (GAE paired with the advantages)."""
    case, estimator = surrogate.case, surrogate.estimator
    unused = estimator.current_advantage and estimator.baseline != "none" and estimator.gae_lambda != 1.0
    returns = None if unused else outer_returns(surrogate, trajectories, compiled)
    advantages = outer_advantages(surrogate, trajectories, phi, returns, compiled)
    layout = surrogate.compiled.layout
    gradients = score_sums(case.game, case.policy, layout, trajectories, phi, advantages, compiled)
    return paired_returns(surrogate, returns, advantages), gradients


def paired_returns(surrogate: Plan, returns: np.ndarray, advantages: np.ndarray) -> np.ndarray:
    """What the current term pairs the inner scores with: the outer advantages for estimators that
    take them there (the official code), else the outer returns."""
    return advantages if surrogate.estimator.current_advantage else returns


def root(surrogate: Plan, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` copies of ``phi_0 = theta`` and ``T_0 = E_i``."""
    layout = surrogate.compiled.layout
    theta = surrogate.case.flat_theta
    tangent = np.eye(layout.size)[:, surrogate.own_rows]
    return np.tile(theta, (count, 1)), np.tile(tangent, (count, 1, 1))
