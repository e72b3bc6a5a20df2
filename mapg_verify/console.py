"""What the commands print: plain-text tables, the exact truth of one case, a run's summary."""

from __future__ import annotations

import sys

from mapg_verify.casefile.duration import NOTE_SECONDS, estimate
from mapg_verify.checks.registry import CHECKS, ESTIMATOR_CHECKS
from mapg_verify.checks.result import estimator_verdict, overall
from mapg_verify.estimators.derivatives import DERIVATIVE_ESTIMATORS
from mapg_verify.estimators.frameworks import FRAMEWORKS, installed
from mapg_verify.estimators.newer import NEWER_ESTIMATORS
from mapg_verify.estimators.table import ESTIMATORS, MUTANTS
from mapg_verify.exact.backend import BACKENDS
from mapg_verify.problem.catalog import GAMES
from mapg_verify.problem.policies import POLICIES
from mapg_verify.results import CaseResult
from mapg_verify.spec.case import MODEL_LETTER, Case

VERDICT_TEXT = {"pass": "pass", "fail": "FAIL", "untested": "UNTESTED", "info": "info"}
COLOURS = {"pass": "32", "fail": "31", "untested": "33"}  # ANSI green, red, amber (yellow)


def verdict_text(verdict: str) -> str:
    """A verdict as printed: coloured on a terminal (``untested`` amber), plain otherwise."""
    text = VERDICT_TEXT[verdict]
    if verdict in COLOURS and sys.stdout.isatty():
        return f"\033[{COLOURS[verdict]}m{text}\033[0m"
    return text


def table(title: str, rows: list[tuple], header: tuple[str, ...]) -> None:
    """``title``, then the rows in left-aligned columns under ``header``."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


SHOWN_ENTRIES = 8  # a longer vector prints its first entries and its size; the JSON holds them all


def vector(values: list[float]) -> str:
    """At most :data:`SHOWN_ENTRIES` entries of a vector, then how many there are."""
    shown = " ".join(f"{v:.6g}" for v in values[:SHOWN_ENTRIES])
    return shown if len(values) <= SHOWN_ENTRIES else f"{shown} ... ({len(values)} entries; --json has them all)"


def exact_truth(case: Case, result: CaseResult) -> None:
    """Per-agent values, each model's meta-gradient terms, and one line per check."""
    truth = result.truth
    values = zip(truth.values, truth.per_step, strict=True) if truth else ()
    rows = [(f"agent {k}", f"{v:.12g}", f"{s:.12g}") for k, (v, s) in enumerate(values)]
    table(f"{case.name}: exact values ({case.backend} backend)", rows, ("agent", "V", "per step"))
    for model, gradient in truth.truth.items() if truth else ():
        rows = [(term, vector(getattr(gradient, term).tolist())) for term in ("total", "current", "own", "peer")]
        title = f"meta-gradient of agent {case.inner.meta_agent}, model {MODEL_LETTER[model]}"
        table(title, rows, ("term", "value"))
    for check in result.checks:
        print(f"{check.name}: {verdict_text(check.verdict)} ({check.summary})")


def summary(results: list[CaseResult]) -> None:
    """One line per case, then the failing checks and, apart, the untested claims (with what
    would make each testable)."""
    rows = []
    for result in results:
        verdicts = [c.verdict for c in result.checks]
        failed = [c.name for c in result.checks if c.verdict in ("fail", "untested")]
        counts = "/".join(str(verdicts.count(v)) for v in ("pass", "info", "fail", "untested"))
        rows.append((result.case["name"], VERDICT_TEXT[overall(verdicts)], counts, ", ".join(failed)))
    table("summary", rows, ("case", "verdict", "pass/info/fail/untested", "failed or untested"))
    estimators = [
        (result.case["name"], name, VERDICT_TEXT[verdict], reason[:100])
        for result in results
        for name, report in result.estimators.items()
        for verdict, reason in [estimator_verdict(report.checks)]
    ]
    if estimators:
        table("estimators", estimators, ("case", "estimator", "verdict", "why"))
    checks = [(result.case["name"], c) for result in results for c in result.checks]
    for verdict, title, column in (
        ("fail", "failed checks", "key figure"),
        ("untested", "untested claims (not a pass)", "why, and what would test it"),
    ):
        found = [(case, c.name, c.summary) for case, c in checks if c.verdict == verdict]
        if found:
            table(title, found, ("case", "check", column))


def note_time(cases: list[Case], sampled: bool = True) -> None:
    """Before the cases run, one line for each whose estimated time passes a minute: a cost model
    from its budgets (:func:`mapg_verify.casefile.duration.estimate`: compile, enumeration,
    Monte-Carlo draws, Figure 3, derivatives), its largest parts named. ``sampled``: with the
    Monte-Carlo work of ``run`` (``exact`` draws nothing)."""
    for case in cases:
        found = estimate(case, sampled)
        if found.seconds > NOTE_SECONDS:
            minutes = found.seconds / 60
            about = f"{minutes:.1f}" if minutes < 10 else f"{minutes:.0f}"
            print(f"case {case.name}: about {about} min (estimated from {found.source()})", file=sys.stderr)


def catalogue() -> None:
    """What `list` prints: games, policy kinds, backends, estimators, checks."""
    games = [(name, entry.summary, ", ".join(entry.options()) or "-") for name, entry in GAMES.items()]
    table("games", games, ("name", "summary", "options"))
    table("policy kinds", [(name, p.summary) for name, p in POLICIES.items()], ("name", "summary"))
    table("exact backends ([game] backend)", list(BACKENDS.items()), ("name", "summary"))
    estimators = [(name, e.terms, e.inner_derivative) for name, e in ESTIMATORS.items()]
    table("estimators", estimators, ("name", "terms", "inner derivative"))
    newer = [(name, e.claim, e.source) for name, e in NEWER_ESTIMATORS.items()]
    table(
        "newer estimators (exact expectations outside the DiCE surrogate)", newer, ("name", "published claim", "source")
    )
    mutants = [(name, e.terms) for name, e in MUTANTS.items()]
    table("deliberately wrong estimators (for the power check)", mutants, ("name", "defect"))
    derivatives = list(DERIVATIVE_ESTIMATORS.items())
    table("derivative estimators ([derivatives] estimators)", derivatives, ("name", "surrogate"))
    plugins = [(f, "module:function" if f == "numpy" else f"{f}:module:function", installed(f)) for f in FRAMEWORKS]
    table("plug-in frameworks", plugins, ("framework", "name in [estimators] names", "installed"))
    table("checks", [(name, entry.summary) for name, entry in CHECKS.items()], ("name", "summary"))
    table("estimator checks", list(ESTIMATOR_CHECKS.items()), ("name", "summary"))


def campaign_summary(result: dict) -> None:
    """A campaign in a few lines: claims held, false alarms, power, failing games, then each check
    kind's failures against its level, and the exit code with the rules that made it 1."""
    rows = [
        (name, row["claim"] or "-", f"{row['held']}/{row['held'] + row['failed']}", row["untested"],
         f"{row['implementation']['false alarms']}/{row['implementation']['tested']}")
        for name, row in result["estimators"].items()
    ]  # fmt: skip
    table(f"campaign: {result['games']} games", rows, ("estimator", "claim", "held", "untested", "false alarms"))
    if result["mutants"]:
        rows = [(name, f"{row['caught']}/{row['tested']}") for name, row in result["mutants"].items()]
        table("planted bugs", rows, ("bug", "caught"))
    if result["failures"]:
        rows = [(f["case"], ", ".join(f["checks"])) for f in result["failures"]]
        table("games with a failed check (case files in failures/)", rows, ("game", "failed checks"))
    rows = [
        (kind, f"{row['failures']}/{row['checks']}", f"{row['level']:g}", f"{row['expected false alarms']:.2f}",
         "-" if row["binomial p"] is None else f"{row['binomial p']:.3g}")
        for kind, row in result["checks"].items() if row["checks"]
    ]  # fmt: skip
    table("checks by kind (those that only report aside)", rows, ("kind", "failed", "level", "expected", "binomial p"))
    rules = "".join(f"\n  {rule}" for rule in result["exit"]["rules"])
    passed = " no claim failed, no error, no kind failed improbably often"
    print(f"\nexit {result['exit']['code']}:" + (rules or passed))
