"""A logged run's updates against the exact expected update of a named built-in estimator.

At each logged step ``n`` and agent ``k`` the logged update is ``d = theta^k_{n+1} - theta^k_n`` and
the expected one ``u = lr_k E[estimate^k(theta_n)]``, the estimator's exact expectation with the
case's inner loop and agent ``k`` as the meta-agent (:func:`~mapg_verify.estimators.dispatch.exact_expectation`,
by enumeration). Per step: the projection ``<d, u> / <u, u>`` (1 when the update's component
along the expected one has its size), the relative difference ``||d - u|| / ||u||`` and the
z-score of the difference along ``u``: ``<d - u, u/||u||> / (lr_k s)``, with ``s`` the standard
deviation of ``<estimate, u/||u||>`` over :data:`SPREAD_DRAWS` Monte-Carlo draws of the estimator
at ``theta_n`` (the case's batches, not necessarily the logger's: the z-score is only as right as
that match). Where the expectation cannot be enumerated, the reason is the result.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mapg_verify.checks.audit import TrainingLog
from mapg_verify.estimators.dispatch import draw_rows, exact_expectation, rng_for
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import Case

SPREAD_DRAWS = 200


def audit_updates(case: Case, compiled: CompiledValues, log: TrainingLog, seed: int = 0) -> dict:
    """Per agent and step: ``projection``, ``relative difference`` and ``z``; or a ``reason``."""
    if case.inner.horizon is None:
        return {"reason": "the case gives no [inner] horizon for the estimator's trajectories"}
    steps = {k: [] for k in range(len(log.lr))}
    for n in range(len(log.params) - 1):
        for k, rate in enumerate(log.lr):
            at = dataclasses.replace(
                case, theta=tuple(log.params[n]), inner=dataclasses.replace(case.inner, meta_agent=k)
            )
            try:
                expected = rate * exact_expectation(at, compiled, log.estimator).total.ravel()
            except InputError as error:
                return {"reason": f"the exact expectation of {log.estimator} cannot be enumerated: {error.reason}"}
            rows = rate * draw_rows(at, compiled, log.estimator, SPREAD_DRAWS, rng_for(seed, case, "audit", n, k))
            steps[k].append(_step(log.params[n + 1, k].ravel() - log.params[n, k].ravel(), expected, rows))
    return {"reason": None, "draws": SPREAD_DRAWS, "agents": steps}


def _step(logged: np.ndarray, expected: np.ndarray, rows: np.ndarray) -> dict:
    """One step's figures (``rows``: Monte-Carlo updates ``lr * estimate``, one per row)."""
    norm = float(np.linalg.norm(expected))
    if norm == 0.0:
        return {"projection": None, "relative difference": None, "z": None, "norm": 0.0}
    direction = expected / norm
    spread = float(np.std(rows.reshape(len(rows), -1) @ direction, ddof=1))
    along = float((logged - expected) @ direction)
    return {
        "projection": float(logged @ expected) / norm**2,
        "relative difference": float(np.linalg.norm(logged - expected)) / norm,
        "z": along / spread if spread > 0 else None,
        "norm": norm,
    }
