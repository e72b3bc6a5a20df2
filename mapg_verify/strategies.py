"""Hypothesis strategies for users' own property tests (SPEC §6): games, parameters, inner loops
and whole cases, valid by construction and shrinking towards small, readable games.

Games are drawn from small integers (transition weights 0-3 normalised per row, rewards whole
numbers times ``reward_scale``), so a failing example shrinks to deterministic transitions and
zero rewards, and :func:`case_toml` prints it as a case file to paste into ``cases/``::

    from hypothesis import given, note
    from mapg_verify import strategies as mst

    @given(mst.cases(estimators=("meta-pg",)))
    def test_my_property(case):
        note(mst.case_toml(case))          # shown with the shrunk counterexample
        ...

Every argument is checked; a bad one raises :class:`hypothesis.errors.InvalidArgument` naming it.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from mapg_verify.casefile.reader import parse_case
from mapg_verify.casefile.writer import toml_text
from mapg_verify.estimators.table import ESTIMATORS, MUTANTS
from mapg_verify.exact.enumeration import count_batches, count_trajectories
from mapg_verify.problem.game import Game, make_game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import POLICIES
from mapg_verify.spec.case import DEFAULT_CAP, Case, CheckSettings, EstimatorSettings, InnerLoop, loop_settings


def _range(name: str, value: tuple, low: float, high: float = math.inf, integer: bool = True) -> tuple:
    """Validate ``value = (lowest, highest)``; ``InvalidArgument`` names the argument."""
    kind = int if integer else (int, float)
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
        or not low <= value[0] <= value[1] <= high
    ):
        raise InvalidArgument(
            f"{name}={value!r}: expected a pair (lowest, highest) with {low} <= lowest <= highest <= {high}"
        )
    return value


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidArgument(f"{name}={value!r}: expected one of {', '.join(map(repr, allowed))}")
    return value


@st.composite
def _distribution(draw, size: int, sparse: bool) -> list[float]:
    """A probability vector from integer weights 0-3 (1-3 when not sparse), never all zero."""
    weights = draw(st.lists(st.integers(0 if sparse else 1, 3), min_size=size, max_size=size))
    if sum(weights) == 0:
        weights[0] = 1
    return [w / sum(weights) for w in weights]


def games(
    *,
    states: tuple[int, int] = (1, 3),
    actions: tuple[int, int] = (2, 3),
    agents: int = 2,
    horizon: str = "any",
    finite_horizons: tuple[int, int] = (1, 3),
    gammas: Sequence[float] = (0.5, 0.9, 1.0),
    reward_scale: float = 1.0,
    sparse: bool = True,
) -> st.SearchStrategy[Game]:
    """Valid tabular games: ``states`` and per-agent ``actions`` within the given bounds,
    ``horizon`` ``"finite"`` (within ``finite_horizons``), ``"infinite"`` (gamma < 1 from
    ``gammas``) or ``"any"``; rewards whole numbers in [-3, 3] times ``reward_scale``; with
    ``sparse`` some transitions are impossible. Example: ``games(states=(1, 2), horizon="finite")``."""
    _range("states", states, 1)
    _range("actions", actions, 2)
    _range("finite_horizons", finite_horizons, 1)
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 2:
        raise InvalidArgument(f"agents={agents!r}: expected an integer >= 2")
    _choice("horizon", horizon, ("any", "finite", "infinite"))
    gammas = tuple(gammas)
    if not gammas or not all(isinstance(g, int | float) and 0 <= g <= 1 for g in gammas):
        raise InvalidArgument(f"gammas={gammas!r}: expected discounts in [0, 1]")
    if horizon == "infinite" and not any(g < 1 for g in gammas):
        raise InvalidArgument(f"gammas={gammas!r}: an infinite horizon needs a discount below 1")
    if not isinstance(reward_scale, int | float) or not 0 < reward_scale < math.inf:
        raise InvalidArgument(f"reward_scale={reward_scale!r}: expected a positive finite number")

    @st.composite
    def build(draw) -> Game:
        n_states = draw(st.integers(*states))
        n_actions = [draw(st.integers(*actions)) for _ in range(agents)]
        infinite = horizon == "infinite" or (horizon == "any" and any(g < 1 for g in gammas) and draw(st.booleans()))
        allowed = [g for g in gammas if g < 1] if infinite else list(gammas)
        gamma = draw(st.sampled_from(allowed))
        length = "inf" if infinite else draw(st.integers(*finite_horizons))
        cells = n_states * math.prod(n_actions)
        rows = [draw(_distribution(n_states, sparse)) for _ in range(cells)]
        transitions = np.array(rows).reshape(n_states, *n_actions, n_states)
        rewards = np.array(draw(st.lists(st.integers(-3, 3), min_size=agents * cells, max_size=agents * cells)))
        rewards = reward_scale * rewards.reshape(agents, n_states, *n_actions)
        initial = draw(_distribution(n_states, sparse))
        return make_game("generated", transitions.tolist(), rewards.tolist(), initial, gamma, length)

    return build()


def thetas(game: Game, policy: str = "softmax", scale: float = 2.0) -> st.SearchStrategy[tuple[np.ndarray, ...]]:
    """Parameters for ``game`` under ``policy`` (``"softmax"``, or ``"sigmoid"`` for two actions),
    entries in [-scale, scale] rounded to 2 decimals (shrinking towards 0). Example:
    ``thetas(game, "sigmoid", scale=1.0)``."""
    _choice("policy", policy, tuple(POLICIES))
    if POLICIES[policy].two_actions_only and any(a != 2 for a in game.n_actions):
        raise InvalidArgument(f"policy={policy!r}: the game has actions {list(game.n_actions)}, sigmoid needs 2")
    if not isinstance(scale, int | float) or not 0 <= scale < math.inf:
        raise InvalidArgument(f"scale={scale!r}: expected a non-negative finite number")
    layout = layout_of(game, POLICIES[policy])
    entry = st.integers(-int(100 * scale), int(100 * scale)).map(lambda v: v / 100)
    return st.tuples(
        *(
            st.lists(entry, min_size=math.prod(s), max_size=math.prod(s)).map(lambda v, s=s: np.reshape(v, s))
            for s in layout.shapes
        )
    )


def inner_loops(
    game: Game,
    *,
    models: Sequence[str] = ("expected", "sampled"),
    steps: tuple[int, int] = (1, 2),
    batch: tuple[int, int] = (1, 3),
    alpha: tuple[float, float] = (0.0, 1.5),
    objectives: Sequence[str] = ("terminal", "chain"),
    horizon: tuple[int, int] = (1, 2),
) -> st.SearchStrategy[InnerLoop]:
    """Inner-loop settings for ``game``: ``steps`` L, ``batch`` K, per-agent rates in ``alpha``
    (two decimals), an objective, a meta-agent, and for model S a trajectory length (the game's
    own when finite and within ``horizon``). Example: ``inner_loops(game, models=("expected",))``."""
    models = tuple(models)
    if not models or any(m not in ("expected", "sampled") for m in models):
        raise InvalidArgument(f"models={models!r}: expected some of 'expected', 'sampled'")
    _range("steps", steps, 1)
    _range("batch", batch, 1)
    _range("alpha", alpha, 0.0, integer=False)
    _range("horizon", horizon, 1)
    if not objectives or any(o not in ("terminal", "chain") for o in objectives):
        raise InvalidArgument(f"objectives={tuple(objectives)!r}: expected some of 'terminal', 'chain'")
    rate = st.integers(int(100 * alpha[0]), int(100 * alpha[1])).map(lambda v: v / 100)

    @st.composite
    def build(draw) -> InnerLoop:
        length = int(game.horizon) if not game.infinite else draw(st.integers(*horizon))
        return InnerLoop(
            models,
            draw(st.integers(*steps)),
            tuple(draw(rate) for _ in range(game.n_agents)),
            draw(st.integers(*batch)),
            length,
            draw(st.sampled_from(list(objectives))),
            draw(st.integers(0, game.n_agents - 1)),
            DEFAULT_CAP,
        )

    return build()


def cases(
    *,
    games_strategy: st.SearchStrategy[Game] | None = None,
    policy: str = "any",
    estimators: Sequence[str] = (),
    samples: int = 2000,
    outer: str = "sampled",
    pairing: str = "batch",
    max_batches: int = 2000,
    scale: float = 2.0,
    **inner_options,
) -> st.SearchStrategy[Case]:
    """Whole cases: a game (default ``games(states=(1, 2), horizon="finite", finite_horizons=(1, 2))``),
    a policy (``"softmax"``, ``"sigmoid"`` or ``"any"``), ``thetas`` (entries within ``scale``:
    30 gives saturated policies), ``inner_loops`` (keyword options passed on) and estimator
    settings, kept small enough that model S and the estimators' expectations enumerate at most
    ``max_batches`` inner batches (K, then L, are lowered to fit).
    Example: ``cases(estimators=("meta-pg", "mymodule:estimate"), samples=4000)``."""
    for name in estimators:
        if ":" not in name and name not in ESTIMATORS and name not in MUTANTS:
            raise InvalidArgument(f"estimators: {name!r} is not a known estimator nor module:function")
    _choice("policy", policy, ("any", *POLICIES))
    _choice("outer", outer, ("sampled", "exact"))
    _choice("pairing", pairing, ("batch", "trajectory", "timestep"))
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InvalidArgument(f"samples={samples!r}: expected an integer >= 2")
    source = (
        games_strategy if games_strategy is not None else games(states=(1, 2), horizon="finite", finite_horizons=(1, 2))
    )

    @st.composite
    def build(draw) -> Case:
        game = draw(source)
        kinds = [k for k in POLICIES if not POLICIES[k].two_actions_only or all(a == 2 for a in game.n_actions)]
        kind = draw(st.sampled_from(kinds)) if policy == "any" else policy
        theta = draw(thetas(game, kind, scale))
        inner = _fit(game, draw(inner_loops(game, **inner_options)), max_batches)
        settings = EstimatorSettings(tuple(estimators), samples, outer, pairing, inner.batch)
        return Case("generated", "", game, POLICIES[kind], theta, inner, settings, CheckSettings())

    return build()


def _fit(game: Game, inner: InnerLoop, limit: int) -> InnerLoop:
    """Lower K, then L, until the enumeration has at most ``limit`` inner batches."""
    n = count_trajectories(game, inner.horizon)
    while inner.batch > 1 and count_batches(n, inner.batch, inner.steps) > limit:
        inner = replace(inner, batch=inner.batch - 1)
    while inner.steps > 1 and count_batches(n, inner.batch, inner.steps) > limit:
        inner = replace(inner, steps=inner.steps - 1)
    return inner


def case_toml(case: Case) -> str:
    """The case as a case file (an inline game), to paste into ``cases/`` and run."""
    game, inner, settings = case.game, case.inner, case.estimators
    document = {
        "name": case.name,
        "game": {
            "transitions": game.transitions,
            "rewards": game.rewards,
            "initial": game.initial,
            "gamma": float(game.gamma),
            "horizon": "inf" if game.infinite else int(game.horizon),
        },
        "policy": {"kind": case.policy.name},
        "params": {"theta": [np.asarray(t).tolist() for t in case.theta]},
        "inner": {
            "model": list(inner.models),
            **loop_settings(inner),
        },
    }
    if settings.names:
        document["estimators"] = {
            "names": list(settings.names),
            "samples": settings.samples,
            "outer": settings.outer,
            "pairing": settings.pairing,
        }
    return toml_text(document)


def parse_back(text: str) -> Case:
    """Read :func:`case_toml`'s output back (what a user's pasted file gives)."""
    return parse_case(tomllib.loads(text), "generated")
