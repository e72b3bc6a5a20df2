"""Check 1: compiled symbolic values, gradients and Hessians against independent oracles."""

import dataclasses

import numpy as np
import pytest

from mapg_verify.casefile.reader import parse_case
from mapg_verify.checks.exact import TOLERANCE, oracle_agreement
from mapg_verify.checks.result import relative_error
from mapg_verify.exact.compiled import compile_game
from mapg_verify.oracles.highprecision import mpmath_gradient, mpmath_values

# Every catalog game under every policy kind it admits. The finite IPD runs with a
# 4-step horizon here: the catalog's 10 steps compile in ~10 s per policy kind and
# are exercised by `cases/ipd_finite.toml`; the mathematics is the same.
GAME_OPTIONS = {
    "prisoners_dilemma": {},
    "matching_pennies": {},
    "stag_hunt": {},
    "chicken": {},
    "battle_of_the_sexes": {},
    "ipd": {},
    "ipd_finite": {"horizon": 4},
    "imp": {},
    "noisy_ipd": {"seed": 3},
    "random": {"seed": 5, "states": 3, "sparsity": 0.3},
}
COMBINATIONS = [(name, kind) for name in GAME_OPTIONS for kind in ("softmax", "sigmoid")] + [
    ("random_3_actions", "softmax"),
    ("random_finite", "softmax"),
    ("bilinear", None),
]
EXTRA = {
    "random_3_actions": ("random", {"seed": 9, "states": 2, "actions": [3, 2]}),
    "random_finite": ("random", {"seed": 2, "states": 3, "horizon": 5, "gamma": 1.0}),
}


def make_case(name, kind, params):
    builtin, options = EXTRA.get(name, (name, GAME_OPTIONS.get(name, {})))
    document = {"game": {"builtin": builtin, **options}, "params": params}
    if kind:
        document["policy"] = {"kind": kind}
    return parse_case(document, default_name=name)


@pytest.mark.parametrize(("name", "kind"), COMBINATIONS)
def test_compiled_agrees_with_every_oracle(name, kind):
    case = make_case(name, kind, {"seed": 17, "scale": 1.5})
    result = oracle_agreement(case)
    assert result.passed, result.summary
    assert result.figures["jacobian vs autograd"] <= 1e-10
    assert result.figures["value vs mpmath"] <= 1e-12


@pytest.mark.parametrize(("name", "kind"), [("ipd", "sigmoid"), ("random", "softmax"), ("ipd_finite", "softmax")])
def test_mpmath_gradients_agree_to_the_last_digits(name, kind):
    case = make_case(name, kind, {"seed": 4})
    compiled = compile_game(case.game, case.policy)
    x = compiled.layout.flatten(case.theta)
    exact = np.array(mpmath_gradient(case.game, case.policy, x), dtype=float)
    assert relative_error(compiled.gradient(x), exact) <= 1e-13
    values = np.array([float(v) for v in mpmath_values(case.game, case.policy, x)])
    assert relative_error(compiled.value(x), values) <= 1e-14


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_extreme_logits_give_finite_values_and_derivatives(kind, rng):
    case = make_case("ipd", kind, {"seed": 0})
    layout = compile_game(case.game, case.policy).layout
    theta = layout.unflatten(50.0 * np.sign(rng.standard_normal(layout.size)))
    case = dataclasses.replace(case, theta=theta)
    compiled = compile_game(case.game, case.policy)
    x = layout.flatten(theta)
    for part in (compiled.value(x), *compiled.gradient_and_jacobian(x)):
        assert np.all(np.isfinite(part))
    result = oracle_agreement(case)
    assert result.passed, result.summary


def test_the_check_catches_a_wrong_gradient():
    """Power: a gradient off by one part in 1e8 in one entry fails the autograd comparison."""
    case = make_case("ipd", "sigmoid", {"seed": 1})
    compiled = compile_game(case.game, case.policy)

    def wrong_gradient(x):
        gradient = compiled.gradient(x).copy()
        gradient[0, 3] *= 1 + 1e-8
        return gradient

    result = oracle_agreement(case, dataclasses.replace(compiled, gradient=wrong_gradient))
    assert not result.passed
    assert result.figures["gradient vs autograd"] > TOLERANCE["autograd"]


def test_the_check_catches_a_wrong_jacobian():
    case = make_case("matching_pennies", "softmax", {"seed": 1})
    compiled = compile_game(case.game, case.policy)

    def slightly_wrong(x):
        gradients, jacobian = compiled.gradient_and_jacobian(x)
        return gradients, jacobian * (1 + 1e-6)

    result = oracle_agreement(case, dataclasses.replace(compiled, gradient_and_jacobian=slightly_wrong))
    assert not result.passed


def test_compiled_code_is_reused_for_equal_games():
    first = make_case("ipd", "sigmoid", {"seed": 1})
    second = make_case("ipd", "sigmoid", {"seed": 2})
    assert compile_game(first.game, first.policy) is compile_game(second.game, second.policy)


def test_simultaneous_jacobian_is_the_derivative_of_each_agents_own_gradient():
    import autograd

    from mapg_verify.oracles.autodiff import autograd_values

    case = make_case("imp", "sigmoid", {"seed": 3})
    compiled = compile_game(case.game, case.policy)
    x = compiled.layout.flatten(case.theta)

    def simultaneous_gradient(point):
        gradients = autograd.jacobian(lambda p: autograd_values(case.game, case.policy, p))(point)
        return autograd.numpy.concatenate([gradients[k, compiled.layout.slice(k)] for k in range(2)])

    expected = autograd.jacobian(simultaneous_gradient)(x)
    assert relative_error(compiled.gradient_and_jacobian(x)[1], expected) <= 1e-10


def test_values_convert_to_sympy_for_latex_and_mpmath():
    import mpmath
    import sympy

    from mapg_verify.exact.symbolic import symbolic_values

    case = make_case("prisoners_dilemma", "sigmoid", {"theta": [[0.3], [-0.2]]})
    symbolic = symbolic_values(case.game, case.policy)
    expressions = symbolic.to_sympy()
    assert "theta" in sympy.latex(expressions[0])
    x = [sympy.Float(v, 50) for v in (0.3, -0.2)]
    substituted = expressions[0].subs(dict(zip([sympy.Symbol(str(s)) for s in symbolic.symbols], x, strict=True)))
    with mpmath.workdps(50):
        reference = mpmath_values(case.game, case.policy, [0.3, -0.2])[0]
        assert abs(sympy.N(substituted, 50) - sympy.Float(reference, 50)) < 1e-45


def test_games_with_the_same_numbers_in_other_shapes_compile_apart():
    """Found by a property test: seed 0 gives the same reward bytes for actions [2, 3] and [3, 2]."""
    first = make_case("random", "softmax", {"seed": 1})
    games = [
        parse_case({"game": {"builtin": "random", "seed": 0, "states": 1, "actions": actions}}, "r").game
        for actions in ([2, 3], [3, 2])
    ]
    assert games[0].rewards.tobytes() == games[1].rewards.tobytes()
    compiled = [compile_game(game, first.policy) for game in games]
    assert compiled[0].layout != compiled[1].layout
