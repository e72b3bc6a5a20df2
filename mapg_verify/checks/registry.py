"""The checks, one line each: the exact checks the pipeline runs per inner model, in this order, and
the estimator checks (named per estimator, ``kind:NAME``). ``list`` prints both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mapg_verify.checks.exact import expected_identities, meta_oracles, oracle_agreement, sampled_identities
from mapg_verify.checks.result import CheckResult
from mapg_verify.exact.truths import Truths


@dataclass(frozen=True)
class ExactCheck:
    """One check of the exact truth: what it checks, ``run(case, compiled, truths)``, and the inner
    model it needs (``None``: every case). ``oracles`` runs first, on the compiled game alone."""

    summary: str
    run: Callable[..., CheckResult]
    model: str | None = None


CHECKS: dict[str, ExactCheck] = {
    "oracles": ExactCheck(
        "compiled symbolic V, grad V, d xi/dx versus autograd, Richardson differences and mpmath",
        oracle_agreement,
    ),
    "meta-oracles": ExactCheck(
        "exact meta-gradients versus autograd through the inner loop / the enumerated objective", meta_oracles
    ),
    "identities-expected": ExactCheck(
        "model E: total = C + O + P, vanishing terms at alpha = 0, LOLA's O(alpha^2) gap",
        expected_identities,
        "expected",
    ),
    "identities-sampled": ExactCheck(
        "model S: total = C + O + P, peer = 0, K (S_K - E) -> c exact (where the 1/K expansion applies)",
        sampled_identities,
        "sampled",
    ),
}


def meta_checks(case, compiled, truths: Truths) -> list[CheckResult]:
    """Every check after ``oracles``, in the table's order, that the case's inner models call for,
    reading the case's :class:`Truths`."""
    entries = [entry for name, entry in CHECKS.items() if name != "oracles"]
    return [e.run(case, compiled, truths) for e in entries if e.model is None or e.model in case.inner.models]


ESTIMATOR_CHECKS = {
    "implementation:NAME": "Monte-Carlo mean versus the exact expectation: Hotelling T^2, Holm z-tests",
    "bias:NAME": "exact expectation versus each model's truth: relative bias, cosine, samples needed",
    "fingerprint:NAME": "the expectation fitted on the exact terms C, adapted, own pathwise, own DiCE, peer",
    "claim:NAME": "the estimator's claim (a model, a built-in, a fingerprint), exactly or statistically",
    "calibration": "false alarms of the implementation check over [checks] seeds (binomial test)",
    "power": "rejections of the deliberately wrong meta-mapg variants, and the budget for 99%",
    "derivative-oracles": "[derivatives]: the exact d^k V versus nested autograd, Richardson differences and mpmath",
    "derivative-claim:NAME": "[derivatives]: an unbiased estimator's exact expectation versus the exact derivative",
    "derivative-bias:NAME": "[derivatives]: the other estimators' relative bias and cosine (reported)",
    "derivative-implementation:NAME": "[derivatives]: Monte-Carlo mean versus the exact expectation, Holm",
}
