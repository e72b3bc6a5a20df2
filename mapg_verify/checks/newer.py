"""The newer estimators' published claims, settled exactly (README, "The field's newer estimators").

- ``loqa``: LOQA's taken-action-only shaping term against the chain rule through its own opponent
  model (:mod:`mapg_verify.exact.opponent_model`): relative gap and cosine, shaping and total;
- ``coala-pg``: each COALA-PG variant's exact expectation against the gradient of Theorem 3.1's
  objective (:mod:`mapg_verify.exact.coala`), with the share of the direct and shaping parts it
  recovers and its covariance's trace;
- ``pola-invariance``: one step of exact POLA and of exact LOLA from the same policy in two
  parameterisations (:mod:`mapg_verify.exact.proximal`), the largest gap between the policies
  they reach; invariance holds when POLA's gap is within the solves' precision.
"""

from __future__ import annotations

import numpy as np

from mapg_verify.checks.result import CheckResult, relative_error
from mapg_verify.exact.coala import VARIANTS, CoalaTruth
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.opponent_model import opponent_model_gradients
from mapg_verify.exact.proximal import Reparameterisation, identity, lola_update, lookahead, pola_update, policies
from mapg_verify.problem.game import Game
from mapg_verify.problem.policies import Policy

SOLVE_TOLERANCE = 1e-9  # policy probabilities: the proximal solves stop at gradients of 1e-11 to 1e-12


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
    gaps, precision = {}, 0.0
    for name in ("pola", "lola"):
        reached = []
        for reparameterisation in (identity(compiled.layout), other):
            y = reparameterisation.lift(x)
            problem = lookahead(compiled, policy, reparameterisation, y)
            if name == "pola":
                y, gradient = pola_update(problem, y, meta_agent, *beta)
                precision = max(precision, gradient)
            else:
                y = lola_update(problem, y, meta_agent, alpha)
            reached.append(policies(problem, y))
        gaps[name] = float(np.max(np.abs(reached[0] - reached[1])))
    results = []
    for name in ("pola", "lola"):
        held = gaps[name] <= SOLVE_TOLERANCE
        figures = {"policy gap": gaps[name], "reparameterisation": other.name, "outer gradient left": precision}
        summary = (
            f"{'holds' if held else 'does not hold'}: one {name.upper()} step reaches policies {gaps[name]:.2g} "
            f"apart under {other.name} (tolerance {SOLVE_TOLERANCE:g})"
        )
        results.append(CheckResult(f"claim:{name}-invariance", held, figures, summary))
    return results[0], results[1]
