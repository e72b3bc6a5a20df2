"""Counterexamples found while hardening the checks (issue 11), kept as case files in
``tests/cases``: valid games on which a check once false-alarmed. No check may fail on them."""

import json
from pathlib import Path

import pytest

from mapg_verify.cli import main

CASES = sorted((Path(__file__).parent / "cases").glob("*.toml"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_exact_passes(path, tmp_path):
    out = tmp_path / "exact.json"
    assert main(["exact", str(path), "--json", str(out)]) == 0
    assert all(check["verdict"] != "fail" for check in json.loads(out.read_text())["checks"])


def test_a_quick_run_has_no_failed_check(tmp_path):
    assert main(["run", str(CASES[0].parent), "--quick", "--jobs", "1", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    assert len(document["cases"]) == len(CASES)
    assert not [c["name"] for case in document["cases"] for c in case["checks"] if c["verdict"] == "fail"]
