"""The results' records (:class:`CaseResult`, :class:`ExactTruth`) and their JSON: :func:`to_json`
writes a case's document and :func:`from_json` reads it back, the one serialisation of results.

The ``exact`` JSON (SPEC §8): ``values`` per agent, ``truth.expected`` with
``total``, ``current``, ``own``, ``peer`` (flat over ``theta^i``), ``truth.sampled``
likewise, ``lola`` with
``exact``, ``first_order`` (Eq. 6) and ``taylor``, ``per_step`` per agent
(``V / sum_{t<H} gamma^t``, which is ``(1 - gamma) V`` for infinite horizons;
reported for finite horizons too, as the discount-weighted mean reward per
step), the oracle agreement figures under ``oracles``, and ``skipped`` with
a reason for each part not computed. ``estimators`` holds, for each listed estimator whose
exact expectation could be enumerated, ``expectation`` (flat over ``theta^i``) and its
``current``, ``own`` and ``peer`` parts; the others are under ``skipped`` as ``estimators.NAME``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import symengine

from mapg_verify.checks.estimator import EstimatorReport
from mapg_verify.checks.result import CheckResult
from mapg_verify.estimators.table import Parts
from mapg_verify.exact.compiled import CompiledValues, default_backend
from mapg_verify.exact.metagradient import LolaGradient, MetaGradient, lola
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case


@dataclass(frozen=True)
class ExactTruth:
    """Exact values, meta-gradients (model name -> terms) and LOLA of a case, the oracles' check,
    the estimators' exact expectations; what was skipped, and why."""

    values: tuple[float, ...]
    per_step: tuple[float, ...]
    truth: dict[str, MetaGradient]
    lola: LolaGradient
    oracles: CheckResult
    skipped: dict[str, str]
    estimators: dict[str, Parts]


NOT_ASKED = "not asked for ([inner] model)"


def exact_truth(
    case: Case, compiled: CompiledValues, oracles: CheckResult, truth: dict, expectations: tuple[dict, dict]
) -> ExactTruth:
    """The case's exact values ``V^k(theta)``, per-step averages, meta-gradients in each model asked
    for, LOLA, and the estimators' exact expectations with the reasons for those missing."""
    x, inner = case.flat_theta, case.inner
    values = compiled.value(x)
    mass = case.game.discount_mass() if isinstance(case.game, Game) else 1.0
    skipped = {f"truth.{model}": NOT_ASKED for model in ("expected", "sampled") if model not in truth}
    found, missing = expectations
    skipped |= {f"estimators.{name}": reason for name, reason in missing.items()}
    return ExactTruth(
        tuple(map(float, values)),
        tuple(float(v) / mass for v in values),
        truth,
        lola(compiled, x, inner.alpha, inner.meta_agent),
        oracles,
        skipped,
        found,
    )


@dataclass(frozen=True)
class CaseResult:
    """One case's results: ``case``, the case as the results file names and describes it
    (:func:`mapg_verify.description.header`); its exact ``truth`` (``None``: the case could not be
    evaluated, and its one check ``error`` says why); each estimator's report; every check, in the
    order run; the paper's experiment and the ``[derivatives]`` record where the case has them
    (JSON-ready, as :mod:`mapg_verify.paper` and :mod:`mapg_verify.checks.derivatives` make them);
    and the timings in seconds."""

    case: dict
    truth: ExactTruth | None
    estimators: dict[str, EstimatorReport]
    checks: tuple[CheckResult, ...]
    paper: dict | None = None
    derivatives: dict | None = None
    timings: dict = field(default_factory=dict)


def to_json(result: CaseResult) -> dict:
    """A case's document as ``results.json`` holds it (timings aside), in JSON's own types and key
    order (:func:`plain`): the one writer of results, read back by :func:`from_json`."""
    document = {
        "case": result.case,
        "exact": _truth_json(result.truth),
        "estimators": {name: _report_json(report) for name, report in result.estimators.items()},
        "checks": [_check_json(check) for check in result.checks],
    }
    if result.truth is not None:  # an evaluated case; one that failed names no paper
        document["paper"] = result.paper
    if result.derivatives is not None:
        document["derivatives"] = result.derivatives
    return plain(document)


def from_json(document: dict) -> CaseResult:
    """The case's record from its document (:func:`to_json`), as ``report`` reads a results file."""
    exact = document["exact"]
    truth = None
    if "oracles" in exact:
        truth = ExactTruth(
            tuple(exact["values"]),
            tuple(exact["per_step"]),
            {model: MetaGradient(**_arrays(terms)) for model, terms in exact["truth"].items()},
            LolaGradient(**_arrays(exact["lola"])),
            _check(exact["oracles"]),
            exact["skipped"],
            {name: Parts(**_arrays(terms, PARTS)) for name, terms in exact["estimators"].items()},
        )
    estimators = {name: _report(name, report) for name, report in document["estimators"].items()}
    checks = tuple(_check(check) for check in document["checks"])
    paper, derivatives = document.get("paper"), document.get("derivatives")
    return CaseResult(document["case"], truth, estimators, checks, paper, derivatives, document.get("timings", {}))


PARTS = ("current", "own", "peer")
CHECK_FIELDS = ("name", "passed", "figures", "summary", "verdict")
FAILED_TRUTH = {"values": [], "per_step": [], "truth": {}, "lola": {}, "skipped": {}, "estimators": {}}


def _truth_json(truth: ExactTruth | None) -> dict:
    if truth is None:
        return FAILED_TRUTH
    return {
        "values": truth.values,
        "per_step": truth.per_step,
        "truth": {model: asdict(gradient) for model, gradient in truth.truth.items()},
        "lola": asdict(truth.lola),
        "oracles": _check_json(truth.oracles),
        "skipped": truth.skipped,
        "estimators": {
            name: {"expectation": parts.total, **{part: getattr(parts, part) for part in PARTS}}
            for name, parts in truth.estimators.items()
        },
    }


def _report_json(report: EstimatorReport) -> dict:
    terms = report.expectation
    return {
        "error_curve": report.error_curve,
        "bias_sweep": report.sweep,
        "expectation": None if terms is None else terms["total"],
        "expectation_terms": terms,
        "monte_carlo": report.monte_carlo,
        "options": report.options,
        "checks": [_check_json(check) for check in report.checks],
        "skipped": report.skipped,
    }


def _report(name: str, document: dict) -> EstimatorReport:
    return EstimatorReport(
        name,
        document["expectation_terms"],
        document["monte_carlo"],
        document["options"],
        tuple(_check(check) for check in document["checks"]),
        document["skipped"],
        tuple(document["bias_sweep"]),
        tuple(document["error_curve"]),
    )


def _check_json(check: CheckResult) -> dict:
    return {key: getattr(check, key) for key in CHECK_FIELDS}


def _check(document: dict) -> CheckResult:
    return CheckResult(*(document[key] for key in CHECK_FIELDS))


def _arrays(terms: dict, keys: tuple[str, ...] = ()) -> dict:
    return {key: np.asarray(terms[key], dtype=float) for key in keys or terms}


def plain(value):
    """``value`` as JSON holds it: what ``json.loads(dumps(value))`` gives back, without the text
    (lists for tuples and arrays, plain numbers for numpy's, string keys in sorted order); NaN,
    infinities and what JSON cannot hold are refused as :func:`dumps` refuses them."""
    if isinstance(value, dict):
        return {_key(key): plain(item) for key, item in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, np.ndarray | np.generic):
        return plain(value.tolist() if isinstance(value, np.ndarray) else value.item())
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Out of range float values are not JSON compliant")
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _key(key) -> str:
    """A dict key as JSON writes it."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(plain(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def dumps(document: dict) -> str:
    """Stable JSON: sorted keys, numpy values as plain numbers; NaN and infinities are refused."""
    return json.dumps(plain(document), indent=2) + "\n"  # plain sorts the keys and refuses NaN


def canonical(document) -> str:
    """One line of stable JSON (sorted keys, no spaces, ASCII): what :func:`digest` hashes."""
    return json.dumps(plain(document), separators=(",", ":"))


def digest(document) -> str:
    """The sha256, in hex, of a document's :func:`canonical` JSON."""
    return hashlib.sha256(canonical(document).encode()).hexdigest()


def results_document(results: list[CaseResult], seed: int, quick: bool, seconds: float) -> dict:
    """A run's results file (:func:`plain`): versions, the run's options, every case's document, the timings."""
    return plain(
        {
            "mapg_verify": versions(),
            "run": {"seed": seed, "quick": quick},
            "cases": [to_json(result) for result in results],
            "timings": {"total seconds": seconds, "cases": {r.case["name"]: r.timings for r in results}},
        }
    )


def exact_document(result: CaseResult) -> dict:
    """What ``exact --json`` writes: the exact truth, the ``[derivatives]`` record, the case, its checks."""
    document = to_json(result)
    derivatives = {key: document[key] for key in ("derivatives",) if key in document}
    return {**document["exact"], **derivatives, "case": document["case"], "checks": document["checks"]}


def loads(text: str):
    """JSON text as data (campaign stores read their own lines through it); NaN and infinities,
    which are not JSON, are refused as a ``ValueError``."""
    return json.loads(text, parse_constant=_not_json)


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def load_results(path: Path) -> dict:
    """A results file written by ``run``, read back (bad input names the file)."""
    try:
        results = json.loads(path.read_text())
    except OSError as error:
        raise InputError("file", f"cannot be read: {error.strerror}", str(path)) from None
    except json.JSONDecodeError as error:
        raise InputError("file", f"is not valid JSON: {error}", str(path)) from None
    if not isinstance(results, dict) or not isinstance(results.get("cases"), list):
        raise InputError("cases", "is missing: not a results file written by run", str(path))
    return results


def versions() -> dict:
    """The versions a results file records (the package, symengine, numpy, the compiler backend)."""
    return {
        "version": metadata.version("mapg-verify"),
        "symengine": symengine.__version__,
        "numpy": np.__version__,
        "compiler": default_backend(),
    }
