"""Model E meta-gradients and LOLA against oracles that share nothing with the chain-rule path."""

import autograd
import numpy as np
import pytest

from mapg_verify.casefile.reader import load_case, parse_case
from mapg_verify.checks.exact import expected_identities, meta_oracle_errors
from mapg_verify.checks.result import relative_error
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.metagradient import expected_update, inner_path, lola
from mapg_verify.oracles.differences import richardson

SETTINGS = [
    # (game, policy, alpha, steps, meta_agent, objective)
    ("ipd", "sigmoid", (1.0, 1.0), 1, 0, "terminal"),
    ("ipd", "sigmoid", (0.5, 2.0), 3, 1, "chain"),
    ("matching_pennies", "softmax", (1.0, 0.5), 2, 0, "terminal"),
    ("random", "softmax", (0.3, 0.7), 2, 1, "terminal"),
    ("random", "softmax", (0.3, 0.0), 3, 0, "chain"),
    ("bilinear", None, (0.1, 0.2), 3, 0, "chain"),
]


def setting_case(game, kind, alpha, steps, meta_agent, objective):
    document = {
        "game": {"builtin": game},
        "params": {"seed": 3},
        "inner": {"alpha": list(alpha), "steps": steps, "meta_agent": meta_agent, "objective": objective},
    }
    if kind:
        document["policy"] = {"kind": kind}
    return parse_case(document, default_name=game)


@pytest.mark.parametrize("setting", SETTINGS)
def test_model_e_total_matches_autograd_and_finite_differences(setting):
    case = setting_case(*setting)
    compiled = compile_game(case.game, case.policy)
    x, inner = compiled.layout.flatten(case.theta), case.inner
    own = compiled.layout.slice(inner.meta_agent)
    assert meta_oracle_errors(case, compiled)["expected"] <= 1e-8
    truth = expected_update(compiled, x, inner.alpha, inner.steps, inner.meta_agent, inner.objective)

    def objective(theta_i):  # J from the compiled values along the compiled inner path
        point = x.copy()
        point[own] = theta_i
        path = inner_path(compiled, point, inner.alpha, inner.steps)
        visited = path if inner.objective == "chain" else path[-1:]
        return sum(compiled.value(phi)[inner.meta_agent] for phi in visited)

    assert relative_error(truth.total, richardson(objective, x[own])) <= 1e-6


def test_lola_exact_matches_autograd_of_the_lola_objective():
    case = setting_case("ipd", "sigmoid", (1.0, 1.0), 1, 0, "terminal")
    compiled = compile_game(case.game, case.policy)
    x = compiled.layout.flatten(case.theta)
    alpha = 0.7

    def lola_objective(theta0):
        point = autograd.numpy.concatenate([theta0, x[5:]])
        xi1 = autograd.jacobian(lambda p: _values(case, p))(point)[1, 5:]
        return _values(case, autograd.numpy.concatenate([theta0, x[5:] + alpha * xi1]))[0]

    assert relative_error(lola(compiled, x, (alpha, alpha)).exact, autograd.grad(lola_objective)(x[:5])) <= 1e-8


def _values(case, point):
    from mapg_verify.oracles.autodiff import autograd_values

    return autograd_values(case.game, case.policy, point)


@pytest.mark.parametrize("path", ["cases/ipd.toml", "cases/random.toml", "cases/inline.toml", "cases/bilinear.toml"])
def test_identities_hold_on_the_shipped_cases(path):
    result = expected_identities(load_case(path))
    assert result.passed, result.summary


def test_lola_eq6_misses_a_first_order_term_on_the_bilinear_game():
    """V^0 = x y and V^1 = -x y, so xi^1 = -x and phi^1 = y - alpha x. Exact LOLA:
    d/dx [x (y - alpha x)] = y - 2 alpha x. Eq. 6: y + x (-alpha) = y - alpha x. The gap,
    -alpha x, is first order: Eq. 6 omits (d grad_y V^0 / dx) alpha xi^1 = alpha (-x)."""
    case = setting_case("bilinear", None, (0.1, 0.1), 1, 0, "terminal")
    compiled = compile_game(case.game, case.policy)
    x = np.array([1.5, -0.5])
    for alpha in (0.1, 0.01):
        result = lola(compiled, x, (alpha, alpha))
        assert result.exact[0] == pytest.approx(-0.5 - 2 * alpha * 1.5, rel=1e-14)
        assert result.first_order[0] == pytest.approx(-0.5 - alpha * 1.5, rel=1e-14)
        assert result.taylor[0] == pytest.approx(result.exact[0], rel=1e-14)  # V^0 is quadratic in alpha's step


def test_meta_oracles_catch_a_wrong_jacobian():
    """Power: a simultaneous Jacobian 1e-6 off moves the model-E total past the 1e-8 tolerance."""
    import dataclasses

    from mapg_verify.checks.exact import meta_oracles

    case = setting_case("ipd", "sigmoid", (1.0, 1.0), 2, 0, "terminal")
    compiled = compile_game(case.game, case.policy)

    def slightly_wrong(x):
        gradients, jacobian = compiled.gradient_and_jacobian(x)
        return gradients, jacobian * (1 + 1e-6)

    assert meta_oracles(case, compiled).passed
    result = meta_oracles(case, dataclasses.replace(compiled, gradient_and_jacobian=slightly_wrong))
    assert not result.passed and result.figures["expected vs autograd"] > 1e-8
