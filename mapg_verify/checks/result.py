"""The record every check returns, and the two error measures all checks share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.problem.game import DifferentiableGame, Game
from mapg_verify.spec.case import Case

DEFINITION_TOLERANCE = 1e-10  # an estimator against what it equals by definition, or as declared
VERDICTS = ("pass", "fail", "info")


@dataclass(frozen=True)
class CheckResult:
    """A named check's verdict, its figures (name -> number, or ``None`` with the reason in the
    summary) and a one-line summary. ``verdict`` is ``pass`` (a claim was tested and held),
    ``fail``, or ``info``: reported, or not testable here, with the reason; ``passed`` is false
    only for ``fail``."""

    name: str
    passed: bool
    figures: dict
    summary: str
    verdict: str = ""

    def __post_init__(self) -> None:
        verdict = self.verdict or ("pass" if self.passed else "fail")
        if verdict not in VERDICTS or (verdict == "fail") == self.passed:
            raise ValueError(f"check {self.name}: verdict {verdict!r} with passed={self.passed}")
        object.__setattr__(self, "verdict", verdict)


def info(name: str, figures: dict, summary: str) -> CheckResult:
    """A check that reports, or that could not run (the summary says why): neither pass nor fail."""
    return CheckResult(name, True, figures, summary, "info")


def relative_error(a, b, scale: float = 1e-12) -> float:
    """``||a - b||_inf / max(||b||_inf, scale)``: relative, absolute (at ``scale``) below it."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), scale, 1e-300))


def error_floor(game: Game | DifferentiableGame, values) -> float:
    """``1e-3`` of the scale rounding is relative to: ``max |R| sum_{t<H} gamma^t`` (a bound on
    every ``|V^k|``), or ``max_k |V^k(theta)|`` (at least 1) for a differentiable game."""
    if isinstance(game, DifferentiableGame):
        return 1e-3 * max(float(np.max(np.abs(values))), 1.0)
    return max(1e-3 * float(np.max(np.abs(game.rewards), initial=0.0)) * game.discount_mass(), 1e-300)


def relative_bias(value, reference) -> float:
    """``||value - reference||_2 / ||reference||_2``: the bias check's measure (a direction's whole
    error, where :func:`relative_error`'s max norm bounds every component)."""
    value, reference = np.asarray(value, dtype=float), np.asarray(reference, dtype=float)
    return float(np.linalg.norm(value - reference) / max(float(np.linalg.norm(reference)), 1e-300))


def case_floor(case: Case, compiled: CompiledValues) -> float:
    """:func:`error_floor` at the case's own ``theta``."""
    return error_floor(case.game, compiled.value(case.flat_theta))
