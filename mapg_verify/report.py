"""The HTML report: a results document in, one self-contained page out.

Data first: :func:`records` turns the results (the JSON ``run`` writes) into plain records,
formatted numbers and inline SVG figures; the jinja2 template ``templates/report.html`` only
lays them out. Nothing is read but the results, so ``report RESULTS.json`` rebuilds the same
page, and nothing is fetched: styles and figures are inline.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import jinja2
import numpy as np
from scipy import stats

from mapg_verify import figures
from mapg_verify.checks.result import estimator_verdict, overall
from mapg_verify.problem.errors import InputError
from mapg_verify.results import load_results, writable, write_atomic
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


def records(results: dict, cases: list[dict] | None = None) -> dict:
    """Everything the template shows, computed from the results alone; ``cases`` may hold the
    cases' records already drawn (by :func:`case_record` on the same documents, say in the
    processes that ran them)."""
    cases = cases if cases is not None else [case_record(document) for document in results["cases"]]
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


def case_record(document: dict) -> dict:
    """One case's record and figures, from its document as the results file holds it."""
    case, exact = document["case"], document["exact"]
    checks = [
        {
            **check,
            "figures_text": ", ".join(f"{k}: {number(v)}" for k, v in check["figures"].items()),
        }
        for check in document["checks"]
    ]
    estimators = document.get("estimators", {})
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
            for k, (v, s) in enumerate(zip(exact["values"], exact["per_step"], strict=True))
        ],
        "truth": [
            (model, term, vector(terms[term]))
            for model, terms in exact["truth"].items()
            for term in ("total", "current", "own", "peer")
        ],
        "lola": [(name, vector(values)) for name, values in exact["lola"].items()],
        "skipped": exact.get("skipped", {}),
        "checks": checks,
        "verdict": overall(check["verdict"] for check in checks),
        "estimators": [_estimator(name, report, document) for name, report in estimators.items()],
        "figures": {},
        "paper": _paper(document),
        "derivatives": _derivatives(document),
    }
    if exact["truth"]:
        record["figures"]["exact terms"] = figures.terms(exact["truth"])
    curves = {name: r["error_curve"] for name, r in estimators.items() if r.get("error_curve")}
    if curves:
        record["figures"]["Monte-Carlo error against samples"] = figures.errors(curves)
    sweeps = {name: r["bias_sweep"] for name, r in estimators.items() if r.get("bias_sweep")}
    if sweeps:
        record["figures"]["bias against the inner batch size"] = figures.bias(sweeps)
    spreads = _variance_rows(estimators, document["case"]["checks"]["relative_error"])
    if spreads:
        record["figures"]["variance reduction: replicates for the target relative error"] = figures.variance(spreads)
    fits = {name: (_check(r, "fingerprint") or {}).get("figures") for name, r in estimators.items()}
    fits = {name: fit for name, fit in fits.items() if fit and "relative residual" in fit}  # fitted, not "not run"
    if fits:
        record["figures"]["fingerprint (95% intervals)"] = figures.fingerprints(fits, BASIS)
    record["figures"] |= _calibration_figures(document)
    curves = {
        name: r["curve"]
        for name, r in (document.get("derivatives") or {}).get("estimators", {}).items()
        if "curve" in r
    }
    if curves:
        caption = "derivative estimates against the batch size (band: 95% of single estimates over seeds)"
        record["figures"][caption] = figures.correlation(curves)
    return record


def _derivatives(document: dict) -> dict | None:
    """The ``[derivatives]`` summary: what is differentiated and, per estimator, its figures."""
    derivatives = document.get("derivatives")
    if not derivatives:
        return None
    checks = {check["name"]: check for check in document["checks"]}
    rows = []
    for name, estimator in derivatives.get("estimators", {}).items():
        verdict = checks.get(f"derivative-claim:{name}") or checks[f"derivative-bias:{name}"]
        implementation = checks.get(f"derivative-implementation:{name}")
        curve = estimator.get("curve")
        rows.append(
            {
                "name": name,
                "bias": number(estimator["bias"], 3),
                "cosine": number(estimator["cosine"], 4),
                "claim": verdict["verdict"],
                "claim_summary": verdict["summary"],
                "implementation": implementation["summary"] if implementation else "not run (no seed)",
                "implementation_verdict": implementation["verdict"] if implementation else "muted",
                "correlation": number(curve["correlation"][-1]["mean"], 4) if curve else "-",
                "largest": curve["batch"][-1] if curve else None,
            }
        )
    horizon = derivatives["horizon"]
    label = f"d^{derivatives['order']} V^{derivatives['of']}" + ("" if horizon is None else f", {horizon} steps")
    return {"label": label, "source": derivatives["source"], "oracles": derivatives["oracles"], "rows": rows}


def _variance_rows(estimators: dict, target: float) -> dict:
    """Per estimator, the replicates for the target relative error about its own mean and against
    model S, where the case runs one built-in with several options (``name[...]``) to compare."""
    bases = [name.partition("[")[0] for name in estimators]
    compared = {base for base in bases if bases.count(base) > 1}
    rows = {}
    for name, report in estimators.items():
        figures_of = (_check(report, "bias") or {}).get("figures") or {}
        if name.partition("[")[0] in compared and figures_of:
            rows[name] = {
                "spread": figures_of.get(f"samples for {target:g} relative spread"),
                "model": figures_of.get(f"samples for {target:g} relative error vs model S"),
            }
    return rows


def _paper(document: dict) -> dict | None:
    """The paper section's record of a case that reproduces one of the paper's results."""
    paper = document.get("paper")
    if not paper:
        return None
    check = next((c for c in document["checks"] if c["name"].startswith("paper:")), None)
    record = {"case": document["case"]["name"], "experiment": paper["experiment"], "check": check, "figures": {}}
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


def _check(report: dict, kind: str) -> dict | None:
    return next((c for c in report["checks"] if c["name"].startswith(kind + ":")), None)


def _estimator(name: str, report: dict, document: dict) -> dict:
    implementation, bias = _check(report, "implementation"), _check(report, "bias")
    monte_carlo = report.get("monte_carlo") or {}
    interval = ""
    if monte_carlo:
        interval = vector(np.array(monte_carlo["standard_error"]) * stats.norm.ppf(0.975), 2)
    figures_of = bias["figures"] if bias else {}
    needed = {k: v for k, v in figures_of.items() if k.startswith("samples for")}
    claim = _check(report, "claim")
    claimed = claim["figures"] if claim else {}
    return {
        "claim": claimed.get("claim", "none"),
        "claim_mode": claimed.get("mode", ""),
        "claim_against": claimed.get("against", ""),
        "claim_verdict": claim["verdict"] if claim else "info",
        "claim_summary": claim["summary"] if claim else "no claim: its bias and fingerprint are information only",
        "claim_diagnosis": claimed.get("diagnosis", {}).get("sentence", ""),
        "name": name,
        "expectation": vector(report["expectation"]) if report.get("expectation") else "not enumerable",
        "mean": vector(monte_carlo["mean"]) if monte_carlo else "-",
        "interval": interval,
        "bias_e": number(figures_of.get("relative bias vs model E"), 3),
        "bias_s": number(figures_of.get("relative bias vs model S"), 3),
        "statistic": number(implementation["figures"].get("T-squared"), 3) if implementation else "-",
        "p_value": number(implementation["figures"].get("p-value"), 3) if implementation else "-",
        "needed": ", ".join(
            f"{k.split(' vs ')[-1]}: {number(math.inf if v is None else v)}" for k, v in needed.items()
        ),
        **dict(zip(("verdict", "verdict_reason"), estimator_verdict(report["checks"]), strict=True)),
        "options": report.get("options", {}),
    }


def _calibration_figures(document: dict) -> dict:
    shown = {}
    for check in document["checks"]:
        if check["name"] == "calibration":
            alarms = {k.split(":")[0]: v for k, v in check["figures"].items() if k.endswith("false alarms")}
            seeds = document["case"].get("checks", {}).get("seeds") or 1
            level = document["case"].get("checks", {}).get("level", 0.01)
            low, high = stats.binom.ppf([0.0005, 0.9995], seeds, level) / seeds
            shown["calibration: false-alarm rate (band: binomial 99.9%)"] = figures.rates(
                {k: v / seeds for k, v in alarms.items()}, level, f"false-alarm rate over {seeds} seeds", (low, high)
            )
        if check["name"] == "power":
            power = {k.split(":")[0]: v for k, v in check["figures"].items() if k.endswith("rejection rate")}
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


def render(results: dict, cases: list[dict] | None = None) -> str:
    """The report page for a results document (``cases``: see :func:`records`)."""
    return _template("report.html").render(**records(results, cases))


def rebuild(source: Path, out: str | None) -> Path:
    """``report RESULTS.json``: the page rebuilt from a results file, written to ``out`` (default:
    the file's folder) as ``index.html``; its path."""
    results = load_results(source)
    target = Path(out or source.parent) / "index.html"
    writable(target, "--out")
    try:
        page = render(results)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        reason = f"is not a results file written by run ({type(error).__name__}: {error})"
        raise InputError("cases", reason, str(source)) from None
    write_atomic(target, page)
    return target


def render_campaign(result: dict) -> str:
    """The campaign page for an aggregate (:func:`mapg_verify.campaign.aggregate`)."""
    biases = {name: row for name, row in result["estimators"].items() if row["bias vs model S"]}
    figure = figures.campaign_bias(biases) if biases else None
    return _template("campaign.html").render(result=result, figure=figure)


def render_audit(document: dict) -> str:
    """The audit page for an audit document (:func:`mapg_verify.audit.audit`)."""
    return _template("audit.html").render(audit=document, figure=figures.audit(document["series"]))
