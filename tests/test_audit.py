"""``audit CASE LOG``: the exact moments of a truncated return, logs the toolkit simulates itself
(consistent, at the stated false-alarm rate), logs that are not (flagged, and the convention they
are in named), bad logs (exit 2), and the update audit."""

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

from mapg_verify.casefile.reader import load_case, parse_case
from mapg_verify.checks.audit import TrainingLog, metric_moments, residuals, search, simulate_returns
from mapg_verify.cli import main
from mapg_verify.estimators.dispatch import draw_rows, exact_expectation
from mapg_verify.exact.backend import case_values, exact_values
from mapg_verify.exact.enumeration import discounted_to_go, enumerate_trajectories
from mapg_verify.exact.moments import return_moments
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.params import layout_of

IPD_CASE = 'name = "ipd"\n[game]\nbuiltin = "ipd"\n[policy]\nkind = "sigmoid"\n'


@pytest.fixture
def ipd():
    return parse_case({"game": {"builtin": "ipd"}, "policy": {"kind": "sigmoid"}}, "ipd")


def _walk(rng, points: int, scale: float = 0.3) -> np.ndarray:
    """A training run's parameters: a random walk from a random start, ``(N, 2, 5)``."""
    return rng.standard_normal((2, 5)) + np.cumsum(scale * rng.standard_normal((points, 2, 5)), axis=0)


def _write(tmp_path, **arrays) -> tuple[str, str]:
    (tmp_path / "case.toml").write_text(IPD_CASE)
    np.savez(tmp_path / "log.npz", **arrays)
    return str(tmp_path / "case.toml"), str(tmp_path / "log.npz")


def _log(case, params, rng, batch=32, horizon=20, metric="normalised", game=None, drawn_at=None) -> dict:
    """A log whose returns the toolkit's sampler drew (at ``drawn_at`` if given, else at ``params``)."""
    points = (params if drawn_at is None else drawn_at).reshape(len(params), -1)
    returns = simulate_returns(game or case.game, case.policy, points, batch, horizon, metric, rng)
    return {"params": params, "returns": returns, "batch": batch, "horizon": horizon, "metric": metric}


@pytest.mark.parametrize("beta", [0.96, 1.0])
def test_moments_equal_every_trajectory_enumerated_and_the_exact_values(beta):
    case = parse_case({"game": {"builtin": "ipd_finite", "horizon": 4}, "policy": {"kind": "sigmoid"}}, "ipd4")
    game, policy = case.game, case.policy
    layout = layout_of(game, policy)
    points = np.random.default_rng(3).standard_normal((3, layout.size))
    first, second = return_moments(game, policy, points, 4, beta)
    drawn = enumerate_trajectories(game, 4)
    returns = discounted_to_go(game, drawn.states, drawn.actions, beta)[:, 0]
    for x, mean, square in zip(points, first, second, strict=True):
        probability = np.exp(trajectory_terms(game, policy, layout, drawn, x, second_order=False).log_prob)
        np.testing.assert_allclose(probability @ returns, mean, rtol=1e-12)
        np.testing.assert_allclose(probability @ returns**2, square, rtol=1e-12)
        if beta == game.gamma:
            np.testing.assert_allclose(exact_values(game, policy, "numeric").value(x), mean, rtol=1e-12)


def test_a_log_the_toolkit_simulates_is_consistent(tmp_path, ipd):
    rng = np.random.default_rng(11)
    case_path, log_path = _write(tmp_path, **_log(ipd, _walk(rng, 40), rng))
    assert main(["audit", case_path, log_path, "--out", str(tmp_path / "out")]) == 0
    document = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert document["verdict"] == "consistent" and document["relabelling"] is None
    assert [row["verdict"] for row in document["agents"]] == ["consistent", "consistent"]
    assert "consistent" in (tmp_path / "out" / "audit.html").read_text()


def test_the_false_alarm_rate_is_the_level_on_200_simulated_logs(ipd):
    """200 consistent logs of 20 points (batch 16, 10 steps), level 0.01: the rejections are
    binomial with rate at most 0.01 (one-sided binomial test at 0.01); measured 1 of 200 here,
    and 21 of 2000 (1.05%) with the same code at batch 16, 15 of 2000 at batch 4."""
    rng, logs, points = np.random.default_rng(20261124), 200, 20
    params = np.concatenate([_walk(rng, points) for _ in range(logs)])
    flat = params.reshape(len(params), -1)
    returns = simulate_returns(ipd.game, ipd.policy, flat, 16, 10, "normalised", rng)
    mean, variance = metric_moments(ipd.game, ipd.policy, flat, 10, "normalised")
    rejected = sum(
        not residuals(returns[part], mean[part], variance[part], 16, 0.01).all_consistent
        for part in (slice(i * points, (i + 1) * points) for i in range(logs))
    )
    assert stats.binomtest(rejected, logs, 0.01, alternative="greater").pvalue > 0.01, rejected


def test_returns_drawn_at_other_parameters_are_flagged(tmp_path, ipd):
    """An opponent model's: the returns come from agent 0 against its model of agent 1."""
    rng = np.random.default_rng(12)
    params = _walk(rng, 40)
    modelled = params.copy()
    modelled[:, 1] += 0.5 * rng.standard_normal((40, 5))
    case_path, log_path = _write(tmp_path, **_log(ipd, params, rng, drawn_at=modelled))
    assert main(["audit", case_path, log_path, "--out", str(tmp_path / "out")]) == 1
    document = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert document["verdict"] == "not consistent"
    assert document["relabelling"]["found"] == []


@pytest.mark.parametrize(
    ("convention", "named"),
    [
        ("views", "both agents index states the same way (CD and DC not swapped for agent 1)"),
        ("swap", "agents' returns swapped"),
        ("metric", "metric discounted (sum_{t<H} gamma^t r_t), not normalised"),
        ("flip", "agent 1's action labels swapped"),
    ],
)
def test_a_log_in_another_convention_is_flagged_and_the_convention_named(tmp_path, ipd, convention, named):
    rng = np.random.default_rng(13)
    params = _walk(rng, 30)
    params[:, 1, 2], params[:, 1, 3] = 2.5, -2.5  # agent 1's CD and DC far apart, so its view matters
    game = ipd.game
    if convention == "views":
        game = dataclasses.replace(ipd.game, views=np.tile(np.arange(5), (2, 1)))
    drawn_at = params.copy()
    if convention == "flip":
        drawn_at[:, 1] = -params[:, 1]
    log = _log(ipd, params, rng, game=game, drawn_at=drawn_at, metric="discounted")
    if convention != "metric":
        log = _log(ipd, params, rng, game=game, drawn_at=drawn_at)
    log["metric"] = "normalised"
    if convention == "swap":
        log["returns"] = log["returns"][:, ::-1]
    case_path, log_path = _write(tmp_path, **log)
    assert main(["audit", case_path, log_path, "--out", str(tmp_path / "out")]) == 1
    found = json.loads((tmp_path / "out" / "audit.json").read_text())["relabelling"]["found"]
    assert found and found[0]["label"] == named


def test_the_search_returns_nothing_for_a_consistent_log_of_another_game(ipd):
    rng = np.random.default_rng(14)
    params = _walk(rng, 20)
    log = _log(ipd, params, rng)
    shifted = TrainingLog(params, log["returns"] + 0.3, 32, 20, "normalised")
    assert search(ipd.game, ipd.policy, shifted, 0.01) == []


GOOD = {"params": np.zeros((3, 2, 5)), "returns": -np.ones((3, 2)), "batch": 8, "horizon": 10, "metric": "average"}


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"params": np.zeros((3, 2, 4))}, "params", "must have shape (N, 2, 5)"),
        ({"returns": np.zeros((3, 3))}, "returns", "must have shape (3, 2)"),
        ({"returns": np.array([[np.nan, 0.0]] * 3)}, "returns", "finite numbers only"),
        ({"metric": "per-episode"}, "metric", "must be one of normalised, discounted, average"),
        ({"batch": None}, "batch", "is missing from the log"),
        ({"batch": 2.5}, "batch", "must be one integer"),
        ({"lr": 0.1}, "estimator", "is needed with the other"),
        ({"lr": 0.1, "estimator": "magic"}, "estimator", "must name a built-in estimator"),
        ({"rets": np.zeros(3)}, "rets", "is not a log key"),
    ],
)
def test_a_bad_log_exits_2_with_its_key_and_reason(tmp_path, capsys, change, key, reason):
    arrays = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    case_path, log_path = _write(tmp_path, **arrays)
    assert main(["audit", case_path, log_path, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {log_path}: [{key}] ") and reason in error and "\n" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"params, returns\n1, 2\n", None])
def test_a_file_that_is_not_an_npz_archive_exits_2(tmp_path, capsys, content):
    case_path, log_path = _write(tmp_path, **GOOD)
    if content is None:
        np.save(tmp_path / "log.npy", np.zeros(3))
        log_path = str(tmp_path / "log.npy")
    else:
        (tmp_path / "log.npz").write_bytes(content)
    assert main(["audit", case_path, log_path, "--out", str(tmp_path / "out")]) == 2
    assert f"{log_path}: [file] is " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


PD_CASE = """name = "pd"
[game]
builtin = "prisoners_dilemma"
[policy]
kind = "sigmoid"
[inner]
batch = 2
"""


def _expected_update(case, compiled, theta: np.ndarray, rate: float) -> np.ndarray:
    """``lr`` times lola-dice's exact expectation for each agent as the meta-agent, ``(2, 1)``."""
    parts = []
    for k in range(2):
        inner = dataclasses.replace(case.inner, meta_agent=k)
        at = dataclasses.replace(case, theta=tuple(theta), inner=inner)
        parts.append(rate * exact_expectation(at, compiled, "lola-dice").total)
    return np.array(parts)


def test_updates_equal_to_the_expected_update_project_to_one(tmp_path):
    """A one-shot PD run whose every update is exactly lr times lola-dice's expectation."""
    (tmp_path / "case.toml").write_text(PD_CASE)
    case = load_case(tmp_path / "case.toml")
    compiled, params = case_values(case), [np.array([[0.3], [-0.2]])]
    for _ in range(4):
        params.append(params[-1] + _expected_update(case, compiled, params[-1], 0.5))
    params = np.array(params)
    log = _log(case, params, np.random.default_rng(1), batch=64, horizon=1, metric="discounted")
    np.savez(tmp_path / "log.npz", **log, lr=0.5, estimator="lola-dice")
    assert main(["audit", str(tmp_path / "case.toml"), str(tmp_path / "log.npz"), "--out", str(tmp_path)]) == 0
    updates = json.loads((tmp_path / "audit.json").read_text())["updates"]
    assert updates["reason"] is None
    for steps in updates["agents"].values():
        assert len(steps) == 4
        for step in steps:
            assert abs(step["projection"] - 1) < 1e-9 and step["relative difference"] < 1e-9 and abs(step["z"]) < 1e-6


def test_sampled_updates_have_z_scores_of_unit_spread(tmp_path):
    """Updates that are one Monte-Carlo draw of lr * lola-dice each: the z-scores of their
    differences from the expected update scatter with mean square about 1 (20 of them)."""
    (tmp_path / "case.toml").write_text(PD_CASE)
    case = load_case(tmp_path / "case.toml")
    compiled, params, rng = case_values(case), [np.array([[0.3], [-0.2]])], np.random.default_rng(5)
    for _ in range(10):
        step = []
        for k in range(2):
            inner = dataclasses.replace(case.inner, meta_agent=k)
            at = dataclasses.replace(case, theta=tuple(params[-1]), inner=inner)
            step.append(0.5 * draw_rows(at, compiled, "lola-dice", 1, rng)[0])
        params.append(params[-1] + np.array(step))
    log = _log(case, np.array(params), rng, batch=64, horizon=1, metric="discounted")
    np.savez(tmp_path / "log.npz", **log, lr=0.5, estimator="lola-dice")
    assert main(["audit", str(tmp_path / "case.toml"), str(tmp_path / "log.npz"), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "audit.json").read_text())["updates"]["summary"]
    z2 = np.mean([row["mean z^2"] for row in summary])
    assert 0.3 < z2 < 2.5, z2


def test_updates_that_cannot_be_enumerated_say_why(tmp_path):
    (tmp_path / "case.toml").write_text(IPD_CASE + "[inner]\nhorizon = 14\nbatch = 4\n")
    np.savez(tmp_path / "log.npz", **GOOD, lr=0.1, estimator="naive")
    assert main(["audit", str(tmp_path / "case.toml"), str(tmp_path / "log.npz"), "--out", str(tmp_path)]) in (0, 1)
    reason = json.loads((tmp_path / "audit.json").read_text())["updates"]["reason"]
    assert reason.startswith("the exact expectation of naive cannot be enumerated: ")
