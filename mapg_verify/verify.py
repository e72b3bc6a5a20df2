"""``check_estimator``: verify one estimator from a user's own test suite, in the spirit of
``torch.autograd.gradcheck``.

    result = check_estimator(my_estimator, "cases/pd.toml", claim="meta-mapg", samples=4000, seed=0)
    assert result.passed, result.summary

The function has the plug-in signature ``(inner, outer, theta, settings) -> estimate``. It runs
in this process: the toolkit's whole pipeline for the case (exact truth and its checks, then the
estimator's implementation, bias, fingerprint and claim checks), nothing written to disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mapg_verify import pipeline
from mapg_verify.casefile.estimators import parse_claims
from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.result import CheckResult, overall
from mapg_verify.estimators.dispatch import REGISTERED
from mapg_verify.estimators.frameworks import FRAMEWORKS, require
from mapg_verify.estimators.records import Plugin
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import CLAIM_MODES, Case


@dataclass(frozen=True)
class EstimatorCheck:
    """What :func:`check_estimator` found: ``verdict`` (``fail`` if a check failed, else
    ``untested`` if a claim could not be tested here, else ``pass``), ``passed`` (the verdict is
    ``pass``: "not tested" is never a pass), each check's verdict (``pass``, ``fail``,
    ``untested`` or ``info``), the checks with their figures, and the estimator's exact
    expectation and Monte-Carlo summary."""

    name: str
    verdict: str
    verdicts: dict[str, str]
    checks: tuple[CheckResult, ...]
    expectation: list | None
    monte_carlo: dict | None

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def summary(self) -> str:
        return "; ".join(f"{c.name}: {c.verdict} ({c.summary})" for c in self.checks)


def check_estimator(
    function: Callable,
    case: Case | str | Path,
    claim: str | dict | None = "model-S",
    *,
    samples: int | None = None,
    seed: int = 0,
    mode: str | None = None,
    framework: str = "numpy",
) -> EstimatorCheck:
    """Verify ``function`` on ``case`` (a :class:`Case` or a case file): its claim (``"model-S"``,
    ``"model-E"``, a built-in's name, a dict of fingerprint coefficients, or ``None``), checked in
    ``mode`` (the case's ``claim_mode`` by default), with ``samples`` Monte-Carlo estimates;
    ``framework`` is ``"numpy"``, ``"jax"`` or ``"torch"`` (:mod:`mapg_verify.estimators.frameworks`)."""
    case = case if isinstance(case, Case) else load_case(case)
    name = f"python:{getattr(function, '__qualname__', 'estimator')}"
    claims = parse_claims({name: claim}, [name]) if claim is not None else ()
    estimators = dataclasses.replace(
        case.estimators, names=(name,), claims=claims, samples=samples or case.estimators.samples
    )
    if mode is not None and mode not in CLAIM_MODES:
        raise InputError("mode", f"must be one of {', '.join(CLAIM_MODES)}, got {mode!r}")
    checks = dataclasses.replace(case.checks, claim_mode=mode or case.checks.claim_mode, seeds=0)
    if framework not in FRAMEWORKS:
        raise InputError("framework", f"must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    require(framework, "framework", name)
    REGISTERED[name] = Plugin(name, function, framework)
    try:
        result = pipeline.evaluate(dataclasses.replace(case, estimators=estimators, checks=checks), seed=seed)
    finally:
        del REGISTERED[name]
    report = result.estimators[name]
    return EstimatorCheck(
        name,
        overall(c.verdict for c in result.checks),
        {c.name: c.verdict for c in result.checks},
        result.checks,
        report.expectation["total"] if report.expectation else None,
        report.monte_carlo,
    )
