"""The estimators people run (issue 14): the official Meta-MAPG loss against an independent port,
return conventions, baselines in the inner and outer loop, their exact expectations against
brute force and Monte Carlo, and model S's truth with a baseline against its autograd oracle."""

import dataclasses
import itertools
from pathlib import Path

import autograd
import numpy as np
import pytest
from official_port import linear_baseline, official_gradient

from mapg_verify.casefile.reader import load_case, parse_case
from mapg_verify.checks.claims import default_claim
from mapg_verify.checks.statistics import mean_test
from mapg_verify.estimators.dispatch import builtin_for, split_name
from mapg_verify.estimators.expectations import expectation
from mapg_verify.estimators.montecarlo import Draws, draw, draw_recorded
from mapg_verify.estimators.reference import _batch, _inner_step, reference
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS
from mapg_verify.exact.baselines import RIDGE, batch_baseline, gae, returns_from_t, shipped_targets, state_values
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.enumeration import Trajectories, enumerate_trajectories
from mapg_verify.exact.metagradient import sampled_update
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.oracles.autodiff import autograd_sampled_objective
from mapg_verify.oracles.differences import richardson
from mapg_verify.problem.errors import InputError

CASES = Path(__file__).resolve().parents[1] / "cases"


def ipd(gamma: float = 0.8, steps: int = 1, batch: int = 2, **estimators):
    """The 2-step IPD at ``gamma`` (the issue's setting), with ``[estimators]`` options."""
    document = {
        "game": {"builtin": "ipd_finite", "horizon": 2, "gamma": gamma},
        "policy": {"kind": "sigmoid"},
        "params": {"theta": [[0.5, 1.0, -0.5, 0.8, -1.0], [0.2, 0.9, -0.7, 0.6, -0.4]]},
        "inner": {"model": ["expected", "sampled"], "steps": steps, "alpha": [1.0, 0.7], "batch": batch},
        "estimators": {"names": ["meta-mapg"], "samples": 100, **estimators},
    }
    case = parse_case(document, "ipd-gamma")
    return case, compile_game(case.game, case.policy)


def configured(case, name: str):
    return builtin_for(case, name)


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("name", ["meta-mapg-official", "meta-pg-official"])
def test_official_loss_without_baseline_equals_the_port(name, steps):
    """Batch by batch, on a 2-step game with gamma = 0.8 (where from-t and from-zero differ)."""
    case, compiled = ipd(steps=steps, baseline="none")
    run = plan(case, compiled, configured(case, name))
    draws = draw_recorded(run, 4, np.random.default_rng(3))
    for r in range(4):
        batches = [_replicate(t, r, case.inner.batch) for t in (*draws.inner, draws.outer[-1])]
        port = official_gradient(case, compiled.layout, batches, opponent_shaping=name == "meta-mapg-official")
        np.testing.assert_allclose(draws.parts.total[r], port, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "fit"), [("meta-mapg-official", "as-shipped"), ("meta-mapg-official[baseline_fit=aligned]", "aligned")]
)
def test_official_defaults_equal_the_port_with_its_baselines(name, fit):
    """The code's defaults: the linear baseline in the inner DiCE (fitted as shipped, or aligned),
    GAE(0.95) on exact state values; K = H = 2, where the two fits differ."""
    case, compiled = ipd(steps=1)
    estimator = configured(case, name)
    assert (estimator.inner_baseline, estimator.baseline, estimator.gae_lambda) == ("linear", "value", 0.95)
    assert estimator.baseline_fit == fit
    run = plan(case, compiled, estimator)
    draws = draw_recorded(run, 3, np.random.default_rng(4))
    i, horizon = case.inner.meta_agent, case.inner.horizon

    for r in range(3):
        last = _replicate(draws.outer[-1], r, case.inner.batch)

        def values(phi, last=last):
            table = state_values(case.game, case.policy, compiled.layout, phi, horizon)[0]  # (H, S, n)
            return table[np.arange(horizon)[None, :], last.states, i]

        batches = [_replicate(t, r, case.inner.batch) for t in draws.inner] + [last]
        port = official_gradient(case, compiled.layout, batches, values, baseline=True, aligned=fit == "aligned")
        np.testing.assert_allclose(draws.parts.total[r], port, rtol=1e-10, atol=1e-12)


def test_the_shipped_fit_is_the_codes_and_misaligned_only_when_k_and_h_exceed_one():
    """``batch_baseline`` against the port's ``LinearFeatureBaseline.forward`` on random batches:
    equal fit by fit; the shipped fit is the aligned one exactly when ``K = 1`` or ``H = 1``."""
    case, _ = ipd()
    rng = np.random.default_rng(11)
    for size, horizon in [(3, 4), (2, 2), (1, 5), (4, 1)]:
        states = rng.integers(0, case.game.n_states, size=(size, horizon))
        rewards = rng.normal(size=(size, horizon))
        returns = returns_from_t(case.game, rewards[..., None])[None]
        found = {
            fit: batch_baseline("linear", case.game, states[None], returns, fit)[0, ..., 0]
            for fit in ("as-shipped", "aligned")
        }
        for fit, value in found.items():
            port = linear_baseline(states, rewards, case.game.n_states, case.game.gamma, fit == "aligned")
            np.testing.assert_allclose(value, port, rtol=1e-10, atol=1e-12)
        apart = np.abs(found["as-shipped"] - found["aligned"]).max()
        assert (apart < 1e-12) == (size == 1 or horizon == 1)


def _dense_linear_fit(n_states: int, states: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The linear fit as written before issue 32's third round: the features ``X (G, K H, 2 S + 4)``
    formed, ``X solve(X^T X + 1e-5 I, X^T y)``."""
    groups, size, horizon = states.shape
    features = np.zeros((groups * size * horizon, 2 * n_states + 4))
    rows = np.arange(len(features))
    features[rows, states.ravel()] = 1.0
    features[rows, states.ravel() + n_states] = 1.0
    time = np.arange(horizon, dtype=float) / 100.0
    polynomial = np.stack([time, time**2, time**3, np.ones(horizon)], axis=-1)
    features[:, 2 * n_states :] = np.tile(polynomial, (groups * size, 1))
    features = features.reshape(groups, size * horizon, -1)
    flat = targets.reshape(groups, size * horizon, -1)
    gram = np.swapaxes(features, 1, 2) @ features + RIDGE * np.eye(features.shape[-1])
    return (features @ np.linalg.solve(gram, np.swapaxes(features, 1, 2) @ flat)).reshape(targets.shape)


def test_the_linear_fit_from_counts_equals_the_dense_normal_equations():
    """``batch_baseline``'s fit from per-batch counts and target sums against the dense normal
    equations it replaced, both fits, on random batches (the benchmark's 64 x 10 among them): equal
    to 1e-12 of the largest prediction (the Gram matrix is near-singular: one-hot columns twice)."""
    case, _ = ipd()
    n_states, rng = case.game.n_states, np.random.default_rng(12)
    for groups, size, horizon in [(40, 64, 10), (5, 3, 4), (3, 1, 6), (4, 5, 1)]:
        states = rng.integers(0, n_states, size=(groups, size, horizon))
        returns = returns_from_t(case.game, rng.normal(size=(groups, size, horizon, 2)))
        for fit in ("aligned", "as-shipped"):
            targets = shipped_targets(returns).reshape(returns.shape) if fit == "as-shipped" else returns
            expected = _dense_linear_fit(n_states, states, targets)
            found = batch_baseline("linear", case.game, states, returns, fit)
            np.testing.assert_allclose(found, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_the_official_loss_differs_from_meta_mapg_where_the_issue_found_it():
    """From-t against from-zero: equal on a one-step game, apart at H = 2 and gamma = 0.8."""
    case, compiled = ipd(pairing="timestep", baseline="none")
    ours = expectation(plan(case, compiled, ESTIMATORS["meta-mapg"])).total
    official = expectation(plan(case, compiled, configured(case, "meta-mapg-official"))).total
    assert np.linalg.norm(official - ours) / np.linalg.norm(ours) > 0.05
    one_step = dataclasses.replace(case, game=dataclasses.replace(case.game, horizon=1), inner=case.inner)
    one_step = dataclasses.replace(one_step, inner=dataclasses.replace(case.inner, horizon=1))
    compiled_one = compile_game(one_step.game, one_step.policy)
    ours = expectation(plan(one_step, compiled_one, ESTIMATORS["meta-mapg"])).total
    official = expectation(plan(one_step, compiled_one, configured(one_step, "meta-mapg-official"))).total
    np.testing.assert_allclose(official, ours, rtol=1e-12)


VARIANTS = [
    "meta-mapg-official",
    "meta-mapg-official[baseline_fit=aligned]",
    "meta-mapg-official[baseline=none]",
    "meta-mapg[baseline=value]",
    "meta-mapg[baseline=batch-mean]",
    "meta-mapg[baseline=leave-one-out, returns=from-t]",
    "meta-mapg[baseline=linear, gae_lambda=0.5]",
    "sampled-exact[inner_baseline=value]",
    "meta-pg[inner_baseline=leave-one-out]",
    "loaded-dice",
    "loaded-dice[dice_lambda=0.5, baseline=batch-mean]",
]


@pytest.mark.parametrize("name", VARIANTS)
def test_fast_path_matches_the_autograd_reference(name):
    case, compiled = ipd(steps=2)
    run = plan(case, compiled, configured(case, name))
    draws = draw_recorded(run, 3, np.random.default_rng(5))
    slow = np.array([reference(run, draws, r) for r in range(3)])
    np.testing.assert_allclose(draws.parts.total, slow, rtol=1e-10, atol=1e-12)


def one_shot(batch: int = 2, **estimators):
    """The one-shot prisoner's dilemma: four trajectories, so brute force stays small."""
    document = {
        "game": {"builtin": "prisoners_dilemma"},
        "policy": {"kind": "sigmoid"},
        "params": {"theta": [[0.3], [-0.2]]},
        "inner": {"model": ["expected", "sampled"], "steps": 1, "alpha": [1.0, 0.5], "batch": batch},
        "estimators": {"names": ["meta-mapg"], "samples": 100, **estimators},
    }
    case = parse_case(document, "pd")
    return case, compile_game(case.game, case.policy)


SLOW = pytest.mark.slow  # 4,096 reference calls each, about 75 s
BRUTE = [(one_shot, {}, name) for name in VARIANTS] + [
    pytest.param(ipd, {"batch": 1, "outer_batch": 2}, "meta-mapg[baseline=linear, gae_lambda=0.5]", marks=SLOW),
    pytest.param(ipd, {"batch": 1, "outer_batch": 2}, "meta-mapg[baseline=leave-one-out, returns=from-t]", marks=SLOW),
    pytest.param(
        ipd,
        {"batch": 1, "outer_batch": 2},
        "meta-mapg[baseline=batch-mean, gae_lambda=0.5, returns=from-t]",
        marks=SLOW,
    ),
    (ipd, {"batch": 1}, "meta-mapg-official"),
    (ipd, {"batch": 1}, "meta-mapg-official[inner_baseline=value]"),
    (ipd, {"outer": "exact"}, "meta-mapg[inner_baseline=linear, baseline=none, baseline_fit=as-shipped]"),
    (ipd, {"outer": "exact"}, "meta-mapg[inner_baseline=linear, baseline=none]"),
]


@pytest.mark.parametrize(("build", "options", "name"), BRUTE)
def test_expectations_match_brute_force_through_the_reference(build, options, name):
    """Every ordered sequence of inner and outer trajectories through the autograd reference."""
    case, compiled = build(**options)
    run = plan(case, compiled, configured(case, name))

    np.testing.assert_allclose(expectation(run).total, brute_force(run), rtol=1e-11, atol=1e-13)


def brute_force(run) -> np.ndarray:
    """``E`` of a one-step estimator over every ordered inner batch and outer batch (none with an
    exact outer term), each drawn with the reference's own inner update (its baseline included,
    fitted on the batch in its order) and estimated by the reference."""
    case, layout = run.case, run.compiled.layout
    trajectories = enumerate_trajectories(case.game, case.inner.horizon)
    theta = case.flat_theta

    def probabilities(phi):
        return np.exp(trajectory_terms(case.game, case.policy, layout, trajectories, phi, False).log_prob)

    total, first = 0.0, probabilities(theta)
    for inner in itertools.product(range(len(first)), repeat=run.batch):
        batch = trajectories.take(np.array(inner))
        adapted = np.asarray(_inner_step(run, theta, _batch(run, batch, 0, run.batch, theta, outer=False)))
        if run.outer == "exact":
            total = total + np.prod(first[list(inner)]) * reference(run, Draws(None, (batch,), (None, None)), 0)
            continue
        second = probabilities(adapted)
        for outer in itertools.product(range(len(second)), repeat=run.outer_batch):
            draws = Draws(None, (batch,), (None, trajectories.take(np.array(outer))))
            total = total + np.prod(first[list(inner)]) * np.prod(second[list(outer)]) * reference(run, draws, 0)
    return total


@pytest.mark.parametrize(
    "name",
    [
        "meta-mapg-official",
        "meta-mapg-official[baseline_fit=aligned]",
        "meta-mapg[baseline=linear]",
        "sampled-exact[baseline=value]",
        "meta-mapg[baseline=batch-mean, gae_lambda=0.5, returns=from-t]",
    ],
)
def test_monte_carlo_means_match_the_expectations(name):
    """Fixed seed, level 0.001 for each (five tests: 0.5% false alarms in all); on the 2-step
    game, K = 2: the outer baselines fitted on the batch are enumerated over outer multisets, the
    inner baseline fitted as shipped over ordered inner batches."""
    case, compiled = ipd(steps=1)
    run = plan(case, compiled, configured(case, name))
    rows = draw(run, 6000, np.random.default_rng(7)).total
    assert not mean_test(rows, expectation(run).total, level=0.001).rejected


@pytest.mark.parametrize(
    ("baseline", "fit"),
    [(b, "aligned") for b in ("none", "value", "linear", "batch-mean", "leave-one-out")] + [("linear", "as-shipped")],
)
def test_model_s_with_a_baseline_matches_its_autograd_oracle(baseline, fit):
    case, compiled = ipd(steps=1)
    x, own = case.flat_theta, compiled.layout.slice(0)
    ours = sampled_update(compiled, case.game, case.policy, x, case.inner, baseline=baseline, fit=fit).total
    oracle = autograd.grad(autograd_sampled_objective(case.game, case.policy, x, case.inner, baseline, fit))(x[own])
    np.testing.assert_allclose(ours, oracle, rtol=1e-11, atol=1e-14)


def test_model_s_with_the_shipped_fit_averages_the_fit_over_the_batch_order():
    """Model S with the shipped fit differs from the aligned one at K = H = 2 (by 1-20% here) and
    equals it at K = 1; a batch's two orders give two inner updates, each of probability
    ``p_a p_b``: enumerating ordered batches is the truth, multisets would not be."""
    case, compiled = ipd(steps=1)
    x = case.flat_theta
    shipped, aligned = (
        sampled_update(compiled, case.game, case.policy, x, case.inner, baseline="linear", fit=fit).total
        for fit in ("as-shipped", "aligned")
    )
    assert 1e-3 < np.linalg.norm(shipped - aligned) / np.linalg.norm(aligned) < 0.3
    single = dataclasses.replace(case.inner, batch=1)
    shipped, aligned = (
        sampled_update(compiled, case.game, case.policy, x, single, baseline="linear", fit=fit).total
        for fit in ("as-shipped", "aligned")
    )
    np.testing.assert_allclose(shipped, aligned, rtol=1e-13)


def test_sampled_exact_with_an_inner_baseline_is_model_s_with_it():
    """The pathwise estimator's expectation is model S's truth with the same inner update (fixed
    baselines; the value baseline moves with phi, which the estimator holds fixed, and differs)."""
    case, compiled = ipd(steps=1, outer="exact")
    x = case.flat_theta
    fitted = [("batch-mean", "aligned"), ("leave-one-out", "aligned"), ("linear", "as-shipped"), ("linear", "aligned")]
    for baseline, fit in fitted:
        run = plan(case, compiled, configured(case, f"sampled-exact[inner_baseline={baseline}, baseline_fit={fit}]"))
        truth = sampled_update(compiled, case.game, case.policy, x, case.inner, baseline=baseline, fit=fit).total
        np.testing.assert_allclose(expectation(run).total, truth, rtol=1e-11)
    plain = sampled_update(compiled, case.game, case.policy, x, case.inner).total
    assert np.linalg.norm(truth - plain) > 1e-3  # the baseline changed the inner loop's law


def test_unbiased_outer_baselines_keep_the_expectation():
    """Exact values and leave-one-out leave E unchanged; the batch mean scales the outer term by
    1 - 1/K_out; the official code's advantage in the current term, with exact values, leaves no
    current term at all in expectation (``E[A_t | phi_L] = 0``, whatever GAE's lambda)."""
    case, compiled = ipd(steps=1, batch=2)
    plain = expectation(plan(case, compiled, ESTIMATORS["meta-mapg"]))
    for name in (
        "meta-mapg[baseline=value, inner_baseline=none]",
        "meta-mapg[baseline=leave-one-out, inner_baseline=none]",
    ):
        found = expectation(plan(case, compiled, configured(case, name)))
        np.testing.assert_allclose(found.total, plain.total, rtol=1e-11)
    batch_mean = expectation(
        plan(case, compiled, configured(case, "meta-mapg[baseline=batch-mean, inner_baseline=none]"))
    )
    np.testing.assert_allclose(batch_mean.own + batch_mean.peer, 0.5 * (plain.own + plain.peer), rtol=1e-11)
    np.testing.assert_allclose(batch_mean.current, plain.current, rtol=1e-11)
    official = expectation(plan(case, compiled, configured(case, "meta-mapg-official")))
    without = expectation(plan(case, compiled, configured(case, "meta-mapg-official[baseline=none]")))
    assert np.abs(official.current).max() < 1e-13 < 1e-3 < np.abs(without.current).max()


def test_loaded_dice_with_lambda_one_and_no_baseline_is_dice():
    """Loaded DiCE's products telescope to DiCE's when nothing is discounted or subtracted; its
    dependency discount changes the second-order terms only (so the estimate, at L >= 1)."""
    case, compiled = ipd(steps=2)
    plain = expectation(plan(case, compiled, ESTIMATORS["meta-mapg"])).total
    loaded = expectation(plan(case, compiled, configured(case, "loaded-dice[baseline=none]"))).total
    np.testing.assert_allclose(loaded, plain, rtol=1e-12)
    discounted = expectation(plan(case, compiled, configured(case, "loaded-dice[baseline=none, dice_lambda=0.5]")))
    assert np.linalg.norm(discounted.total - plain) > 1e-4


def test_state_values_and_their_gradients():
    case, compiled = ipd()
    x = case.flat_theta
    values, gradients = state_values(case.game, case.policy, compiled.layout, x, 2, gradients=True)
    np.testing.assert_allclose(case.game.initial @ values[0, 0], compiled.value(x), rtol=1e-13)
    fd = richardson(lambda p: state_values(case.game, case.policy, compiled.layout, p, 2)[0], x)
    np.testing.assert_allclose(gradients[0], fd, atol=1e-9)


def test_gae_with_lambda_one_is_the_return_less_the_baseline():
    case, _ = ipd()
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 2, 2))
    np.testing.assert_allclose(gae(case.game, rewards, values, 1.0), returns_from_t(case.game, rewards) - values)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"returns": "from-one"}, "estimators.returns"),
        ({"baseline": "critic"}, "estimators.baseline"),
        ({"gae_lambda": 1.5}, "estimators.gae_lambda"),
        ({"names": ["meta-mapg[baseline=critic]"]}, "estimators.names"),  # the key as written; the name in the reason
        ({"names": ["meta-mapg[lambda=0.9]"]}, "estimators.names"),
        ({"names": ["meta-mapg[baseline=value"]}, "estimators.names"),
        ({"names": ["meta-mapg-oficial"]}, "estimators.names"),
        ({"inner_baseline": "value"}, "estimators.inner_baseline"),
        ({"names": ["meta-mapg-official[baseline_fit=transposed]"]}, "estimators.names"),
        ({"names": ["meta-mapg-official[baseline_fit=aligned, baseline_fit=aligned]"]}, "estimators.names"),
    ],
)
def test_bad_options_are_input_errors(options, key):
    with pytest.raises(InputError) as error:
        ipd(**options)
    assert error.value.key == key


def test_leave_one_out_needs_two_trajectories():
    with pytest.raises(InputError) as error:
        ipd(batch=1, outer_batch=2, names=["meta-mapg[baseline=leave-one-out]"])
    assert error.value.key == "estimators.baseline"


def test_name_options_override_the_case():
    case, _ = ipd(baseline="value", returns="from-t")
    assert split_name("meta-mapg[baseline=none]") == ("meta-mapg", {"baseline": "none"})
    estimator = configured(case, "meta-mapg[baseline=none]")
    assert (estimator.baseline, estimator.inner_baseline, estimator.convention) == ("none", "none", "from-t")
    assert configured(case, "meta-mapg").baseline == "value"


def _replicate(trajectories: Trajectories, replicate: int, size: int) -> Trajectories:
    return trajectories.take(slice(replicate * size, (replicate + 1) * size))


def test_the_fit_is_kept_where_a_claim_or_a_case_names_it():
    """A built-in's own claim without its outer baseline keeps its linear fit; Figure 3 runs both fits."""
    case, _ = ipd(names=["meta-mapg[baseline=value, inner_baseline=linear, baseline_fit=as-shipped]"])
    claim = default_claim(case, case.estimators.names[0])
    assert claim.target == "meta-mapg[baseline=none, inner_baseline=linear, baseline_fit=as-shipped]"
    assert builtin_for(case, claim.target).baseline_fit == "as-shipped"
    fits = [
        load_case(CASES.parent / "experiments" / "paper" / f"figure3_{name}.toml").paper.meta_gradient
        for name in ("official", "official_aligned")
    ]
    assert fits == ["official", "official-aligned"]
