"""Claims (check ``claim:NAME``): what an estimator says its expectation is, tested.

A claim (:class:`mapg_verify.spec.case.Claim`) names a reference: model S's or model E's
meta-gradient, a built-in estimator's expectation with the case's options, a combination of the
fingerprint's terms, or the plain gradient. Every built-in carries its own by default:
``sampled-exact`` claims model S, ``naive`` the plain gradient (both where the outer term sees the
game's horizon), the others their declared fingerprint (any pairing; any ``L`` but for the partial ones);
a built-in whose outer baseline has zero mean given ``phi_L`` (``value``, ``leave-one-out``) and
whose fingerprint is not declared here (an inner baseline changes the inner loop's law, so the
basis no longer applies) claims its own expectation without the outer baseline
(``NAME[baseline=none, inner_baseline=...]``, its inner loop unchanged).

Two modes (``[checks] claim_mode``), one verdict:

- **exact**: the estimator's enumerated expectation against the reference's exact value,
  ``||E - r||_inf / max(||r||_inf, F) <= 1e-10`` (``F`` the error floor); a fingerprint claim is
  judged on every parameter draw of the fingerprint's design.
- **statistical**: for a plug-in whose claim has a *partner*, a built-in whose inner loop draws the
  plug-in's batches and whose expectation is the reference by construction (the claimed built-in; ``sampled-exact`` for
  model S; the plain REINFORCE gradient at ``phi_L`` for the fingerprint of the ``adapted`` term
  alone; for any other fingerprint, the same combination of the basis surrogates' parts, each term
  a switch of the one DiCE surrogate, all drawn on the plug-in's batches, so a fingerprint claim
  is tested at any scale), a paired test: the partner is evaluated on the very batches the plug-in received and
  Hotelling's T-squared tests ``E[plug-in - partner] = 0`` on the differences, which cancel the
  noise the two share (a bug of a few percent is found at the default budget). Otherwise the
  Monte-Carlo rows against the reference's exact value, Hotelling's T-squared; where the reference
  has no exact value within the cap (model S, or a built-in, past it), a two-sample test against
  the reference estimator's own rows (``sampled-exact`` for model S), with unequal covariances.
  Every statistical claim is in the case's Holm family. A pass states
  what it rules out: the smallest relative difference ``||delta|| / ||r||`` the test detects with
  99% power at this budget in the least favourable direction (the covariance's largest
  eigenvector), and the samples that would detect the case's ``[checks] relative_error``.
- **auto** (the default): exact where both expectations enumerate (for a fingerprint, on every
  draw of its design within the plug-in call budget), else statistical.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from mapg_verify.checks.fingerprint import Design, draw_expectations
from mapg_verify.checks.result import (
    DEFINITION_TOLERANCE,
    DOUBLE,
    CheckResult,
    case_floor,
    precision_note,
    precision_tolerance,
    relative_error,
    untested,
)
from mapg_verify.checks.statistics import adjusted_mean_test, mean_test, two_sample_test
from mapg_verify.checks.sweep import truth_for
from mapg_verify.estimators.dispatch import builtin_for, draw_rows, exact_expectation, rng_for, split_name
from mapg_verify.estimators.expectations import expectation
from mapg_verify.estimators.plugins import count_text
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import (
    BASIS_ESTIMATORS,
    ESTIMATORS,
    FROZEN,
    UNBIASED_BASELINES,
    Estimator,
    basis_weights,
    declared_terms,
)
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.truths import Truths
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import BASIS, Case, Claim

DETECTION_POWER = 0.99
ENUMERATION_REMEDY = (
    "to test it, raise [estimators] plugin_calls (a plug-in) or [inner] enumeration_cap (model S), or use a "
    "smaller game (fewer steps, a smaller K or horizon)"
)
MODE_REMEDY = 'set [checks] claim_mode = "auto" or "statistical",'
EXACT_REMEDY = ENUMERATION_REMEDY.replace("to test it,", f"to test it, {MODE_REMEDY}")
REFERENCE_ESTIMATOR = {"model-S": "sampled-exact"}  # an estimator whose expectation is the model, by definition


def sees_game(case: Case) -> bool:
    """Whether the outer term sees the game's whole horizon (an exact outer term, or sampled
    trajectories as long as the game): then ``sampled-exact`` is model S and ``naive`` the gradient."""
    game, inner = case.game, case.inner
    return case.estimators.outer == "exact" or (not game.infinite and inner.horizon == game.horizon)


def default_claim(case: Case, name: str) -> Claim | None:
    """A built-in's own claim (see the module's docstring); ``None`` for plug-ins and wrong variants."""
    base = name.partition("[")[0]
    if base not in ESTIMATORS:
        return None
    estimator = builtin_for(case, name)
    unbiased = estimator.convention == "from-zero" and estimator.baseline in UNBIASED_BASELINES
    if base == "sampled-exact":
        whole = sees_game(case) and case.inner.horizon == case.game.horizon
        return Claim("model", "model-S") if whole and unbiased else None
    if base == "naive":
        return Claim("gradient", "grad V^i(theta)") if sees_game(case) and unbiased else None
    declared = declared_terms(estimator, case)
    if declared is not None:
        return Claim("fingerprint", tuple(float(c) for c in declared))
    outer_baseline = estimator.baseline != "none" and estimator.baseline in UNBIASED_BASELINES
    if estimator.convention == "from-zero" and outer_baseline and not estimator.current_advantage:
        # of zero mean given phi_L, it changes no expectation
        options = {**split_name(name)[1], "baseline": "none", "inner_baseline": estimator.inner_baseline}
        if estimator.inner_baseline == "linear":
            options["baseline_fit"] = estimator.baseline_fit
        return Claim("estimator", f"{base}[{', '.join(f'{key}={value}' for key, value in options.items())}]")
    return None


def claim_of(case: Case, name: str) -> Claim | None:
    """The case's claim for ``name``, or the built-in's default."""
    return dict(case.estimators.claims).get(name) or default_claim(case, name)


ADAPTED_ONLY = tuple(1.0 if term == "adapted" else 0.0 for term in BASIS)


def partner_of(case: Case, claim: Claim) -> tuple[str, Estimator, tuple] | None:
    """The built-in that a plug-in's claim is paired with (see the module's docstring): its name,
    the estimator whose inner loop draws the plug-in's batches, and, for a fingerprint claim, the
    weights of the basis surrogates' parts whose sum is the partner (:func:`basis_weights`)."""
    if claim.kind == "estimator":
        estimator = builtin_for(case, claim.target)
        return (claim.target, estimator, ()) if estimator.inner else None
    if claim.kind == "model" and default_claim(case, "sampled-exact") == claim:
        return "sampled-exact", ESTIMATORS["sampled-exact"], ()
    if claim.kind == "fingerprint" and claim.target == ADAPTED_ONLY:
        return "REINFORCE at phi_L", FROZEN, ()
    if claim.kind == "fingerprint":
        weights = basis_weights(claim.target, case.inner.batch)
        timestep = any(key == "timestep" for key, _, _ in weights) and case.inner.horizon > 1
        if timestep and case.estimators.outer_batch != case.inner.batch:
            return None  # the timestep pairing's outer batch is K: other batches than the plug-in's
        return "the fingerprint's terms (basis surrogates)", FROZEN, weights
    return None


def partner_controls(case: Case, compiled: CompiledValues, partner: tuple, draws) -> np.ndarray:
    """Control variates of exactly zero mean for the paired test, row by row: every batch's summed
    score at the parameters that drew it, the outer batches' baseline terms
    (:func:`~mapg_verify.estimators.controls.baseline_controls`), and the partner's parts (its current, own and peer
    parts; for a fingerprint, each weighted term) less their exact expectations where those
    enumerate."""
    _, loop, weights = partner
    try:
        if weights:
            found = {key: expectation(plan(case, compiled, BASIS_ESTIMATORS[key])) for key, _, _ in weights}
            means = np.concatenate([getattr(found[key], part) for key, part, _ in weights])
        else:
            found = expectation(plan(case, compiled, loop))
            means = np.concatenate([found.current, found.own, found.peer])
    except InputError:
        return draws.zero_mean
    return np.hstack([draws.zero_mean, draws.components - means])


def reference_value(case: Case, truths: Truths, name: str, claim: Claim, design: Design):
    """The claim's exact value at the case's ``theta``, or ``None`` where it cannot be enumerated; a
    model among the case's is the one estimator ``name`` is compared with (:func:`truth_for`)."""
    x, i, compiled = case.flat_theta, case.inner.meta_agent, truths.compiled
    if claim.kind == "gradient":
        return compiled.gradient(x)[i, compiled.layout.slice(i)]
    if claim.kind == "fingerprint":
        rows = len(case.theta[i].ravel())
        return design.design[:rows] @ np.array(claim.target) if design.draws else None
    if claim.kind == "model":
        model = "expected" if claim.target == "model-E" else "sampled"
        if model in case.inner.models:
            return truth_for(case, truths, name)[model].total
    try:
        if claim.kind == "model":
            return (truths.expected() if claim.target == "model-E" else truths.sampled()).total
        return exact_expectation(case, compiled, claim.target).total
    except InputError:
        return None


def check_claim(
    case: Case,
    compiled: CompiledValues,
    truths: Truths,
    name: str,
    claim: Claim,
    exact,
    rows: np.ndarray,
    seed: int,
    design: Design,
    paired: tuple[str, np.ndarray] | None = None,
    eps: float = DOUBLE,
) -> CheckResult:
    """``claim:NAME`` (see the module's docstring); ``exact`` the estimator's expectation (``Parts``
    or ``None``), ``rows`` its Monte-Carlo rows, ``paired`` the partner's name and rows on the
    same batches (plug-ins with a partner)."""
    check = f"claim:{name}"
    reference = reference_value(case, truths, name, claim, design)
    mode = case.checks.claim_mode
    figures: dict = {"claim": claim.label}
    if mode == "auto":
        mode = "exact" if exact is not None and reference is not None else "statistical"
        if mode == "statistical":
            missing = "the estimator's" if exact is None else "the reference's"
            figures["exact mode"] = f"not testable: {missing} expectation does not enumerate here"
    figures["mode"] = mode
    if mode == "exact":
        if exact is None or reference is None:
            missing = "the estimator's" if exact is None else "the reference's"
            reason = f"{missing} expectation does not enumerate here"
            return untested(check, figures, f"exact mode, but {reason}; {EXACT_REMEDY}")
        try:
            return _exact(case, compiled, name, claim, exact.total, reference, design, figures, eps)
        except InputError as error:  # a fingerprint's draws too costly to enumerate
            if case.checks.claim_mode == "exact":
                return untested(check, figures, f"exact mode, but {error.reason}; {EXACT_REMEDY}")
            figures |= {"mode": "statistical", "exact mode": f"not testable: {error.reason}"}
    if paired is not None:
        partner, theirs, controls = paired
        differences = rows - theirs
        gap = float(np.max(np.abs(differences)) / max(float(np.max(np.abs(theirs))), case_floor(case, compiled)))
        if eps > DOUBLE and gap <= precision_tolerance(eps):  # equal batch by batch, to its own rounding
            figures |= {
                "against": f"{partner} on the same batches",
                "largest relative gap": gap,
                "machine epsilon": eps,
            }
            summary = (
                f"consistent: equal to {partner} on each of {len(rows):,} batches to {gap:.2g}{precision_note(eps)}"
            )
            return CheckResult(check, True, figures, summary)
        test, spread, method = paired_test(case, compiled, differences, controls)
        size = float(np.linalg.norm(reference if reference is not None else theirs.mean(axis=0)))
        figures["against"] = f"{partner} on the same batches ({method})"
        figures["largest relative gap"] = gap
        difference = test.mean
    elif reference is not None:
        test = mean_test(rows, reference, level=case.checks.level, scale=case_floor(case, compiled))
        spread, size = np.atleast_2d(np.cov(rows, rowvar=False)), float(np.linalg.norm(reference))
        figures["against"] = "the reference's exact value (Hotelling T^2)"
        difference = rows.mean(axis=0) - reference
    elif claim.kind == "fingerprint":  # model E and the gradient always have an exact value
        reason = f"{claim.label} cannot be enumerated for this case and has no paired partner"
        return untested(check, figures, f"{reason}; {ENUMERATION_REMEDY}")
    else:
        other = REFERENCE_ESTIMATOR.get(claim.target, claim.target)
        theirs = draw_rows(case, compiled, other, len(rows), rng_for(seed, case, f"claim reference {other}"))
        test = two_sample_test(rows, theirs, level=case.checks.level, scale=case_floor(case, compiled))
        spread = sum(np.atleast_2d(np.cov(r, rowvar=False)) for r in (rows, theirs))
        size = float(np.linalg.norm(theirs.mean(axis=0)))
        figures["against"] = f"{other}'s own Monte-Carlo rows (two-sample, unequal covariances)"
        difference = test.mean
    figures["relative difference measured"] = float(np.linalg.norm(difference)) / max(size, 1e-300)
    return _statistical(case, check, claim, test, spread, size, len(rows), figures)


def paired_test(case: Case, compiled: CompiledValues, differences: np.ndarray, controls: np.ndarray | None):
    """``E[differences] = 0`` at the case's level: Hotelling's T^2, regression-adjusted on
    ``controls`` (rows of exactly zero mean) where there are any; the test, the differences'
    (residual) covariance and the method in words."""
    scale = case_floor(case, compiled)
    if controls is None or not controls.shape[1]:
        test = mean_test(differences, np.zeros(differences.shape[1]), level=case.checks.level, scale=scale)
        return test, np.atleast_2d(np.cov(differences, rowvar=False)), "paired Hotelling T^2 on the differences"
    test, spread = adjusted_mean_test(differences, controls, level=case.checks.level, scale=scale)
    return test, spread, f"paired, regression-adjusted on {controls.shape[1]} control variates of zero mean"


def _exact(case, compiled, name, claim, value, reference, design: Design, figures: dict, eps: float) -> CheckResult:
    """Exact mode: on every draw of the design for a fingerprint claim, at ``theta`` otherwise."""
    scale = case_floor(case, compiled)
    if claim.kind == "fingerprint":  # an InputError where the draws cannot all be enumerated
        targets = draw_expectations(compiled, name, design, value)
        error = relative_error(np.concatenate(targets), design.design @ np.array(claim.target), scale)
        where = f"over {len(design.draws)} parameter draws"
    else:
        error, where = relative_error(value, reference, scale), "at theta"
    tolerance = precision_tolerance(eps)
    figures |= {"error": error, "tolerance": tolerance}
    held = error <= tolerance
    relation = "equals" if held else "differs from"
    verdict = "holds" if held else "does not hold"
    summary = f"{verdict}: exact expectation {relation} {claim.label} {'to' if held else 'by'} {error:.1e} {where} "
    summary += f"(tolerance {tolerance:.2g}{precision_note(eps)})"
    return CheckResult(f"claim:{name}", held, figures, summary)


def _statistical(case, check, claim, test, spread, size, samples, figures: dict) -> CheckResult:
    """Statistical mode's verdict, with the relative difference measured and the smallest one this
    budget detects (99% power): what a pass rules out, what a rejection is set beside."""
    level = case.checks.level
    figures |= {"T-squared": test.statistic if math.isfinite(test.statistic) else None, "level": level}
    figures |= {"p-value": test.p_value if not test.unvaried else None, "samples": samples}
    detectable = detectable_difference(test, spread, samples) / max(size, 1e-300)
    target = case.checks.relative_error
    budget = math.ceil(samples * (detectable / target) ** 2)
    figures |= {"smallest relative difference detected (99% power)": detectable, "samples for target": budget}
    figures |= {"target relative difference": target, "rank": test.rank, "unvaried": test.unvaried}
    return CheckResult(check, not test.rejected, figures, statistical_summary(figures, test.rejected))


def detectable_difference(test, spread: np.ndarray, samples: int) -> float:
    """The norm of the smallest mean difference ``test`` detects with 99% power in the least
    favourable direction: ``sqrt(lambda / N)`` times the noncentrality that gives that power,
    ``lambda`` the largest eigenvalue of the rows' (residual) covariance ``spread``."""
    largest = float(np.linalg.eigvalsh(spread)[-1]) if spread.size else 0.0
    return math.sqrt(_noncentrality(max(test.rank, 1), test.level) * max(largest, 0.0) / samples)


def statistical_summary(figures: dict, rejected: bool, holm: tuple[int, float] | None = None) -> str:
    """A statistical claim's one line, from its figures: the verdict (with Holm's family size and
    adjusted p-value where ``holm`` gives them), the test, and the relative difference measured
    beside the smallest one the budget detects, in the same units whatever the verdict."""
    verdict = "rejected" if rejected else "consistent"
    against = figures["against"].split(" (")[0]
    if figures["rank"] == 0 and not figures["unvaried"]:
        if figures.get("largest relative gap", 0.0) > DEFINITION_TOLERANCE:
            return (
                f"{verdict}: differs from {against} by terms of exactly zero mean only: batch by batch the two "
                f"differ by up to {figures['largest relative gap']:.3g} (relative), and the control variates "
                f"explain all of it, leaving rounding, on each of {figures['samples']:,} batches (T^2 0)"
            )
        return f"{verdict}: equal to {against}, to rounding, on each of {figures['samples']} batches (T^2 0)"
    if holm is not None:
        verdict += f" (Holm over {holm[0]}: adjusted p = {holm[1]:.3g} at level {figures['level']:g})"
    measured = figures["relative difference measured"]
    detectable = figures["smallest relative difference detected (99% power)"]
    summary = (
        f"{verdict}: claim {figures['claim']}, tested against {against}, T^2 {_g(figures['T-squared'])}, "
        f"p = {'0' if figures['p-value'] is None else format(figures['p-value'], '.3g')} at level "
        f"{figures['level']:g} ({figures['samples']:,} samples); "
        f"relative difference measured {measured:.3g}, "
    )
    if rejected and figures["unvaried"]:
        explained = "the control variates explain all the noise of the differences, not their mean"
        return summary + f"{explained}: any difference above rounding is detected" + diagnosis_text(figures)
    if rejected:
        return summary + f"this budget detects {detectable:.3g} or more with 99% power" + diagnosis_text(figures)
    target, budget = figures["target relative difference"], figures["samples for target"]
    return summary + (
        f"rules out {detectable:.3g} or more (99% power, least favourable direction); "
        f"{count_text(budget)} samples would rule out {target:g}"
    )


def diagnosis_text(figures: dict) -> str:
    """The sentence of a failed claim's diagnosis (:mod:`mapg_verify.checks.diagnosis`), to end its summary."""
    return f"; diagnosis: {figures['diagnosis']['sentence']}" if "diagnosis" in figures else ""


def _g(number: float | None) -> str:
    return "infinite" if number is None else f"{number:.3g}"


def _noncentrality(rank: int, level: float, power: float = DETECTION_POWER) -> float:
    """The noncentrality at which a chi-square test with ``rank`` degrees of freedom at ``level``
    has the given power (the large-sample law of both tests)."""
    critical = stats.chi2.isf(level, rank)
    return float(optimize.brentq(lambda lam: stats.ncx2.sf(critical, rank, lam) - power, 1e-6, 1e4))
