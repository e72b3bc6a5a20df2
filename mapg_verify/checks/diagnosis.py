"""A failed claim's diagnosis: the one relabelling of the game, or common slip, under which it holds.

When a plug-in's claim (``claim:NAME``) fails, each candidate change is tried alone:

- **relabellings**, the plug-in re-called under a :class:`~mapg_verify.estimators.conventions.Convention`
  in the toolkit's layout (``columns = False``): the agents reading their states without their views
  (``theta'_k = theta_k[views_k]``: agent 1 indexing by agent 0's state), a permutation of the states
  that preserves the game (``P[sigma s, a, sigma s'] = P[s, a, s']``, likewise ``R`` and ``rho0``),
  one agent's action labels swapped, the parameters' sign (sigmoid), the agents' rewards swapped;
- **slips**, as variants of the partner (the built-in the claim is paired with): returns discounted
  from ``t``; the inner update not differentiated (REINFORCE at ``phi_L``); the estimate ``K`` or
  ``1/K`` times the partner's (likewise ``K_out``); and, changing the inner loop, ``gamma^0`` or
  ``gamma^2`` for ``gamma``, a peer's rate 0 or doubled, and every rate ``K`` times (the inner
  step's ``1/K`` missing): the plug-in, told the case's settings, is then called on batches the
  changed loop draws, against the partner run with the change.

The search costs at most :data:`CALLS` calls of the plug-in exactly; on paired batches, as many
per candidate as detect half the difference the claim measured, within the larger of
:data:`STATISTICAL_CALLS` calls and the claim's own samples (:func:`search_samples`).
Where the plug-in's expectation enumerates within them for every candidate that calls it, and the
claim was judged exactly: a candidate holds when ``||E' - r'||_inf / max(||r'||_inf, F)`` is within
the claim's tolerance (``E'`` the plug-in's expectation under the change, ``r'`` the reference under
it, at ``theta``); the first that holds is the diagnosis, in the order: slips that keep the loop (no
call of the plug-in), relabellings, slips that change it (changes that no expectation tells apart, a
flipped sign and the labels of the one agent whose policy the estimate reads, are named as found).
Otherwise on paired batches (:func:`search_samples`) with the claim's test (regression-adjusted on
control variates of zero mean): a candidate holds when it is not rejected at the case's level by a
test that detects, with 99% power, a difference as large as the one the unchanged plug-in showed (a
test too noisy to see the original difference explains nothing). The unchanged plug-in is the
control: if it is not rejected either, the budget cannot tell the candidates apart; else the
candidate with the largest p-value is named, with any others also consistent.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np

from mapg_verify.checks.claims import (
    detectable_difference,
    diagnosis_text,
    paired_test,
    partner_controls,
    partner_of,
    reference_value,
)
from mapg_verify.checks.fingerprint import Design
from mapg_verify.checks.result import CheckResult, case_floor, precision_tolerance, relative_error
from mapg_verify.estimators.calls import PER_CALL
from mapg_verify.estimators.conventions import Convention, convention_for
from mapg_verify.estimators.dispatch import inner_loop_for, resolve, rng_for
from mapg_verify.estimators.expectations import expectation
from mapg_verify.estimators.plugins import plugin_calls, plugin_draws, plugin_expectation
from mapg_verify.estimators.records import PluginError
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import FROZEN, Estimator, outer_of
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.truths import Truths
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case, Claim

CALLS = 3_000  # plug-in calls (a batched plug-in's: of PER_CALL replicates) for a whole exact diagnosis
STATISTICAL_CALLS = 1_200  # likewise for the search on paired batches, shared among the candidates
SAMPLES = (50, 500)  # paired batches per candidate on paired batches: at least; where no claim sized them
MAX_STATES = 6  # state permutations searched up to this many states (720)


@dataclass(frozen=True)
class Candidate:
    """One change: ``label`` completes "holds if ...", ``kind`` names its family; a relabelling has
    a ``convention``; a slip changes the partner's ``estimator``, scales it, or changes the inner
    loop's ``gamma`` or ``alpha``."""

    label: str
    kind: str
    convention: Convention | None = None
    estimator: Estimator | None = None
    scale: float = 1.0
    gamma: float | None = None
    alpha: tuple[float, ...] | None = None

    @property
    def loop(self) -> bool:
        """Whether it changes the inner loop (the batches drawn)."""
        return self.gamma is not None or self.alpha is not None


def automorphisms(game: Game) -> list[tuple[int, ...]]:
    """The permutations of the states other than the identity that preserve the game (see the
    module's docstring); none searched past :data:`MAX_STATES` states."""
    if game.n_states > MAX_STATES:
        return []
    found = []
    for sigma in itertools.permutations(range(game.n_states)):
        p = np.array(sigma)
        if np.array_equal(p, np.arange(game.n_states)):
            continue
        same = np.allclose(game.transitions[p][..., p], game.transitions) and np.allclose(game.initial[p], game.initial)
        if same and np.allclose(game.rewards[:, p], game.rewards):
            found.append(sigma)
    return found


def _state(game: Game, s: int) -> str:
    return game.state_labels[s] if len(game.state_labels) > s else f"state {s}"


def relabellings(case: Case) -> list[Candidate]:
    """The relabelling candidates that apply to the case's game and policy."""
    game, sigmoid = case.game, case.policy.name == "sigmoid"
    found, identity = [], np.arange(game.n_states)
    viewed = [k for k in range(game.n_agents) if not np.array_equal(game.views[k], identity)]
    permutations = all(np.array_equal(np.sort(game.views[k]), identity) for k in viewed)
    if viewed and permutations:
        moved = [
            f"agent {k} reads its states without its view ("
            + " and ".join(_state(game, s) for s in identity[game.views[k] != identity])
            + " swapped)"
            for k in viewed
        ]
        found.append(Candidate("; ".join(moved), "views", Convention("without views", views="shared", columns=False)))
    for sigma in automorphisms(game):
        pairs = ", ".join(f"{_state(game, s)} as {_state(game, t)}" for s, t in enumerate(sigma) if s != t)
        found.append(
            Candidate(f"the states are relabelled ({pairs})", "states", Convention("states", sigma, columns=False))
        )
    for k in range(game.n_agents):
        swapped = tuple((1, 0, *range(2, n)) if j == k else tuple(range(n)) for j, n in enumerate(game.n_actions))
        label = f"agent {k}'s action labels are swapped (0 and 1)"
        found.append(Candidate(label, "action labels", Convention("actions", actions=swapped, columns=False)))
    if sigmoid:
        label = "the parameters' sign is flipped (sigmoid(theta) read as the probability of action 1)"
        found.append(Candidate(label, "sign", Convention("sign", sign=-1.0, columns=False)))
    if game.n_agents == 2:
        label = "each agent reads the other's rewards (agents swapped)"
        found.append(Candidate(label, "agents", Convention("agents", columns=False, swap_rewards=True)))
    return found


def slips(case: Case, partner: tuple | None) -> list[Candidate]:
    """The slip candidates against ``partner`` (:func:`~mapg_verify.checks.claims.partner_of`):
    those changing its estimator only where it is one built-in (not a fingerprint's combination)."""
    if partner is None:
        return []
    _, loop, weights = partner
    inner, game = case.inner, case.game
    found = []
    if not weights and loop.convention == "from-zero" and inner.horizon > 1:
        label = "the returns are discounted from t (sum_{t' >= t} gamma^(t'-t) r_t'), not from 0"
        found.append(Candidate(label, "returns from t", estimator=dataclasses.replace(loop, convention="from-t")))
    same_loop = loop.inner_baseline == "none" and loop.returns == FROZEN.returns and loop.self_learns
    if not weights and loop != FROZEN and inner.steps and same_loop:
        label = "the inner update is not differentiated (REINFORCE at phi_L alone)"
        found.append(Candidate(label, "no inner derivative", estimator=FROZEN))
    peers_learn = any(rate for k, rate in enumerate(inner.alpha) if k != inner.meta_agent)
    if not weights and loop.peers and loop.own and inner.steps and peers_learn and same_loop:
        label = (
            "the peers' inner steps are not differentiated (a stop-gradient on them: meta-pg's estimator; "
            "on the same batches, the same as a peer's rate taken as 0 in the plug-in's own update)"
        )
        found.append(Candidate(label, "no peer derivative", estimator=dataclasses.replace(loop, peers=False)))
    sizes = {"K": inner.batch, "K_out": outer_of(loop, case)[1]}
    for size in sorted({size for size in sizes.values() if size > 1}):
        name = "K" if size == inner.batch else "K_out"
        found.append(
            Candidate(f"the estimate is {name} = {size} times the partner's (a 1/{name} missing)", "1/K", scale=size)
        )
        found.append(Candidate(f"the estimate is 1/{size} of the partner's (an extra 1/{name})", "1/K", scale=1 / size))
    if inner.horizon > 1 and case.estimators.outer == "sampled" and 0 < game.gamma < 1:
        if not game.infinite:
            found.append(Candidate("gamma is left out (gamma^0 = 1)", "gamma", gamma=1.0))
        found.append(Candidate(f"gamma is squared (gamma^2 = {game.gamma**2:g})", "gamma", gamma=game.gamma**2))
    for k, rate in enumerate(inner.alpha if inner.steps else ()):
        if k != inner.meta_agent and rate:
            for factor, said in ((0.0, "taken as 0"), (2.0, f"doubled ({2 * rate:g})")):
                alpha = tuple(a * factor if j == k else a for j, a in enumerate(inner.alpha))
                found.append(Candidate(f"agent {k}'s rate is {said} in the inner update", "peer's rate", alpha=alpha))
    if inner.steps and inner.batch > 1 and any(inner.alpha):
        label = f"the inner steps sum over the batch, not average (a 1/K missing: every rate K = {inner.batch} times)"
        found.append(Candidate(label, "inner 1/K", alpha=tuple(a * inner.batch for a in inner.alpha)))
    return found


def changed(case: Case, candidate: Candidate, name: str) -> Case:
    """The case under a candidate: the plug-in's convention, or the inner loop's ``gamma`` or ``alpha``."""
    if candidate.convention is not None:
        conventions = {**dict(case.estimators.conventions), name: candidate.convention}
        return dataclasses.replace(
            case, estimators=dataclasses.replace(case.estimators, conventions=tuple(conventions.items()))
        )
    if candidate.gamma is not None:
        return dataclasses.replace(case, game=dataclasses.replace(case.game, gamma=candidate.gamma))
    if candidate.alpha is not None:
        return dataclasses.replace(case, inner=dataclasses.replace(case.inner, alpha=candidate.alpha))
    return case


def exact_error(case, compiled, plugin, name: str, candidate: Candidate, loop: Estimator, exact, reference) -> float:
    """The candidate's relative error ``||E' - r'||_inf / max(||r'||_inf, F)`` at ``theta``."""
    moved = changed(case, candidate, name)
    if candidate.convention is not None:
        value, target = plugin_expectation(moved, compiled, plugin, loop).total, reference
    elif candidate.loop:
        value = plugin_expectation(moved, compiled, plugin, loop, told=case).total
        target = expectation(plan(moved, compiled, loop)).total
    else:
        value = exact
        target = candidate.scale * expectation(plan(case, compiled, candidate.estimator or loop)).total
    return relative_error(value, target, case_floor(case, compiled))


def statistical_p_values(case, compiled, plugin, name: str, candidates, partner, reference, seed: int, samples: int):
    """The unchanged plug-in's test and each candidate's on ``samples`` paired batches (the same
    batches wherever the loop is unchanged), ``None`` where it could not be run: each the p-value,
    the smallest difference it detects with 99% power and the difference it measured (norms)."""
    _, loop, weights = partner or (None, FROZEN, ())

    def p_value(moved: Case, draws, target=None) -> tuple[float, float, float]:
        theirs = target if target is not None else draws.partner if partner else reference
        controls = partner_controls(moved, compiled, partner, draws) if partner else draws.zero_mean
        test, spread, _ = paired_test(case, compiled, draws.rows - theirs, controls)
        return test.p_value, detectable_difference(test, spread, len(draws.rows)), float(np.linalg.norm(test.mean))

    def rng():
        return rng_for(seed, case, name, 1)  # the same batches for every candidate that keeps the loop

    variants = tuple(c.estimator for c in candidates if c.estimator is not None)
    base = plugin_draws(case, compiled, plugin, samples, rng(), loop, weights, variants)
    found, index = [], 0
    for candidate in candidates:
        try:
            if candidate.estimator is not None:
                found.append(p_value(case, base, candidate.scale * base.variants[index]))
                index += 1
            elif candidate.convention is None and not candidate.loop:
                found.append(p_value(case, base, candidate.scale * base.partner))
            else:
                moved = changed(case, candidate, name)
                told = case if candidate.loop else None
                found.append(
                    p_value(moved, plugin_draws(moved, compiled, plugin, samples, rng(), loop, weights, told=told))
                )
        except (PluginError, InputError):
            found.append(None)
    return p_value(case, base), found


def search_samples(case: Case, figures: dict, calling: int, per_call: int) -> int:
    """Paired batches per candidate on the statistical search: where the claim was tested on ``N``
    paired batches, measured ``m`` and detects ``d`` (99% power), ``4 N (d / m)^2``, enough to
    detect half the difference it measured; else :data:`SAMPLES`' most. At least :data:`SAMPLES`'
    least, at most the case's ``samples``, within the larger of :data:`STATISTICAL_CALLS` plug-in
    calls and ``N`` replicates shared among the ``calling`` candidates and the unchanged plug-in."""
    measured = figures.get("relative difference measured")
    detected = figures.get("smallest relative difference detected (99% power)")
    wanted = SAMPLES[1]
    if measured and detected is not None and figures.get("samples"):
        wanted = math.ceil(4 * figures["samples"] * (detected / measured) ** 2)
    share = max(STATISTICAL_CALLS * per_call, figures.get("samples") or 0) // (calling + 1)
    return min(case.estimators.samples, max(SAMPLES[0], min(wanted, share)))


def diagnose(
    case: Case,
    compiled: CompiledValues,
    truths: Truths,
    name: str,
    claim: Claim,
    check: CheckResult,
    exact,
    seed: int,
    design: Design,
) -> CheckResult:
    """``check``, the failed claim of plug-in ``name``, with its diagnosis: figure ``diagnosis``
    (the change that explains it or ``None``, the sentence, what was searched, each candidate's
    figure) and its sentence ending the summary."""
    plugin = resolve(name)
    partner = partner_of(case, claim)
    loop = partner[1] if partner else inner_loop_for(case, name)
    own = convention_for(dict(case.estimators.conventions), plugin) is not None  # relabel nothing declared
    found = slips(case, partner)  # those that keep the loop first (no call of the plug-in in exact mode)
    candidates = [
        *(c for c in found if not c.loop),
        *([] if own else relabellings(case)),
        *(c for c in found if c.loop),
    ]
    reference = reference_value(case, truths, name, claim, design)
    exact_mode = check.figures.get("mode") == "exact" and exact is not None and reference is not None
    calling = sum(c.convention is not None or c.loop for c in candidates)
    if exact_mode and plugin_calls(case, plugin, loop) * calling <= CALLS:
        record = _exact_search(case, compiled, plugin, name, candidates, loop, exact.total, reference, check)
    elif partner is not None or reference is not None:
        samples = search_samples(case, check.figures, calling, PER_CALL if plugin.batched else 1)
        record = _statistical_search(case, compiled, plugin, name, candidates, partner, reference, seed, samples)
    else:
        record = {"explained by": None, "sentence": "not searched: no partner and no exact reference to test against"}
    searched = ", ".join(dict.fromkeys(c.kind for c in candidates))
    record |= {"searched": f"{len(candidates)} single changes: {searched}"}
    record["sentence"] += f"; searched {record['searched']}"
    figures = {**check.figures, "diagnosis": record}
    return dataclasses.replace(check, figures=figures, summary=check.summary + diagnosis_text(figures), verdict="")


def _exact_search(case, compiled, plugin, name, candidates, loop, exact, reference, check) -> dict:
    """The first candidate that holds exactly (see the module's docstring)."""
    tolerance, tried = check.figures.get("tolerance", precision_tolerance(np.finfo(float).eps)), []
    for candidate in candidates:
        try:
            error = exact_error(case, compiled, plugin, name, candidate, loop, exact, reference)
        except (PluginError, InputError):
            continue
        tried.append({"change": candidate.label, "error": error})
        if error <= tolerance:
            sentence = f"holds if {candidate.label} (exact expectation to {error:.1e})"
            return {"mode": "exact", "explained by": candidate.label, "sentence": sentence, "candidates": tried}
    return {"mode": "exact", "explained by": None, "sentence": "no single change explains it", "candidates": tried}


def _statistical_search(case, compiled, plugin, name, candidates, partner, reference, seed, samples) -> dict:
    """The candidates not rejected on paired batches, the unchanged plug-in as control (see the module's docstring)."""
    unchanged, p_values = statistical_p_values(
        case, compiled, plugin, name, candidates, partner, reference, seed, samples
    )
    (control, _, measured), level = unchanged, case.checks.level
    tried = [
        {"change": c.label, "p-value": p[0], "detects": p[1]}
        for c, p in zip(candidates, p_values, strict=True)
        if p is not None
    ]
    # not rejected, by a test that would have rejected the difference the unchanged plug-in showed
    held = [row for row in tried if row["p-value"] >= level and row["detects"] < measured]
    held.sort(key=lambda row: -row["p-value"])
    record = {"mode": "statistical", "samples": samples, "unchanged p-value": control, "candidates": tried}
    if control >= level:
        sentence = f"cannot tell: at {samples} samples the unchanged plug-in is not rejected either"
        return record | {"explained by": None, "sentence": sentence}
    if not held:
        return record | {"explained by": None, "sentence": "no single change explains it"}
    best = held[0]
    sentence = (
        f"holds if {best['change']} (p = {best['p-value']:.3g} on {samples:,} paired batches, blind to what "
        f"remains below {best['detects'] / measured:.0%} of the difference the plug-in showed)"
    )
    if len(held) > 1:
        sentence += "; also consistent: " + "; ".join(row["change"] for row in held[1:])
    return record | {"explained by": best["change"], "sentence": sentence}
