"""Conventions of public code (issue: declared once, converted both ways), each against a conversion
written here by hand from that code's environment: LOLA_DiCE's ``envs/prisoners_dilemma.py`` and
``act``, meta-mapg's ``gym_env/ipd``, pax's ``iterated_matrix_game.py``, M-FOS's ``ipd_batched``."""

import dataclasses
import warnings
from pathlib import Path

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from examples import lola_dice_style
from mapg_verify import pipeline
from mapg_verify.casefile.reader import load_case, parse_case
from mapg_verify.estimators.conventions import (
    CONVENTIONS,
    adapted,
    observations,
    our_parameters,
    parse_convention,
    their_actions,
    their_parameters,
    to_theirs,
)
from mapg_verify.estimators.records import Batch, settings_of
from mapg_verify.exact.enumeration import enumerate_trajectories, rewards_of
from mapg_verify.problem.catalog import ipd_finite
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import Claim

GAME = ipd_finite(horizon=2, gamma=0.9)
THETA = np.array([0.5, 1.0, -0.5, 0.8, -1.3])
JOINT = [(a0, a1) for a0 in range(2) for a1 in range(2)]  # ours: 0 is C; state 1 + 2 a0 + a1


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lola_dice_state(own, other):
    """``IteratedPrisonersDilemma.states[own, other]`` with its labels (0 defect, 1 cooperate)."""
    return np.array([[1, 2], [3, 4]])[1 - own, 1 - other]


def test_lola_dice_observations_actions_and_parameters():
    convention = CONVENTIONS["lola-dice"]
    for a0, a1 in JOINT:
        seen = observations(convention, GAME, np.array(1 + 2 * a0 + a1))
        assert tuple(seen) == (lola_dice_state(a0, a1), lola_dice_state(a1, a0))
        assert tuple(their_actions(convention, GAME, np.array([a0, a1]))) == (1 - a0, 1 - a1)
    assert tuple(observations(convention, GAME, np.array(0))) == (0, 0)
    np.testing.assert_allclose(their_parameters(convention, GAME, 0, THETA), -THETA[[0, 4, 3, 2, 1]])
    for k in range(2):  # act(): P(action 0 = defect | its state) = sigmoid(theta'[state])
        theirs = their_parameters(convention, GAME, k, THETA)
        for s in range(5):
            seen = observations(convention, GAME, np.array(s))[k]
            np.testing.assert_allclose(sigmoid(theirs[seen]), 1 - sigmoid(THETA[GAME.views[k, s]]))


def test_meta_mapg_shares_agent_0s_state_and_shifts_the_payoffs():
    """``IPDEnv.step``: state ``2 a0 + a1`` in its labels (0 defect) for both agents, observed as that
    plus 1, payoffs ``[-0.5, 1.5, -1.5, 0.5]`` and ``[-0.5, -1.5, 1.5, 0.5]`` as float32."""
    convention = CONVENTIONS["meta-mapg"]
    payoffs = [np.array([-0.5, 1.5, -1.5, 0.5], np.float32), np.array([-0.5, -1.5, 1.5, 0.5], np.float32)]
    trajectories = enumerate_trajectories(GAME, 2)
    rewards = rewards_of(GAME, trajectories.states, trajectories.actions)
    batch = Batch(trajectories.states, trajectories.actions, rewards, (THETA, THETA), np.zeros_like(rewards))
    theirs = to_theirs(convention, GAME, batch)
    code = 2 * (1 - trajectories.actions[..., 0]) + (1 - trajectories.actions[..., 1])
    assert theirs.rewards.dtype == np.float32
    for k in range(2):
        np.testing.assert_array_equal(theirs.rewards[..., k], payoffs[k][code])
        np.testing.assert_array_equal(theirs.states[:, 1:, k], 1 + code[:, :-1])
    gamma = GAME.gamma
    np.testing.assert_allclose(theirs.values[:, 0], 1.5 * (1 + gamma))  # V' = V + 1.5 (1 + gamma) at t = 0
    for k in range(2):  # softmax(actor[obs]) in the code; here sigmoid(theta'[obs]) = P(defect)
        mine = their_parameters(convention, GAME, k, THETA)
        for s in range(5):
            np.testing.assert_allclose(
                sigmoid(mine[observations(convention, GAME, np.array(s))[k]]), 1 - sigmoid(THETA[GAME.views[k, s]])
            )


def test_pax_puts_the_start_state_last():
    """``IteratedMatrixGame._step``: ``s1 = 0 CC, 1 CD, 2 DC, 3 DD`` (action 0 is C), ``s2`` swapped, 4 the start."""
    convention = CONVENTIONS["pax"]
    for a1, a2 in JOINT:
        s1 = 0 * (1 - a1) * (1 - a2) + 1 * (1 - a1) * a2 + 2 * a1 * (1 - a2) + 3 * a1 * a2
        s2 = 0 * (1 - a1) * (1 - a2) + 1 * a1 * (1 - a2) + 2 * (1 - a1) * a2 + 3 * a1 * a2
        assert tuple(observations(convention, GAME, np.array(1 + 2 * a1 + a2))) == (s1, s2)
    assert tuple(observations(convention, GAME, np.array(0))) == (4, 4)
    np.testing.assert_allclose(their_parameters(convention, GAME, 1, THETA), THETA[[1, 2, 3, 4, 0]])


def test_m_fos_is_ours():
    """``ipd_batched``: ``sigmoid(th[:, 0])`` the start, ``th[:, 1:5]`` CC, CD, DC, DD for agent 1,
    agent 2's rows read as ``[1, 3, 2, 4]``: the toolkit's own conventions."""
    convention = CONVENTIONS["m-fos"]
    for k in range(2):
        np.testing.assert_allclose(their_parameters(convention, GAME, k, THETA), THETA)
        assert [observations(convention, GAME, np.array(s))[k] for s in range(5)] == list(GAME.views[k])
    assert list(GAME.views[1]) == [0, 1, 3, 2, 4]


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_parameters_go_both_ways_sigmoid_and_softmax(name):
    convention = CONVENTIONS[name]
    rng = np.random.default_rng(1)
    for k in range(2):
        flat, rows = rng.normal(size=(3, 5)), rng.normal(size=(3, 5, 2))
        np.testing.assert_allclose(
            our_parameters(convention, GAME, k, their_parameters(convention, GAME, k, flat)), flat
        )
        back = our_parameters(convention, GAME, k, their_parameters(convention, GAME, k, rows, True), True)
        np.testing.assert_allclose(back, rows)


def test_an_adapted_plugin_returns_the_gradient_in_our_parameters():
    """A REINFORCE gradient written in LOLA_DiCE's conventions (autograd through its own ``theta'``),
    converted back, equals the same gradient written in ours; phis likewise."""
    convention = CONVENTIONS["lola-dice"]
    trajectories = enumerate_trajectories(GAME, 2)
    rewards = rewards_of(GAME, trajectories.states, trajectories.actions)
    phi = (THETA, THETA[::-1].copy())
    batch = Batch(trajectories.states, trajectories.actions, rewards, phi, np.zeros_like(rewards))

    def log_p(theta, states, actions):  # P(action 0) = sigmoid(theta[state]), in whatever labels
        p0 = 1.0 / (1.0 + anp.exp(-theta[states]))
        return anp.log(anp.where(actions == 0, p0, 1.0 - p0))

    def score(theta, b, agent):
        states = b.states[..., agent] if b.states.ndim == 3 else GAME.views[agent][b.states]
        return anp.sum(log_p(theta, states, b.actions[..., agent]) * b.rewards[..., agent])

    def call(inner, outer, theta):
        return autograd.grad(score)(theta[0], inner[0], 0), [tuple(t + 1.0 for t in theta)]

    value, phis = adapted(call, convention, GAME, 0, False)((batch,), (None,), phi)
    np.testing.assert_allclose(value, autograd.grad(score)(phi[0], batch, 0), rtol=1e-12)
    shifted = our_parameters(convention, GAME, 1, their_parameters(convention, GAME, 1, phi[1]) + 1.0)
    np.testing.assert_allclose(phis[0][1], shifted)


def test_plugins_see_writable_views():
    case = parse_case(
        {
            "game": {"builtin": "ipd_finite", "horizon": 2},
            "policy": {"kind": "sigmoid"},
            "params": {"theta": [[0.0] * 5] * 2},
        },
        "views",
    )
    views = settings_of(case).game.views
    assert views.flags.writeable and settings_of(case).game is settings_of(case).game
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.as_tensor(views)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("lola", "unknown convention"),
        ({"states": [0, 1, 1, 2, 3]}, "permutation"),
        ({"sign": 2}, "sign"),
        ({"views": "theirs"}, "views"),
        ({"colour": "red"}, "a table of"),
    ],
)
def test_bad_conventions_are_input_errors(value, reason):
    with pytest.raises(InputError) as error:
        parse_convention(value, "estimators.conventions.x:y")
    assert error.value.key == "estimators.conventions.x:y" and reason in error.value.reason


def test_a_case_declares_a_plugins_conventions_and_they_must_fit_the_game():
    document = {
        "game": {"builtin": "prisoners_dilemma"},
        "policy": {"kind": "sigmoid"},
        "params": {"theta": [[0.3], [-0.2]]},
        "inner": {"model": ["sampled"], "batch": 2},
        "estimators": {"names": ["examples.dice_meta_mapg:meta_mapg"], "conventions": {}},
    }
    document["estimators"]["conventions"] = {
        "examples.dice_meta_mapg:meta_mapg": {"actions": [[1, 0], [1, 0]], "sign": -1}
    }
    case = parse_case(document, "pd")
    assert dict(case.estimators.conventions)["examples.dice_meta_mapg:meta_mapg"].sign == -1.0
    document["estimators"]["conventions"] = {"examples.dice_meta_mapg:meta_mapg": "lola-dice"}
    with pytest.raises(InputError) as error:
        parse_case(document, "pd")
    assert error.value.key == "estimators.conventions.examples.dice_meta_mapg:meta_mapg"


ROOT = Path(__file__).resolve().parents[1]


def _verdicts(path: Path, claims: dict | None = None) -> dict:
    pytest.importorskip("torch")
    case = load_case(path)
    if claims is not None:
        case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, claims=tuple(claims.items())))
    return {c.name: c.verdict for c in pipeline.evaluate(case, seed=0).checks}


def test_the_lola_dice_style_port_passes_in_its_own_conventions_and_fails_in_ours(monkeypatch):
    """``examples/lola_dice_style.py``, an exact critic: its claim lola-dice[baseline=value] holds
    exactly, and in any consistent relabelling (M-FOS's: the code hard-codes no game fact); declared
    with its state order and labels but not its sign, it fails."""
    name = "torch:examples.lola_dice_style:lola_dice"
    verdicts = _verdicts(ROOT / "examples/lola_dice_style.toml")
    assert {verdicts[f"claim:{name}"], verdicts[f"inner-update:{name}"]} == {"pass"}
    monkeypatch.setattr(lola_dice_style.lola_dice, "conventions", "m-fos")
    assert _verdicts(ROOT / "examples/lola_dice_style.toml")[f"claim:{name}"] == "pass"
    monkeypatch.setattr(
        lola_dice_style.lola_dice, "conventions", {"states": [0, 4, 3, 2, 1], "actions": [[1, 0], [1, 0]]}
    )
    assert _verdicts(ROOT / "examples/lola_dice_style.toml")[f"claim:{name}"] == "fail"


def test_the_official_style_ports_pass_their_own_fit_and_fail_the_other():
    """``examples/official_style.py`` in meta-mapg's conventions: as shipped passes meta-mapg-official,
    aligned passes its [baseline_fit=aligned]; each claimed the other way, its inner update differs."""
    shipped, aligned = (f"torch:examples.official_style:{name}" for name in ("official", "official_aligned"))
    verdicts = _verdicts(ROOT / "examples/official_style.toml")
    assert all(
        verdicts[f"{check}:{name}"] == "pass" for check in ("claim", "inner-update") for name in (shipped, aligned)
    )
    swapped = {
        shipped: Claim("estimator", "meta-mapg-official[baseline_fit=aligned]"),
        aligned: Claim("estimator", "meta-mapg-official"),
    }
    verdicts = _verdicts(ROOT / "examples/official_style.toml", swapped)
    assert verdicts[f"inner-update:{shipped}"] == verdicts[f"inner-update:{aligned}"] == "fail"
