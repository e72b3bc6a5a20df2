"""Which truth each estimator is compared with, and the bias sweep (:mod:`mapg_verify.checks.sweep`)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mapg_verify import pipeline
from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.sweep import SWEEP_BATCHES, SWEEP_RATES, bias_sweep, shared, truth_for
from mapg_verify.estimators.dispatch import builtin_for
from mapg_verify.exact.backend import case_values
from mapg_verify.exact.metagradient import lola, sampled_update
from mapg_verify.exact.truths import Truths

CASES = Path(__file__).resolve().parents[1] / "cases"


@pytest.fixture(scope="module")
def pd():
    """The one-shot prisoner's dilemma (K = 4, rates 1), its compiled values and truths."""
    case = load_case(CASES / "pd.toml")
    compiled = case_values(case)
    return case, compiled, Truths(case, compiled)


def test_a_learning_estimator_is_compared_with_the_case_models(pd):
    case, _, truths = pd
    truth = truth_for(case, truths, "meta-mapg")
    assert list(truth) == list(case.inner.models)
    assert truth["expected"] is truths.expected() and truth["sampled"] is truths.sampled()


def test_lola_dice_is_compared_with_lolas_own_objective(pd):
    """A meta-agent that does not learn: both models at its rate 0; one terminal step of model E
    is then LOLA's exact gradient."""
    case, compiled, truths = pd
    truth = truth_for(case, truths, "lola-dice")
    exact = lola(compiled, case.flat_theta, case.inner.alpha, case.inner.meta_agent).exact
    np.testing.assert_allclose(truth["expected"].total, exact, rtol=1e-12)
    assert truth["sampled"] is truths.sampled(alpha=(0.0, case.inner.alpha[1]))


def test_an_inner_baseline_is_in_the_model_s_an_estimator_is_compared_with(pd):
    case, compiled, truths = pd
    name = "meta-mapg[inner_baseline=batch-mean]"
    estimator = builtin_for(case, name)
    own = truth_for(case, truths, name)["sampled"]
    x, inner = case.flat_theta, case.inner
    direct = sampled_update(
        compiled, case.game, case.policy, x, inner, baseline="batch-mean", fit=estimator.baseline_fit
    )
    np.testing.assert_array_equal(own.total, direct.total)
    assert not np.allclose(own.total, truths.sampled().total)


def test_the_sweep_spans_k_and_the_rates_and_sampled_exact_is_model_s_throughout(pd):
    case, compiled, truths = pd
    rows = bias_sweep(compiled, "sampled-exact", shared(case, truths))
    assert {row["K"] for row in rows} == set(SWEEP_BATCHES)
    assert {row["alpha factor"] for row in rows} == set(SWEEP_RATES)
    assert max(row["relative bias vs model S"] for row in rows) < 1e-9
    assert min(row["relative bias vs model E"] for row in rows) > 1e-3  # model S is not model E at small K


def test_no_sweep_when_the_case_turns_it_off_or_has_one_model(pd):
    case, compiled, _ = pd
    off = pipeline.quick(case)
    assert shared(off, Truths(off, compiled)).sweep == ()
    one = dataclasses.replace(case, inner=dataclasses.replace(case.inner, models=("expected",)))
    assert shared(one, Truths(one, compiled)).sweep == ()
