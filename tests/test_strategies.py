"""The public strategies: valid games by construction, arguments checked by name, counterexamples
that shrink to small games and print as case files that read back to the same case."""

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis.errors import InvalidArgument

from mapg_verify import strategies as mst
from mapg_verify.casefile.reader import load_case


@given(mst.games(states=(1, 2), actions=(2, 3), horizon="any"))
def test_games_are_valid(game):
    assert np.allclose(game.transitions.sum(axis=-1), 1.0)
    assert np.isclose(game.initial.sum(), 1.0) and np.all(np.isfinite(game.rewards))
    assert not game.infinite or game.gamma < 1


@given(mst.cases(estimators=("meta-pg",)))
def test_cases_print_as_case_files_that_read_back(case):
    back = mst.parse_back(mst.case_toml(case))
    assert np.array_equal(back.game.transitions, case.game.transitions)
    assert np.array_equal(back.game.rewards, case.game.rewards)
    assert all(np.array_equal(a, b) for a, b in zip(back.theta, case.theta, strict=True))
    assert back.inner == case.inner and back.estimators == case.estimators


def test_a_counterexample_shrinks_to_a_small_readable_case(tmp_path):
    """Looking for a case with two states shrinks to the smallest such one."""
    case = find(mst.cases(), lambda c: c.game.n_states == 2, settings=settings(database=None))
    text = mst.case_toml(case)
    assert case.game.n_states == 2 and case.inner.steps == 1 and case.inner.batch == 1
    assert np.all(case.game.rewards == 0) and all(np.all(t == 0) for t in case.theta)
    path = tmp_path / "counterexample.toml"
    path.write_text(text)
    assert load_case(path).game.n_states == 2  # pasted into cases/, it runs
    assert len(text.splitlines()) < 30


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: mst.games(states=(0, 2)), "states="),
        (lambda: mst.games(actions=(3, 2)), "actions="),
        (lambda: mst.games(horizon="sometimes"), "horizon="),
        (lambda: mst.games(horizon="infinite", gammas=(1.0,)), "gammas="),
        (lambda: mst.games(reward_scale=-1), "reward_scale="),
        (lambda: mst.inner_loops(None, models=("other",)), "models="),
        (lambda: mst.cases(estimators=("reinforce++",)), "estimators:"),
        (lambda: mst.cases(samples=1), "samples="),
        (lambda: mst.cases(pairing="pairs"), "pairing="),
    ],
)
def test_bad_arguments_are_named(call, named):
    with pytest.raises(InvalidArgument, match=named):
        call()
