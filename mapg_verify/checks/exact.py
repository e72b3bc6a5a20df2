"""Named verification checks (SPEC §5), each returning a :class:`CheckResult` with its figures.

``oracles`` (check 1): the compiled symbolic values ``V``, gradients ``dV/dx``
and the Jacobian of the simultaneous gradient (each agent's rows of its own
Hessian) against (a) autograd through numpy linear algebra, (b)
Richardson-extrapolated central differences of the compiled values (for
gradients) and simultaneous gradient (for the Jacobian), (c) mpmath at 50
digits (values; gradients too with ``mpmath_gradient=True``).

Every error is ``||a - b||_inf / max(||b||_inf, F)`` with ``F`` a thousandth of the game's value
scale (:func:`error_floor`: ``1e-3 max |R|`` times the discount mass): relative for figures of
the size of values and gradients, absolute at ``F`` for figures far smaller. Rounding is
relative to the terms a figure is computed from (of size ``max |R|``), not to a gradient of
1e-40 at a saturated policy; at ``F`` it is ``1e-13`` or less, so every tolerance below stays a
statement about the method's error, never about rounding.
Tolerances (of ``oracles``): autograd 1e-10 and mpmath 1e-12 (both evaluate the same
mathematics in floating point, so only rounding separates them); Richardson
1e-6 (truncation ``O(h^4)`` with ``h = 1e-3`` plus rounding ``~ eps S/h``; a
wrong derivative is off by order one).
"""

from __future__ import annotations

import autograd
import numpy as np

from mapg_verify.checks.result import CheckResult, error_floor, relative_error
from mapg_verify.exact.backend import case_values
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.enumeration import count_batches, count_trajectories, enumerate_trajectories
from mapg_verify.exact.metagradient import expected_update, inner_path, lola
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.exact.truths import Truths
from mapg_verify.oracles.autodiff import (
    autograd_derivatives,
    autograd_gap_coefficient,
    autograd_meta_objective,
    autograd_sampled_objective,
)
from mapg_verify.oracles.differences import richardson
from mapg_verify.oracles.highprecision import mpmath_gradient, mpmath_values
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import MODEL_LETTER, Case

TOLERANCE = {"autograd": 1e-10, "richardson": 1e-6, "mpmath": 1e-12}


def oracle_agreement(
    case: Case, compiled: CompiledValues | None = None, *, mpmath_gradients: bool = False
) -> CheckResult:
    """Check 1: the compiled values, gradients and Hessians against three independent oracles."""
    compiled = compiled or case_values(case)
    x = case.flat_theta
    value, gradient, (step_gradient, jacobian) = (
        compiled.value(x),
        compiled.gradient(x),
        compiled.gradient_and_jacobian(x),
    )
    ref_value, ref_gradient, ref_hessian = autograd_derivatives(case.game, case.policy, x)
    layout, scale = compiled.layout, error_floor(case.game, value)

    def error(a, b) -> float:
        return relative_error(a, b, scale)

    errors = {
        "value vs autograd": (error(value, ref_value), "autograd"),
        "gradient vs autograd": (error(gradient, ref_gradient), "autograd"),
        "step's gradient vs autograd": (error(step_gradient, ref_gradient), "autograd"),
        "jacobian vs autograd": (error(jacobian, layout.own_parts(ref_hessian)), "autograd"),
        "gradient vs richardson": (error(gradient, richardson(compiled.value, x)), "richardson"),
        "jacobian vs richardson": (
            error(jacobian, richardson(lambda p: layout.own_parts(compiled.gradient(p)), x)),
            "richardson",
        ),
        "value vs mpmath": (error(value, _floats(mpmath_values(case.game, case.policy, x))), "mpmath"),
    }
    if mpmath_gradients:
        exact = np.array(mpmath_gradient(case.game, case.policy, x), dtype=float)
        errors["gradient vs mpmath"] = (error(gradient, exact), "mpmath")
    failed = [name for name, (e, oracle) in errors.items() if not e <= TOLERANCE[oracle]]
    used = {oracle for _, oracle in errors.values()}
    per_oracle = {oracle: max(e for e, o in errors.values() if o == oracle) for oracle in TOLERANCE if oracle in used}
    summary = ", ".join(f"{oracle} {e:.1e} (tolerance {TOLERANCE[oracle]:.0e})" for oracle, e in per_oracle.items())
    figures = {name: e for name, (e, _) in errors.items()}
    figures["error floor"] = scale
    return CheckResult("oracles", not failed, figures, summary if not failed else "failed: " + ", ".join(failed))


def _floats(values) -> np.ndarray:
    return np.array([float(v) for v in values])


IDENTITY_TOLERANCE = 1e-12  # identities that hold by algebra: only rounding separates the sides
LOLA_RATES = np.geomspace(1e-2, 1e-4, 5)  # small enough that alpha^3 terms barely tilt the fit


def expected_identities(
    case: Case, compiled: CompiledValues | None = None, truths: Truths | None = None
) -> CheckResult:
    """Model E identities at the case's ``theta`` and inner-loop settings (SPEC §3).

    ``total = current + own + peer``; ``current = 0``; ``peer = 0`` when every peer's
    rate is 0; the meta-agent's own shaping vanishes when its rate is 0, leaving
    ``own = grad_{phi^i} V^i(phi_L)``; one step with every rate 0 is the plain
    gradient; LOLA's exact gradient and the gradient of its complete first-order
    expansion differ by ``O(alpha^2)``: over alpha in [1e-4, 1e-2], ``gap / alpha^2`` at the
    smallest alpha whose gap is above rounding (1e-8 of the error floor) is at most 3 times its
    largest value at the two largest alphas. An ``O(alpha)`` gap grows ``gap / alpha^2`` tenfold
    per decade and fails; an ``alpha^2`` gap, with or without an ``alpha^3`` term that
    crosses it, passes. The fitted exponent is reported beside it, and the one for the paper's
    Eq. 6, which is not tested: Eq. 6 omits a term of order alpha (see
    :mod:`mapg_verify.metagradient`).
    """
    compiled = compiled or case_values(case)
    x, inner, i = case.flat_theta, case.inner, case.inner.meta_agent
    own_rows = compiled.layout.slice(i)
    truth = (truths or Truths(case, compiled)).expected()
    no_peers = tuple(a if k == i else 0.0 for k, a in enumerate(inner.alpha))
    no_self = tuple(0.0 if k == i else a for k, a in enumerate(inner.alpha))
    still = expected_update(compiled, x, no_self, inner.steps, i, "terminal")
    phi_last = inner_path(compiled, x, no_self, inner.steps)[-1]
    lolas = [lola(compiled, x, (rate,) * compiled.n_agents, i) for rate in LOLA_RATES]
    scale = error_floor(case.game, compiled.value(x))
    taylor = _gap_exponent([g.exact - g.taylor for g in lolas], scale)
    eq6 = _gap_exponent([g.exact - g.first_order for g in lolas], scale)
    errors = {
        "total - (current + own + peer)": relative_error(truth.current + truth.own + truth.peer, truth.total, scale),
        "current": relative_error(truth.current, 0.0, scale),
        "peer with peers' alpha = 0": relative_error(
            expected_update(compiled, x, no_peers, inner.steps, i, inner.objective).peer, 0.0, scale
        ),
        "own - grad_phi^i V^i with own alpha = 0": relative_error(
            still.own, compiled.gradient(phi_last)[i, own_rows], scale
        ),
        "alpha = 0, one step, vs plain gradient": relative_error(
            expected_update(compiled, x, (0.0,) * len(inner.alpha), 1, i).total,
            compiled.gradient(x)[i, own_rows],
            scale,
        ),
    }
    quadratic = _quadratic([g.exact - g.taylor for g in lolas], scale)
    passed = all(e <= IDENTITY_TOLERANCE for e in errors.values()) and quadratic
    figures = {**errors, "LOLA Taylor gap exponent": taylor, "LOLA Eq. 6 gap exponent": eq6, "error floor": scale}
    summary = f"identities to {max(errors.values()):.1e} (tolerance {IDENTITY_TOLERANCE:.0e}); "
    summary += f"LOLA gap ~ alpha^{_exponent_text(taylor)} (complete first order), alpha^{_exponent_text(eq6)} (Eq. 6)"
    return CheckResult("identities-expected", passed, figures, summary)


def _gap_exponent(gaps: list[np.ndarray], scale: float) -> float | None:
    """The slope of log ||gap|| against log alpha; ``None`` when every gap is rounding noise
    (below 1e-9 of the error floor)."""
    sizes = np.array([np.max(np.abs(gap)) for gap in gaps])
    if np.all(sizes <= 1e-9 * scale):
        return None
    return float(np.polyfit(np.log(LOLA_RATES), np.log(sizes), 1)[0])


def _quadratic(gaps: list[np.ndarray], scale: float) -> bool:
    """Whether the gaps (at :data:`LOLA_RATES`, decreasing) are ``O(alpha^2)`` (see
    :func:`expected_identities`); true when fewer than three are above rounding."""
    sizes = np.array([np.max(np.abs(gap)) for gap in gaps])
    above = sizes > 1e-8 * scale
    if above.sum() < 3:
        return True
    ratios = sizes / LOLA_RATES**2
    smallest = np.flatnonzero(above)[-1]
    return bool(ratios[smallest] <= 3.0 * np.max(ratios[:2]))


def _exponent_text(exponent: float | None) -> str:
    return "(equal to rounding)" if exponent is None else f"{exponent:.2f}"


GAP_BATCHES = (1, 2, 4, 8, 16, 32, 64)
NOISE_BOUND = 0.5  # the largest update noise (logit units) at which the 1/K expansion is judged


def sampled_identities(case: Case, compiled: CompiledValues | None = None, truths: Truths | None = None) -> CheckResult:
    """Model S identities (SPEC §3), with errors floored at :func:`error_floor`:
    ``total = current + own + peer`` and ``peer = 0`` with REINFORCE inner updates (1e-12 each);
    and model S tends to model E: ``S_K = E + c/K + O(K^-2)``, ``c`` exact
    (:func:`mapg_verify.oracles.autograd_gap_coefficient`, one inner step, inner trajectories as
    long as the game's).

    The limit is judged over the sizes ``K = 1, 2, 4, .., 64`` that the enumeration cap allows and
    at which the expansion applies: the inner update's noise ``sigma_K = sqrt(lambda_max(A
    Sigma_1 A) / K)`` at most :data:`NOISE_BOUND` (the expansion is in powers of the update's
    noise, and a softmax bends over one logit). With three such sizes or more, it fails when
    ``y_K = K (S_K - E)`` neither halves its distance to ``c`` over the last two doublings (a
    quarter, asymptotically) nor comes within half of ``|c|``: what a wrong ``c``, or a gap that
    does not close, does. With fewer, or for ``L >= 2``, or trajectories shorter than the game,
    the gaps are reported, not judged (a pre-asymptotic gap may cross zero, and rise, at any
    ``K`` below the bound: seen at ``K = 4..16`` with rates of 4).
    """
    compiled = compiled or case_values(case)
    x = case.flat_theta
    truths = truths or Truths(case, compiled)
    truth, expected = truths.sampled(), truths.expected().total
    scale = error_floor(case.game, compiled.value(x))
    errors = {
        "total - (current + own + peer)": relative_error(truth.current + truth.own + truth.peer, truth.total, scale),
        "peer / |total|": relative_error(truth.peer, 0.0, scale),
    }
    sizes, gaps = [], []
    for batch in GAP_BATCHES:
        try:
            gaps.append(truths.sampled(batch).total - expected)
        except InputError:  # over the enumeration cap: the sweep stops here
            break
        sizes.append(batch)
    limit = _limit(case, compiled, x, sizes, gaps, scale)
    passed = all(e <= IDENTITY_TOLERANCE for e in errors.values()) and limit["passed"]
    figures = {
        **errors,
        **{
            f"gap to model E, K = {k}": relative_error(g + expected, expected, scale)
            for k, g in zip(sizes, gaps, strict=True)
        },
        **limit["figures"],
        "error floor": scale,
    }
    trend = " -> ".join(f"{figures[f'gap to model E, K = {k}']:.2g}" for k in sizes)
    summary = f"identities to {max(errors.values()):.0e}; S-E gap over K = {', '.join(map(str, sizes))}: {trend}"
    return CheckResult("identities-sampled", passed, figures, f"{summary}; {limit['summary']}")


def _limit(case: Case, compiled: CompiledValues, x, sizes: list, gaps: list, scale: float) -> dict:
    """The judgement of ``K (S_K - E) -> c`` (see :func:`sampled_identities`)."""
    game, inner = case.game, case.inner
    if game.infinite or inner.horizon != game.horizon:
        return {"passed": True, "figures": {}, "summary": "inner trajectories shorter than the game: not judged"}
    if inner.steps != 1:
        return {"passed": True, "figures": {}, "summary": "L >= 2: the 1/K coefficient is derived for L = 1 only"}
    c = autograd_gap_coefficient(game, case.policy, x, inner)
    noise = _update_noise(case, compiled, x)
    judged = [n for n, k in enumerate(sizes) if noise / np.sqrt(k) <= NOISE_BOUND]
    scaled = [k * g for k, g in zip(sizes, gaps, strict=True)]
    figures = {
        "1/K coefficient c (|c|)": float(np.max(np.abs(c))),
        "update noise sigma_1": noise,
        **{f"|K (S_K - E) - c|, K = {sizes[n]}": float(np.max(np.abs(scaled[n] - c))) for n in range(len(sizes))},
    }
    if len(judged) < 3:
        text = f"K (S_K - E) -> c not judged: {len(judged)} size(s) with update noise <= {NOISE_BOUND}"
        return {"passed": True, "figures": figures, "summary": text}
    last, before = (float(np.max(np.abs(scaled[judged[n]] - c))) for n in (-1, -3))
    floor = 1e-6 * scale * sizes[judged[-1]]
    approaches = last <= 0.5 * before + floor or last <= 0.5 * float(np.max(np.abs(c))) + floor
    text = f"|K (S_K - E) - c| {before:.2g} -> {last:.2g} at K = {sizes[judged[-3]]} -> {sizes[judged[-1]]}"
    return {
        "passed": approaches,
        "figures": figures,
        "summary": text + ("" if approaches else " (does not approach c)"),
    }


def _update_noise(case: Case, compiled: CompiledValues, x) -> float:
    """``sqrt(lambda_max(A Sigma_1 A))``: the spread of one trajectory's inner update."""
    trajectories = enumerate_trajectories(case.game, case.inner.horizon)
    terms = trajectory_terms(case.game, case.policy, compiled.layout, trajectories, x, second_order=False)
    weights = np.exp(terms.log_prob)
    updates = compiled.layout.per_parameter(case.inner.alpha) * terms.reinforce
    centred = updates - weights @ updates
    return float(np.sqrt(max(np.linalg.eigvalsh((centred.T * weights) @ centred)[-1], 0.0)))


META_TOLERANCE = 1e-8  # autograd through the inner loop rounds differently over L steps and many batches
ORACLE_BATCH_LIMIT = 2_000  # autograd over the enumerated objective is slow beyond this many batches


def meta_oracle_errors(case: Case, compiled: CompiledValues | None = None, truths: Truths | None = None) -> dict:
    """Error of each asked-for model's exact total against its autograd oracle, at the value
    scale (:func:`relative_error` with :func:`error_floor`; model name -> error, or ``None``
    where the enumeration exceeds :data:`ORACLE_BATCH_LIMIT`)."""
    compiled = compiled or case_values(case)
    truth = (truths or Truths(case, compiled)).models()
    x, inner = case.flat_theta, case.inner
    own = compiled.layout.slice(inner.meta_agent)
    scale = error_floor(case.game, compiled.value(x))
    errors: dict = {}
    if "expected" in inner.models:
        meta = autograd_meta_objective(
            case.game, case.policy, x, inner.alpha, inner.steps, inner.meta_agent, inner.objective
        )
        errors["expected"] = relative_error(truth["expected"].total, autograd.grad(meta)(x[own]), scale)
    if "sampled" in inner.models:
        n = count_trajectories(case.game, inner.horizon)
        if count_batches(n, inner.batch, inner.steps) > ORACLE_BATCH_LIMIT:
            errors["sampled"] = None
        else:
            objective = autograd_sampled_objective(case.game, case.policy, x, inner)
            errors["sampled"] = relative_error(truth["sampled"].total, autograd.grad(objective)(x[own]), scale)
    return errors


def meta_oracles(case: Case, compiled: CompiledValues | None = None, truths: Truths | None = None) -> CheckResult:
    """The exact meta-gradient of each model against autograd through the whole inner loop
    (model E) or the whole enumerated objective (model S); tolerance 1e-8, relative to the larger
    of the meta-gradient and :func:`error_floor`."""
    errors = meta_oracle_errors(case, compiled, truths)
    checked = {model: error for model, error in errors.items() if error is not None}
    passed = all(error <= META_TOLERANCE for error in checked.values())
    parts = [f"model {MODEL_LETTER[model]} {error:.1e}" for model, error in checked.items()]
    parts += [
        f"model {MODEL_LETTER[model]} not checked (over {ORACLE_BATCH_LIMIT} batches)"
        for model, error in errors.items()
        if error is None
    ]
    figures = {f"{model} vs autograd": error for model, error in errors.items()}
    return CheckResult("meta-oracles", passed, figures, "; ".join(parts) + f" (tolerance {META_TOLERANCE:.0e})")
