"""The compiled fast path (:mod:`mapg_verify.exact.kernels`) against the numpy one: the same draws
from the same seed, and every estimate equal up to rounding (1e-12), for every built-in and wrong variant, pairing,
outer mode, baseline and Loaded DiCE, at L = 1 and 2, on sigmoid and softmax policies; and the
compiled draws against the autograd DiCE reference."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mapg_verify.casefile.reader import load_case, parse_case
from mapg_verify.estimators.dispatch import builtin_for
from mapg_verify.estimators.montecarlo import compiled_for, draw, draw_recorded
from mapg_verify.estimators.reference import reference
from mapg_verify.estimators.sampling import sample_trajectories
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS, MUTANTS
from mapg_verify.exact import baseline_kernels, kernels
from mapg_verify.exact.baselines import (
    gae,
    joint_policy,
    linear_statistics,
    returns_from_t,
    shipped_targets,
    state_values,
    trajectory_values,
)
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.enumeration import rewards_of
from mapg_verify.exact.reinforce import trajectory_terms, weighted_sums
from mapg_verify.problem.catalog import random_game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import POLICIES

CASES = Path(__file__).resolve().parents[1] / "cases"
GOLD = Path(__file__).resolve().parent / "gold" / "ipd_sampled_means.json"
IPD4 = {  # benchmarks/bench_estimators.py's case at 4 steps (10 take 7 s to compile)
    "game": {"builtin": "ipd_finite", "horizon": 4},
    "policy": {"kind": "sigmoid"},
    "params": {"seed": 0, "scale": 0.5},
    "inner": {"model": ["expected"], "steps": 1, "batch": 64},
}
VARIANTS = [
    "meta-mapg[baseline=value]",
    "meta-mapg[baseline=value, returns=from-t]",
    "meta-mapg[baseline=batch-mean]",
    "meta-mapg[baseline=leave-one-out, returns=from-t]",
    "meta-mapg[baseline=linear, gae_lambda=0.5]",
    "sampled-exact[inner_baseline=value]",
    "meta-pg[inner_baseline=leave-one-out]",
    "loaded-dice[dice_lambda=0.5, baseline=batch-mean]",
    "meta-mapg-official[baseline_fit=aligned]",
]
SOFTMAX = {
    "game": {"builtin": "random", "states": 3, "actions": [2, 3], "horizon": 3, "seed": 4},
    "policy": {"kind": "softmax"},
    "inner": {"model": ["expected"], "steps": 2, "batch": 3, "objective": "chain"},
}


def _with(case, **settings):
    return dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, **settings))


def _both(run, samples: int, monkeypatch) -> tuple:
    """The draws of ``run`` from one seed, by numpy and compiled."""
    monkeypatch.setattr(kernels, "MIN_STEPS", 0)
    monkeypatch.setenv("MAPG_VERIFY_KERNELS", "numpy")
    slow = draw(run, samples, np.random.default_rng(11))
    monkeypatch.setenv("MAPG_VERIFY_KERNELS", "numba")
    return slow, draw(run, samples, np.random.default_rng(11))


CASE_SETTINGS = [
    ("ipd_short.toml", {"pairing": "timestep"}),
    ("ipd_short.toml", {"outer": "exact", "pairing": "batch"}),
    ("matching_pennies.toml", {"pairing": "trajectory", "outer": "sampled"}),  # L = 2, chain, meta-agent 1
    ("softmax", {"pairing": "batch", "outer_batch": 2}),
]


@pytest.mark.parametrize(("path", "settings"), CASE_SETTINGS)
def test_compiled_draws_equal_numpy_ones_for_every_estimator(path, settings, monkeypatch):
    case = parse_case(SOFTMAX, "softmax") if path == "softmax" else load_case(CASES / path)
    case = _with(case, **settings)
    compiled = compile_game(case.game, case.policy)
    estimators = [*ESTIMATORS.values(), *MUTANTS.values(), *(builtin_for(case, name) for name in VARIANTS)]
    for estimator in estimators:
        slow, fast = _both(plan(case, compiled, estimator), 40, monkeypatch)
        for part in ("current", "own", "peer"):
            np.testing.assert_allclose(getattr(fast, part), getattr(slow, part), rtol=1e-12, atol=1e-12)


def test_compiled_draws_equal_the_autograd_reference(monkeypatch):
    monkeypatch.setattr(kernels, "MIN_STEPS", 0)
    case = _with(load_case(CASES / "ipd_short.toml"), pairing="timestep")
    compiled = compile_game(case.game, case.policy)
    for name in ("meta-mapg", "loaded-dice", "meta-mapg-official"):
        run = plan(case, compiled, ESTIMATORS[name])
        draws = draw_recorded(run, 3, np.random.default_rng(5))
        slow = np.array([reference(run, draws, r) for r in range(3)])
        np.testing.assert_allclose(draws.parts.total, slow, rtol=1e-10, atol=1e-12)


def test_the_compiled_sampler_draws_the_same_trajectories():
    game, policy = random_game(seed=2, states=4, actions=[3, 2], horizon=5), POLICIES["softmax"]
    layout = layout_of(game, policy)
    phi = np.random.default_rng(0).normal(size=(7, layout.size))
    slow, fast = (
        sample_trajectories(game, policy, layout, phi, 5, 7 * 30, np.random.default_rng(3), compiled)
        for compiled in (False, True)
    )
    for field in ("states", "actions", "log_environment", "to_go"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field))


def test_small_draws_and_the_setting_keep_numpy(monkeypatch):
    assert not kernels.enabled(kernels.MIN_STEPS - 1)
    assert kernels.enabled(kernels.MIN_STEPS)
    monkeypatch.setenv("MAPG_VERIFY_KERNELS", "numpy")
    assert not kernels.enabled(kernels.MIN_STEPS)


def test_compiled_draws_equal_the_code_before_issue_32s_third_round(monkeypatch):
    """Every built-in's mean of 200 estimates on the benchmark's IPD at 4 steps (K = K_out = 64, seed
    3, compiled) against the figures the code drew before that round (``tests/gold``, with its
    provenance): 1e-12 of the largest component (the linear fit from counts, the baselines' kernels,
    the int32 indices, the sampler's lanes and the products on tail sums change rounding only)."""
    monkeypatch.setattr(kernels, "MIN_STEPS", 0)
    gold = json.loads(GOLD.read_text())["means"]
    assert set(gold) == set(ESTIMATORS)
    case = parse_case(IPD4, "ipd-4-steps")
    compiled = compile_game(case.game, case.policy)
    for name, means in gold.items():
        run = plan(case, compiled, ESTIMATORS[name])
        assert compiled_for(run, 200)
        found = draw(run, 200, np.random.default_rng(3)).total.mean(axis=0)
        np.testing.assert_allclose(found, means, rtol=0, atol=1e-12 * np.abs(means).max(), err_msg=name)


def test_the_baseline_kernels_equal_numpy():
    """Returns from t, GAE and the linear fit's statistics (both fits) by the kernels: numpy's figures
    bit for bit; the exact state values up to rounding."""
    game, policy = random_game(seed=2, states=4, actions=[3, 2], horizon=5), POLICIES["softmax"]
    layout, rng = layout_of(game, policy), np.random.default_rng(8)
    phi = rng.normal(size=(6, layout.size))
    drawn = sample_trajectories(game, policy, layout, phi, 5, 6 * 8, rng, True)
    states, actions = drawn.states, drawn.actions
    returns = returns_from_t(game, rewards_of(game, states, actions))
    np.testing.assert_array_equal(baseline_kernels.advantages(game, states, actions, None), returns)
    table = state_values(game, policy, layout, phi, 5)
    found = baseline_kernels.state_values(game, joint_policy(game, policy, layout, phi), 5)
    np.testing.assert_allclose(found, table, rtol=1e-13, atol=1e-14)
    values = trajectory_values(game, policy, layout, drawn, phi)
    expected = gae(game, rewards_of(game, states, actions), values, 0.7)
    np.testing.assert_array_equal(baseline_kernels.advantages(game, states, actions, table, 0.7), expected)
    batches = returns.reshape(6, 8, 5, -1)
    for shipped in (False, True):
        targets = shipped_targets(batches).reshape(batches.shape) if shipped else batches
        expected = linear_statistics(game.n_states, states.reshape(6, 8, 5), targets)
        found = baseline_kernels.linear_statistics(game, states, actions, 8, shipped)
        for a, b in zip(found, expected, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_weighted_score_sums_equal_numpy():
    """``sum_b sum_t w_{b,t} s^b_t`` per group by the kernel (sparse scores) against numpy's (dense),
    per-step weights and weights constant over steps (from the score sums)."""
    game, policy = random_game(seed=2, states=4, actions=[3, 2], horizon=5), POLICIES["softmax"]
    layout, rng = layout_of(game, policy), np.random.default_rng(4)
    phi = rng.normal(size=(6, layout.size))
    drawn = sample_trajectories(game, policy, layout, phi, 5, 6 * 8, rng, True)
    dense, sparse = (trajectory_terms(game, policy, layout, drawn, phi, False, 1, c).step_scores for c in (False, True))
    for weights in (rng.normal(size=(48, 5)), rng.normal(size=(48, 1))):
        expected = weighted_sums(dense, weights, 6)
        np.testing.assert_allclose(weighted_sums(sparse, weights, 6), expected, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(expected, np.einsum("gkhd,gkh->gd", dense.reshape(6, 8, 5, -1), np.broadcast_to(
            weights, (48, 5)).reshape(6, 8, 5)), rtol=1e-13, atol=1e-14)  # fmt: skip
