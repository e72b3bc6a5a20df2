"""The catalog, its conventions and pinned IPD values."""

import math

import numpy as np
import pytest

from mapg_verify.exact.compiled import compile_game
from mapg_verify.problem.catalog import GAMES, bilinear, build_game, ipd, ipd_finite, random_game
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.policies import POLICIES

SIGMOID = POLICIES["sigmoid"]
BIG = 40.0  # sigmoid(40) = 1 - 4e-18: deterministic memory-1 strategies to double precision
# memory-1 strategies as logits over (start, CC, CD, DC, DD), each from its own point of view
TFT = [BIG, BIG, -BIG, BIG, -BIG]  # cooperate first, then copy the opponent's last action
ALLC = [BIG] * 5
ALLD = [-BIG] * 5


def ipd_values(first, second, game=None):
    compiled = compile_game(game or ipd(), SIGMOID)
    return compiled.value(np.array(first + second))


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # both cooperate forever: -1 per step, sum_t 0.96^t = 25
        (TFT, TFT, (-25.0, -25.0)),
        (ALLC, ALLC, (-25.0, -25.0)),
        # both defect forever: -2 per step
        (ALLD, ALLD, (-50.0, -50.0)),
        # the sucker pays -3 per step, the defector 0
        (ALLC, ALLD, (-75.0, 0.0)),
        (ALLD, ALLC, (0.0, -75.0)),
        # TFT is exploited once (-3 / 0), then mutual defection from step 1: 0.96 * -50 = -48
        (TFT, ALLD, (-51.0, -48.0)),
        (ALLD, TFT, (-48.0, -51.0)),
        # TFT against ALLC cooperates throughout
        (TFT, ALLC, (-25.0, -25.0)),
    ],
)
def test_ipd_classics(first, second, expected):
    # logits of +-40 leave each action's probability 4e-18 away from 0 or 1: over the
    # 25 discounted steps that moves a value by at most ~1e-15 absolute.
    np.testing.assert_allclose(ipd_values(first, second), expected, rtol=1e-13, atol=1e-13)


def test_ipd_per_step_is_the_papers_scale():
    # (1 - gamma) V: -1 for mutual cooperation, -2 for mutual defection
    game = ipd()
    assert ipd_values(TFT, TFT)[0] / game.discount_mass() == pytest.approx(-1.0, rel=1e-13)
    assert ipd_values(ALLD, ALLD)[0] / game.discount_mass() == pytest.approx(-2.0, rel=1e-13)


def test_ipd_agent_one_sees_cd_and_dc_swapped():
    # agent 1 punishing only after "I cooperated, you defected" (its own CD) is TFT's
    # defect-after-sucker rule; under agent 0's state names that is DC.
    game = ipd()
    assert game.views[1].tolist() == [0, 1, 3, 2, 4]
    # the game is symmetric: swapping the players swaps the values
    rng = np.random.default_rng(0)
    first, second = list(rng.normal(size=5)), list(rng.normal(size=5))
    np.testing.assert_allclose(ipd_values(first, second), ipd_values(second, first)[::-1], rtol=1e-13)


def test_finite_ipd_tft_vs_alld():
    # horizon 3: -3, then -2 twice, discounted: -3 - 2 * 0.96 - 2 * 0.96^2
    game = ipd_finite(horizon=3)
    expected = -3 - 2 * 0.96 - 2 * 0.96**2
    assert ipd_values(TFT, ALLD, game)[0] == pytest.approx(expected, rel=1e-13)
    assert game.discount_mass() == pytest.approx(1 + 0.96 + 0.96**2)


def test_catalog_games_are_valid_and_documented():
    for name, entry in GAMES.items():
        game = build_game(name, {})
        assert game.description, name
        assert entry.summary


def test_bilinear_values():
    game = bilinear()
    assert game.values(([2.0], [3.0])) == (6.0, -6.0)


def test_random_games_respect_sparsity_and_rows():
    game = random_game(seed=3, states=6, actions=[2, 3], sparsity=0.6)
    assert game.transitions.shape == (6, 2, 3, 6)
    np.testing.assert_allclose(game.transitions.sum(-1), 1.0)
    assert (game.transitions == 0).mean() > 0.3
    assert np.all((game.transitions > 0).any(axis=-1))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"gamma": 1.0}, "game.gamma"),
        ({"horizon": 0}, "game.horizon"),
        ({"horizon": "forever"}, "game.horizon"),
        ({"gamma": 1.5, "horizon": 4}, "game.gamma"),
    ],
)
def test_bad_ipd_options_name_their_key(options, key):
    with pytest.raises(InputError) as error:
        build_game("ipd", options)
    assert error.value.key == key


def test_unknown_game_and_option():
    with pytest.raises(InputError, match="unknown game"):
        build_game("poker", {})
    with pytest.raises(InputError) as error:
        build_game("ipd", {"noise": 0.1})
    assert error.value.key == "game.noise"


def test_infinite_discount_mass():
    assert ipd().discount_mass() == pytest.approx(25.0)
    assert math.isinf(ipd().horizon)


def test_noisy_ipd_tasks_perturb_each_payoff_within_the_noise():
    from mapg_verify.problem.catalog import PD_PAYOFFS, noisy_ipd

    tasks = [noisy_ipd(seed, noise=0.5) for seed in range(50)]
    offsets = np.array([task.rewards[:, 0] - np.array(PD_PAYOFFS) for task in tasks])
    assert np.all(np.abs(offsets) <= 0.5)
    assert offsets.std() > 0.2  # uniform(-0.5, 0.5) has standard deviation 0.29
    assert len({task.name for task in tasks}) == 50
    assert np.all(tasks[0].rewards == tasks[0].rewards[:, :1])  # the same payoffs in every state
