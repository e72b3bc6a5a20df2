"""Property tests on generated games, written with the public strategies of
:mod:`mapg_verify.strategies`: SPEC §3's identities, the oracle agreement of SPEC §5.1, and
every estimator's Monte-Carlo mean against its exact expectation.

Profiles (``tests/conftest.py``): ``ci`` runs 8 derandomised examples per property,
``MAPG_HYPOTHESIS_PROFILE=thorough`` runs 200. Every property notes its case as a case file, so
a failure prints a shrunk counterexample to paste into ``cases/``.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, note, reject, settings
from hypothesis import strategies as st

from mapg_verify import strategies as mst
from mapg_verify.checks.exact import expected_identities, meta_oracle_errors, oracle_agreement
from mapg_verify.checks.result import relative_error
from mapg_verify.checks.statistics import mean_test
from mapg_verify.estimators.expectations import expectation
from mapg_verify.estimators.montecarlo import draw
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.metagradient import sampled_update
from mapg_verify.pipeline import evaluate
from mapg_verify.problem.errors import InputError

ANY_GAME = mst.games(states=(1, 3), actions=(2, 3), horizon="any", finite_horizons=(1, 2))
FAMILY_FALSE_FAILURE = 1e-3  # the chance that the estimator property fails on correct code, per run


@given(mst.cases(games_strategy=ANY_GAME, models=("expected",)))
def test_compiled_values_agree_with_the_oracles(case):
    note(mst.case_toml(case))
    result = oracle_agreement(case)
    assert result.passed, result.summary


@given(mst.cases(games_strategy=ANY_GAME, models=("expected",)))
def test_model_e_identities_and_autograd(case):
    note(mst.case_toml(case))
    result = expected_identities(case)
    assert result.passed, result.summary
    assert meta_oracle_errors(case)["expected"] <= 1e-8


@pytest.mark.parametrize("scale", [2.0, 30.0])
@pytest.mark.parametrize(
    ("games", "models"), [(None, ("expected", "sampled")), (ANY_GAME, ("expected",))], ids=["model-S", "any-game"]
)
@given(data=st.data())
def test_no_valid_game_fails_a_check_of_exact(games, models, scale, data):
    """Every check ``exact`` runs (oracles, meta-oracles, both models' identities) passes or
    informs on every valid game, saturated policies included (``scale`` 30); the case goes
    through the case-file parser, so only games it accepts are drawn."""
    drawn = data.draw(mst.cases(games_strategy=games, models=models, scale=scale))
    text = mst.case_toml(drawn)
    note(text)
    try:
        case = mst.parse_back(text)
    except InputError:
        reject()
    failed = [c for c in evaluate(case).checks if c.verdict == "fail"]
    assert not failed, failed


@given(mst.cases(models=("sampled",)))
def test_model_s_identities_and_autograd(case):
    note(mst.case_toml(case))
    compiled = compile_game(case.game, case.policy)
    truth = sampled_update(compiled, case.game, case.policy, compiled.layout.flatten(case.theta), case.inner)
    assert np.max(np.abs(truth.peer)) == 0.0
    assert math.isclose(relative_error(truth.current + truth.own + truth.peer, truth.total), 0.0, abs_tol=1e-13)
    assert meta_oracle_errors(case)["sampled"] <= 1e-8


@given(
    mst.cases(models=("expected",), steps=(1, 1), max_batches=300),
    st.sampled_from(sorted(ESTIMATORS)),
    st.sampled_from(["batch", "trajectory", "timestep"]),
    st.integers(0, 2**32 - 1),
)
def test_estimators_are_consistent_with_their_exact_expectations(case, name, pairing, seed):
    """Hotelling's test at level FAMILY_FALSE_FAILURE / max_examples (Bonferroni): correct code
    fails this property in at most one run in a thousand, in either profile."""
    case = replace(case, estimators=replace(case.estimators, pairing=pairing))
    note(mst.case_toml(case))
    note(f"estimator {name}, seed {seed}")
    compiled = compile_game(case.game, case.policy)
    run = plan(case, compiled, ESTIMATORS[name])
    rows = draw(run, 4000, np.random.default_rng(seed)).total
    level = FAMILY_FALSE_FAILURE / settings().max_examples
    test = mean_test(rows, expectation(run).total, level=level)
    assert not test.rejected, f"p = {test.p_value:.2e} at level {level:.1e}"
