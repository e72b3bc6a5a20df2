"""Case files: TOML in, a validated frozen :class:`Case` out (keys of SPEC §8).

Every error is an :class:`InputError` naming the file, the dotted key and the
reason; unknown keys are errors. Defaults: ``[policy] kind = "softmax"``,
``[params] seed = 0, scale = 1.0``, ``[inner] model = ["expected"]``,
``steps = 1``, ``alpha = 1.0`` for every agent, ``batch = 2``, ``horizon`` the
game's (required for model S on an infinite-horizon game),
``objective = "terminal"``, ``meta_agent = 0``, ``enumeration_cap = 200000``
(model S refuses to enumerate more inner batches than this); ``[estimators] names = []``,
``samples = 20000``, ``outer = "sampled"``, ``pairing = "batch"``, ``outer_batch`` the inner
``batch``; ``[checks] level = 0.01``, ``relative_error = 0.1``, ``fingerprint_draws = 3``,
``seeds = 0`` (calibration and power off), ``calibration_samples = 1000``, ``sweep = true``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import autograd
import numpy as np

from .compiled import compile_seconds
from .enumeration import DEFAULT_CAP, check_enumerable
from .errors import InputError
from .estimators import ESTIMATORS, check_names, plugin_path
from .game import DifferentiableGame, Game, make_game, parse_horizon
from .games import build_game
from .oracles import autograd_values
from .params import layout_of
from .policies import POLICIES, Policy

SECTIONS = {
    "name": None,
    "game": None,  # builtin options or inline keys, checked by the game itself
    "policy": ("kind",),
    "params": ("theta", "seed", "scale"),
    "inner": ("model", "steps", "alpha", "batch", "horizon", "objective", "meta_agent", "enumeration_cap"),
    "estimators": ("names", "samples", "outer", "pairing", "outer_batch"),
    "checks": ("level", "relative_error", "fingerprint_draws", "seeds", "calibration_samples", "sweep"),
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
}
EXPERIMENTS = ("figure-1", "table-1", "figure-3")
INLINE_GAME = ("name", "states", "actions", "transitions", "rewards", "initial", "gamma", "horizon", "views")
MODELS = ("expected", "sampled")
OBJECTIVES = ("terminal", "chain")
OUTERS = ("sampled", "exact")
PAIRINGS = ("trajectory", "batch", "timestep")


@dataclass(frozen=True)
class InnerLoop:
    """The inner loop: ``L = steps`` updates with per-agent ``alpha``; ``batch = K`` (model S)."""

    models: tuple[str, ...]
    steps: int
    alpha: tuple[float, ...]
    batch: int
    horizon: int | None
    objective: str
    meta_agent: int
    enumeration_cap: int = DEFAULT_CAP


@dataclass(frozen=True)
class EstimatorSettings:
    """Which estimators to run, with how many outer samples and which options."""

    names: tuple[str, ...]
    samples: int
    outer: str
    pairing: str
    outer_batch: int


@dataclass(frozen=True)
class CheckSettings:
    """The statistical checks' settings: the test level, the relative error whose sample size the
    bias check reports, the fingerprint's parameter draws, the calibration's seeds (0: off)
    and samples per seed, and whether the bias is swept over ``K`` and the rates."""

    level: float = 0.01
    relative_error: float = 0.1
    fingerprint_draws: int = 3
    seeds: int = 0
    calibration_samples: int = 1000
    sweep: bool = True


@dataclass(frozen=True)
class PaperSettings:
    """One of the paper's experiments (SPEC §7): its name; the iterations and learning rate of
    the outer loop (learning paths, or meta-training); for Figure 3 the seeds, the training and
    held-out task pools, tasks per meta-gradient, adaptation steps at meta-test, the scale of the
    initial parameters, the inner-rate factors of the sensitivity study, and the half-width of
    the noisy-IPD task distribution's payoff noise; ``meta_gradient`` is ``exact`` (model E) or
    ``sampled`` (the estimators, with the case's inner loop and ``[estimators] samples``)."""

    experiment: str
    iterations: int = 200
    learning_rate: float = 0.1
    seeds: int = 20
    train_tasks: int = 16
    test_tasks: int = 8
    task_batch: int = 4
    adaptation_steps: int = 10
    init_scale: float = 1.0
    sensitivity: tuple[float, ...] = (0.5, 2.0)
    noise: float = 0.5
    meta_gradient: str = "exact"


@dataclass(frozen=True, eq=False)
class Case:
    """One verification case: a game, a policy kind, ``theta`` and the settings to check."""

    name: str
    path: str
    game: Game | DifferentiableGame
    policy: Policy | None
    theta: tuple[np.ndarray, ...]
    inner: InnerLoop
    estimators: EstimatorSettings
    checks: CheckSettings = CheckSettings()
    paper: PaperSettings | None = None


LIMITS = {  # key: (largest value, why); every size is checked here, before anything is computed
    "inner.steps": (100, "each step chains one more Jacobian into the meta-gradient; the paper uses 1 to 10"),
    "inner.batch": (10_000, "a batch's per-trajectory Jacobians are held in memory at once"),
    "inner.enumeration_cap": (10**8, "enumerating more inner batches than this takes hours"),
    "estimators.outer_batch": (10_000, "a batch's per-trajectory Jacobians are held in memory at once"),
    "estimators.samples": (10**7, "more replicates than this take hours; 20,000 resolve a 1% bias"),
    "checks.fingerprint_draws": (100, "each draw computes every estimator's exact terms once more"),
    "checks.seeds": (1_000, "calibration and power rerun every estimator once per seed"),
    "checks.calibration_samples": (10**6, "calibration and power rerun every estimator once per seed"),
    "paper.iterations": (100_000, "the paper's experiments use at most a few thousand"),
    "paper.seeds": (1_000, "the paper uses 20"),
    "paper.train_tasks": (1_000, "each task is compiled on its own"),
    "paper.test_tasks": (1_000, "each task is compiled on its own"),
    "paper.task_batch": (1_000, "each task is compiled on its own"),
    "paper.adaptation_steps": (1_000, "the paper adapts for at most 10 steps"),
}
MAX_COMPILE_SECONDS = 3600.0  # estimated by compiled.compile_seconds; past a minute, the CLI says so
MAX_TRAJECTORY_STEPS = 10**10  # Monte-Carlo budget of one case: about an hour at 2 million steps per second
THETA_BOUND = 100.0
THETA_REASON = (
    f"every parameter must be finite and at most {THETA_BOUND:g} in magnitude: past it a policy's "
    "probabilities are 0 or 1 to within 1e-43, every gradient is rounding, and exp overflows float64 "
    "in the closed forms' products"
)


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


def parse_case(document: dict, default_name: str, path: str = "") -> Case:
    """Validate a parsed TOML document into a :class:`Case`."""
    _known(document, SECTIONS, "")
    for section, keys in SECTIONS.items():
        if keys is not None and section in document:
            _table(document, section)
            _known(document[section], keys, section + ".")
    name = document.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise InputError("name", f"must be a non-empty string, got {name!r}")
    game = _game(_table(document, "game"))
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
        _estimators(document.get("estimators", {}), game, inner),
        _checks(document.get("checks", {})),
        _paper(document["paper"]) if "paper" in document else None,
    )
    _check_experiment(case)
    _check_budget(case)
    _check_reach(case)
    return case


def _check_reach(case: Case) -> None:
    """Model E's inner path ``phi_l = phi_{l-1} + A grad V(phi_{l-1})`` stays within
    :data:`THETA_BOUND` (computed with the autograd oracle, which needs no compilation). Model S's
    sampled updates scatter around it; a draw past the bound shows as a case error, not a verdict."""
    layout = layout_of(case.game, case.policy)
    gradient = autograd.jacobian(lambda x: autograd_values(case.game, case.policy, x))
    rates = layout.per_parameter(case.inner.alpha)
    phi = layout.flatten(case.theta)
    for step in range(1, case.inner.steps + 1):
        phi = phi + rates * layout.own_parts(gradient(phi))
        if not np.all(np.abs(phi) <= THETA_BOUND):
            raise InputError(
                "inner.alpha",
                f"inner step {step} takes the parameters to {np.max(np.abs(phi)):.3g}, past the bound: "
                f"{THETA_REASON}; lower alpha or steps",
            )


def _check_experiment(case: Case) -> None:
    """Each of the paper's experiments is defined on its own game (SPEC §7)."""
    experiment = case.paper.experiment if case.paper else None
    if experiment == "figure-1" and case.game.name != "bilinear":
        raise InputError("paper.experiment", f'figure-1 is run on builtin = "bilinear", not {case.game.name!r}')
    if experiment == "figure-3" and not case.game.name.startswith("noisy_ipd"):
        raise InputError("paper.experiment", f'figure-3 is run on builtin = "noisy_ipd", not {case.game.name!r}')
    if experiment == "table-1" and not any(name in ESTIMATORS for name in case.estimators.names):
        raise InputError("paper.experiment", "table-1 reads the built-in estimators' fingerprints: name some")


def trajectory_steps(case: Case) -> int:
    """The Monte-Carlo cost of a case, in sampled trajectory steps: every estimate draws ``L K``
    inner and ``K_out`` (chain: ``(L + 1) K_out``) outer trajectories of ``H`` steps, for each
    estimator's samples, calibration and power's seeds, and Figure 3's sampled meta-gradients."""
    inner, settings, checks, paper = case.inner, case.estimators, case.checks, case.paper
    evaluated = inner.steps + 1 if inner.objective == "chain" else 1
    per_estimate = (inner.batch * inner.steps + settings.outer_batch * evaluated) * (inner.horizon or 1)
    estimates = len(settings.names) * (settings.samples + 2 * checks.seeds * checks.calibration_samples)
    if paper and paper.experiment == "figure-3" and paper.meta_gradient == "sampled":
        estimates += paper.seeds * paper.iterations * paper.task_batch * settings.samples
    return per_estimate * estimates


def _check_budget(case: Case) -> None:
    seconds = compile_seconds(case.game, case.policy)
    if seconds > MAX_COMPILE_SECONDS:
        game = case.game
        raise InputError(
            "game",
            f"its closed forms would take about {seconds / 3600:.0f} hours to compile (a rough estimate from "
            f"{game.n_states} states, joint actions {list(game.n_actions)}, horizon {game.horizon}), above the "
            f"budget of {MAX_COMPILE_SECONDS / 3600:.0f} hour: use fewer states or actions, a shorter horizon, "
            "or sigmoid policies",
        )
    steps = trajectory_steps(case)
    if steps > MAX_TRAJECTORY_STEPS:
        raise InputError(
            "estimators.samples",
            f"the case would sample about {steps:.2g} trajectory steps, above the budget of "
            f"{MAX_TRAJECTORY_STEPS:.0e} (about an hour): lower samples, [inner] batch, steps or horizon, "
            "or [checks] seeds",
        )


def _known(table: dict, allowed, prefix: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise InputError(prefix + unknown[0], f"is not a known key (known: {', '.join(allowed)})")


def _table(document: dict, key: str) -> dict:
    value = document.get(key)
    if not isinstance(value, dict):
        raise InputError(key, "must be a table" if key in document else "is required")
    return value


def _game(table: dict) -> Game | DifferentiableGame:
    if "builtin" in table:
        if not isinstance(table["builtin"], str):
            raise InputError("game.builtin", f"must be a string, got {table['builtin']!r}")
        options = {key: value for key, value in table.items() if key != "builtin"}
        return build_game(table["builtin"], options)
    _known(table, INLINE_GAME, "game.")
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
    scale = _number(table.get("scale", 1.0), "params.scale", low=0.0)
    theta = layout.random(np.random.default_rng(seed), scale)
    if not all(np.all(np.abs(part) <= THETA_BOUND) for part in theta):
        raise InputError("params.scale", f"draws parameters past the bound: {THETA_REASON}")
    return theta


def _inner(table: dict, game) -> InnerLoop:
    models = table.get("model", ["expected"])
    models = [models] if isinstance(models, str) else models
    if not isinstance(models, list) or not models or any(m not in MODELS for m in models):
        raise InputError("inner.model", f"must be one or both of {', '.join(MODELS)}, got {table.get('model')!r}")
    steps = _integer(table.get("steps", 1), "inner.steps")
    alpha = table.get("alpha", 1.0)
    alpha = [alpha] * game.n_agents if isinstance(alpha, int | float) and not isinstance(alpha, bool) else alpha
    if not isinstance(alpha, list) or len(alpha) != game.n_agents:
        raise InputError("inner.alpha", f"must be a number or a list of {game.n_agents} numbers, got {alpha!r}")
    alpha = tuple(_number(a, "inner.alpha") for a in alpha)
    batch = _integer(table.get("batch", 2), "inner.batch")
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
    cap = _integer(table.get("enumeration_cap", DEFAULT_CAP), "inner.enumeration_cap")
    if "sampled" in models:
        if isinstance(game, DifferentiableGame):
            raise InputError("inner.model", f'model S samples trajectories; {game.name!r} has none: use "expected"')
        check_enumerable(game, horizon, batch, steps, cap)
    return InnerLoop(tuple(models), steps, alpha, batch, horizon, objective, meta_agent, cap)


def _estimators(table: dict, game, inner: InnerLoop) -> EstimatorSettings:
    names = table.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InputError("estimators.names", f"must be a list of names or module:function, got {names!r}")
    check_names(tuple(names))
    if names and isinstance(game, DifferentiableGame):
        raise InputError("estimators.names", f"estimators sample trajectories; {game.name!r} has none")
    if names and inner.horizon is None:
        raise InputError("inner.horizon", "estimators sample trajectories: give their length for this game")
    outer = table.get("outer", "sampled")
    if outer not in OUTERS:
        raise InputError("estimators.outer", f"must be one of {', '.join(OUTERS)}, got {outer!r}")
    pairing = table.get("pairing", "batch")
    if pairing not in PAIRINGS:
        raise InputError("estimators.pairing", f"must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    if outer == "exact" and any(":" in name for name in names):
        raise InputError("estimators.outer", 'plug-ins are handed sampled outer batches: use outer = "sampled"')
    if pairing == "timestep" and outer == "exact":
        raise InputError("estimators.pairing", 'timestep pairing needs outer trajectories: use outer = "sampled"')
    outer_batch = _integer(table.get("outer_batch", inner.batch), "estimators.outer_batch")
    if pairing != "batch" and outer_batch != inner.batch:
        raise InputError(
            "estimators.outer_batch",
            f"{pairing} pairing matches inner trajectory b with outer trajectory b: it must equal "
            f"[inner] batch ({inner.batch}), got {outer_batch}",
        )
    samples = _integer(table.get("samples", 20000), "estimators.samples")
    if samples < 2:
        raise InputError("estimators.samples", "must be at least 2 (a covariance needs two samples)")
    return EstimatorSettings(tuple(names), samples, outer, pairing, outer_batch)


def _paper(table: dict) -> PaperSettings:
    experiment = table.get("experiment")
    if experiment not in EXPERIMENTS:
        raise InputError("paper.experiment", f"must be one of {', '.join(EXPERIMENTS)}, got {experiment!r}")
    rate = _number(table.get("learning_rate", 0.1), "paper.learning_rate", low=0.0)
    integers = {
        key: _integer(table.get(key, default), f"paper.{key}")
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
    factors = tuple(_number(f, "paper.sensitivity", low=0.0) for f in factors)
    scale = _number(table.get("init_scale", 1.0), "paper.init_scale", low=0.0)
    noise = _number(table.get("noise", 0.5), "paper.noise", low=0.0)
    meta_gradient = table.get("meta_gradient", "exact")
    if meta_gradient not in ("exact", "sampled"):
        raise InputError("paper.meta_gradient", f'must be "exact" or "sampled", got {meta_gradient!r}')
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
        value = _number(table.get(key, default), f"checks.{key}", low=0.0)
        if not 0.0 < value < 1.0:
            raise InputError(f"checks.{key}", f"must be in (0, 1), got {value!r}")
        fractions[key] = value
    seeds = table.get("seeds", 0)
    if seeds != 0 or isinstance(seeds, bool):
        seeds = _integer(seeds, "checks.seeds")
    return CheckSettings(
        fractions["level"],
        fractions["relative_error"],
        _integer(table.get("fingerprint_draws", 3), "checks.fingerprint_draws"),
        seeds,
        _integer(table.get("calibration_samples", 1000), "checks.calibration_samples"),
        _boolean(table.get("sweep", True), "checks.sweep"),
    )


def _boolean(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(key, f"must be true or false, got {value!r}")
    return value


def _integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(key, f"must be a positive integer, got {value!r}")
    if key in LIMITS and value > LIMITS[key][0]:
        high, reason = LIMITS[key]
        raise InputError(key, f"is {value:,}, above the limit of {high:,}: {reason}")
    return value


def _number(value: object, key: str, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(key, f"must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise InputError(key, f"must be >= {low}, got {value!r}")
    return float(value)
