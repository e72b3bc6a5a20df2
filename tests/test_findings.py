"""The findings table's check (``paper:newer-findings``): it passes when every claim's outcome is as
docs/findings.md documents it and names the rows that differ otherwise; the experiment's case file
loads and asks for it."""

from pathlib import Path

from mapg_verify.casefile.reader import load_case
from mapg_verify.checks import findings
from mapg_verify.paper import RUNS

ROOT = Path(__file__).resolve().parents[1]


def _rows(outcomes):
    return [{"estimator": name, "game": "g", "holds": holds} for name, holds in outcomes]


def test_check_passes_when_the_findings_are_as_documented(monkeypatch):
    monkeypatch.setattr(findings, "newer_rows", lambda: _rows(findings.DOCUMENTED.items()))
    record, check = findings.newer_findings()
    assert check.passed and record["experiment"] == "newer-findings"
    assert check.figures == {"rows": len(findings.DOCUMENTED), "as documented": len(findings.DOCUMENTED)}


def test_check_names_the_rows_that_differ(monkeypatch):
    flipped = [
        (name, not holds if name == "advantage-alignment" else holds) for name, holds in findings.DOCUMENTED.items()
    ]
    monkeypatch.setattr(findings, "newer_rows", lambda: _rows(flipped))
    _, check = findings.newer_findings()
    assert not check.passed
    assert check.summary.endswith("not: advantage-alignment on g"), check.summary


def test_the_experiment_runs_the_findings():
    case = load_case(ROOT / "experiments" / "newer" / "findings.toml")
    assert case.paper.experiment == "newer-findings"
    assert RUNS[case.paper.experiment] is findings.newer_findings
