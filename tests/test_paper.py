"""The paper's results: Figure 1's rates against their closed forms, Table 1 from fingerprints."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mapg_verify import paper
from mapg_verify.casefile.reader import load_case
from mapg_verify.estimators.montecarlo import draw
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS
from mapg_verify.exact.compiled import compile_game

PAPER = Path(__file__).resolve().parents[1] / "cases" / "paper"
STUDIES = Path(__file__).resolve().parents[1] / "experiments" / "paper"  # Figure 3 in full and its variants


def setting(name: str, folder: Path = PAPER):
    case = load_case(folder / name)
    return case, compile_game(case.game, case.policy)


def test_figure_one_rates_match_their_closed_forms_and_the_paper():
    case, compiled = setting("figure1.toml")
    record, check = paper.figure_one(case, compiled)
    assert check.passed, check.summary
    assert record["agrees with the paper"]
    assert record["rates"]["naive"]["verdict"] == "diverges"
    assert record["rates"]["LOLA (exact)"]["verdict"] == "converges"


def test_closed_forms_are_the_update_matrices_spectral_radius():
    """Independently of the toolkit's gradients: the rates are |eigenvalue| of each linear update."""
    eta, a = 0.1, 0.2
    matrices = {
        "naive": [[1, eta], [-eta, 1]],
        "LOLA (exact)": [[1 - 2 * eta * a, eta], [-eta, 1 - 2 * eta * a]],
        "LOLA (Eq. 6)": [[1 - eta * a, eta], [-eta, 1 - eta * a]],
        "Meta-MAPG (model E)": [[1 - 2 * eta * a, eta * (1 - a * a)], [-eta * (1 - a * a), 1 - 2 * eta * a]],
    }
    for method, rate in paper.closed_form_rates(eta, a).items():
        assert rate == pytest.approx(max(abs(np.linalg.eigvals(matrices[method]))), rel=1e-14)


def test_figure_one_check_fails_when_a_method_is_wrong(monkeypatch):
    case, compiled = setting("figure1.toml")
    directions = paper.learning_directions(compiled, case.inner.alpha)
    monkeypatch.setattr(
        paper, "learning_directions", lambda *_: {**directions, "LOLA (Eq. 6)": directions["LOLA (exact)"]}
    )
    _, check = paper.figure_one(case, compiled)
    assert not check.passed and "closed form missed" in check.summary


def test_table_one_reads_the_papers_marks_off_the_fingerprints():
    case, compiled = setting("table1.toml")
    record, check = paper.table_one(case, compiled)
    assert check.passed, check.summary
    rows = {row["estimator"]: row for row in record["rows"]}
    for name, marks in paper.PAPER_TABLE.items():
        assert (rows[name]["self shaping"], rows[name]["opponent shaping"]) == marks
    assert (rows["opponent-only"]["self shaping"], rows["opponent-only"]["opponent shaping"]) == ("no", "yes")


def test_table_one_sees_a_missing_term():
    """meta-pg listed under meta-mapg's name would show no opponent shaping: the table can differ."""
    case, compiled = setting("table1.toml")
    case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, names=("meta-pg",)))
    record, _ = paper.table_one(case, compiled)
    assert record["rows"][0]["opponent shaping"] == "no"


def small_figure_three():
    case, compiled = setting("figure3.toml")
    small = dataclasses.replace(
        case.paper,
        seeds=3,
        train_tasks=2,
        test_tasks=2,
        task_batch=1,
        iterations=5,
        adaptation_steps=2,
        sensitivity=(2.0,),
    )
    return dataclasses.replace(case, paper=small), compiled


def test_figure_three_records_every_setting_and_is_deterministic():
    case, compiled = small_figure_three()
    first, check = paper.figure_three(case, compiled)
    second, _ = paper.figure_three(case, compiled)
    assert check.passed and first == second
    assert set(first["curves"]) == set(paper.METHODS)
    assert all(len(band["mean"]) == 3 for band in first["curves"].values())
    for key in ("noise half-width", "inner rate alpha", "meta learning rate", "meta iterations", "seeds"):
        assert key in first["settings"]
    assert set(first["sensitivity (after one step)"]) == {"inner rate x2", "meta learning rate x2"}


def test_untrained_learners_start_where_the_seed_puts_them():
    """LOLA and naive learners share their starting parameters: the same reward before adapting."""
    case, _ = small_figure_three()
    curves = paper.adaptation_curves(case, paper.task_pools(case), case.inner.alpha, 2, ("LOLA", "naive"))
    np.testing.assert_allclose(curves["LOLA"][:, 0], curves["naive"][:, 0])


def test_sampled_meta_gradients_average_to_the_estimators_expectation():
    """The sampled variant's meta-gradient is the Monte-Carlo mean of the estimator on the task."""
    case, _ = setting("figure3_sampled.toml", STUDIES)
    case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, samples=4000))
    tasks = paper.task_pools(
        dataclasses.replace(case, paper=dataclasses.replace(case.paper, train_tasks=1, test_tasks=1))
    )
    theta = tasks["train"][0][1].layout.flatten(case.theta)
    rng = np.random.default_rng(0)
    estimate = paper._meta_gradient(case, tasks["train"][0], theta, case.inner.alpha, "Meta-MAPG", 0, rng)
    game, compiled = tasks["train"][0]
    task_case = dataclasses.replace(case, game=game)
    rows = draw(plan(task_case, compiled, ESTIMATORS["meta-mapg"]), 4000, np.random.default_rng(1)).total
    error = rows.std(axis=0) / np.sqrt(4000)
    assert np.all(np.abs(estimate - rows.mean(axis=0)) < 5 * np.sqrt(2) * error)
