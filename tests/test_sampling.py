"""The vectorised sampler against the exact enumeration: frequencies, log-probabilities, returns.

Statistical tests here use Pearson's chi-square at a stated level with fixed seeds;
`test_chi_square_false_alarm_rate_is_calibrated` shows that, for this sampler and
these sizes, the test rejects a correct sampler at its nominal rate.
"""

import numpy as np
import pytest
from scipy.stats import binomtest, chisquare

from mapg_verify.estimators.sampling import sample_trajectories
from mapg_verify.exact.enumeration import enumerate_trajectories
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.catalog import ipd_finite, random_game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import POLICIES

LEVEL = 0.01


def setting(kind="sigmoid"):
    game = ipd_finite(horizon=2)
    policy = POLICIES[kind]
    layout = layout_of(game, policy)
    phi = 0.7 * np.random.default_rng(1).standard_normal(layout.size)
    return game, policy, layout, phi


def indices(sampled, enumerated) -> np.ndarray:
    """Each sampled trajectory's row in the enumeration."""
    key = {
        (tuple(s), a.tobytes()): i for i, (s, a) in enumerate(zip(enumerated.states, enumerated.actions, strict=True))
    }
    return np.array([key[(tuple(s), a.tobytes())] for s, a in zip(sampled.states, sampled.actions, strict=True)])


def chi_square_p(game, policy, layout, phi, sample_phi, count, seed) -> float:
    enumerated = enumerate_trajectories(game, 2)
    expected = np.exp(trajectory_terms(game, policy, layout, enumerated, phi).log_prob) * count
    sampled = sample_trajectories(game, policy, layout, sample_phi, 2, count, np.random.default_rng(seed))
    observed = np.bincount(indices(sampled, enumerated), minlength=len(expected))
    return chisquare(observed, expected).pvalue


@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
def test_frequencies_match_the_exact_trajectory_probabilities(kind):
    game, policy, layout, phi = setting(kind)
    assert chi_square_p(game, policy, layout, phi, phi, 20_000, seed=0) > LEVEL


def test_chi_square_false_alarm_rate_is_calibrated():
    """300 seeds at level 0.05: rejections of the correct sampler follow Binomial(300, 0.05)
    (two-sided binomial test at 0.001, so this test itself fails by chance 1 time in 1000)."""
    game, policy, layout, phi = setting()
    rejections = sum(chi_square_p(game, policy, layout, phi, phi, 2_000, seed) < 0.05 for seed in range(300))
    assert binomtest(rejections, 300, 0.05).pvalue > 0.001, rejections


def test_a_slightly_wrong_policy_is_detected():
    """Power: sampling at phi + 0.2 in one logit is rejected at level 0.01 with 20000 draws."""
    game, policy, layout, phi = setting()
    shifted = phi.copy()
    shifted[1] += 0.2
    assert chi_square_p(game, policy, layout, phi, shifted, 20_000, seed=0) < LEVEL


def test_log_probabilities_and_returns_equal_the_enumerations():
    game = random_game(seed=2, states=3, actions=[2, 3], horizon=3, gamma=0.9, sparsity=0.4)
    policy = POLICIES["softmax"]
    layout = layout_of(game, policy)
    phi = np.random.default_rng(0).standard_normal(layout.size)
    enumerated = enumerate_trajectories(game, 3)
    sampled = sample_trajectories(game, policy, layout, phi, 3, 500, np.random.default_rng(3))
    rows = indices(sampled, enumerated)
    np.testing.assert_allclose(sampled.log_environment, enumerated.log_environment[rows], rtol=1e-14)
    np.testing.assert_allclose(sampled.to_go, enumerated.to_go[rows], rtol=1e-14)


def test_the_same_seed_gives_the_same_trajectories():
    game, policy, layout, phi = setting()
    first, second = (sample_trajectories(game, policy, layout, phi, 4, 100, np.random.default_rng(9)) for _ in "ab")
    assert np.array_equal(first.states, second.states) and np.array_equal(first.actions, second.actions)
