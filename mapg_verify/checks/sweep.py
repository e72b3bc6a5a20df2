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
from mapg_verify.exact.metagradient import MetaGradient
from mapg_verify.exact.truths import Truths
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import MODELS, Case


def truth_for(case: Case, truths: Truths, name: str) -> dict[str, MetaGradient]:
    """The models' truth an estimator is compared with, by model name: model S's with the
    estimator's own inner loop (:func:`model_s`); for an estimator of a meta-agent that does not
    learn (``lola-dice``), its own objective, LOLA's: both models with the meta-agent's rate 0."""
    alpha = own_rates(case, name)
    truth = truths.models(alpha)
    return {**truth, "sampled": model_s(case, truths, name, alpha)} if "sampled" in truth else truth


def own_rates(case: Case, name: str) -> tuple[float, ...]:
    """The inner rates of an estimator's objective: the case's, with the meta-agent's set to 0 for a
    meta-agent that does not learn."""
    estimator, inner = builtin_for(case, name), case.inner
    if estimator is None or estimator.self_learns:
        return inner.alpha
    return tuple(0.0 if k == inner.meta_agent else a for k, a in enumerate(inner.alpha))


def model_s(case: Case, truths: Truths, name: str, alpha: tuple[float, ...]) -> MetaGradient:
    """Model S at ``case``'s ``K`` and rates ``alpha`` with a built-in's inner baseline (a baseline
    changes the updates' law, so model S is computed with the same inner update)."""
    estimator = builtin_for(case, name)
    if estimator is None or estimator.inner_baseline == "none":
        return truths.sampled(case.inner.batch, alpha)
    return truths.sampled(case.inner.batch, alpha, estimator.inner_baseline, estimator.baseline_fit)


SWEEP_BATCHES = (1, 2, 4, 8)
SWEEP_RATES = (0.25, 0.5, 1.0)  # multiples of the case's inner rates


@dataclass(frozen=True, eq=False)
class Shared:
    """What every estimator of one case shares, computed once: the sweep's variants of the case
    with both models' truth, the fingerprint's :class:`~mapg_verify.checks.fingerprint.Design`, and
    the case's :class:`Truths`."""

    sweep: tuple[tuple[float, Case, np.ndarray, np.ndarray], ...]  # (rate factor, variant, E total, S total)
    design: Design
    truths: Truths


def shared(case: Case, truths: Truths, sweep: bool = True) -> Shared:
    """The fingerprint's design and, with ``sweep`` (and the case's ``[checks] sweep``), the sweep
    over ``K`` and the rates (both models needed), read from the case's :class:`Truths`."""
    variants = []
    if sweep and case.inner.models == MODELS and case.checks.sweep:
        for factor in SWEEP_RATES:
            for batch in SWEEP_BATCHES:
                variant = _variant(case, batch, tuple(factor * a for a in case.inner.alpha))
                alpha = variant.inner.alpha
                try:
                    sampled = truths.sampled(batch, alpha).total
                except InputError:  # over the cap: larger K are larger still
                    break
                variants.append((factor, variant, truths.expected(alpha).total, sampled))
    return Shared(tuple(variants), design_for(case, truths.compiled), truths)


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
        sampled = model_s(variant, context.truths, name, own_rates(variant, name)).total
        rows.append(
            {
                "K": variant.inner.batch,
                "alpha factor": factor,
                "relative bias vs model E": relative_bias(value, expected),
                "relative bias vs model S": relative_bias(value, sampled),
            }
        )
    return tuple(rows)
