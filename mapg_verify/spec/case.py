"""The :class:`Case` record and its settings (SPEC §8), plain frozen data; the TOML reader is
:mod:`mapg_verify.casefile.reader`. Defaults are stated in that module's docstring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapg_verify.problem.game import DifferentiableGame, Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy

EXPERIMENTS = ("figure-1", "table-1", "figure-3", "newer-findings")
META_GRADIENTS = ("exact", "sampled", "official", "official-aligned")  # model E, the theorem's estimators, the code's
MODELS = ("expected", "sampled")
MODEL_LETTER = {"expected": "E", "sampled": "S"}  # model E, model S in prose and in figures' names
OBJECTIVES = ("terminal", "chain")
OUTERS = ("sampled", "exact")
PAIRINGS = ("trajectory", "batch", "timestep")
RETURNS = ("from-zero", "from-t")
BASELINES = ("none", "value", "linear", "batch-mean", "leave-one-out")
BASELINE_FITS = ("as-shipped", "aligned")  # the linear baseline's: as dkkim93/meta-mapg fits it, or aligned
DEFAULT_CAP = 200_000
DEFAULT_PLUGIN_CALLS = 20_000  # calls a plug-in's exact enumeration may make ([estimators] plugin_calls)
DEFAULT_PLUGIN_TIMEOUT = 300.0  # seconds one call of a plug-in may take ([estimators] plugin_timeout)


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


def loop_settings(inner: InnerLoop) -> dict:
    """The loop's settings as plain values, keyed as in ``[inner]``, the models and the cap aside:
    what the results describe and what a written case file holds."""
    return {
        "steps": inner.steps,
        "alpha": list(inner.alpha),
        "batch": inner.batch,
        "horizon": inner.horizon,
        "objective": inner.objective,
        "meta_agent": inner.meta_agent,
    }


CLAIM_MODES = ("auto", "exact", "statistical")
BASIS = ("current", "current-dice", "current-timestep", "adapted", "own-pathwise", "own-dice", "peer")


"""The fingerprint's exact terms (check 5): ``C``, the current term with the pathwise tangent and the
batch pairing; the part DiCE's tangent adds to it (0 at ``L = 1``, where the current term's tangent
is ``T_0 = E_i``); the part the timestep pairing adds to the trajectory pairing's ``1/K`` times the
DiCE-tangent current term (0 on one-step games); ``E[grad_{phi^i} V^i(phi_L)]`` (the plain gradient
at the adapted parameters); self-shaping through the pathwise Jacobian
``E[grad_{phi^i} V^i (T^path_L - I)[i]]``; the part DiCE's score products add to it
``E[grad_{phi^i} V^i (T^dice_L - T^path_L)[i]]``; and the opponent-shaping term
``E[grad_{phi^-i} V^i T^dice_L[-i]]``."""


CLAIM_MODELS = ("model-S", "model-E")


@dataclass(frozen=True)
class Claim:
    """What an estimator claims its expectation is: a model's meta-gradient (``kind = "model"``,
    ``target`` ``"model-S"`` or ``"model-E"``), a built-in estimator's expectation with the case's
    options (``"estimator"``, its name), a combination of the fingerprint's terms
    (``"fingerprint"``, one coefficient per term of ``BASIS``), or the plain gradient
    ``grad_{theta^i} V^i(theta)`` (``"gradient"``, ``naive``'s)."""

    kind: str
    target: str | tuple[float, ...]

    @property
    def label(self) -> str:
        if self.kind == "fingerprint":
            terms = [f"{c:g} {term}" for term, c in zip(BASIS, self.target, strict=True) if c]
            return "fingerprint " + (" + ".join(terms) or "0")
        return "the plain gradient" if self.kind == "gradient" else str(self.target)


@dataclass(frozen=True)
class EstimatorSettings:
    """Which estimators to run, with how many outer samples and which options; ``claims`` are the
    case's own claims (estimator name -> :class:`Claim`), beside the built-ins' defaults.
    ``returns``, ``baseline``, ``gae_lambda`` and ``dice_lambda`` override every built-in's own default where set
    (``None``: each its own; a name's ``[key=value]`` options override them in turn). ``plugin_calls``
    bounds the calls a plug-in's exact expectation may make (its enumeration, in ``exact`` and
    ``auto`` claim modes; never in ``statistical``); model S's enumeration has its own cap,
    ``[inner] enumeration_cap``. ``plugin_timeout`` is the seconds one call of a plug-in may take
    before it fails its estimator (a call that hangs). ``conventions`` maps a plug-in's name to the
    conventions its code uses (:mod:`mapg_verify.estimators.conventions`)."""

    names: tuple[str, ...]
    samples: int
    outer: str
    pairing: str
    outer_batch: int
    claims: tuple[tuple[str, Claim], ...] = ()
    returns: str | None = None
    baseline: str | None = None
    gae_lambda: float | None = None
    dice_lambda: float | None = None
    plugin_calls: int = DEFAULT_PLUGIN_CALLS
    plugin_timeout: float = DEFAULT_PLUGIN_TIMEOUT
    conventions: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class CheckSettings:
    """The statistical checks' settings: the test level, the relative error whose sample size the
    bias check reports, the fingerprint's parameter draws, the calibration's seeds (0: off)
    and samples per seed, whether the bias is swept over ``K`` and the rates, and how claims are
    checked (``auto``: exactly where the expectations enumerate, else statistically)."""

    level: float = 0.01
    relative_error: float = 0.1
    fingerprint_draws: int = 3
    seeds: int = 0
    calibration_samples: int = 1000
    sweep: bool = True
    claim_mode: str = "auto"


@dataclass(frozen=True)
class DerivativeSettings:
    """``[derivatives]``: the exact ``order``-th derivative (1 to 3) of agent ``of``'s value with
    respect to every agent's parameters, of the game's value or of its ``horizon``-step truncation;
    the estimators of it (:mod:`mapg_verify.estimators.derivatives`), each from ``batch`` trajectories
    of ``horizon`` steps, ``samples`` estimates, Loaded DiCE's ``dice_lambda``; the papers'
    correlation protocol at each of ``batches``, ``repeats`` estimates per batch size."""

    order: int = 2
    of: int = 0
    horizon: int | None = None
    estimators: tuple[str, ...] = ()
    batch: int = 64
    samples: int = 2000
    dice_lambda: float = 1.0
    batches: tuple[int, ...] = ()
    repeats: int = 20


@dataclass(frozen=True)
class PaperSettings:
    """One of the paper's experiments (SPEC §7): its name; the iterations and learning rate of
    the outer loop (learning paths, or meta-training); for Figure 3 the seeds, the training and
    held-out task pools, tasks per meta-gradient, adaptation steps at meta-test, the scale of the
    initial parameters, the inner-rate factors of the sensitivity study, and the half-width of
    the noisy-IPD task distribution's payoff noise; ``meta_gradient`` is ``exact`` (model E) or
    ``sampled`` (the estimators, with the case's inner loop and ``[estimators] samples``) or
    ``official`` (likewise, with the official code's losses and baselines, its linear baseline fitted
    as shipped) or ``official-aligned`` (the same, that fit aligned)."""

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
    derivatives: DerivativeSettings | None = None
    backend: str = "symbolic"  # the exact backend, resolved from [game] backend (exact/backend.py)

    @property
    def flat_theta(self) -> np.ndarray:
        """``theta`` as one flat vector over every agent (row-major per agent, SPEC §1)."""
        return layout_of(self.game, self.policy).flatten(self.theta)
