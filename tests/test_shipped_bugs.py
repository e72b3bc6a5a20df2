"""Bugs that shipped in public opponent-shaping code (examples/shipped_bugs.py): each fails its
claim exactly on a small case, but the one whose expectation the mathematics leaves unchanged."""

import pytest

from examples.shipped_bugs import SHIPPED, UNCATCHABLE, claim_of, official_baseline_aligned, small_case
from mapg_verify import check_estimator


@pytest.mark.parametrize("name", list(SHIPPED))
def test_each_shipped_bug_fails_its_claim_exactly(name):
    _, function, *_ = SHIPPED[name]
    result = check_estimator(function, small_case(name), claim=claim_of(name), mode="exact", samples=20)
    claim = next(c for c in result.checks if c.kind == "claim")
    assert claim.figures["mode"] == "exact"
    if name in UNCATCHABLE:
        assert claim.verdict == "pass", claim.summary  # unbiased with exact values: see UNCATCHABLE
    else:
        assert claim.verdict == "fail" and claim.figures["error"] > 1e-3, claim.summary


def test_the_official_baseline_fitted_aligned_holds_the_same_claim():
    """The control of ``official_baseline_fit``: the same plug-in with the fit aligned equals the
    built-in it claims exactly, so the as-shipped fit's failure is the misaligned rows alone."""
    case = small_case("official_baseline_fit")
    result = check_estimator(official_baseline_aligned, case, claim=claim_of("official_baseline_fit"), mode="exact")
    claim = next(c for c in result.checks if c.kind == "claim")
    assert claim.verdict == "pass" and claim.figures["error"] <= 1e-10, claim.summary
