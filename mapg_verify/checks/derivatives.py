"""Check ``derivative-oracles``: the exact derivative of ``[derivatives]`` against three oracles.

The symbolic derivative (:mod:`mapg_verify.exact.derivatives`) is compared with (a) autograd's
Jacobian nested ``order`` times through numpy's linear algebra (tolerance 1e-10), (b) Richardson
differences of the compiled derivative of one order less (1e-6), and (c) mpmath's multivariate
differentiation at 50 digits on up to :data:`MPMATH_ENTRIES` distinct entries (1e-12). Errors are
``||a - b||_inf / max(||b||_inf, F)``, ``F`` the case's error floor.
"""

from __future__ import annotations

import numpy as np

from mapg_verify.checks.exact import TOLERANCE
from mapg_verify.checks.result import CheckResult, error_floor, relative_error
from mapg_verify.exact.derivatives import derivative_of, truncated
from mapg_verify.oracles.autodiff import autograd_value_derivative, autograd_values
from mapg_verify.oracles.differences import richardson
from mapg_verify.oracles.highprecision import mpmath_derivative
from mapg_verify.spec.case import Case

MPMATH_ENTRIES = 12


def derivative_truth(case: Case) -> tuple[dict, CheckResult]:
    """The exact derivative as the results file records it, and its check against the oracles."""
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
    return record, check
