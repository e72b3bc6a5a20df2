"""Advantage Alignment (Duque et al., ICLR 2025) exactly: every closed form of
:mod:`mapg_verify.exact.advantage_alignment` against the autograd oracle by enumeration, to 1e-10,
and Theorems 1 and 2 ("LOLA and LOQA implicitly perform Advantage Alignment") read as identities."""

import numpy as np
import pytest

from mapg_verify.checks.newer import alignment_claims, proportional
from mapg_verify.checks.result import relative_error
from mapg_verify.exact import advantage_alignment as aa
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.opponent_model import opponent_model_gradients
from mapg_verify.oracles.advantage_alignment import autograd_alignment
from mapg_verify.problem.catalog import imp, ipd, matching_pennies
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import POLICIES

TOLERANCE = 1e-10
GAMES = [ipd(), imp(), matching_pennies()]


def _point(game, policy, seed=4):
    return 0.5 * np.random.default_rng(seed).standard_normal(layout_of(game, policy).size)


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.name)
@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
@pytest.mark.parametrize(("meta_agent", "beta"), [(0, 1.0), (1, 0.7)])
def test_truncated_terms_match_autograd_by_enumeration(game, kind, meta_agent, beta):
    """Episodes of 4 steps (256 trajectories on the IPD): the paper's, train.py's and the derived terms."""
    policy = POLICIES[kind]
    x = _point(game, policy)
    found = aa.truncated(aa.alignment(game, policy, x, meta_agent), 4, beta)
    for variant, value in found.items():
        oracle = autograd_alignment(game, policy, x, variant, 4, meta_agent, beta)
        assert relative_error(value, oracle, scale=1.0) <= TOLERANCE, variant


@pytest.mark.parametrize("game", [ipd(), imp()], ids=lambda g: g.name)
@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
def test_infinite_sums_are_the_limit_of_the_truncated_ones(game, kind):
    """``gamma = 0.96``: after 1,500 steps the tails are below ``0.96^1500 ~ 2e-27`` times a polynomial."""
    policy = POLICIES[kind]
    data = aa.alignment(game, policy, _point(game, policy), 0)
    long = aa.truncated(data, 1500, 0.7)
    assert relative_error(long["paper"], aa.paper(data, 0.7)) <= TOLERANCE
    assert relative_error(long["derived"], aa.derived(data, 0.7)) <= TOLERANCE


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.name)
@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
@pytest.mark.parametrize("meta_agent", [0, 1])
def test_derived_form_is_the_chain_rule_through_the_opponents_q(game, kind, meta_agent):
    """The identity the module derives: ``beta E[sum_t gamma^t (sum_{k<=t} Abar_k) A^j_t score_t] =
    beta sum_s d(s) sum_b pi^j Abar G``, exactly."""
    policy = POLICIES[kind]
    data = aa.alignment(game, policy, _point(game, policy), meta_agent)
    assert relative_error(aa.derived(data, 0.7), aa.chain_shaping(data, 0.7), scale=1.0) <= TOLERANCE


def test_the_paper_term_is_zero_for_one_step_and_train_py_needs_three_steps():
    game, policy = matching_pennies(), POLICIES["sigmoid"]
    data = aa.alignment(game, policy, np.array([0.3, -0.2]))
    assert np.max(np.abs(aa.paper(data, 1.0))) == 0.0  # no past advantages at T = 1
    assert np.max(np.abs(aa.truncated(data, 2, 1.0)["code"])) == 0.0  # t runs over 1..T-2
    assert np.max(np.abs(aa.derived(data, 1.0))) > 1e-3  # the k = t term is not 0


@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_loqa_at_a_self_consistent_opponent_is_the_derived_alignment_term(kind, temperature):
    """Theorem 2 as an identity: where the opponent is ``softmax(q / tau)``, LOQA's chain-rule shaping
    equals the derived form at ``beta = 1 / tau`` (factor 1); the paper's form is not proportional to it."""
    game, policy = ipd(), POLICIES[kind]
    point, left = aa.self_consistent(game, policy, _point(game, policy, 0), 0, temperature)
    assert left <= 1e-12
    ideal = opponent_model_gradients(game, policy, point, 0, temperature).ideal
    data = aa.alignment(game, policy, point, 0)
    assert relative_error(aa.derived(data, 1.0 / temperature), ideal) <= TOLERANCE
    assert proportional(ideal, aa.paper(data, 1.0 / temperature))["residual"] > 0.1


@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
def test_theorems_as_identities_fail_for_the_paper_form_on_the_ipd(kind):
    game, policy = ipd(), POLICIES[kind]
    compiled = compile_game(game, policy)
    lola, loqa = alignment_claims(game, compiled, policy, _point(game, policy, 0))
    assert not lola.passed and lola.figures["paper"]["residual"] > 0.1, lola.summary
    assert not loqa.passed and loqa.figures["paper"]["residual"] > 0.1, loqa.summary
    assert loqa.figures["derived"]["residual"] <= TOLERANCE and abs(loqa.figures["derived"]["factor"] - 1) <= 1e-10
    # LOLA is close to, but not exactly, a multiple of the derived form: its tabular kernel weights
    # each (s, b) by d(s) pi^j(b|s) and adds the occupancy's own derivative
    assert 1e-4 < lola.figures["derived"]["residual"] < 0.1


def test_proportional_reads_zero_vectors_as_zero():
    assert proportional(np.zeros(3), np.zeros(3))["residual"] == 0.0
    assert proportional(np.ones(3), np.zeros(3))["residual"] == 1.0
    assert proportional(np.array([2.0, 4.0]), np.array([1.0, 2.0]))["factor"] == pytest.approx(2.0, abs=1e-15)
