"""The case's truths (:mod:`mapg_verify.exact.truths`): each model S computed once per setting, and
equal to the meta-gradients computed directly."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mapg_verify import pipeline
from mapg_verify.casefile.reader import load_case
from mapg_verify.exact import truths as truths_module
from mapg_verify.exact.backend import case_values
from mapg_verify.exact.metagradient import expected_update, meta_gradients, sampled_update
from mapg_verify.exact.truths import Truths
from mapg_verify.problem.errors import InputError

CASES = Path(__file__).resolve().parents[1] / "cases"


def test_a_case_evaluates_model_s_once_per_batch_size_and_rates(monkeypatch):
    """``cases/pd.toml`` with its seed: identities, estimators' bias and claims and the bias sweep
    all read one :class:`Truths`, so each (K, alpha, inner baseline) is enumerated once."""
    calls = Counter()

    def counted(compiled, game, policy, x, inner, batch=None, baseline="none", fit="aligned"):
        calls[(batch or inner.batch, tuple(inner.alpha), baseline, fit)] += 1
        return sampled_update(compiled, game, policy, x, inner, batch, baseline=baseline, fit=fit)

    monkeypatch.setattr(truths_module, "sampled_update", counted)
    pipeline.evaluate(load_case(CASES / "pd.toml"), seed=0)
    assert len(calls) > 20  # the identities' K = 1 .. 64, the sweep's K and rates, lola-dice's rates
    assert set(calls.values()) == {1}, {setting: n for setting, n in calls.items() if n > 1}


def test_truths_equal_the_meta_gradients_computed_directly():
    case = load_case(CASES / "pd.toml")
    compiled = case_values(case)
    truths = Truths(case, compiled)
    direct = meta_gradients(compiled, case)
    for model, gradient in truths.models().items():
        np.testing.assert_array_equal(gradient.total, direct[model].total)
    x, inner = case.flat_theta, case.inner
    alpha = (0.5, 0.25)
    np.testing.assert_array_equal(
        truths.expected(alpha).own, expected_update(compiled, x, alpha, inner.steps, 0, inner.objective).own
    )
    np.testing.assert_array_equal(
        truths.sampled(2).peer, sampled_update(compiled, case.game, case.policy, x, inner, 2).peer
    )
    assert truths.sampled(2) is truths.sampled(2, inner.alpha)


def test_a_setting_past_the_cap_raises_each_time():
    case = load_case(CASES / "pd.toml")
    truths = Truths(case, case_values(case))
    for _ in range(2):
        with pytest.raises(InputError):
            truths.sampled(10**6)
