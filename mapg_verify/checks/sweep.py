"""Which model truth each estimator is compared with, and the bias sweep (check 4's companion):
model S with the estimator's own inner loop, and the relative bias against both models as ``K``
and the inner rates vary."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mapg_verify.checks.fingerprint import Design, design_for
from mapg_verify.checks.result import relative_bias
from mapg_verify.estimators.dispatch import builtin_for, exact_expectation
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.metagradient import MetaGradient, expected_update, meta_gradients, sampled_update
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import MODELS, Case


def truth_for(case: Case, compiled: CompiledValues, truth: dict, name: str) -> dict:
    """The models' truth an estimator is compared with: model S's with the estimator's own inner
    loop (:func:`inner_truth`); for an estimator of a meta-agent that does not learn
    (``lola-dice``), its own objective, LOLA's: both models with the meta-agent's rate 0."""
    estimator = builtin_for(case, name)
    if estimator is not None and not estimator.self_learns:
        i = case.inner.meta_agent
        alpha = tuple(0.0 if k == i else a for k, a in enumerate(case.inner.alpha))
        case = dataclasses.replace(case, inner=dataclasses.replace(case.inner, alpha=alpha))
        truth = meta_gradients(compiled, case)
    own = inner_truth(case, compiled, name) if "sampled" in truth else None
    return truth if own is None else {**truth, "sampled": own}


def inner_truth(case: Case, compiled: CompiledValues, name: str) -> MetaGradient | None:
    """Model S's meta-gradient with a built-in's inner baseline (a baseline changes the updates'
    law, so model S is computed with the same inner update); ``None`` for the plain inner loop."""
    estimator = builtin_for(case, name)
    if estimator is None or estimator.inner_baseline == "none":
        return None
    x, inner = case.flat_theta, case.inner
    return sampled_update(
        compiled, case.game, case.policy, x, inner, baseline=estimator.inner_baseline, fit=estimator.baseline_fit
    )


SWEEP_BATCHES = (1, 2, 4, 8)
SWEEP_RATES = (0.25, 0.5, 1.0)  # multiples of the case's inner rates


@dataclass(frozen=True, eq=False)
class Shared:
    """What every estimator of one case shares, computed once: the sweep's variants of the case
    with both models' truth, and the fingerprint's :class:`~mapg_verify.checks.fingerprint.Design`."""

    sweep: tuple[tuple[float, Case, np.ndarray, np.ndarray], ...]  # (rate factor, variant, E total, S total)
    design: Design


def shared(case: Case, compiled: CompiledValues, sweep: bool = True) -> Shared:
    """The fingerprint's design and, with ``sweep`` (and the case's ``[checks] sweep``), the sweep
    over ``K`` and the rates (both models needed)."""
    variants = []
    x, i = case.flat_theta, case.inner.meta_agent
    if sweep and case.inner.models == MODELS and case.checks.sweep:
        for factor in SWEEP_RATES:
            for batch in SWEEP_BATCHES:
                variant = _variant(case, batch, tuple(factor * a for a in case.inner.alpha))
                try:
                    sampled = sampled_update(compiled, case.game, case.policy, x, variant.inner).total
                except InputError:  # over the cap: larger K are larger still
                    break
                inner = variant.inner
                expected = expected_update(compiled, x, inner.alpha, inner.steps, i, inner.objective).total
                variants.append((factor, variant, expected, sampled))
    return Shared(tuple(variants), design_for(case, compiled))


def _variant(case: Case, batch: int, alpha: tuple[float, ...]) -> Case:
    """The case with another ``K`` and rates; paired outer batches follow ``K``."""
    inner = dataclasses.replace(case.inner, batch=batch, alpha=alpha)
    paired = case.estimators.outer_batch == case.inner.batch
    settings = dataclasses.replace(case.estimators, outer_batch=batch if paired else case.estimators.outer_batch)
    return dataclasses.replace(case, inner=inner, estimators=settings)


def bias_sweep(compiled: CompiledValues, name: str, context: Shared) -> tuple[dict, ...]:
    """Relative bias ``||E - g|| / ||g||`` of a built-in estimator against model E's and model S's
    truth, over ``K`` in :data:`SWEEP_BATCHES` (while the enumeration fits the case's cap) and the
    case's rates times :data:`SWEEP_RATES` (model S with the estimator's inner loop, :func:`truth_for`)."""
    rows = []
    for factor, variant, expected, sampled in context.sweep:
        estimator = builtin_for(variant, name)
        uses = {estimator.baseline, estimator.inner_baseline} if estimator else set()
        if "leave-one-out" in uses and min(variant.inner.batch, variant.estimators.outer_batch) < 2:
            continue  # leave-one-out needs two trajectories per batch
        try:
            value = exact_expectation(variant, compiled, name).total
        except InputError:
            continue
        sampled = truth_for(variant, compiled, {"sampled": MetaGradient(sampled, *[sampled] * 3)}, name)[
            "sampled"
        ].total
        rows.append(
            {
                "K": variant.inner.batch,
                "alpha factor": factor,
                "relative bias vs model E": relative_bias(value, expected),
                "relative bias vs model S": relative_bias(value, sampled),
            }
        )
    return tuple(rows)
