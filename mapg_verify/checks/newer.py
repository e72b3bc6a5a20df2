"""The newer estimators' published claims, settled exactly (README, "The field's newer estimators").

- ``loqa``: LOQA's taken-action-only shaping term against the chain rule through its own opponent
  model (:mod:`mapg_verify.exact.opponent_model`): relative gap and cosine, shaping and total;
- ``coala-pg``: each COALA-PG variant's exact expectation against the gradient of Theorem 3.1's
  objective (:mod:`mapg_verify.exact.coala`), with the share of the direct and shaping parts it
  recovers and its covariance's trace;
- ``pola-invariance``: one step of exact POLA and of exact LOLA from the same policy in two
  parameterisations (:mod:`mapg_verify.exact.proximal`), the largest gap between the policies
  they reach; invariance holds when POLA's gap is within the solves' precision (untested where POLA's
  outer solve stops short of its maximiser); also softmax logits shifted per state (``shift_claim``, the
  same policy at another point: LOLA's gradient is a function of the policy, so LOLA is invariant there
  too) and softmax policies against sigmoid ones in their own compiled games (``kind_claim``);
- ``advantage-alignment``: Theorems 1 and 2 of Duque et al. read as identities
  (:mod:`mapg_verify.exact.advantage_alignment`): LOLA's Eq. 6 shaping term per unit ``alpha``, and
  LOQA's chain-rule shaping term at an opponent that really is ``softmax(q / tau)``, each against the
  paper's, ``train.py``'s and the derived alignment term: the best factor, the residual after it, the
  cosine. "Holds up to a factor" when that residual is at most :data:`IDENTITY_TOLERANCE`.
"""

from __future__ import annotations

import numpy as np

from mapg_verify.checks.result import CheckResult, relative_error, untested
from mapg_verify.exact import advantage_alignment as aa
from mapg_verify.exact.coala import VARIANTS, CoalaTruth
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.opponent_model import opponent_model_gradients
from mapg_verify.exact.proximal import Reparameterisation, identity, lola_update, lookahead, pola_update, policies
from mapg_verify.problem.game import Game
from mapg_verify.problem.policies import POLICIES, Policy

IDENTITY_TOLERANCE = 1e-10  # relative residual of an identity between two exact closed forms
CODE_STEPS = 50  # train.py's episodes (max_traj_len) for the code variant on infinite-horizon games
SOLVE_TOLERANCE = 1e-9  # policy probabilities: the proximal solves stop at gradients of 1e-11 to 1e-12
CONVERGED = 1e-8  # POLA's outer gradient left above this: the step is not the proximal maximiser


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


def loqa_claim(game: Game, policy: Policy, x: np.ndarray, meta_agent: int = 0, temperature: float = 1.0):
    """``claim:loqa``: does LOQA's expected gradient equal the chain rule through softmax(Q / tau)?"""
    found = opponent_model_gradients(game, policy, x, meta_agent, temperature)
    shaping_gap = float(np.linalg.norm(found.taken - found.ideal) / max(np.linalg.norm(found.ideal), 1e-300))
    total_gap = float(np.linalg.norm(found.loqa_total - found.ideal_total) / np.linalg.norm(found.ideal_total))
    figures = {
        "shaping relative gap": shaping_gap,
        "shaping cosine": _cosine(found.taken, found.ideal),
        "total relative gap": total_gap,
        "total cosine": _cosine(found.loqa_total, found.ideal_total),
        "ideal shaping norm": float(np.linalg.norm(found.ideal)),
        "loqa shaping norm": float(np.linalg.norm(found.taken)),
    }
    held = total_gap <= 1e-10
    summary = (
        f"{'holds' if held else 'does not hold'}: LOQA's expected gradient differs from the chain rule through "
        f"its opponent model by {total_gap:.3g} relative (cosine {figures['total cosine']:.3f}); the shaping terms "
        f"by {shaping_gap:.3g} (cosine {figures['shaping cosine']:.3f})"
    )
    return CheckResult("claim:loqa", held, figures, summary)


def coala_claims(truth: CoalaTruth, batch: int) -> dict[str, CheckResult]:
    """``claim:coala-pg[VARIANT]``: is the variant's expectation ``grad J``? By exchangeability of the
    ``B`` trajectories given ``phi_m``, each mean is ``c_d direct + c_s shaping`` with
    ``(c_d, c_s) = (B w_own, w_future)``; the figures give that identity's error too."""
    results = {}
    for name, mean in truth.means.items():
        gap = relative_error(mean, truth.gradient)
        w_own, w_future = VARIANTS[name].weights(batch)
        figures = {
            "relative error": gap,
            "direct coefficient": batch * w_own,
            "shaping coefficient": w_future,
            "identity error": relative_error(mean, batch * w_own * truth.direct + w_future * truth.shaping),
            "covariance trace": float(np.trace(truth.covariances[name])),
        }
        held = gap <= 1e-10
        summary = (
            f"{'holds' if held else 'does not hold'}: E[{name}] = {batch * w_own:.3g} direct + {w_future:.3g} "
            f"shaping, off grad J by {gap:.3g} relative"
        )
        results[name] = CheckResult(f"claim:coala-pg[{name}]", held, figures, summary)
    return results


def _step(compiled, policy, reparameterisation, y, name, beta, alpha, meta_agent) -> tuple[np.ndarray, float]:
    """The base policies one POLA or LOLA step reaches from ``y``, and the outer gradient left (POLA)."""
    problem = lookahead(compiled, policy, reparameterisation, y)
    if name == "lola":
        return policies(problem, lola_update(problem, y, meta_agent, alpha)), 0.0
    y, gradient = pola_update(problem, y, meta_agent, *beta)
    return policies(problem, y), gradient


def _invariance(setups, label: str, beta, alpha, meta_agent) -> tuple[CheckResult, CheckResult]:
    """``claim:pola-invariance`` and LOLA's: one step from each of two behaviourally equivalent
    ``(compiled, policy, reparameterisation, y)``, the largest gap between the policies reached."""
    results = []
    for name in ("pola", "lola"):
        reached = [_step(*setup, name, beta, alpha, meta_agent) for setup in setups]
        gap = float(np.max(np.abs(reached[0][0] - reached[1][0])))
        held = gap <= SOLVE_TOLERANCE
        left = max(r[1] for r in reached)
        figures = {"policy gap": gap, "reparameterisation": label, "outer gradient left": left}
        if left > CONVERGED:
            reason = f"POLA's outer solve stopped at a gradient of {left:.2g} (unique optimum not reached)"
            results.append(untested(f"claim:{name}-invariance", figures, reason))
            continue
        summary = (
            f"{'holds' if held else 'does not hold'}: one {name.upper()} step reaches policies {gap:.2g} "
            f"apart under {label} (tolerance {SOLVE_TOLERANCE:g})"
        )
        results.append(CheckResult(f"claim:{name}-invariance", held, figures, summary))
    return results[0], results[1]


def invariance_claim(
    compiled: CompiledValues,
    policy: Policy,
    x: np.ndarray,
    other: Reparameterisation,
    beta: tuple[float, float] = (0.5, 0.5),
    alpha: tuple[float, float] = (1.0, 1.0),
    meta_agent: int = 0,
) -> tuple[CheckResult, CheckResult]:
    """``claim:pola-invariance`` and LOLA's, under ``other`` against the base parameterisation."""
    setups = [(compiled, policy, identity(compiled.layout), x), (compiled, policy, other, other.lift(x))]
    return _invariance(setups, other.name, beta, alpha, meta_agent)


def shift_claim(compiled, policy: Policy, x, shifts, beta=(0.5, 0.5), alpha=(1.0, 1.0), meta_agent: int = 0):
    """Softmax logits shifted per state (``shifts[k] (S,)`` added to every logit of state ``s``): the
    same policy at another point of the same parameterisation."""
    parts = [t + np.asarray(c, dtype=float)[:, None] for t, c in zip(compiled.layout.unflatten(x), shifts, strict=True)]
    base = identity(compiled.layout)
    setups = [(compiled, policy, base, x), (compiled, policy, base, compiled.layout.flatten(parts))]
    return _invariance(setups, "per-state logit shift", beta, alpha, meta_agent)


def kind_claim(softmax: CompiledValues, sigmoid: CompiledValues, x, beta=(0.5, 0.5), alpha=(1.0, 1.0), meta_agent=0):
    """Two-logit softmax policies at ``x`` against sigmoid policies at the logits' differences
    ``x[s, 0] - x[s, 1]`` (the same policies), each in its own compiled game."""
    logits = sigmoid.layout.flatten([t[:, 0] - t[:, 1] for t in softmax.layout.unflatten(x)])
    setups = [
        (softmax, POLICIES["softmax"], identity(softmax.layout), x),
        (sigmoid, POLICIES["sigmoid"], identity(sigmoid.layout), logits),
    ]
    return _invariance(setups, "softmax against sigmoid", beta, alpha, meta_agent)


def proportional(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """``reference ~ c estimate``: the least-squares ``c``, the relative residual ``|ref - c est| / |ref|``
    and the cosine; a norm below ``1e-12`` counts as 0 (then ``c = 0``, residual 1, unless both are)."""
    r_norm, e_norm = float(np.linalg.norm(reference)), float(np.linalg.norm(estimate))
    if r_norm < 1e-12 or e_norm < 1e-12:
        both = r_norm < 1e-12 and e_norm < 1e-12
        return {"factor": 0.0, "residual": 0.0 if both else 1.0, "cosine": 0.0, "reference norm": r_norm,
                "alignment norm": e_norm}  # fmt: skip
    factor = float(reference @ estimate / e_norm**2)
    residual = float(np.linalg.norm(reference - factor * estimate) / r_norm)
    cosine = float(reference @ estimate / (r_norm * e_norm))
    norms = {"reference norm": r_norm, "alignment norm": e_norm}
    return {"factor": factor, "residual": residual, "cosine": cosine, **norms}


def _alignment_forms(game: Game, policy: Policy, x, meta_agent: int, beta: float, steps: int) -> dict:
    data = aa.alignment(game, policy, x, meta_agent)
    code = aa.truncated(data, steps, beta)["code"] if game.infinite else np.zeros(data.dmine.shape[-1])
    return {"paper": aa.paper(data, beta), "code": code, "derived": aa.derived(data, beta)}


def _alignment_result(name: str, reference: np.ndarray, forms: dict, what: str, extra: dict) -> CheckResult:
    figures = {form: proportional(reference, value) for form, value in forms.items()}
    paper = figures["paper"]
    held = paper["residual"] <= IDENTITY_TOLERANCE
    scale = f"a factor {paper['factor']:.3g}" if held else f"{paper['residual']:.3g} relative after the best factor"
    summary = (
        f"{'holds' if held else 'does not hold'}: {what} against the paper's alignment term, {scale} "
        f"(cosine {paper['cosine']:.3f}); train.py's cosine {figures['code']['cosine']:.3f}; the derived form "
        f"(inner sum undiscounted, k <= t, Abar) residual {figures['derived']['residual']:.2g}, "
        f"factor {figures['derived']['factor']:.3g}"
    )
    return CheckResult(f"claim:advantage-alignment[{name}]", held, {**figures, **extra}, summary)


def alignment_claims(
    game: Game, compiled: CompiledValues, policy: Policy, x: np.ndarray, meta_agent: int = 0, temperature: float = 1.0,
    steps: int = CODE_STEPS,
) -> tuple[CheckResult, CheckResult]:  # fmt: skip
    """``claim:advantage-alignment[lola]`` (Theorem 1: LOLA's Eq. 6 shaping term per unit ``alpha``,
    ``(d grad_j V^j / d theta^i)^T grad_j V^i``, at ``x``) and ``[loqa]`` (Theorem 2: LOQA's chain-rule
    shaping through ``softmax(q / tau)`` at the self-consistent opponent of ``x``; ``beta = 1 / tau``)."""
    layout = compiled.layout
    own, theirs = layout.slice(meta_agent), layout.slice(1 - meta_agent)
    gradients, jacobian = compiled.gradient_and_jacobian(x)
    lola = gradients[meta_agent][theirs] @ jacobian[theirs, own]
    lola_forms = _alignment_forms(game, policy, x, meta_agent, 1.0, steps)
    first = _alignment_result("lola", lola, lola_forms, "LOLA's shaping term", {"beta": 1.0})
    point, left = aa.self_consistent(game, policy, x, meta_agent, temperature)
    ideal = opponent_model_gradients(game, policy, point, meta_agent, temperature).ideal
    loqa_forms = _alignment_forms(game, policy, point, meta_agent, 1.0 / temperature, steps)
    extra = {"beta": 1.0 / temperature, "fixed point residual": left}
    second = _alignment_result("loqa", ideal, loqa_forms, "LOQA's chain-rule shaping term", extra)
    return first, second
