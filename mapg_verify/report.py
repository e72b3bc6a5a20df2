"""The HTML report: a results document in, one self-contained page out.

Data first: :func:`case_record` turns each case's :class:`~mapg_verify.results.CaseResult`, as
the results file holds it, into plain records, formatted numbers and inline SVG figures; the
jinja2 template ``templates/report.html`` only lays them out. Nothing is read but the results,
so ``report RESULTS.json`` rebuilds the same page, and nothing is fetched: styles and figures
are inline.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import jinja2
import numpy as np
from scipy import stats

from mapg_verify import figures
from mapg_verify.checks.estimator import EstimatorReport
from mapg_verify.checks.fingerprint import Fit
from mapg_verify.checks.result import (
    Bias,
    CheckResult,
    Claimed,
    MeanTestFigures,
    Spread,
    estimator_verdict,
    overall,
    per_estimator,
)
from mapg_verify.output import writable, write_atomic
from mapg_verify.problem.errors import InputError
from mapg_verify.results import CaseResult, from_json, load_results
from mapg_verify.spec.case import BASIS

PROVENANCE = (
    (
        "values V, gradients, simultaneous Jacobians (backend symbolic)",
        "exact: symengine expressions, compiled",
        "autograd, Richardson differences, mpmath (check oracles)",
    ),
    (
        "the same (backend numeric)",
        "exact up to rounding: matrix calculus on V = rho^T (I - gamma P_pi)^-1 r_pi, in float64",
        "autograd, Richardson differences, mpmath (check oracles); the symbolic backend (tests)",
    ),
    (
        "model E meta-gradients",
        "exact: chain rule over the derivatives (numeric backend: backwards, by Hessian-vector products)",
        "autograd through the unrolled inner loop (check meta-oracles)",
    ),
    (
        "model S meta-gradients",
        "exact: every inner batch enumerated",
        "autograd of the enumerated objective (check meta-oracles)",
    ),
    (
        "estimators' expectations",
        "exact: inner batches enumerated, outer term conditioned",
        "sampled-exact equals model S; tests: brute force over ordered batches",
    ),
    (
        "estimators' Monte-Carlo rows",
        "sampled: vectorised closed-form scores",
        "autograd DiCE reference on the same batches (tests)",
    ),
    (
        "derivatives d^k V of [derivatives]",
        "exact: symengine, each distinct entry differentiated once, compiled",
        "nested autograd, Richardson differences, mpmath (check derivative-oracles)",
    ),
    (
        "derivative estimators' expectations",
        "exact: every trajectory enumerated, closed-form moments",
        "the magic-box surrogates in autograd, differentiated k times (tests)",
    ),
)


def number(value, digits: int = 4) -> str:
    """A short human form of a figure."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value):
            return "never" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def vector(values, digits: int = 4) -> str:
    return "[" + ", ".join(number(float(v), digits) for v in values) + "]"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def records(results: dict, cases: list[dict]) -> dict:
    """Everything the template shows: the run's versions and options (``results``, the results
    file's document) and the cases' records (:func:`case_record`, drawn from the results as the
    file holds them)."""
    checks = [check for case in cases for check in case["checks"]]
    return {
        "versions": results.get("mapg_verify", {}),
        "run": results.get("run", {}),
        "cases": cases,
        "verdict": overall(check["verdict"] for check in checks),
        "counts": {
            "cases": len(cases),
            "checks": len(checks),
            "failed": sum(c["verdict"] == "fail" for c in checks),
            "untested": sum(c["verdict"] == "untested" for c in checks),
            "info": sum(c["verdict"] == "info" for c in checks),
        },
        "paper": [case["paper"] for case in cases if case["paper"]],
        "provenance": PROVENANCE,
    }


def case_record(result: CaseResult) -> dict:
    """One case's record and figures, from its result as the results file holds it (:func:`from_json`)."""
    case, truth = result.case, result.truth
    checks = [
        {
            **{key: getattr(check, key) for key in ("name", "passed", "figures", "summary", "verdict")},
            "figures_text": ", ".join(f"{k}: {number(v)}" for k, v in check.figures.items()),
        }
        for check in result.checks
    ]
    record = {
        "name": case["name"],
        "slug": slug(case["name"]),
        "case": case,
        "game": case.get("game", {}),
        "inner": case.get("inner", {}),
        "formulas": [figures.formula(text) for text in case.get("value_latex") or []],
        "payoffs": _payoffs(case.get("game", {})),
        "agent_values": [
            (k, number(v, 8), number(s, 8))
            for k, (v, s) in enumerate(zip(truth.values, truth.per_step, strict=True) if truth else ())
        ],
        "truth": [
            (model, term, vector(getattr(gradient, term)))
            for model, gradient in (truth.truth.items() if truth else ())
            for term in ("total", "current", "own", "peer")
        ],
        "lola": [(name, vector(getattr(truth.lola, name))) for name in LOLA_FORMS] if truth else [],
        "skipped": truth.skipped if truth else {},
        "checks": checks,
        "verdict": overall(check["verdict"] for check in checks),
        "estimators": [_estimator(report, result) for report in result.estimators.values()],
        "figures": {},
        "paper": _paper(result),
        "derivatives": _derivatives(result),
    }
    if truth and truth.truth:
        record["figures"]["exact terms"] = figures.terms(truth.truth)
    reports = result.estimators.values()
    curves = {report.name: report.error_curve for report in reports if report.error_curve}
    if curves:
        record["figures"]["Monte-Carlo error against samples"] = figures.errors(curves)
    sweeps = {report.name: report.sweep for report in reports if report.sweep}
    if sweeps:
        record["figures"]["bias against the inner batch size"] = figures.bias(sweeps)
    spreads = _variance_rows(result.estimators, case["checks"]["relative_error"])
    if spreads:
        record["figures"]["variance reduction: replicates for the target relative error"] = figures.variance(spreads)
    fits = {report.name: _fit(report) for report in reports}
    fits = {name: fit for name, fit in fits.items() if fit}  # fitted, not "not run"
    if fits:
        record["figures"]["fingerprint (95% intervals)"] = figures.fingerprints(fits, BASIS)
    record["figures"] |= _calibration_figures(result)
    derivatives = (result.derivatives or {}).get("estimators", {})
    curves = {name: r["curve"] for name, r in derivatives.items() if "curve" in r}
    if curves:
        caption = "derivative estimates against the batch size (band: 95% of single estimates over seeds)"
        record["figures"][caption] = figures.correlation(curves)
    return record


LOLA_FORMS = ("exact", "first_order", "taylor")


def _derivatives(result: CaseResult) -> dict | None:
    """The ``[derivatives]`` summary: what is differentiated and, per estimator, its figures."""
    derivatives = result.derivatives
    if not derivatives:
        return None
    checks = {(check.kind, check.subject): check for check in result.checks}
    rows = []
    for name, estimator in derivatives.get("estimators", {}).items():
        verdict = checks.get(("derivative-claim", name)) or checks[("derivative-bias", name)]
        implementation = checks.get(("derivative-implementation", name))
        curve = estimator.get("curve")
        rows.append(
            {
                "name": name,
                "bias": number(estimator["bias"], 3),
                "cosine": number(estimator["cosine"], 4),
                "claim": verdict.verdict,
                "claim_summary": verdict.summary,
                "implementation": implementation.summary if implementation else "not run (no seed)",
                "implementation_verdict": implementation.verdict if implementation else "muted",
                "correlation": number(curve["correlation"][-1]["mean"], 4) if curve else "-",
                "largest": curve["batch"][-1] if curve else None,
            }
        )
    horizon = derivatives["horizon"]
    label = f"d^{derivatives['order']} V^{derivatives['of']}" + ("" if horizon is None else f", {horizon} steps")
    return {"label": label, "source": derivatives["source"], "oracles": derivatives["oracles"], "rows": rows}


def _variance_rows(estimators: dict[str, EstimatorReport], target: float) -> dict:
    """Per estimator, the replicates for the target relative error about its own mean and against
    model S, where the case runs one built-in with several options (``name[...]``) to compare."""
    bases = [name.partition("[")[0] for name in estimators]
    compared = {base for base in bases if bases.count(base) > 1}
    rows = {}
    for name, report in estimators.items():
        check = _check(report, "bias")
        if name.partition("[")[0] in compared and check and check.figures:
            model_s = next((b.samples_needed for b in Bias.of(check, target) if b.model == "S"), None)
            spread = Spread.of(check, target)
            rows[name] = {"spread": spread.samples_needed if spread else None, "model": model_s}
    return rows


def _paper(result: CaseResult) -> dict | None:
    """The paper section's record of a case that reproduces one of the paper's results."""
    paper = result.paper
    if not paper:
        return None
    check = next((c for c in result.checks if c.kind == "paper"), None)
    record = {"case": result.case["name"], "experiment": paper["experiment"], "check": check, "figures": {}}
    if paper["experiment"] == "figure-1":
        record["settings"] = paper["settings"]
        record["claim"] = paper["paper"]
        record["agrees"] = paper["agrees with the paper"]
        record["rates"] = [
            (method, number(rate["measured"], 8), number(rate["closed form"], 8), rate["verdict"])
            for method, rate in paper["rates"].items()
        ]
        record["figures"]["learning paths from the same start (star: the equilibrium)"] = figures.paths(paper["paths"])
        record["figures"]["distance to the equilibrium"] = figures.distances(paper["distances"])
    if paper["experiment"] == "figure-3":
        record["settings"] = paper["settings"]
        record["claim"] = paper["paper"]
        record["after_one"] = [(m, number(v, 3)) for m, v in paper["after one adaptation step"].items()]
        record["sensitivity"] = [
            (factor, ", ".join(f"{m} {number(v, 3)}" for m, v in values.items()))
            for factor, values in paper["sensitivity (after one step)"].items()
        ]
        record["figures"]["average reward per step on held-out tasks (95% intervals over seeds)"] = figures.adaptation(
            paper["curves"]
        )
    if paper["experiment"] == "table-1":
        record["rows"] = [
            {
                **row,
                "paper_text": "not in the paper" if row["paper"] is None else " / ".join(row["paper"]),
                "coefficients_text": ", ".join(
                    f"{term} {number(value, 3)} ± {number(row['half-widths'][term], 2)}"
                    for term, value in row["coefficients"].items()
                ),
            }
            for row in paper["rows"]
        ]
    return record


def _check(report: EstimatorReport, kind: str) -> CheckResult | None:
    return next((c for c in report.checks if c.kind == kind), None)


def _fit(report: EstimatorReport) -> Fit | None:
    check = _check(report, "fingerprint")
    return Fit.of(check) if check else None


def _estimator(report: EstimatorReport, result: CaseResult) -> dict:
    implementation, bias, claim = (_check(report, kind) for kind in ("implementation", "bias", "claim"))
    target = result.case["checks"]["relative_error"]
    monte_carlo, expectation = report.monte_carlo or {}, (report.expectation or {}).get("total")
    interval = ""
    if monte_carlo:
        interval = vector(np.array(monte_carlo["standard_error"]) * stats.norm.ppf(0.975), 2)
    biases = {b.model: b for b in Bias.of(bias, target)} if bias else {}
    needed = [(f"model {m}", b.samples_needed) for m, b in sorted(biases.items())]
    spread = Spread.of(bias, target) if bias else None
    if spread:
        needed.append((f"samples for {target:g} relative spread", spread.samples_needed))
    test = MeanTestFigures.of(implementation) if implementation else None
    claimed = Claimed.of(claim) if claim else None
    return {
        "claim": claimed.claim if claimed and claimed.claim is not None else "none",
        "claim_mode": claimed.mode if claimed else "",
        "claim_against": claimed.against if claimed else "",
        "claim_verdict": claim.verdict if claim else "info",
        "claim_summary": claim.summary if claim else "no claim: its bias and fingerprint are information only",
        "claim_diagnosis": claimed.diagnosis if claimed else "",
        "name": report.name,
        "expectation": vector(expectation) if expectation else "not enumerable",
        "mean": vector(monte_carlo["mean"]) if monte_carlo else "-",
        "interval": interval,
        "bias_e": number(biases["E"].relative if "E" in biases else None, 3),
        "bias_s": number(biases["S"].relative if "S" in biases else None, 3),
        "statistic": number(test.statistic if test else None, 3) if implementation else "-",
        "p_value": number(test.p if test else None, 3) if implementation else "-",
        "needed": ", ".join(f"{label}: {number(math.inf if n is None else n)}" for label, n in needed),
        **dict(zip(("verdict", "verdict_reason"), estimator_verdict(report.checks), strict=True)),
        "options": report.options,
    }


def _calibration_figures(result: CaseResult) -> dict:
    shown = {}
    settings = result.case.get("checks", {})
    for check in result.checks:
        if check.name == "calibration":
            alarms = per_estimator(check, "false alarms")
            seeds = settings.get("seeds") or 1
            level = settings.get("level", 0.01)
            low, high = stats.binom.ppf([0.0005, 0.9995], seeds, level) / seeds
            shown["calibration: false-alarm rate (band: binomial 99.9%)"] = figures.rates(
                {k: v / seeds for k, v in alarms.items()}, level, f"false-alarm rate over {seeds} seeds", (low, high)
            )
        if check.name == "power":
            power = per_estimator(check, "rejection rate")
            if power:
                shown["power: rejection rate of the wrong variants"] = figures.rates(power, 0.99, "rejection rate")
    return shown


def _payoffs(game: dict) -> list | None:
    """One-shot payoff tables as rows ``(row action, [(r0, r1) per column action])``."""
    rewards = game.get("rewards")
    if rewards is None or game.get("states") != 1 or len(rewards) != 2:
        return None
    first, second = np.array(rewards[0][0]), np.array(rewards[1][0])
    return [
        (a, [f"{number(float(first[a, b]))}, {number(float(second[a, b]))}" for b in range(first.shape[1])])
        for a in range(first.shape[0])
    ]


def _template(name: str) -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("mapg_verify", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = number
    return environment.get_template(name)


def render(results: dict, cases: list[dict]) -> str:
    """The report page for a results document and its cases' records (see :func:`records`)."""
    return _template("report.html").render(**records(results, cases))


def rebuild(source: Path, out: str | None) -> Path:
    """``report RESULTS.json``: the page rebuilt from a results file, written to ``out`` (default:
    the file's folder) as ``index.html``; its path."""
    results = load_results(source)
    target = Path(out or source.parent) / "index.html"
    writable(target, "--out")
    try:
        page = render(results, [case_record(from_json(document)) for document in results["cases"]])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        reason = f"is not a results file written by run ({type(error).__name__}: {error})"
        raise InputError("cases", reason, str(source)) from None
    write_atomic(target.resolve() if target.is_symlink() else target, page)  # a run's link stays a link
    return target


def render_campaign(result: dict) -> str:
    """The campaign page for an aggregate (:func:`mapg_verify.campaign.aggregate`)."""
    biases = {name: row for name, row in result["estimators"].items() if row["bias vs model S"]}
    figure = figures.campaign_bias(biases) if biases else None
    return _template("campaign.html").render(result=result, figure=figure)


def render_audit(document: dict) -> str:
    """The audit page for an audit document (:func:`mapg_verify.audit.audit`)."""
    return _template("audit.html").render(audit=document, figure=figures.audit(document["series"]))
