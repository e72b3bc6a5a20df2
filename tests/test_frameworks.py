"""Plug-ins written in JAX and PyTorch (issue 15): the same estimator in numpy, JAX and torch on the
same batches, batched and one replicate at a time, a surrogate or its gradient; the examples'
verdicts; exact expectations enumerated as for numpy plug-ins; a missing framework is bad input."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is part of the test command: pip install -e '.[test,jax,torch]'")
torch = pytest.importorskip("torch", reason="torch is part of the test command: pip install -e '.[test,jax,torch]'")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax.numpy as jnp  # noqa: E402

from examples import dice_meta_mapg as dice  # noqa: E402
from examples import jax_meta_mapg, torch_meta_mapg  # noqa: E402
from mapg_verify import check_estimator, pipeline  # noqa: E402
from mapg_verify.casefile.reader import load_case  # noqa: E402
from mapg_verify.cli import main  # noqa: E402
from mapg_verify.estimators import frameworks  # noqa: E402
from mapg_verify.estimators.dispatch import builtin_for  # noqa: E402
from mapg_verify.estimators.expectations import expectation  # noqa: E402
from mapg_verify.estimators.plugins import plugin_draws, plugin_expectation  # noqa: E402
from mapg_verify.estimators.records import Plugin  # noqa: E402
from mapg_verify.estimators.surrogate import plan  # noqa: E402
from mapg_verify.exact.compiled import compile_game  # noqa: E402

PD = ROOT / "cases/claims.toml"
TWO_STEPS = ROOT / "tests/claims/horizon_two.toml"


def one_at_a_time(function):
    """The same function without its ``batched`` flag."""

    def single(inner, outer, theta, settings):
        return function(inner, outer, theta, settings)

    return single


PORTS = {
    "numpy": Plugin("numpy", dice.meta_mapg),
    "jax": Plugin("jax", jax_meta_mapg.meta_mapg, "jax"),
    "jax batched": Plugin("jax batched", jax_meta_mapg.meta_mapg_batched, "jax"),
    "torch batched": Plugin("torch batched", torch_meta_mapg.meta_mapg, "torch"),
    "torch": Plugin("torch", one_at_a_time(torch_meta_mapg.meta_mapg), "torch"),
}


def _case(path):
    case = load_case(path)
    return case, compile_game(case.game, case.policy)


@pytest.mark.parametrize("path", [PD, TWO_STEPS], ids=["one-shot", "two-step"])
def test_the_same_estimator_agrees_across_frameworks_on_the_same_batches(path):
    """DiCE Meta-MAPG in autograd, JAX (one replicate, and vmap) and torch (one replicate, and a
    leading replicate axis): 1e-12 relative to the estimates' size, and equal to the built-in."""
    case, compiled = _case(path)
    partner = builtin_for(case, "meta-mapg")
    found = {
        label: plugin_draws(case, compiled, plugin, 40, np.random.default_rng(5), partner)
        for label, plugin in PORTS.items()
    }
    reference = found["numpy"].partner
    scale = np.max(np.abs(reference))
    assert scale > 0.1
    for label, draws in found.items():
        assert np.array_equal(draws.partner, reference), label  # the same batches
        assert np.max(np.abs(draws.rows - reference)) <= 1e-12 * scale, label


def test_a_framework_plugins_exact_expectation_is_enumerated():
    """Every ordered batch, as for numpy plug-ins: one call per sequence, or one batched call."""
    case, compiled = _case(TWO_STEPS)
    built_in = expectation(plan(case, compiled, builtin_for(case, "meta-mapg"))).total
    for label in ("jax batched", "torch batched"):
        found = plugin_expectation(case, compiled, PORTS[label]).total
        assert np.max(np.abs(found - built_in)) <= 1e-12 * np.max(np.abs(built_in)), label
    case, compiled = _case(PD)
    built_in = expectation(plan(case, compiled, builtin_for(case, "meta-mapg"))).total
    found = plugin_expectation(case, compiled, PORTS["jax"]).total
    assert np.max(np.abs(found - built_in)) <= 1e-12 * np.max(np.abs(built_in))


def _torch_gradient(inner, outer, theta, settings):
    """The torch port returning the gradient it computes itself, not the surrogate."""
    value = torch_meta_mapg.meta_mapg(inner, outer, theta, settings)
    (gradient,) = torch.autograd.grad(value, theta[settings.meta_agent])
    return gradient


def _jax_gradient(inner, outer, theta, settings):
    i = settings.meta_agent

    def at(part):
        return jax_meta_mapg.meta_mapg(
            inner, outer, tuple(part if k == i else p for k, p in enumerate(theta)), settings
        )

    return jax.grad(at)(theta[i])


def _jax_branching(inner, outer, theta, settings):
    """Python control flow on a value: not traceable by ``jax.jit``, so the call runs uncompiled."""
    if jnp.sum(inner[0].rewards) > 1e9:
        raise AssertionError("unreachable")
    return jax_meta_mapg.meta_mapg(inner, outer, theta, settings)


@pytest.mark.parametrize(
    "plugin",
    [Plugin("t", _torch_gradient, "torch"), Plugin("j", _jax_gradient, "jax"), Plugin("b", _jax_branching, "jax")],
    ids=["torch gradient", "jax gradient", "jax control flow"],
)
def test_a_gradient_or_a_surrogate_and_compiled_or_not_give_the_same_estimate(plugin):
    case, compiled = _case(PD)
    partner = builtin_for(case, "meta-mapg")
    draws = plugin_draws(case, compiled, plugin, 20, np.random.default_rng(2), partner)
    assert np.max(np.abs(draws.rows - draws.partner)) <= 1e-12 * np.max(np.abs(draws.partner))


def _adapted_gradient(batch, settings):
    """REINFORCE at ``phi_L`` for one replicate, written for ``torch.func``: its gradient with
    respect to the meta-agent's ``phi_L`` (what the partner ``{ adapted = 1 }`` computes)."""
    i = settings.meta_agent
    returns = torch_meta_mapg.get_return(batch.rewards[..., i], settings.gamma)
    to_go = returns * torch_meta_mapg.discount(batch, settings)

    def objective(own):
        phi = tuple(own if k == i else p for k, p in enumerate(batch.phi))
        return (torch_meta_mapg.log_probs(phi, batch, settings, i) * to_go).sum(-1).mean(-1)

    return torch.func.grad(objective)(batch.phi[i])


def _torch_func_vmap(inner, outer, theta, settings):
    return torch.func.vmap(lambda batch: _adapted_gradient(batch, settings))(outer[-1])


_torch_func_vmap.batched = True


def test_torch_func_vmap_maps_over_batches():
    """``Batch`` is a torch pytree: ``torch.func.vmap`` over the outer batches, an estimate returned."""
    case, compiled = _case(TWO_STEPS)
    plugin = Plugin("vmap", _torch_func_vmap, "torch")
    draws = plugin_draws(case, compiled, plugin, 30, np.random.default_rng(4))  # partner: REINFORCE at phi_L
    assert np.max(np.abs(draws.rows - draws.partner)) <= 1e-12 * np.max(np.abs(draws.partner))


def _detached(inner, outer, theta, settings):
    return torch_meta_mapg.meta_mapg(inner, outer, theta, settings).detach()


def _wrong_shape(inner, outer, theta, settings):
    return jnp.zeros(3)


@pytest.mark.parametrize(
    ("function", "framework", "message"),
    [
        (_detached, "torch", "surrogate does not depend on theta"),
        (_wrong_shape, "jax", "returned shape (3,), expected (1,)"),
    ],
)
def test_a_framework_plugin_that_misbehaves_fails_its_own_checks(function, framework, message):
    result = check_estimator(function, PD, claim="meta-mapg", samples=50, framework=framework)
    assert not result.passed
    failed = [c for c in result.checks if c.verdict == "fail"]
    assert failed and all(c.name.endswith(function.__name__) for c in failed)
    assert any(message in c.summary for c in failed), result.summary


def _verdicts(path, samples=400):
    case = load_case(path)
    case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, samples=samples))
    return {c.name: c.verdict for c in pipeline.evaluate(case, seed=0).checks}


def test_the_torch_official_port_passes_its_claim_and_its_bug_fails():
    """The official loss in torch claims meta-mapg-official exactly; its batches come from the
    official inner loop (the linear baseline inside), which its own phi_l confirm."""
    verdicts = _verdicts(ROOT / "examples/torch_meta_mapg.toml")
    good, bad = (f"torch:examples.torch_meta_mapg:{name}" for name in ("meta_mapg_official", "official_not_causal"))
    assert verdicts[f"claim:{good}"] == "pass"
    assert verdicts[f"inner-update:{good}"] == "pass"
    assert verdicts[f"claim:{bad}"] == "fail"
    assert [name for name, verdict in verdicts.items() if verdict == "fail"] == [f"claim:{bad}", f"inner-update:{bad}"]


def test_the_jax_lola_dice_port_passes_its_claim_and_its_bug_fails():
    verdicts = _verdicts(ROOT / "examples/jax_lola_dice.toml")
    prefix = "jax:examples.jax_lola_dice:"
    for name in ("lola_dice", "lola_dice_batched"):
        assert verdicts[f"claim:{prefix}{name}"] == "pass"
        assert verdicts[f"inner-update:{prefix}{name}"] == "pass"
    assert [name for name, verdict in verdicts.items() if verdict == "fail"] == [
        f"claim:{prefix}lola_dice_own_log_probs"
    ]


def test_a_statistical_claim_of_a_torch_plugin_is_paired_with_its_partner():
    result = check_estimator(
        torch_meta_mapg.meta_mapg, PD, claim="meta-mapg", samples=2000, mode="statistical", framework="torch"
    )
    (claim,) = [c for c in result.checks if c.kind == "claim"]
    assert claim.verdict == "pass"
    assert "equal to meta-mapg on the same batches, to rounding" in claim.summary


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_a_missing_framework_is_bad_input_with_the_install_command(tmp_path, capsys, monkeypatch, framework):
    case = PD.read_text().replace("examples.dice_meta_mapg:meta_mapg", f"{framework}:examples.jax_meta_mapg:meta_mapg")
    path = tmp_path / "case.toml"
    path.write_text(case)
    frameworks._prepared.cache_clear()
    monkeypatch.setitem(sys.modules, framework, None)  # import fails as if not installed
    try:
        assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    finally:
        frameworks._prepared.cache_clear()
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: [estimators.names]"), error
    assert f"needs {framework}" in error and f"pip install -e '.[{framework}]'" in error
    assert not (tmp_path / "out").exists()


def test_check_estimator_refuses_an_unknown_framework():
    with pytest.raises(Exception, match="framework"):
        check_estimator(dice.meta_mapg, PD, framework="tensorflow")
