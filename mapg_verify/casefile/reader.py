"""Case files: TOML in, a validated frozen :class:`Case` out (keys of SPEC §8).

Every error is an :class:`InputError` naming the file, the dotted key and the
reason; unknown keys are errors. Defaults: ``[policy] kind = "softmax"``,
``[params] seed = 0, scale = 1.0``, ``[inner] model = ["expected"]``,
``steps = 1``, ``alpha = 1.0`` for every agent, ``batch = 2``, ``horizon`` the
game's (required for model S on an infinite-horizon game),
``objective = "terminal"``, ``meta_agent = 0``, ``enumeration_cap = 200000``
(model S refuses to enumerate more inner batches than this); ``[estimators] names = []``,
``samples = 20000``, ``outer = "sampled"``, ``pairing = "batch"``, ``outer_batch`` the inner
``batch``, ``plugin_calls = 20000`` (the most calls a plug-in's exact expectation may make; past
it, ``auto`` claims are tested statistically, ``exact`` ones are untested), ``plugin_timeout = 300``
(seconds a plug-in's call may take before it fails its estimator), ``returns``,
``baseline`` and ``gae_lambda`` each built-in's own (a name's
``[key=value, ...]`` options override them for it); ``[checks] level = 0.01``,
``relative_error = 0.1``, ``fingerprint_draws = 3``, ``seeds = 0`` (calibration and power off),
``calibration_samples = 1000``, ``sweep = true``, ``claim_mode = "auto"``; ``[estimators.claims]`` none beyond
the built-ins' own.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np

from mapg_verify.casefile.budget import THETA_BOUND, THETA_REASON, check_budget, check_experiment, check_reach
from mapg_verify.casefile.derivatives import derivative_settings
from mapg_verify.casefile.estimators import estimator_settings
from mapg_verify.casefile.values import boolean, known_keys, number_in, positive_integer, subtable
from mapg_verify.estimators.plugins import plugin_path
from mapg_verify.exact.backend import BACKENDS, resolve_backend
from mapg_verify.exact.enumeration import check_enumerable
from mapg_verify.problem.catalog import build_game
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import DifferentiableGame, Game, make_game, parse_horizon
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import POLICIES, Policy
from mapg_verify.spec.case import (
    CLAIM_MODES,
    DEFAULT_CAP,
    EXPERIMENTS,
    META_GRADIENTS,
    MODELS,
    OBJECTIVES,
    Case,
    CheckSettings,
    InnerLoop,
    PaperSettings,
)

SECTIONS = {
    "name": None,
    "game": None,  # builtin options or inline keys, checked by the game itself
    "policy": ("kind",),
    "params": ("theta", "seed", "scale"),
    "inner": ("model", "steps", "alpha", "batch", "horizon", "objective", "meta_agent", "enumeration_cap"),
    "estimators": (
        "names",
        "samples",
        "outer",
        "pairing",
        "outer_batch",
        "plugin_calls",
        "plugin_timeout",
        "claims",
        "conventions",
        "returns",
        "baseline",
        "gae_lambda",
        "dice_lambda",
    ),
    "checks": ("level", "relative_error", "fingerprint_draws", "seeds", "calibration_samples", "sweep", "claim_mode"),
    "paper": (
        "experiment",
        "iterations",
        "learning_rate",
        "seeds",
        "train_tasks",
        "test_tasks",
        "task_batch",
        "adaptation_steps",
        "init_scale",
        "sensitivity",
        "noise",
        "meta_gradient",
    ),
    "derivatives": ("order", "of", "horizon", "estimators", "batch", "samples", "dice_lambda", "batches", "repeats"),
}


INLINE_GAME = ("name", "states", "actions", "transitions", "rewards", "initial", "gamma", "horizon", "views", "backend")


def load_case(path: str | Path) -> Case:
    """Read and validate one case file."""
    path = str(path)
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise InputError("file", f"cannot be read: {error.strerror}", path) from None
    except UnicodeDecodeError as error:
        raise InputError("file", f"is not UTF-8 text (byte {error.start}): a case file is TOML", path) from None
    except tomllib.TOMLDecodeError as error:
        raise InputError("file", f"is not valid TOML: {error}", path) from None
    estimators = document.get("estimators")
    names = estimators.get("names") if isinstance(estimators, dict) else None
    if isinstance(names, list) and any(isinstance(name, str) and ":" in name for name in names):
        plugin_path(path)
    try:
        return parse_case(document, default_name=Path(path).stem, path=path)
    except InputError as error:
        raise error.at(path) from None


def case_paths(paths: list[str]) -> list[Path]:
    """Case files named directly, or found recursively (``*.toml``, sorted) in folders."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.toml") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise InputError("file", "does not exist", name)
    if not found:
        raise InputError("file", "no case files (*.toml) found", " ".join(paths))
    return found


def load_cases(paths: list[str]) -> list[Case]:
    """Every case named by ``paths`` (files, or folders searched by :func:`case_paths`), each
    validated, with distinct names (a run's results and report are keyed by them)."""
    cases = [load_case(path) for path in case_paths(paths)]
    seen: dict[str, str] = {}
    for case in cases:
        if case.name in seen:
            reason = f"{case.name!r} is also the name of {seen[case.name]}: names must differ"
            raise InputError("name", reason, case.path)
        seen[case.name] = case.path
    return cases


def parse_case(document: dict, default_name: str, path: str = "") -> Case:
    """Validate a parsed TOML document into a :class:`Case`."""
    known_keys(document, SECTIONS, "")
    for section, keys in SECTIONS.items():
        if keys is not None and section in document:
            subtable(document, section)
            known_keys(document[section], keys, section + ".")
    name = document.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise InputError("name", f"must be a non-empty string, got {name!r}")
    game = _game(subtable(document, "game"))
    policy = _policy(document.get("policy", {}), game)
    theta = _theta(document.get("params", {}), game, policy)
    inner = _inner(document.get("inner", {}), game)
    case = Case(
        name,
        path,
        game,
        policy,
        theta,
        inner,
        estimator_settings(document.get("estimators", {}), game, inner),
        _checks(document.get("checks", {})),
        _paper(document["paper"]) if "paper" in document else None,
        derivative_settings(document["derivatives"], game, policy) if "derivatives" in document else None,
        _backend(document["game"].get("backend", "auto"), game, policy),
    )
    check_experiment(case)
    check_budget(case)
    check_reach(case)
    return case


def _game(table: dict) -> Game | DifferentiableGame:
    if "builtin" in table:
        if not isinstance(table["builtin"], str):
            raise InputError("game.builtin", f"must be a string, got {table['builtin']!r}")
        options = {key: value for key, value in table.items() if key not in ("builtin", "backend")}
        return build_game(table["builtin"], options)
    known_keys(table, INLINE_GAME, "game.")
    for key in ("transitions", "rewards", "initial", "gamma", "horizon"):
        if key not in table:
            raise InputError(f"game.{key}", "is required for an inline game (or give game.builtin)")
    game = make_game(
        table.get("name", "inline"),
        table["transitions"],
        table["rewards"],
        table["initial"],
        table["gamma"],
        table["horizon"],
        table.get("views"),
    )
    if "states" in table and table["states"] != game.n_states:
        raise InputError("game.states", f"is {table['states']!r} but the transitions have {game.n_states} states")
    if "actions" in table and table["actions"] != list(game.n_actions):
        raise InputError("game.actions", f"is {table['actions']!r} but the rewards have {list(game.n_actions)}")
    return game


def _backend(requested: object, game: Game | DifferentiableGame, policy: Policy | None) -> str:
    """``[game] backend``, resolved to ``symbolic`` or ``numeric`` (``exact/backend.py``)."""
    if not isinstance(requested, str) or requested not in BACKENDS:
        raise InputError("game.backend", f"must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "numeric" and isinstance(game, DifferentiableGame):
        raise InputError("game.backend", f"numeric needs a tabular game; {game.name!r} is given by its formulas")
    return resolve_backend(game, policy, requested)


def _policy(table: dict, game: Game | DifferentiableGame) -> Policy | None:
    if isinstance(game, DifferentiableGame):
        if table:
            raise InputError(
                "policy", f"{game.name!r} is a differentiable game: its parameters are the strategies; remove [policy]"
            )
        return None
    kind = table.get("kind", "softmax")
    if not isinstance(kind, str) or kind not in POLICIES:
        raise InputError("policy.kind", f"unknown policy {kind!r}; known: {', '.join(POLICIES)}")
    policy = POLICIES[kind]
    if policy.two_actions_only and any(a != 2 for a in game.n_actions):
        raise InputError("policy.kind", f"sigmoid needs two actions per agent, the game has {list(game.n_actions)}")
    return policy


def _theta(table: dict, game, policy) -> tuple[np.ndarray, ...]:
    layout = layout_of(game, policy)
    if "theta" in table:
        if "seed" in table or "scale" in table:
            raise InputError("params.theta", "give either theta or seed/scale, not both")
        theta = table["theta"]
        if not isinstance(theta, list) or len(theta) != len(layout.shapes):
            raise InputError("params.theta", f"must hold one nested list per agent ({len(layout.shapes)})")
        parts = []
        for k, (value, shape) in enumerate(zip(theta, layout.shapes, strict=True)):
            try:
                part = np.array(value, dtype=float)
            except (TypeError, ValueError):
                raise InputError("params.theta", f"agent {k}: must be numbers") from None
            if part.shape != shape:
                raise InputError("params.theta", f"agent {k}: expected shape {shape}, got {part.shape}")
            if not np.all(np.abs(part) <= THETA_BOUND):
                raise InputError("params.theta", f"agent {k}: {THETA_REASON}")
            parts.append(part)
        return tuple(parts)
    seed = table.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError("params.seed", f"must be a non-negative integer, got {seed!r}")
    scale = number_in(table.get("scale", 1.0), "params.scale", low=0.0)
    theta = layout.random(np.random.default_rng(seed), scale)
    if not all(np.all(np.abs(part) <= THETA_BOUND) for part in theta):
        raise InputError("params.scale", f"draws parameters past the bound: {THETA_REASON}")
    return theta


def _inner(table: dict, game) -> InnerLoop:
    models = table.get("model", ["expected"])
    models = [models] if isinstance(models, str) else models
    if not isinstance(models, list) or not models or any(m not in MODELS for m in models):
        raise InputError("inner.model", f"must be one or both of {', '.join(MODELS)}, got {table.get('model')!r}")
    steps = positive_integer(table.get("steps", 1), "inner.steps")
    alpha = table.get("alpha", 1.0)
    alpha = [alpha] * game.n_agents if isinstance(alpha, int | float) and not isinstance(alpha, bool) else alpha
    if not isinstance(alpha, list) or len(alpha) != game.n_agents:
        raise InputError("inner.alpha", f"must be a number or a list of {game.n_agents} numbers, got {alpha!r}")
    alpha = tuple(number_in(a, "inner.alpha") for a in alpha)
    batch = positive_integer(table.get("batch", 2), "inner.batch")
    horizon = None
    if "horizon" in table:
        horizon = parse_horizon(table["horizon"], "inner.horizon")
        if math.isinf(horizon):
            raise InputError("inner.horizon", "trajectories are sampled: give a finite number of steps")
    elif isinstance(game, Game) and not game.infinite:
        horizon = int(game.horizon)
    if "sampled" in models and horizon is None and isinstance(game, Game):
        raise InputError("inner.horizon", "model S samples trajectories: give their length for this game")
    objective = table.get("objective", "terminal")
    if objective not in OBJECTIVES:
        raise InputError("inner.objective", f"must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    meta_agent = table.get("meta_agent", 0)
    if not isinstance(meta_agent, int) or isinstance(meta_agent, bool) or meta_agent not in range(game.n_agents):
        raise InputError("inner.meta_agent", f"must be an agent index in 0..{game.n_agents - 1}, got {meta_agent!r}")
    cap = positive_integer(table.get("enumeration_cap", DEFAULT_CAP), "inner.enumeration_cap")
    if "sampled" in models:
        if isinstance(game, DifferentiableGame):
            raise InputError("inner.model", f'model S samples trajectories; {game.name!r} has none: use "expected"')
        check_enumerable(game, horizon, batch, steps, cap)
    return InnerLoop(tuple(models), steps, alpha, batch, horizon, objective, meta_agent, cap)


def _paper(table: dict) -> PaperSettings:
    experiment = table.get("experiment")
    if experiment not in EXPERIMENTS:
        raise InputError("paper.experiment", f"must be one of {', '.join(EXPERIMENTS)}, got {experiment!r}")
    rate = number_in(table.get("learning_rate", 0.1), "paper.learning_rate", low=0.0)
    integers = {
        key: positive_integer(table.get(key, default), f"paper.{key}")
        for key, default in (
            ("iterations", 200),
            ("seeds", 20),
            ("train_tasks", 16),
            ("test_tasks", 8),
            ("task_batch", 4),
            ("adaptation_steps", 10),
        )
    }
    if integers["task_batch"] > integers["train_tasks"]:
        raise InputError("paper.task_batch", f"must be at most train_tasks ({integers['train_tasks']})")
    factors = table.get("sensitivity", [0.5, 2.0])
    if not isinstance(factors, list):
        raise InputError("paper.sensitivity", f"must be a list of inner-rate factors, got {factors!r}")
    factors = tuple(number_in(f, "paper.sensitivity", low=0.0) for f in factors)
    scale = number_in(table.get("init_scale", 1.0), "paper.init_scale", low=0.0)
    noise = number_in(table.get("noise", 0.5), "paper.noise", low=0.0)
    meta_gradient = table.get("meta_gradient", "exact")
    if meta_gradient not in META_GRADIENTS:
        raise InputError("paper.meta_gradient", f"must be one of {', '.join(META_GRADIENTS)}, got {meta_gradient!r}")
    return PaperSettings(
        experiment,
        learning_rate=rate,
        init_scale=scale,
        sensitivity=factors,
        noise=noise,
        meta_gradient=meta_gradient,
        **integers,
    )


def _checks(table: dict) -> CheckSettings:
    fractions = {}
    for key, default in (("level", 0.01), ("relative_error", 0.1)):
        value = number_in(table.get(key, default), f"checks.{key}", low=0.0)
        if not 0.0 < value < 1.0:
            raise InputError(f"checks.{key}", f"must be in (0, 1), got {value!r}")
        fractions[key] = value
    seeds = table.get("seeds", 0)
    if seeds != 0 or isinstance(seeds, bool):
        seeds = positive_integer(seeds, "checks.seeds")
    return CheckSettings(
        fractions["level"],
        fractions["relative_error"],
        positive_integer(table.get("fingerprint_draws", 3), "checks.fingerprint_draws"),
        seeds,
        positive_integer(table.get("calibration_samples", 1000), "checks.calibration_samples"),
        boolean(table.get("sweep", True), "checks.sweep"),
        _choice(table.get("claim_mode", "auto"), CLAIM_MODES, "checks.claim_mode"),
    )


def _choice(value: object, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise InputError(key, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value
