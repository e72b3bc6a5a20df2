"""The numeric exact backend (issue 17): it agrees with the symbolic backend on every small game it
is given, with autograd and mpmath where the symbolic one cannot go, and cases choose it."""

import json

import autograd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import write

from mapg_verify.casefile.reader import parse_case
from mapg_verify.checks.result import error_floor, relative_error
from mapg_verify.cli import main
from mapg_verify.exact import kernels, numeric_kernels
from mapg_verify.exact import numeric as numeric_module
from mapg_verify.exact.backend import AUTO_SECONDS, exact_values, resolve_backend
from mapg_verify.exact.compiled import compile_seconds
from mapg_verify.exact.linear import Solver
from mapg_verify.exact.metagradient import expected_update
from mapg_verify.exact.numeric import numeric_values
from mapg_verify.oracles.autodiff import autograd_derivatives, autograd_meta_objective
from mapg_verify.oracles.highprecision import mpmath_values
from mapg_verify.problem.catalog import ipd, random_game
from mapg_verify.problem.policies import POLICIES
from mapg_verify.strategies import games, thetas

AGREEMENT = 1e-12  # both backends evaluate the same mathematics in float64: only rounding separates them


def _backends(game, policy):
    return exact_values(game, policy, "symbolic"), numeric_values(game, policy)


def _agree(a, b, scale, tolerance=AGREEMENT) -> None:
    assert relative_error(np.asarray(a), np.asarray(b), scale) <= tolerance


@st.composite
def game_and_point(draw, agents=2):
    game = draw(games(states=(1, 3), actions=(2, 3), agents=agents, finite_horizons=(1, 3)))
    policy = draw(st.sampled_from(["softmax", "sigmoid"] if set(game.n_actions) == {2} else ["softmax"]))
    theta = draw(thetas(game, policy, scale=2.0))
    return game, POLICIES[policy], np.concatenate([part.ravel() for part in theta])


@settings(max_examples=25, deadline=None)
@given(game_and_point(), st.data())
def test_numeric_equals_symbolic_on_generated_games(example, data):
    """Values, gradients, the simultaneous Jacobian and its vector products, on any small game."""
    game, policy, x = example
    symbolic, numeric = _backends(game, policy)
    scale = error_floor(game, symbolic.value(x))
    _agree(numeric.value(x), symbolic.value(x), scale)
    _agree(numeric.gradient(x), symbolic.gradient(x), scale)
    (g_sym, j_sym), (g_num, j_num) = symbolic.gradient_and_jacobian(x), numeric.gradient_and_jacobian(x)
    _agree(g_num, g_sym, scale)
    _agree(j_num, j_sym, scale)
    w = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=2 * len(x), max_size=2 * len(x)))).reshape(2, -1)
    _agree(numeric.gradient_and_vjp(x)[1](w), w @ j_sym, scale)


@pytest.mark.parametrize("objective", ["terminal", "chain"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize(
    "game, policy",
    [
        (ipd(), "sigmoid"),  # views: each agent sees the state from its own side
        (random_game(seed=2, states=3, actions=[2, 3], horizon=4, gamma=0.9), "softmax"),
        (random_game(seed=3, states=2, actions=[2, 2, 2], horizon=3, gamma=1.0), "sigmoid"),
    ],
)
def test_backwards_meta_gradient_equals_forward(game, policy, steps, objective):
    """Model E run backwards through vector-Jacobian products (numeric) equals the forward
    tangents over the compiled Jacobians (symbolic), term by term, for each meta-agent."""
    symbolic, numeric = _backends(game, POLICIES[policy])
    x = np.random.default_rng(0).normal(size=symbolic.layout.size)
    alpha = tuple(0.5 + 0.25 * k for k in range(game.n_agents))
    scale = error_floor(game, symbolic.value(x))
    for agent in range(game.n_agents):
        a = expected_update(symbolic, x, alpha, steps, agent, objective)
        b = expected_update(numeric, x, alpha, steps, agent, objective)
        for term in ("total", "own", "peer"):
            _agree(getattr(b, term), getattr(a, term), scale)


@pytest.mark.parametrize("interchanges", [False, True])
def test_one_lu_factorization_applies_n_both_ways(interchanges):
    """Every solve at a point shares one LU factorization: ``right(b) = (N b^T)^T`` and
    ``left(c) = c N`` for rows with leading axes, against numpy's solve of ``M`` and ``M^T``; for
    ``M = I - gamma P`` (diagonally dominant, no row interchange) and for a matrix that needs them."""
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(7, 7)) if interchanges else np.eye(7) - 0.9 * rng.dirichlet(np.ones(7), 7)
    solver = Solver.of(matrix)
    assert (solver.order is not None) == interchanges
    rows = rng.normal(size=(2, 3, 7))
    flat = rows.reshape(-1, 7).T
    np.testing.assert_allclose(solver.right(rows), np.linalg.solve(matrix, flat).T.reshape(rows.shape), rtol=1e-12)
    np.testing.assert_allclose(solver.left(rows), np.linalg.solve(matrix.T, flat).T.reshape(rows.shape), rtol=1e-12)


@pytest.mark.parametrize(
    "game, policy",
    [
        (ipd(), "sigmoid"),  # views
        (random_game(seed=2, states=3, actions=[2, 3], gamma=0.8), "softmax"),  # parameter shapes differ
        (random_game(seed=3, states=2, actions=[2, 2, 2], horizon=3), "sigmoid"),  # finite: the gradient only
    ],
)
def test_compiled_products_equal_numpy(game, policy, monkeypatch):
    """From ``kernels.MIN_STATES`` states a point's tables, gradients and Hessian-vector products run
    compiled: forced onto small games, the numpy figures (the path without numba) to rounding, and
    the values and model E with them."""
    structure = numeric_module.structure(game, POLICIES[policy])
    x = np.random.default_rng(4).normal(size=structure.layout.size)
    w = np.random.default_rng(5).normal(size=(2, structure.layout.size))
    numeric = numeric_values(game, POLICIES[policy])
    monkeypatch.setattr(kernels, "MIN_STATES", 1)
    found = {}
    for setting in ("numpy", "numba"):
        monkeypatch.setenv("MAPG_VERIFY_KERNELS", setting)
        point = numeric_module.evaluate(structure, x)
        meta = expected_update(numeric, x, (0.6, 0.9, 0.3)[: game.n_agents], 2, 1, "chain")
        gradient, products = numeric_module.gradient(structure, point), numeric_module.xi_vjp(structure, point, w)
        found[setting] = (numeric_module.values(structure, x), gradient, products, meta)
    scale = error_floor(game, numeric.value(x))
    for slow, fast in zip(found["numpy"][:3], found["numba"][:3], strict=True):
        _agree(fast, slow, scale)
    for term in ("total", "own", "peer"):
        _agree(getattr(found["numba"][3], term), getattr(found["numpy"][3], term), scale)


@pytest.mark.parametrize(
    "game, policy",
    [
        (ipd(), "sigmoid"),  # views
        (random_game(seed=2, states=3, actions=[2, 3], gamma=0.8), "softmax"),  # parameter shapes differ
        (random_game(seed=3, states=2, actions=[2, 2, 2], horizon=3), "sigmoid"),  # three agents, finite
    ],
)
@pytest.mark.parametrize("order", [0, 1, 2])
def test_compiled_tables_equal_numpy(game, policy, order):
    """The compiled tables at a point (the policy's closed forms, ``P_u``, ``r_u``, ``M``) equal the
    numpy path's (the policy through autograd's numpy, the gathers) to 1e-12, at every order."""
    structure = numeric_module.structure(game, POLICIES[policy])
    x = 3.0 * np.random.default_rng(6).normal(size=structure.layout.size)
    found = numeric_kernels.tables(structure, x, order)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAPG_VERIFY_KERNELS", "numpy")
        *expected, compiled = numeric_module._tables(structure, x, order)
    assert not compiled
    absent = [False, not order, order < 2, False, False, not game.infinite]  # u, g, h, P_u, r_u, M
    assert [t is None for t in found] == [t is None for t in expected] == absent
    for table, wanted in zip(found, expected, strict=True):
        if table is not None:
            np.testing.assert_allclose(table, wanted, rtol=1e-12, atol=1e-15)


def test_dense_32_states_against_autograd():
    """Where the closed forms would not build: values, gradients, Hessian rows and the model-E
    meta-gradient of a dense 32-state game against autograd through numpy's solve (1e-9)."""
    game, policy = random_game(seed=5, states=32, actions=[2, 2]), POLICIES["softmax"]
    numeric = numeric_values(game, policy)
    x = np.random.default_rng(1).normal(size=numeric.layout.size)
    value, gradient, hessian = autograd_derivatives(game, policy, x)
    scale = error_floor(game, value)
    _agree(numeric.value(x), value, scale, 1e-9)
    _agree(numeric.gradient(x), gradient, scale, 1e-9)
    _agree(numeric.gradient_and_jacobian(x)[1], numeric.layout.own_parts(hessian), scale, 1e-9)
    for objective in ("terminal", "chain"):
        oracle = autograd.grad(autograd_meta_objective(game, policy, x, (0.7, 0.4), 2, 0, objective))
        ours = expected_update(numeric, x, (0.7, 0.4), 2, 0, objective).total
        _agree(ours, oracle(x[numeric.layout.slice(0)]), scale, 1e-9)


def test_64_states_against_mpmath():
    """The values of a 64-state game against mpmath's own LU solve at 50 digits."""
    game, policy = random_game(seed=6, states=64, actions=[2, 2], gamma=0.95), POLICIES["softmax"]
    numeric = numeric_values(game, policy)
    x = np.random.default_rng(2).normal(size=numeric.layout.size)
    exact = np.array([float(v) for v in mpmath_values(game, policy, x)])
    _agree(numeric.value(x), exact, error_floor(game, exact))


def test_auto_picks_symbolic_for_small_games_and_numeric_beyond():
    sigmoid, softmax = POLICIES["sigmoid"], POLICIES["softmax"]
    assert compile_seconds(ipd(), sigmoid) <= AUTO_SECONDS
    assert resolve_backend(ipd(), sigmoid, "auto") == "symbolic"
    assert resolve_backend(random_game(states=16), softmax, "auto") == "numeric"
    assert resolve_backend(random_game(states=16), softmax, "symbolic") == "symbolic"


DENSE = 'name = "dense"\n[game]\nbuiltin = "random"\nstates = 24\nactions = [2, 2]\n'


def test_case_backend_key_and_json(tmp_path, capsys):
    """``[game] backend``: auto resolves by size, the JSON and the printout say which, and the
    oracles pass on a game the symbolic backend would refuse."""
    sigmoid = {"kind": "sigmoid"}
    assert parse_case({"game": {"builtin": "ipd"}, "policy": sigmoid}, "x").backend == "symbolic"
    assert parse_case({"game": {"builtin": "ipd", "backend": "numeric"}, "policy": sigmoid}, "x").backend == "numeric"
    case = write(tmp_path, DENSE + 'backend = "symbolic"\n')
    assert main(["exact", str(case)]) == 2
    assert "numeric" in capsys.readouterr().err
    case, out = write(tmp_path, DENSE), tmp_path / "dense.json"
    assert main(["exact", str(case), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(numeric backend)" in printed and "oracles: pass" in printed
    document = json.loads(out.read_text())
    assert document["case"]["backend"] == "numeric"
    assert next(c for c in document["checks"] if c["name"] == "oracles")["passed"]
