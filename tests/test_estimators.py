"""The sampled estimators: fast path against the autograd DiCE reference, exact expectations
against brute force and against model S's truth, Monte-Carlo means against expectations, and
the fingerprints each estimator declares."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.claims import check_claim, default_claim
from mapg_verify.checks.fingerprint import design_for, fingerprint
from mapg_verify.checks.statistics import mean_test
from mapg_verify.estimators.dispatch import exact_expectation
from mapg_verify.estimators.expectations import expectation
from mapg_verify.estimators.montecarlo import Draws, draw, draw_recorded
from mapg_verify.estimators.plugins import plugin_expectation
from mapg_verify.estimators.reference import reference
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS, MUTANTS
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.enumeration import Trajectories, discounted_to_go
from mapg_verify.exact.metagradient import meta_gradients
from mapg_verify.exact.truths import Truths

CASES = Path(__file__).resolve().parents[1] / "cases"
ALL = {**ESTIMATORS, **MUTANTS}


def with_settings(case, **settings):
    return dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, **settings))


def setting(name: str, **settings):
    case = with_settings(load_case(CASES / name), **settings)
    return case, compile_game(case.game, case.policy)


SETTINGS = [
    ("pd.toml", {}),
    ("ipd_short.toml", {"pairing": "timestep"}),
    ("ipd_short.toml", {"outer": "exact", "pairing": "batch"}),
    ("matching_pennies.toml", {"pairing": "trajectory", "outer": "sampled"}),  # L = 2, chain, meta-agent 1
    ("matching_pennies.toml", {"pairing": "batch", "outer_batch": 3}),
]


@pytest.mark.parametrize(
    ("path", "settings"),
    [
        ("ipd_short.toml", {"pairing": "timestep"}),  # two steps: the timestep pairing's own term
        ("matching_pennies.toml", {"pairing": "trajectory", "outer": "sampled"}),  # L = 2, chain
        ("matching_pennies.toml", {"pairing": "batch"}),
    ],
)
@pytest.mark.parametrize("name", ["meta-mapg", "meta-pg", "sampled-exact", "expected-update"])
def test_declared_fingerprints_hold_beyond_one_step_and_the_batch_pairing(path, settings, name):
    """The basis covers the timestep pairing and L >= 2: each declared fingerprint is judged and
    holds there; meta-pg, which differentiates one side only, declares none at L >= 2."""
    case, compiled = setting(path, **settings)
    claim = default_claim(case, name)
    if name == "meta-pg" and case.inner.steps > 1:
        assert claim is None
        return
    design = design_for(case, compiled)
    exact = exact_expectation(case, compiled, name)
    result = check_claim(case, compiled, Truths(case, compiled), name, claim, exact, None, 0, design)
    assert result.verdict == "pass", result.summary


@pytest.mark.parametrize(("name", "settings"), SETTINGS)
def test_fast_path_matches_autograd_dice_reference(name, settings):
    case, compiled = setting(name, **settings)
    for estimator in ALL.values():
        run = plan(case, compiled, estimator)
        draws = draw_recorded(run, 3, np.random.default_rng(5))
        slow = np.array([reference(run, draws, r) for r in range(3)])
        np.testing.assert_allclose(draws.parts.total, slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["pd.toml", "ipd_short.toml", "matching_pennies.toml", "power_ipd.toml"])
def test_sampled_exact_expectation_is_model_s_truth(name):
    case, compiled = setting(name, outer="sampled")
    truth = meta_gradients(compiled, case)["sampled"]
    got = expectation(plan(case, compiled, ESTIMATORS["sampled-exact"]))
    for term in ("current", "own", "peer", "total"):
        np.testing.assert_allclose(getattr(got, term), getattr(truth, term), rtol=1e-12, atol=1e-14)


def test_naive_expectation_is_the_plain_gradient():
    case, compiled = setting("ipd_short.toml")
    x = compiled.layout.flatten(case.theta)
    got = expectation(plan(case, compiled, ESTIMATORS["naive"])).total
    np.testing.assert_allclose(got, compiled.gradient(x)[0, :5], rtol=1e-12)


def _as_trajectories(case, batch) -> Trajectories:
    to_go = discounted_to_go(case.game, batch.states, batch.actions)
    return Trajectories(batch.states, batch.actions, np.zeros(len(batch.states)), to_go)


@pytest.mark.parametrize(
    ("estimator", "pairing"),
    [
        ("meta-mapg", "trajectory"),
        ("meta-mapg", "timestep"),
        ("meta-pg", "batch"),
        ("meta-mapg/no-reward-to-go", "batch"),
    ],
)
def test_expectation_matches_brute_force_over_ordered_batches(estimator, pairing):
    """Multisets, conditional outer expectations and closed forms against every ordered sequence of
    trajectories pushed through the autograd reference, one by one."""
    case, compiled = setting("pd.toml", pairing=pairing)
    case = dataclasses.replace(
        case,
        inner=dataclasses.replace(case.inner, batch=2),
        estimators=dataclasses.replace(case.estimators, outer_batch=2),
    )
    run = plan(case, compiled, ALL[estimator])

    def through_reference(inner, outer, theta, settings):
        draws = Draws(
            None,
            tuple(_as_trajectories(case, b) for b in inner),
            tuple(None if b is None else _as_trajectories(case, b) for b in outer),
        )
        return reference(run, draws, 0)

    brute = plugin_expectation(case, compiled, through_reference).total
    np.testing.assert_allclose(expectation(run).total, brute, rtol=1e-12)


@pytest.mark.parametrize("name", ["ipd_short.toml", "matching_pennies.toml"])
def test_monte_carlo_means_are_consistent_with_expectations(name):
    """Every estimator at a fixed seed; Holm over the family at level 0.01 (each alone: 1%)."""
    case, compiled = setting(name)
    p_values = []
    for estimator in ESTIMATORS.values():
        run = plan(case, compiled, estimator)
        rows = draw(run, 4000, np.random.default_rng(11)).total
        p_values.append(mean_test(rows, expectation(run).total, level=0.01).p_value)
    assert min(p_values) * len(p_values) > 0.01, p_values


def test_draws_are_reproducible_and_chunks_cover_every_sample(monkeypatch):
    case, compiled = setting("ipd_short.toml")
    run = plan(case, compiled, ESTIMATORS["meta-mapg"])
    first, second = (draw(run, 300, np.random.default_rng(1)).total for _ in "ab")
    np.testing.assert_array_equal(first, second)
    monkeypatch.setattr("mapg_verify.estimators.montecarlo.CHUNK_FLOATS", 1)  # one replicate per chunk
    rows = draw(run, 300, np.random.default_rng(1)).total
    assert rows.shape == first.shape
    assert not mean_test(rows, expectation(run).total, level=0.001).rejected


def test_a_wrong_mean_is_rejected():
    """The implementation check can fail: meta-mapg's rows against meta-pg's expectation."""
    case, compiled = setting("power_ipd.toml")
    rows = draw(plan(case, compiled, ESTIMATORS["meta-mapg"]), 20000, np.random.default_rng(2)).total
    assert mean_test(rows, expectation(plan(case, compiled, ESTIMATORS["meta-pg"])).total).rejected


@pytest.mark.parametrize("name", ["meta-mapg", "meta-pg", "opponent-only", "sampled-exact", "expected-update"])
def test_declared_fingerprints_hold_at_one_step(name):
    case, compiled = setting("ipd_short.toml", pairing="batch")
    result = fingerprint(case, compiled, name)
    assert result.passed, result.summary
    assert result.figures["relative residual"] < 1e-10


@pytest.mark.parametrize("name", ["meta-mapg/dropped-current", "meta-mapg/flipped-peer"])
def test_fingerprint_claim_catches_a_missing_or_flipped_term(name):
    """A wrong variant claiming meta-mapg's declared fingerprint fails it, on every parameter draw;
    the fingerprint itself only reports (info), and shows the term that moved."""
    case, compiled = setting("ipd_short.toml", pairing="batch")
    claim = default_claim(case, "meta-mapg")
    exact = exact_expectation(case, compiled, name)
    result = check_claim(
        case, compiled, Truths(case, compiled), name, claim, exact, None, 0, design_for(case, compiled)
    )
    assert result.verdict == "fail" and result.summary.startswith("does not hold"), result.summary
    assert fingerprint(case, compiled, name).verdict == "info"


def test_trajectory_pairing_scales_the_current_term_by_one_over_k():
    case, compiled = setting("pd.toml", pairing="trajectory")
    batch = expectation(plan(case, compiled, ESTIMATORS["meta-mapg"]))
    paired = expectation(plan(with_settings(case, pairing="batch"), compiled, ESTIMATORS["meta-mapg"]))
    np.testing.assert_allclose(batch.current * case.inner.batch, paired.current, rtol=1e-12)
    np.testing.assert_allclose(batch.own + batch.peer, paired.own + paired.peer, rtol=1e-12)
