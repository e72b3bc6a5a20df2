"""The README's guide, run as written: a property test of a plug-in estimator on generated games."""

import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st

from examples.adapted_gradient import adapted_gradient
from mapg_verify import compile_game, draw_plugin, mean_test, plugin_expectation
from mapg_verify import strategies as mst
from mapg_verify.exact.metagradient import inner_path

SMALL = mst.games(states=(1, 1), horizon="finite", finite_horizons=(1, 1))  # one-shot: few trajectories


@given(
    mst.cases(games_strategy=SMALL, models=("expected",), steps=(1, 1), batch=(1, 2), objectives=("terminal",)),
    st.integers(0, 2**32 - 1),
)
def test_my_estimator_matches_its_expectation(case, seed):
    note(mst.case_toml(case))  # a failure prints the shrunk case as a case file
    compiled = compile_game(case.game, case.policy)
    exact = plugin_expectation(case, compiled, adapted_gradient).total  # every ordered batch: keep K, H small
    rows = draw_plugin(case, compiled, adapted_gradient, 1000, np.random.default_rng(seed))
    assert not mean_test(rows, exact, level=1e-3 / settings().max_examples).rejected


@given(mst.cases(games_strategy=SMALL, models=("expected",), steps=(1, 1), batch=(1, 1), alpha=(0.0, 0.0)))
def test_with_no_learning_it_is_the_plain_gradient(case):
    """With every rate 0, the adapted parameters are theta: the expectation is grad V^i(theta)."""
    note(mst.case_toml(case))
    compiled = compile_game(case.game, case.policy)
    exact = plugin_expectation(case, compiled, adapted_gradient).total
    x = inner_path(compiled, compiled.layout.flatten(case.theta), case.inner.alpha, 1)[-1]
    i = case.inner.meta_agent
    np.testing.assert_allclose(exact, compiled.gradient(x)[i, compiled.layout.slice(i)], rtol=1e-9, atol=1e-12)
