"""The checks of ``[derivatives]``: the exact derivative against three oracles, and its estimators.

Check ``derivative-oracles``: the exact derivative against three oracles.

The symbolic derivative (:mod:`mapg_verify.exact.derivatives`) is compared with (a) autograd's
Jacobian nested ``order`` times through numpy's linear algebra (tolerance 1e-10), (b) Richardson
differences of the compiled derivative of one order less (1e-6), and (c) mpmath's multivariate
differentiation at 50 digits on up to :data:`MPMATH_ENTRIES` distinct entries (1e-12). Errors are
``||a - b||_inf / max(||b||_inf, F)``, ``F`` the case's error floor.

Per estimator (:mod:`mapg_verify.estimators.derivatives`), against its exact expectation ``E``
(enumerated) and the exact derivative ``d``:

- ``derivative-claim:NAME`` for the estimators unbiased by construction (all at first order;
  ``dice``, ``dice-baseline``, ``loaded-dice`` with ``dice_lambda = 1`` at every order):
  ``||E - d||_inf / max(||d||_inf, F) <= 1e-10``, pass or fail; for the others
  ``derivative-bias:NAME``, the relative bias ``||E - d|| / ||d||`` and the cosine, reported (``info``);
- ``derivative-implementation:NAME`` (with a seed, as in ``run``): the Monte-Carlo mean of its
  ``samples`` estimates against ``E``, Hotelling's T-squared on the distinct entries (past
  ``samples / 10`` of them, on ``samples / 10`` fixed random combinations: :func:`tested_combinations`),
  Holm over the section's estimators at the case's level;
- with ``batches``, the papers' protocol (:func:`correlation_curve`), reported (``info``) and drawn.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mapg_verify.checks.exact import TOLERANCE
from mapg_verify.checks.result import CheckResult, error_floor, info, relative_error
from mapg_verify.checks.statistics import holm, mean_test
from mapg_verify.estimators.derivatives import UNBIASED, derivative_expectation, draw_derivatives
from mapg_verify.estimators.dispatch import rng_for
from mapg_verify.exact.derivatives import derivative_of, distinct_indices, truncated
from mapg_verify.oracles.autodiff import autograd_value_derivative, autograd_values
from mapg_verify.oracles.differences import richardson
from mapg_verify.oracles.highprecision import mpmath_derivative
from mapg_verify.spec.case import Case

MPMATH_ENTRIES = 12
CLAIM_TOLERANCE = 1e-10


def derivative_truth(case: Case, seed: int | None = None) -> tuple[dict, list[CheckResult]]:
    """The exact derivative and its estimators as the results file records them, and their checks."""
    settings, x = case.derivatives, case.flat_theta
    game = case.game if settings.horizon is None else truncated(case.game, settings.horizon)
    exact = derivative_of(case.game, case.policy, settings.of, settings.order, settings.horizon)
    lower = derivative_of(case.game, case.policy, settings.of, settings.order - 1, settings.horizon)
    tensor = exact(x)
    scale = error_floor(game, np.asarray(autograd_values(game, case.policy, x)))
    step = max(1, len(exact.indices) // MPMATH_ENTRIES)
    chosen = exact.indices[::step][:MPMATH_ENTRIES]
    high = np.array([float(mpmath_derivative(game, case.policy, x, settings.of, index)) for index in chosen])
    errors = {
        "autograd": relative_error(
            tensor, autograd_value_derivative(game, case.policy, x, settings.of, settings.order), scale
        ),
        "richardson": relative_error(tensor, richardson(lower, x), scale),
        "mpmath": relative_error(np.array([tensor[index] for index in chosen]), high, scale),
    }
    failed = [oracle for oracle, error in errors.items() if not error <= TOLERANCE[oracle]]
    summary = ", ".join(f"{oracle} {error:.1e} (tolerance {TOLERANCE[oracle]:.0e})" for oracle, error in errors.items())
    label = f"d^{settings.order} V^{settings.of}" + (
        "" if settings.horizon is None else f" over {settings.horizon} steps"
    )
    figures = {
        **{f"{label} vs {oracle}": error for oracle, error in errors.items()},
        "error floor": scale,
        "mpmath entries": len(chosen),
    }
    check = CheckResult(
        "derivative-oracles", not failed, figures, summary if not failed else "failed: " + ", ".join(failed)
    )
    record = {
        "order": settings.order,
        "of": settings.of,
        "horizon": settings.horizon,
        "exact": tensor.tolist(),
        "source": "symbolic (symengine, each distinct entry differentiated once, compiled with CSE)",
        "oracles": "autograd nested, Richardson differences of one order less, mpmath at 50 digits",
    }
    estimators, checks = estimator_checks(case, tensor, scale, seed)
    if estimators:
        record["estimators"] = estimators
    return record, [check, *checks]


def claims_unbiased(case: Case, name: str) -> bool:
    """Whether the estimator is unbiased by construction at the case's order: every one at first order
    (each gradient is ``sum_t grad l_t`` times a return or an advantage); ``dice`` and
    ``dice-baseline`` at every order, and ``loaded-dice`` with ``dice_lambda = 1``."""
    settings = case.derivatives
    return settings.order == 1 or name in UNBIASED or (name == "loaded-dice" and settings.dice_lambda == 1.0)


def estimator_checks(case: Case, exact: np.ndarray, scale: float, seed: int | None) -> tuple[dict, list]:
    """Each estimator's record and its claim or bias check; with a seed, the implementation checks."""
    settings, level, records, checks, tests = case.derivatives, case.checks.level, {}, [], {}
    distinct = [np.ravel_multi_index(index, exact.shape) for index in distinct_indices(len(exact), settings.order)]
    basis = (
        tested_combinations(len(distinct), settings.samples, rng_for(seed, case, "derivatives"))
        if seed is not None
        else None
    )
    for name in settings.estimators:
        expectation = derivative_expectation(case, name)
        bias = float(np.linalg.norm(expectation - exact) / max(np.linalg.norm(exact), scale))
        cosine = float(np.sum(expectation * exact) / max(np.linalg.norm(expectation) * np.linalg.norm(exact), 1e-300))
        error = relative_error(expectation, exact, scale)
        figures = {"relative bias": bias, "cosine": cosine, "error vs exact": error}
        records[name] = {"expectation": expectation.tolist(), "bias": bias, "cosine": cosine}
        if claims_unbiased(case, name):
            held = error <= CLAIM_TOLERANCE
            summary = f"exact expectation equals d^{settings.order} V^{settings.of} to {error:.1e}"
            summary = ("unbiased: " if held else "does not hold: ") + summary + f" (tolerance {CLAIM_TOLERANCE:.0e})"
            checks.append(CheckResult(f"derivative-claim:{name}", held, figures, summary))
        else:
            checks.append(info(f"derivative-bias:{name}", figures, f"relative bias {bias:.2g}, cosine {cosine:.3f}"))
        if seed is not None:
            rows = draw_derivatives(case, name, rng_for(seed, case, f"derivatives:{name}"))
            tested, target = rows[:, distinct], expectation.ravel()[distinct]
            if basis is not None:
                tested, target = tested @ basis.T, basis @ target
            tests[name] = mean_test(tested, target, level=level, scale=scale)
            records[name]["monte_carlo"] = {
                "samples": len(rows),
                "mean": rows.mean(axis=0).reshape(exact.shape).tolist(),
            }
            if settings.batches:
                curve = correlation_curve(case, name, exact, seed)
                records[name]["curve"] = curve
                checks.append(info(f"derivative-correlation:{name}", *_curve_summary(curve)))
    if tests:
        rejected = holm(np.array([test.p_value for test in tests.values()]), level)
        components = len(distinct) if basis is None else f"{len(basis)} fixed random combinations of {len(distinct)}"
        for (name, test), reject in zip(tests.items(), rejected, strict=True):
            summary = (
                f"T^2 {test.statistic:.3g}, p = {test.p_value:.3g} on {components} entries "
                f"(Holm over {len(tests)}, level {level})"
            )
            figures = {
                "T^2": test.statistic if np.isfinite(test.statistic) else None,
                "p-value": test.p_value,
                "rank": test.rank,
                "samples": settings.samples,
                "components tested": len(distinct) if basis is None else len(basis),
            }
            verdict = ("inconsistent: " if reject else "consistent: ") + summary
            checks.append(CheckResult(f"derivative-implementation:{name}", not reject, figures, verdict))
    return records, checks


SAMPLES_PER_COMPONENT = 10  # Hotelling's test needs far more rows than components to have power


def tested_combinations(entries: int, samples: int, rng: np.random.Generator) -> np.ndarray | None:
    """``None`` when the ``entries`` distinct entries number at most ``samples / 10``; else a fixed
    ``(samples // 10, entries)`` matrix of independent normal rows, whose combinations of the
    entries are tested instead. Under the null ``E[W x] = W E[x]``, so the level holds; a wrong
    expectation moves a random combination with probability 1. With fewer rows than components,
    Hotelling's test cannot be computed: a sample covariance of ``N`` rows has rank ``N - 1``, and
    every direction outside it would look like a mean that moves without variance."""
    if entries * SAMPLES_PER_COMPONENT <= samples:
        return None
    return rng.standard_normal((max(samples // SAMPLES_PER_COMPONENT, 1), entries))


BAND = (2.5, 97.5)  # percentiles of the per-seed figures: the band that holds 95% of single estimates


def correlation_curve(case: Case, name: str, exact: np.ndarray, seed: int) -> dict:
    """The papers' protocol: at each batch size ``b``, ``repeats`` estimates from ``b`` fresh
    trajectories each (one seed each); per estimate, the Pearson correlation of its distinct entries
    with the exact derivative's, and its relative error ``||est - d|| / ||d||``; over the seeds, the
    mean and the 2.5-97.5 percentile band. Entries zero in ``d`` and in every estimate (parameters that
    cannot matter, such as those of an agent with one action) are left out and counted."""
    settings = case.derivatives
    distinct = [np.ravel_multi_index(index, exact.shape) for index in distinct_indices(len(exact), settings.order)]
    draws = {}
    for batch in settings.batches:
        sized = dataclasses.replace(
            case, derivatives=dataclasses.replace(settings, batch=batch, samples=settings.repeats)
        )
        draws[batch] = draw_derivatives(sized, name, rng_for(seed, case, f"curve:{name}:{batch}"))[:, distinct]
    truth = exact.ravel()[distinct]
    live = (truth != 0) | np.any([np.any(rows != 0, axis=0) for rows in draws.values()], axis=0)
    truth = truth[live]
    curve = {
        "batch": list(settings.batches),
        "repeats": settings.repeats,
        "entries": int(live.sum()),
        "left out": int((~live).sum()),
    }
    figures = {"correlation": [], "relative error": []}
    for rows in draws.values():
        rows = rows[:, live]
        centred, target = rows - rows.mean(axis=1, keepdims=True), truth - truth.mean()
        denominator = np.linalg.norm(centred, axis=1) * np.linalg.norm(target)
        with np.errstate(invalid="ignore", divide="ignore"):
            correlation = np.where(denominator > 0, centred @ target / denominator, np.nan)
        error = np.linalg.norm(rows - truth, axis=1) / max(np.linalg.norm(truth), 1e-300)
        for key, values in (("correlation", correlation), ("relative error", error)):
            values = values[np.isfinite(values)]  # a constant estimate has no correlation
            low, high = np.percentile(values, BAND) if len(values) else (np.nan, np.nan)
            mean = float(values.mean()) if len(values) else np.nan
            figures[key].append({"mean": mean, "low": float(low), "high": float(high)})
    return curve | figures


def _curve_summary(curve: dict) -> tuple[dict, str]:
    """The info row of a curve: correlation and relative error at the smallest and largest batch."""
    first, last = 0, len(curve["batch"]) - 1
    figures = {
        f"{key} at batch {curve['batch'][at]}": curve[key][at]["mean"]
        for key in ("correlation", "relative error")
        for at in (first, last)
    }
    summary = (
        f"correlation {curve['correlation'][first]['mean']:.3f} -> {curve['correlation'][last]['mean']:.3f}, "
        f"relative error {curve['relative error'][first]['mean']:.3g} -> {curve['relative error'][last]['mean']:.3g} "
        f"(batch {curve['batch'][first]} -> {curve['batch'][last]}, mean over {curve['repeats']} seeds)"
    )
    return figures, summary
