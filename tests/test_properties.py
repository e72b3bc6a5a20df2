"""Property tests of SPEC §3's identities and of the oracle agreement on generated small games.

The strategy is local (public strategies come with issue 7). Profiles: ``ci`` runs
8 examples per property, derandomised; ``MAPG_HYPOTHESIS_PROFILE=thorough`` runs 200.
"""

import math
from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mapg_verify.cases import parse_case
from mapg_verify.checks import expected_identities, meta_oracle_errors, oracle_agreement, relative_error
from mapg_verify.compiled import compile_game
from mapg_verify.enumeration import count_batches, count_trajectories
from mapg_verify.metagradient import sampled_update


@st.composite
def small_cases(draw, finite: bool = False):
    """A random game of 1-3 states, 2-3 actions per agent, with theta and an inner loop."""
    actions = [draw(st.integers(2, 3)), draw(st.integers(2, 3))]
    horizon = draw(st.integers(1, 2)) if finite or draw(st.booleans()) else "inf"
    game = {
        "builtin": "random",
        "seed": draw(st.integers(0, 10_000)),
        "states": draw(st.integers(1, 3)),
        "actions": actions,
        "horizon": horizon,
        "gamma": draw(st.sampled_from([0.5, 0.9])) if horizon == "inf" else draw(st.sampled_from([0.9, 1.0])),
        "sparsity": draw(st.sampled_from([0.0, 0.5])),
    }
    kind = "sigmoid" if actions == [2, 2] and draw(st.booleans()) else "softmax"
    inner = {
        "alpha": [draw(st.floats(0.0, 1.5)), draw(st.floats(0.0, 1.5))],
        "steps": draw(st.integers(1, 2)),
        "meta_agent": draw(st.integers(0, 1)),
        "objective": draw(st.sampled_from(["terminal", "chain"])),
        "batch": draw(st.integers(1, 3)),
    }
    params = {"seed": draw(st.integers(0, 1000)), "scale": draw(st.sampled_from([0.5, 2.0]))}
    return parse_case({"game": game, "policy": {"kind": kind}, "params": params, "inner": inner}, "generated")


@given(small_cases())
def test_compiled_values_agree_with_the_oracles(case):
    result = oracle_agreement(case)
    assert result.passed, result.summary


@given(small_cases())
def test_model_e_identities_and_autograd(case):
    result = expected_identities(case)
    assert result.passed, result.summary
    assert meta_oracle_errors(case)["expected"] <= 1e-8


@given(small_cases(finite=True))
def test_model_s_identities_and_autograd(case):
    inner, n = replace(case.inner, models=("sampled",)), count_trajectories(case.game, case.inner.horizon)
    # keep the enumeration small enough for the autograd oracle: fewer steps, then K = 1
    if count_batches(n, inner.batch, inner.steps) > 2_000:
        inner = replace(inner, steps=1)
    if count_batches(n, inner.batch, inner.steps) > 2_000:
        inner = replace(inner, batch=1)
    compiled = compile_game(case.game, case.policy)
    x = compiled.layout.flatten(case.theta)
    truth = sampled_update(compiled, case.game, case.policy, x, inner)
    assert np.max(np.abs(truth.peer)) == 0.0
    assert math.isclose(relative_error(truth.current + truth.own + truth.peer, truth.total), 0.0, abs_tol=1e-13)
    assert meta_oracle_errors(replace(case, inner=inner))["sampled"] <= 1e-8
