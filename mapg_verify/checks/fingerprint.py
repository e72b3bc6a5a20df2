"""Check 5, the term fingerprint: the estimator's exact expectation fitted on the exact terms of
:data:`mapg_verify.spec.case.BASIS` over the case's ``theta`` and further parameter
draws, with 95% intervals from the residuals. Reported (``info``): a fingerprint is judged only
where it is claimed (a built-in's declared one by default, :mod:`mapg_verify.checks.claims`)."""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mapg_verify.checks.result import CheckResult, case_floor, info
from mapg_verify.estimators.dispatch import STATISTICAL_ONLY, estimator_of, exact_expectation, inner_loop_for, resolve
from mapg_verify.estimators.expectations import expectation
from mapg_verify.estimators.plugins import count_text, plugin_calls
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import BASIS_ESTIMATORS, basis_weights
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import BASIS, Case


def basis(case: Case, compiled: CompiledValues) -> np.ndarray:
    """The exact terms of :data:`BASIS` at the case's ``theta``, as columns ``(d, 7)``
    (:func:`basis_weights` on each unit vector; one-step games have no timestep term)."""
    needed = [key for key in BASIS_ESTIMATORS if key != "timestep" or case.inner.horizon > 1]
    found = {key: expectation(plan(case, compiled, BASIS_ESTIMATORS[key])) for key in needed}
    columns = []
    for unit in np.eye(len(BASIS)):
        weights = basis_weights(unit, case.inner.batch)
        if all(key in found for key, _, _ in weights):
            columns.append(sum(weight * getattr(found[key], part) for key, part, weight in weights))
        else:  # the timestep term on a one-step game, where that pairing is the trajectory one
            columns.append(np.zeros_like(found["dice"].current))
    return np.stack(columns, axis=1)


def parameter_draws(case: Case, count: int) -> list[Case]:
    """The case itself and ``count - 1`` cases with parameters drawn around its scale (seeded by its name)."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    scale = max(float(np.sqrt(np.mean(np.concatenate([np.ravel(t) for t in case.theta]) ** 2))), 0.5)
    draws = [case]
    for _ in range(count - 1):
        theta = tuple(scale * rng.standard_normal(np.shape(part)) for part in case.theta)
        draws.append(dataclasses.replace(case, theta=theta))
    return draws


MAX_DRAWS = 24
FIT_TOLERANCE = 1e-8  # relative residual above which the expectation is not a combination of BASIS


@dataclass(frozen=True, eq=False)
class Design:
    """The fingerprint's parameter draws and their basis columns, stacked ``(draws * d, 5)``; and
    the game's error floor, for the declared combination's error. No draws: not enumerable."""

    draws: tuple[Case, ...]
    design: np.ndarray
    scale: float


def design_for(case: Case, compiled: CompiledValues) -> Design:
    """Draws are added, up to :data:`MAX_DRAWS`, until every term that is not 0 everywhere is
    identifiable (softmax gradients, say, repeat themselves)."""
    scale = case_floor(case, compiled)
    draws, design = [], []
    try:
        for count, draw_case in enumerate(parameter_draws(case, MAX_DRAWS), start=1):
            draws.append(draw_case)
            design.append(basis(draw_case, compiled))
            if count >= case.checks.fingerprint_draws and identifiable(np.concatenate(design)):
                break
    except InputError:  # not enumerable: no fingerprint
        draws, design = [], []
    stacked = np.concatenate(design) if design else np.zeros((0, len(BASIS)))
    return Design(tuple(draws), stacked, scale)


@dataclass(frozen=True)
class Fit:
    """The least-squares fit of an estimator's expectation on :data:`BASIS`: coefficient and 95%
    half-width per term (``None`` for a term that is 0 on every draw), the relative residual,
    and the stacked expectations it was fitted to (``None`` when read from a check's figures)."""

    coefficients: dict[str, float | None]
    half_widths: dict[str, float | None]
    residual: float
    target: np.ndarray | None = None

    @staticmethod
    def of(check: CheckResult) -> Fit | None:
        """The fit a ``fingerprint`` check reports; ``None`` where it was not run."""
        figures = check.figures
        if "relative residual" not in figures:
            return None
        coefficients = {term: figures[f"coefficient {term}"] for term in BASIS}
        half_widths = {term: figures[f"95% half-width {term}"] for term in BASIS}
        return Fit(coefficients, half_widths, figures["relative residual"])

    def present(self, term: str) -> bool:
        """Nonzero beyond its interval (absent: the term vanishes on this inner loop)."""
        value, half = self.coefficients[term], self.half_widths[term]
        return value is not None and abs(value) > max(1e-6, half or 0.0)


def draw_expectations(compiled: CompiledValues, name: str, context: Design, known=None) -> list[np.ndarray]:
    """Estimator ``name``'s exact expectation on each draw of ``context``; ``known`` is the one at
    the case's own ``theta`` (the first draw), when the caller has it, so it is not enumerated twice.
    A plug-in is refused in statistical mode, and where its further draws would take more calls than
    ``[estimators] plugin_calls`` (a batched plug-in takes one call per chunk of replicates)."""
    if not context.draws:
        raise InputError("inner.batch", "the fingerprint's exact terms cannot be enumerated for this case")
    if estimator_of(name) is None:
        draw, further = context.draws[0], len(context.draws) - (known is not None)
        if draw.checks.claim_mode == "statistical":
            raise InputError("checks.claim_mode", STATISTICAL_ONLY)
        calls = plugin_calls(draw, resolve(name), inner_loop_for(draw, name)) * further
        if calls > draw.estimators.plugin_calls:
            reason = f"the fit needs {count_text(calls)} plug-in calls over {len(context.draws)} parameter draws"
            raise InputError("estimators.plugin_calls", f"{reason}, above {draw.estimators.plugin_calls:,}")
    first = known if known is not None else exact_expectation(context.draws[0], compiled, name).total
    return [first] + [exact_expectation(draw_case, compiled, name).total for draw_case in context.draws[1:]]


def fit_fingerprint(compiled: CompiledValues, name: str, context: Design, known=None) -> Fit:
    """Estimator ``name``'s exact expectation on each draw of ``context``, fitted on the basis."""
    target = np.concatenate(draw_expectations(compiled, name, context, known))
    coefficients, intervals, residual = fit_terms(context.design, target)
    return Fit(dict(zip(BASIS, coefficients, strict=True)), dict(zip(BASIS, intervals, strict=True)), residual, target)


def fingerprint(
    case: Case, compiled: CompiledValues, name: str, context: Design | None = None, known=None
) -> CheckResult:
    """Check 5 (see the module's docstring), on the case's :class:`Design` (built here if not
    given); ``known`` the expectation at ``theta`` where the caller has it."""
    context = context or design_for(case, compiled)
    fit = fit_fingerprint(compiled, name, context, known)
    figures = {f"coefficient {term}": c for term, c in fit.coefficients.items()}
    figures |= {f"95% half-width {term}": h for term, h in fit.half_widths.items()}
    figures["relative residual"] = fit.residual
    figures["parameter draws"] = len(context.draws)
    shown = ", ".join(f"{term} {coefficient_text(c)}" for term, c in fit.coefficients.items())
    summary = f"{shown} (residual {fit.residual:.1e})"
    if fit.residual > FIT_TOLERANCE:
        summary = "outside the basis (cross-trajectory or cross-time products, or terms it lacks): " + summary
    return info(f"fingerprint:{name}", figures, summary)  # judged only where claimed (claim:NAME)


def kept_columns(design: np.ndarray) -> np.ndarray:
    """The columns that are not 0 on every draw."""
    scale = max(float(np.max(np.abs(design))), 1e-300)
    return np.max(np.abs(design), axis=0) > 1e-12 * scale


def identifiable(design: np.ndarray) -> bool:
    keep = kept_columns(design)
    return np.linalg.matrix_rank(design[:, keep]) == keep.sum() and len(design) > keep.sum()


def coefficient_text(value: float | None) -> str:
    """``n/a`` for a term that is 0 on every draw, rounding-level values as 0."""
    if value is None:
        return "n/a"
    return "0" if abs(value) < 1e-9 else f"{value:.3g}"


def fit_terms(design: np.ndarray, target: np.ndarray) -> tuple[list, list, float]:
    """Least squares over the nonzero columns; 95% half-widths from the residuals (``None`` when
    the columns are not identifiable). Rows that repeat each other (softmax) count as they are."""
    keep = kept_columns(design)
    solution, _, rank, _ = np.linalg.lstsq(design[:, keep], target, rcond=None)
    residual_vector = target - design[:, keep] @ solution
    relative = float(np.linalg.norm(residual_vector) / max(np.linalg.norm(target), 1e-300))
    dof = len(target) - rank
    half: list = [None] * int(keep.sum())
    if rank == keep.sum() and dof > 0:
        sigma2 = float(residual_vector @ residual_vector) / dof
        _, singular, right = np.linalg.svd(design[:, keep], full_matrices=False)
        unscaled = np.sum((right / singular[:, None]) ** 2, axis=0)  # diag((X^T X)^-1), never negative
        half = list(stats.t.ppf(0.975, dof) * np.sqrt(sigma2 * unscaled))
    coefficients: list = [None] * design.shape[1]
    intervals: list = [None] * design.shape[1]
    for index, c, h in zip(np.flatnonzero(keep), solution, half, strict=True):
        coefficients[index], intervals[index] = float(c), None if h is None else float(h)
    return coefficients, intervals, relative
