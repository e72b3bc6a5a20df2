"""The baseline controls of the paired claim test (``estimators/controls.py``): exactly zero mean,
by enumeration of every outer batch, and the span a baseline's difference lies in."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from examples import dice_meta_mapg as dice
from mapg_verify import check_estimator
from mapg_verify.casefile.reader import load_case
from mapg_verify.estimators import controls
from mapg_verify.estimators.controls import baseline_controls, baselines_fit
from mapg_verify.estimators.montecarlo import Draws
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS
from mapg_verify.exact.backend import case_values
from mapg_verify.exact.enumeration import enumerate_trajectories
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.plugins import returns

CASE = Path(__file__).parent / "claims" / "ipd_two_steps.toml"


def _every_outer_pair(seed: int):
    """The 2-step IPD's meta-mapg plan, a random ``phi_L`` and tangent, and every ordered outer batch
    of two trajectories drawn there, one replicate each, with its probability."""
    case = load_case(CASE)
    compiled = case_values(case)
    surrogate = plan(case, compiled, ESTIMATORS["meta-mapg"])
    rng = np.random.default_rng(seed)
    phi = case.flat_theta + rng.normal(scale=0.5, size=case.flat_theta.shape)
    tangent = rng.normal(size=(compiled.layout.size, np.size(case.theta[case.inner.meta_agent])))
    every = enumerate_trajectories(case.game, case.inner.horizon)
    probability = np.exp(trajectory_terms(case.game, case.policy, compiled.layout, every, phi).log_prob)
    pairs = np.array(list(itertools.product(range(len(probability)), repeat=2)))
    count = len(pairs)
    phis, tangents = (np.tile(phi, (count, 1)),), (np.tile(tangent, (count, 1, 1)),)
    draws = Draws(None, (), (every.take(pairs.ravel()),), phis, tangents)
    return surrogate, draws, count, probability[pairs].prod(axis=1)


def test_baseline_controls_have_mean_exactly_zero():
    """Every control's expectation over every outer batch of the 2-step IPD (K_out = 2), at random
    parameters and a random tangent, is 0 to rounding, against the controls' own scale."""
    for seed in range(3):
        surrogate, draws, count, weights = _every_outer_pair(seed)
        controls = baseline_controls(surrogate, draws, count)
        assert abs(weights.sum() - 1) < 1e-12
        assert controls.shape[1] == (5 * 2 + 2) * 5  # (H S + H) features, d = 5 each
        mean = weights @ controls
        assert np.max(np.abs(mean)) < 1e-13 * np.max(np.abs(controls)), np.max(np.abs(mean))


def test_the_mean_is_zero_only_under_the_law_that_drew_the_batches():
    """The test above can fail: weighted by the probabilities of batches drawn at other parameters,
    the same controls have a mean far from 0."""
    surrogate, draws, count, _ = _every_outer_pair(0)
    _, _, _, elsewhere = _every_outer_pair(1)
    controls = baseline_controls(surrogate, draws, count)
    assert np.max(np.abs(elsewhere @ controls)) > 1e-3 * np.max(np.abs(controls))


def test_the_controls_are_drawn_only_with_enough_samples_per_control():
    case = load_case(CASE)
    assert not baselines_fit(case, 1000) and baselines_fit(case, 1200)  # 60 controls, 20 rows each


def _state_time_baseline(inner, outer, theta, settings):
    """The DiCE port with an arbitrary baseline ``b(t, s_t)`` taken from its outer returns."""
    table = np.linspace(-2.0, 3.0, 2 * 5).reshape(2, 5)

    def target(batch, settings, i):
        return returns(batch, settings, i) - table[np.arange(batch.states.shape[1]), batch.states]

    return dice._estimate(inner, outer, theta, settings, target=target)


def test_a_state_time_baseline_differs_by_the_controls_alone():
    """A port with any baseline of the step and the state (a critic's, say) is not equal to
    meta-mapg batch by batch, but its difference is a combination of the baseline controls: the
    test is as sharp as for a port with no baseline."""
    found = check_estimator(_state_time_baseline, CASE, claim="meta-mapg", samples=2000, mode="statistical")
    claim = next(c for c in found.checks if c.kind == "claim")
    assert claim.figures["largest relative gap"] > 1e-2, claim.figures
    assert claim.verdict == "pass" and "by terms of exactly zero mean only" in claim.summary, claim.summary


def _discount_slip(inner, outer, theta, settings):
    """The leave-one-out port with its outer returns discounted at 0.99 gamma: 1.2% off meta-mapg."""
    slipped = dataclasses.replace(settings, gamma=0.99 * settings.gamma)
    return dice._estimate(inner, outer, theta, settings, baseline=True, target=lambda b, s, i: returns(b, slipped, i))


def _one_percent_more(inner, outer, theta, settings):
    """The leave-one-out port, 1% too large."""
    return 1.01 * dice._estimate(inner, outer, theta, settings, baseline=True)


@pytest.mark.parametrize("function", [_discount_slip, _one_percent_more])
def test_one_percent_bugs_behind_a_baseline_are_caught_at_the_default_budget(function, monkeypatch):
    """Issue 29's goal: bugs of about 1% of the reference's norm in a port with a leave-one-out
    baseline, on the 2-step IPD with K = 2 at 2,000 samples, are rejected (p below 1e-10); without
    the baseline controls the same test passes them (the baseline's noise hides them)."""
    found = check_estimator(function, CASE, claim="meta-mapg", samples=2000, mode="statistical")
    claim = next(c for c in found.checks if c.kind == "claim")
    assert claim.verdict == "fail" and claim.figures["relative difference measured"] < 0.013, claim.summary
    assert claim.figures["p-value"] is None or claim.figures["p-value"] < 1e-10, claim.summary
    monkeypatch.setattr(controls, "BASELINE_ROWS_PER_CONTROL", 10**9)
    found = check_estimator(function, CASE, claim="meta-mapg", samples=2000, mode="statistical")
    claim = next(c for c in found.checks if c.kind == "claim")
    assert claim.verdict == "pass", claim.summary
