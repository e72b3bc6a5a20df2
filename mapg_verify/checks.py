"""Named verification checks (SPEC §5), each returning a :class:`CheckResult` with its figures.

``oracles`` (check 1): the compiled symbolic values ``V``, gradients ``dV/dx``
and Hessians ``d^2V/dx^2`` against (a) autograd through numpy linear
algebra, (b) Richardson-extrapolated central differences of the compiled
values (for gradients) and gradients (for Hessians), (c) mpmath at 50
digits (values; gradients too with ``mpmath_gradient=True``). Errors are
``||a - b||_inf / max(||b||_inf, 1e-12)``: relative, and absolute below 1e-12.
Tolerances: autograd 1e-10 and mpmath 1e-12 (both evaluate the same
mathematics in floating point, so only rounding separates them); Richardson
1e-6 (truncation ``O(h^4)`` with ``h = 1e-3`` plus rounding ``~ eps/h``; a
wrong derivative is off by order one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .cases import Case
from .compiled import CompiledValues, compile_game
from .oracles import autograd_derivatives, mpmath_gradient, mpmath_values, richardson

TOLERANCE = {"autograd": 1e-10, "richardson": 1e-6, "mpmath": 1e-12}


@dataclass(frozen=True)
class CheckResult:
    """A named check's verdict, its figures (name -> number) and a one-line summary."""

    name: str
    passed: bool
    figures: dict
    summary: str


def relative_error(a, b) -> float:
    """``||a - b||_inf / max(||b||_inf, 1e-12)``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def oracle_agreement(
    case: Case, compiled: CompiledValues | None = None, *, mpmath_gradients: bool = False
) -> CheckResult:
    """Check 1: the compiled values, gradients and Hessians against three independent oracles."""
    compiled = compiled or compile_game(case.game, case.policy)
    x = compiled.layout.flatten(case.theta)
    value, gradient, hessian = compiled.value(x), compiled.gradient(x), compiled.hessian(x)
    ref_value, ref_gradient, ref_hessian = autograd_derivatives(case.game, case.policy, x)
    errors = {
        "value vs autograd": (relative_error(value, ref_value), "autograd"),
        "gradient vs autograd": (relative_error(gradient, ref_gradient), "autograd"),
        "hessian vs autograd": (relative_error(hessian, ref_hessian), "autograd"),
        "gradient vs richardson": (relative_error(gradient, richardson(compiled.value, x)), "richardson"),
        "hessian vs richardson": (relative_error(hessian, richardson(compiled.gradient, x)), "richardson"),
        "value vs mpmath": (relative_error(value, _floats(mpmath_values(case.game, case.policy, x))), "mpmath"),
    }
    if mpmath_gradients:
        exact = np.array(mpmath_gradient(case.game, case.policy, x), dtype=float)
        errors["gradient vs mpmath"] = (relative_error(gradient, exact), "mpmath")
    failed = [name for name, (error, oracle) in errors.items() if not error <= TOLERANCE[oracle]]
    worst = max(errors, key=lambda name: errors[name][0] / TOLERANCE[errors[name][1]])
    summary = f"worst {worst}: {errors[worst][0]:.1e} (tolerance {TOLERANCE[errors[worst][1]]:.0e})"
    figures = {name: error for name, (error, _) in errors.items()}
    return CheckResult("oracles", not failed, figures, summary if not failed else "failed: " + ", ".join(failed))


def _floats(values) -> np.ndarray:
    return np.array([float(v) for v in values])


CHECKS: dict[str, tuple[str, Callable[..., CheckResult]]] = {
    "oracles": (
        "compiled symbolic V, grad V, hess V versus autograd, Richardson differences and mpmath",
        oracle_agreement,
    ),
}
