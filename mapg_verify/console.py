"""What the commands print: plain-text tables, the exact truth of one case, a run's summary."""

from __future__ import annotations

import sys

from mapg_verify.exact.compiled import compile_seconds
from mapg_verify.spec.case import Case

VERDICT_TEXT = {"pass": "pass", "fail": "FAIL", "info": "info"}


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


def exact_truth(case: Case, document: dict) -> None:
    """Per-agent values, each model's meta-gradient terms, and one line per check."""
    truth = document["exact"]
    rows = [
        (f"agent {k}", f"{v:.12g}", f"{s:.12g}")
        for k, (v, s) in enumerate(zip(truth["values"], truth["per_step"], strict=True))
    ]
    table(f"{case.name}: exact values ({case.backend} backend)", rows, ("agent", "V", "per step"))
    for model, terms in truth["truth"].items():
        rows = [(term, vector(terms[term])) for term in ("total", "current", "own", "peer")]
        table(f"meta-gradient of agent {case.inner.meta_agent}, model {model[0].upper()}", rows, ("term", "value"))
    for check in document["checks"]:
        print(f"{check['name']}: {VERDICT_TEXT[check['verdict']]} ({check['summary']})")


def summary(documents: list[dict]) -> None:
    """One line per case, then the failing checks with their key figures."""
    rows = []
    for d in documents:
        verdicts = [c["verdict"] for c in d["checks"]]
        failed = [c["name"] for c in d["checks"] if c["verdict"] == "fail"]
        counts = "/".join(str(verdicts.count(v)) for v in ("pass", "info", "fail"))
        rows.append((d["case"]["name"], "FAIL" if failed else "pass", counts, ", ".join(failed)))
    table("summary", rows, ("case", "verdict", "pass/info/fail", "failed"))
    failures = [(d["case"]["name"], c["name"], c["summary"]) for d in documents for c in d["checks"] if not c["passed"]]
    if failures:
        table("failed checks", failures, ("case", "check", "key figure"))


def note_compile_time(cases: list[Case]) -> None:
    """Say which cases' closed forms will take long to compile (over a minute, estimated)."""
    for case in cases:
        seconds = compile_seconds(case.game, case.policy)
        if case.backend == "symbolic" and seconds > 60:
            print(
                f"note: {case.name}: compiling its closed forms may take about {seconds / 60:.0f} minutes "
                "(a rough estimate from the game's size)",
                file=sys.stderr,
            )
