"""Checks 3 to 5 of SPEC §5, and claims, for one estimator on one case, and the record the results keep.

3. ``implementation``: the Monte-Carlo mean of the estimator's rows against its own exact
   expectation, Hotelling's T-squared with Holm-corrected z-tests at the case's level.
4. ``bias``: the exact expectation (the Monte-Carlo mean where it cannot be enumerated) against
   each model's truth: relative bias ``||E - g|| / ||g||``, cosine, and the number of
   replicates ``n`` whose mean reaches a relative error ``eps`` in root mean square,
   ``n = tr(Sigma) / ((eps ||g||)^2 - ||E - g||^2)`` (never, when the bias alone exceeds it), and
   the estimator's own spread ``tr(Sigma) / (eps ||E||)^2`` (what a baseline reduces).
   Reported (``info``): what an estimator equals is judged by its claim
   (:mod:`mapg_verify.checks.claims`; ``sampled-exact`` claims model S, ``naive`` the plain
   gradient). Beside it, :func:`bias_sweep` records the relative bias against both models as ``K`` and the
   inner rates vary (built-in estimators, as far as the enumeration cap allows).
5. ``fingerprint``: least squares of the expectation on the exact terms of
   :data:`mapg_verify.spec.case.BASIS`, over the case's ``theta`` and further parameter draws,
   with 95% intervals from the residuals (zero width when the fit is exact, as it is for the
   estimators built from these terms), reported as ``info``. A declared fingerprint
   is the built-in's default claim, judged by the declared combination itself (``||design d - E||``
   floored at the error floor, 1e-10, so a saturated policy is judged on what it computes).
6. ``claim``: the estimator's claim, exactly or statistically (:mod:`mapg_verify.checks.claims`); a
   plug-in's failed claim carries its diagnosis (:mod:`mapg_verify.checks.diagnosis`).
7. ``inner-update``: a plug-in's own ``phi_l``, where it returns them, against the batches' parameters.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from mapg_verify.checks.claims import check_claim, claim_of, partner_controls, partner_of, statistical_summary
from mapg_verify.checks.diagnosis import diagnose
from mapg_verify.checks.fingerprint import fingerprint
from mapg_verify.checks.result import (
    DOUBLE,
    Bias,
    CheckResult,
    Spread,
    case_floor,
    info,
    precision_note,
    precision_tolerance,
    relative_bias,
    untested,
)
from mapg_verify.checks.statistics import holm_adjusted, mean_test
from mapg_verify.checks.sweep import Shared, bias_sweep, shared, truth_for
from mapg_verify.estimators.dispatch import builtin_for, draw_rows, inner_loop_for, resolve, rng_for
from mapg_verify.estimators.plugins import plugin_draws
from mapg_verify.estimators.records import PluginError
from mapg_verify.estimators.table import FROZEN, Parts, outer_of
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.truths import Truths
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import MODEL_LETTER, Case


@dataclass(frozen=True)
class EstimatorReport:
    """One estimator on one case: its exact expectation's terms (``total``, ``current``, ``own``,
    ``peer``; ``None``, and why under ``skipped``, where there is none), Monte-Carlo summary
    (``mean``, ``standard_error``, ``samples``), the options it ran with, checks 3 to 5, and, for
    the report's figures, the bias sweep's rows and the Monte-Carlo error curve."""

    name: str
    expectation: dict | None
    monte_carlo: dict | None
    options: dict
    checks: tuple[CheckResult, ...]
    skipped: dict
    sweep: tuple[dict, ...] = ()
    error_curve: tuple[dict, ...] = ()


def verify_estimator(
    case: Case,
    compiled: CompiledValues,
    truths: Truths,
    name: str,
    seed: int,
    exact: Parts | None,
    reason: str = "",
    context: Shared | None = None,
) -> EstimatorReport:
    """Checks 3 to 5 for estimator ``name`` given its exact expectation (``None``, and why, if it
    has none) and the case's :class:`Shared` context (computed here if not given); a plug-in's
    failure fails its checks, nothing more."""
    options = _options(case, name, seed)
    truth = truth_for(case, truths, name)
    skipped = {} if exact is not None else {"expectation": reason}
    claim, builtin = claim_of(case, name), builtin_for(case, name)
    if reason.startswith("plug-in"):
        failed = CheckResult(f"implementation:{name}", False, {}, reason)
        return EstimatorReport(name, None, None, options, (failed, *_not_run(name, reason, claim)), skipped)
    # a plug-in's claim is paired with its partner; a built-in's only where its fingerprint does
    # not enumerate (the identity of the surrogate's switches, sample by sample)
    pairs = claim is not None and (builtin is None or (exact is None and claim.kind == "fingerprint"))
    partner = partner_of(case, claim) if pairs else None
    paired, updates, eps = None, None, DOUBLE
    try:
        if builtin is None:
            draws = plugin_draws(
                case,
                compiled,
                resolve(name),
                case.estimators.samples,
                rng_for(seed, case, name),
                inner_loop_for(case, name) if partner is None else partner[1],
                () if partner is None else partner[2],
            )
            rows, updates = draws.rows, inner_update(case, name, draws.inner_update, draws.precision)
            if partner is not None:
                paired = (partner[0], draws.partner, partner_controls(case, compiled, partner, draws))
            eps = draws.precision
        elif partner is not None:
            rows, paired = _paired_builtin(case, compiled, name, partner, rng_for(seed, case, name))
        else:
            rows = draw_rows(case, compiled, name, case.estimators.samples, rng_for(seed, case, name))
    except PluginError as error:
        failed = CheckResult(f"implementation:{name}", False, {}, f"plug-in {error}")
        checks = (failed, *_not_run(name, f"plug-in {error}", claim))
        return EstimatorReport(name, _terms(exact), None, options, checks, {**skipped, "monte_carlo": str(error)})
    mean = rows.mean(axis=0)
    covariance = np.atleast_2d(np.cov(rows, rowvar=False))
    monte_carlo = {
        "mean": mean.tolist(),
        "standard_error": np.sqrt(np.diag(covariance) / len(rows)).tolist(),
        "samples": len(rows),
    }
    checks = []
    if exact is None:
        skipped["implementation"] = "no exact expectation: " + reason
        checks.append(info(f"implementation:{name}", {}, "not run: " + skipped["implementation"]))
    else:
        scale = case_floor(case, compiled)
        checks.append(implementation(name, rows, exact.total, case.checks.level, scale))
    checks.append(bias(case, compiled, truth, name, exact.total if exact is not None else mean, covariance))
    context = context or shared(case, truths)
    try:
        known = exact.total if exact is not None else None
        checks.append(fingerprint(case, compiled, name, context.design, known))
    except InputError as error:
        skipped["fingerprint"] = error.reason
        checks.append(info(f"fingerprint:{name}", {}, f"not run: {error.reason}"))
    except PluginError as error:
        checks.append(CheckResult(f"fingerprint:{name}", False, {}, f"plug-in {error}"))
    if claim is not None:
        claimed = check_claim(case, compiled, truths, name, claim, exact, rows, seed, context.design, paired, eps)
        if claimed.verdict == "fail" and builtin is None:
            claimed = diagnose(case, compiled, truths, name, claim, claimed, exact, seed, context.design)
        checks.append(claimed)
    if updates is not None:
        checks.append(updates)
    sweep = bias_sweep(compiled, name, context) if builtin else ()
    curve = error_curve(rows, exact.total) if exact is not None else ()
    return EstimatorReport(name, _terms(exact), monte_carlo, options, tuple(checks), skipped, sweep, curve)


def inner_update(case: Case, name: str, deviation: float | None, eps: float = DOUBLE) -> CheckResult | None:
    """``inner-update:NAME`` for a plug-in: its own ``phi_1 .. phi_L`` against the parameters that
    drew its batches, ``max |phi_hat - phi| / max(|phi|, 1)`` over every replicate within
    :func:`precision_tolerance` of the precision it computes in (1e-10 in float64) (``info`` when
    it returns none; nothing at ``L = 0``)."""
    check = f"inner-update:{name}"
    if case.inner.steps == 0:
        return None
    if deviation is None:
        return info(check, {}, "not checked: the plug-in returns no phi_l (return (estimate, phis) to check them)")
    tolerance = precision_tolerance(eps)
    held = deviation <= tolerance
    figures = {"largest relative deviation": deviation, "tolerance": tolerance, "machine epsilon": eps}
    note = precision_note(eps)
    if held:
        summary = f"holds: its phi_l are the batches' parameters to {deviation:.1e}{note}"
        return CheckResult(check, True, figures, summary)
    summary = (
        f"does not hold: its phi_l differ from the parameters that drew its batches by up to {deviation:.2g} "
        f"(relative, tolerance {tolerance:.2g}{note}): its estimate was scored on batches its own inner update "
        "would not draw"
    )
    if eps <= DOUBLE and deviation <= precision_tolerance(float(np.finfo(np.float32).eps)):
        summary += (
            "; the deviation is at float32's level: if the code computes in float32 somewhere (a float32 "
            "constant), declare it with precision = 'float32' on the function"
        )
    return CheckResult(check, False, figures, summary)


def _not_run(name: str, reason: str, claim) -> tuple[CheckResult, ...]:
    """The bias, fingerprint and claim records of an estimator that produced no estimate: shown, not
    dropped; its claim, where it has one, is ``untested`` (claimed, and not tested)."""
    reported = tuple(info(f"{check}:{name}", {}, f"not run: {reason}") for check in ("bias", "fingerprint"))
    if claim is None:
        return reported
    return (*reported, untested(f"claim:{name}", {"claim": claim.label}, f"no estimate to test ({reason})"))


def error_curve(rows: np.ndarray, exact: np.ndarray, points: int = 8) -> tuple[dict, ...]:
    """``||mean of the first N rows - exact|| / ||exact||`` at ``points`` sizes ``N``, evenly spaced
    in log from 10 rows to all of them, beside its root-mean-square prediction
    ``sqrt(tr(Sigma) / N) / ||exact||``: how the Monte-Carlo error falls with the budget."""
    sizes = np.unique(np.geomspace(min(10, len(rows)), len(rows), points).astype(int))
    means = np.cumsum(rows, axis=0)[sizes - 1] / sizes[:, None]
    scale = max(float(np.linalg.norm(exact)), 1e-300)
    errors = np.linalg.norm(means - exact, axis=1) / scale
    spread = float(np.sqrt(np.sum(np.var(rows, axis=0, ddof=1)))) / scale
    return tuple(
        {"samples": int(n), "relative error": float(e), "predicted": spread / float(np.sqrt(n))}
        for n, e in zip(sizes, errors, strict=True)
    )


def _terms(parts: Parts | None) -> dict | None:
    if parts is None:
        return None
    return {"total": parts.total.tolist(), **{f: getattr(parts, f).tolist() for f in ("current", "own", "peer")}}


def _paired_builtin(case: Case, compiled, name: str, partner: tuple, rng) -> tuple[np.ndarray, tuple | None]:
    """A built-in's rows and its claim's partner on the very same batches (the paired test of a
    fingerprint that does not enumerate: the identity of the surrogate's switches, sample by
    sample); its own rows alone where it draws other batches than the partner's loop."""
    start = copy.deepcopy(rng)
    try:
        own = (builtin_for(case, name),)
        draws = plugin_draws(case, compiled, None, case.estimators.samples, rng, partner[1], partner[2], own)
    except RuntimeError:  # another inner loop (an inner baseline): no batch in common
        return draw_rows(case, compiled, name, case.estimators.samples, start), None
    return draws.rows, (partner[0], draws.partner, partner_controls(case, compiled, partner, draws))


def _options(case: Case, name: str, seed: int) -> dict:
    estimator = builtin_for(case, name)
    settings = case.estimators
    options = {
        "pairing": (estimator.pairing if estimator and estimator.pairing else settings.pairing),
        "outer": settings.outer,
        "samples": settings.samples,
        "batch": case.inner.batch,
        "outer_batch": settings.outer_batch,
        "steps": case.inner.steps,
        "objective": case.inner.objective,
        "seed": seed,
    }
    if estimator is not None:
        outer, outer_batch = outer_of(estimator, case)
        options.update(
            {
                "outer": outer,
                "outer_batch": outer_batch,
                "returns": estimator.convention,
                "baseline": estimator.baseline,
                "inner_baseline": estimator.inner_baseline,
                "gae_lambda": estimator.gae_lambda if estimator.baseline != "none" else None,
                "dice_lambda": estimator.dice_lambda if estimator.jacobian == "loaded-dice" else None,
                "model S truth": (
                    "the plain inner loop"
                    if estimator.inner_baseline == "none"
                    else f"the inner loop with the {estimator.inner_baseline} baseline"
                ),
            }
        )
        if "linear" in (estimator.baseline, estimator.inner_baseline):
            options["baseline_fit"] = estimator.baseline_fit  # as-shipped: dkkim93/meta-mapg's misaligned rows
    else:
        plugin, claims = resolve(name), dict(case.estimators.claims)
        loop = "model S" if inner_loop_for(case, name) is FROZEN else claims[name].target
        options.update({"framework": plugin.framework, "batched": plugin.batched, "inner loop": loop})
    return options


MAX_SHARE = 0.1  # Lindeberg: no replicate may carry more of the spread than this for T^2's normal law


def implementation(name: str, rows: np.ndarray, exact: np.ndarray, level: float, scale: float = 0.0) -> CheckResult:
    """Check 3: ``E[rows] = exact`` by Hotelling's T-squared at ``level``; ``scale`` is the
    game's error floor (:func:`mapg_verify.checks.error_floor`; differences below 1e-12 of it
    are rounding). Rows that do not vary along a direction in which their mean differs from
    ``exact`` cannot be tested at this budget: rare outcomes that no replicate drew (a saturated
    policy) carry the difference, or the estimator is deterministic and wrong; the check then
    says so, as ``info``, with ``T^2`` null. Likewise when one replicate carries more than
    :data:`MAX_SHARE` of the spread ``sum_n d_n^2`` (``d_n`` its Mahalanobis distance from the
    mean): the central limit behind the F law needs every replicate's share to be small
    (Lindeberg's condition), and a rare large outcome drawn once breaks it (Gaussian rows:
    about ``2 log(N) / (N rank)``, 0.003 at 200 rows of rank 10)."""
    test = mean_test(rows, exact, level=level, scale=scale)
    z = (test.mean - exact) / np.where(test.standard_error > 0, test.standard_error, 1.0)
    figures = {
        "T-squared": test.statistic if math.isfinite(test.statistic) else None,
        "p-value": test.p_value if not test.unvaried else None,
        "level": level,
        "rank": test.rank,
        "directions without variance where the mean differs": test.unvaried,
        "largest |z|": float(np.max(np.abs(z))),
        "components rejected (Holm)": int(test.holm_rejected.sum()),
        "samples": len(rows),
    }
    if test.unvaried:
        gap = float(np.max(np.abs(test.mean - exact)))
        summary = (
            f"not testable at {len(rows)} samples: the rows do not vary along {test.unvaried} direction(s) in "
            f"which their mean differs from the expectation by up to {gap:.2g} (outcomes no replicate drew, "
            "or a deterministic estimator that is wrong); T^2 null; raise [estimators] samples"
        )
        return info(f"implementation:{name}", figures, summary)
    figures["largest replicate's share of the spread"] = test.largest_share
    if test.largest_share > MAX_SHARE:
        summary = (
            f"not testable at {len(rows)} samples: one replicate carries {test.largest_share:.0%} of the rows' "
            f"spread (rare, large outcomes), so the normal law behind T^2 ({test.statistic:.3g}) does not hold "
            "yet; raise [estimators] samples"
        )
        return info(f"implementation:{name}", {**figures, "p-value": None}, summary)
    verdict = "rejected" if test.rejected else "consistent"
    return CheckResult(
        f"implementation:{name}", not test.rejected, figures, f"{verdict}: {implementation_text(figures)}"
    )


def implementation_text(figures: dict) -> str:
    """The implementation test's figures in words (its verdict aside)."""
    t2, p = figures["T-squared"], figures["p-value"]
    return f"T^2 {t2:.3g}, p = {p:.3g} at level {figures['level']:g} ({figures['samples']:,} samples)"


def samples_needed(bias_vector: np.ndarray, covariance: np.ndarray, scale: float, target: float) -> float:
    """Replicates for a root-mean-square relative error ``target``: ``inf`` if the bias alone exceeds it."""
    room = (target * scale) ** 2 - float(bias_vector @ bias_vector)
    return math.inf if room <= 0 else float(math.ceil(np.trace(covariance) / room))


def bias(case: Case, compiled: CompiledValues, truth: dict, name: str, value, covariance) -> CheckResult:
    """Check 4 (see the module's docstring)."""
    figures: dict = {}
    parts = []
    target = case.checks.relative_error
    for model, gradient in truth.items():
        reference = gradient.total
        scale = float(np.linalg.norm(reference))
        difference = np.asarray(value) - reference
        relative = relative_bias(value, reference)
        cosine = float(value @ reference / max(np.linalg.norm(value) * scale, 1e-300))
        needed = samples_needed(difference, covariance, scale, target)
        letter = MODEL_LETTER[model]
        figures |= Bias(letter, relative, cosine, None if math.isinf(needed) else needed).figures(target)
        text = "never" if math.isinf(needed) else f"{needed:.0f}"
        parts.append(f"{letter}: bias {relative:.2g}, cos {cosine:.3f}, n({target:g}) {text}")
    own_scale = float(np.linalg.norm(value))
    spread = samples_needed(np.zeros_like(np.asarray(value)), covariance, own_scale, target) if own_scale else math.inf
    figures |= Spread(target, None if math.isinf(spread) else spread).figures()
    summary = "; ".join(parts) or "no model truth asked for"
    estimator = builtin_for(case, name)
    if estimator is not None and not estimator.self_learns:
        summary = "against LOLA's objective (both models with the meta-agent's rate 0): " + summary
    return info(f"bias:{name}", figures, summary)  # a bias is judged only where it is claimed (claim:NAME)


def holm_family(reports: dict, level: float) -> dict:
    """The statistical checks of one case's estimators (``implementation`` and statistical
    ``claim`` checks) as one family: each passes unless Holm's step-down procedure at ``level``
    rejects it, so that a case's false-alarm rate stays at ``level`` however many estimators and
    claims it lists. Raw p-values stay in the figures."""
    family = [
        (name, index)
        for name, report in reports.items()
        for index, check in enumerate(report.checks)
        if check.kind in ("implementation", "claim")
        and check.verdict != "info"
        and check.figures.get("p-value") is not None
    ]
    if not family:
        return reports
    adjusted = holm_adjusted(np.array([reports[name].checks[index].figures["p-value"] for name, index in family]))
    checks = {name: list(report.checks) for name, report in reports.items()}
    for (name, index), p in zip(family, adjusted, strict=True):
        check, reject = checks[name][index], bool(p < level)
        figures = {**check.figures, "family size (Holm)": len(family), "adjusted p-value (Holm)": float(p)}
        if not reject:
            figures.pop("diagnosis", None)  # a claim that fails only before Holm's step-down needs none
        holm = (len(family), float(p)) if len(family) > 1 else None
        if check.kind == "claim":
            summary = statistical_summary(figures, reject, holm)
        else:
            verdict = "rejected" if reject else "consistent"
            if holm:
                verdict += f" (Holm over {len(family)}: adjusted p = {p:.3g} at level {level:g})"
            summary = f"{verdict}: {implementation_text(figures)}"
        checks[name][index] = dataclasses.replace(
            check, passed=not reject, figures=figures, summary=summary, verdict=""
        )
    return {name: dataclasses.replace(report, checks=tuple(checks[name])) for name, report in reports.items()}
