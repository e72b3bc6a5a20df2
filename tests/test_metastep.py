"""Model E's one-step meta-gradient compiled whole (symbolic backend) equals the general path, and is
compiled only for a key asked for often."""

import dataclasses
import gc
import math

import numpy as np
import pytest

from mapg_verify.checks.result import error_floor, relative_error
from mapg_verify.exact import metastep
from mapg_verify.exact.compiled import compile_game, compile_values
from mapg_verify.exact.metagradient import expected_update
from mapg_verify.exact.numeric import numeric_values
from mapg_verify.exact.symbolic import symbolic_values
from mapg_verify.problem.catalog import bilinear, ipd, random_game
from mapg_verify.problem.policies import POLICIES


@pytest.fixture
def fresh(monkeypatch):
    """No step compiled or counted before the test, whatever the load made compiling take."""
    monkeypatch.setattr(metastep, "FUSE_SECONDS", math.inf)
    monkeypatch.setattr(metastep, "_CALLS", metastep.weakref.WeakKeyDictionary())
    monkeypatch.setattr(metastep, "_STEPS", metastep.weakref.WeakKeyDictionary())
    return monkeypatch


@pytest.mark.parametrize(
    "game, policy",
    [
        (ipd(), "sigmoid"),  # views
        (random_game(seed=2, states=2, actions=[2, 3, 2], gamma=0.8), "softmax"),  # three agents, shapes differ
        (random_game(seed=3, states=2, actions=[2, 2], horizon=3), "sigmoid"),  # finite horizon
        (bilinear(), None),  # a differentiable game
    ],
)
def test_one_step_equals_the_general_path(game, policy, fresh):
    """For every meta-agent and both objectives, the compiled step's terms equal those composed
    from the compiled gradients and Jacobians (today's path) to 1e-12."""
    compiled = compile_game(game, POLICIES.get(policy))
    x = np.random.default_rng(7).normal(size=compiled.layout.size)
    alpha = tuple(0.4 + 0.3 * k for k in range(compiled.n_agents))
    scale = error_floor(game, compiled.value(x))
    for agent in range(compiled.n_agents):
        for objective in ("terminal", "chain"):
            fresh.setattr(metastep, "FUSE_AFTER", 10**9)
            general = expected_update(compiled, x, alpha, 1, agent, objective)
            fresh.setattr(metastep, "FUSE_AFTER", 1)
            fused = expected_update(compiled, x, alpha, 1, agent, objective)
            assert (agent, objective) in metastep._STEPS[compiled]
            for term in ("total", "current", "own", "peer"):
                assert relative_error(getattr(fused, term), getattr(general, term), scale) <= 1e-12


def test_compiled_on_the_key_s_fuse_after_th_call(fresh):
    """Before ``FUSE_AFTER`` calls of one key the general path runs; from then on the compiled step;
    never for more steps than one, for the numeric backend (which has no closed forms) or for a game
    that took longer than ``FUSE_SECONDS`` to compile."""
    fresh.setattr(metastep, "FUSE_AFTER", 3)
    game, policy = ipd(), POLICIES["sigmoid"]
    compiled, numeric = compile_game(game, policy), numeric_values(game, policy)
    assert [metastep.one_step(compiled, 0, "terminal") is None for _ in range(4)] == [True, True, False, False]
    assert metastep.one_step(compiled, 1, "terminal") is None  # another key counts apart
    x = np.zeros(compiled.layout.size)
    for _ in range(5):
        expected_update(compiled, x, (1.0, 1.0), 2, 1, "chain")
        expected_update(numeric, x, (1.0, 1.0), 1)
    assert [(c, list(steps)) for c, steps in metastep._STEPS.items() if steps] == [(compiled, [(0, "terminal")])]
    fresh.setattr(metastep, "FUSE_SECONDS", 2.0)
    slow = dataclasses.replace(compiled, seconds={**compiled.seconds, "compile": 3.0})
    assert all(metastep.one_step(slow, 0, "terminal") is None for _ in range(5))


def test_a_game_is_not_kept_alive_by_its_steps(fresh):
    """The counts and compiled steps are held weakly: a game compiled outside compile_game's
    memo is freed with its last reference."""
    fresh.setattr(metastep, "FUSE_AFTER", 1)
    compiled = compile_values(symbolic_values(ipd(), POLICIES["sigmoid"]))
    assert metastep.one_step(compiled, 0, "terminal") is not None
    del compiled
    gc.collect()
    assert len(metastep._STEPS) == 0 and len(metastep._CALLS) == 0


def test_compile_game_keeps_the_most_recently_used(monkeypatch):
    """``compile_game``'s memo keeps ``MAX_COMPILED`` games, the least recently used dropped first."""
    from mapg_verify.exact import compiled as module

    monkeypatch.setattr(module, "MAX_COMPILED", 2)
    monkeypatch.setattr(module, "_CACHE", module.collections.OrderedDict())
    games = [random_game(seed=seed, states=1, actions=[2, 2]) for seed in range(3)]
    first, second = (compile_game(g, POLICIES["softmax"]) for g in games[:2])
    assert compile_game(games[0], POLICIES["softmax"]) is first  # a hit, now the most recent
    compile_game(games[2], POLICIES["softmax"])  # drops the second, the least recently used
    assert compile_game(games[0], POLICIES["softmax"]) is first
    assert compile_game(games[1], POLICIES["softmax"]) is not second
    assert len(module._CACHE) == 2
