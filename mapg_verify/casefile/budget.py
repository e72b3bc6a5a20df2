"""What a case may ask for, checked when it loads: each size within a stated limit, every parameter
within :data:`THETA_BOUND`, the closed forms' compile time and the Monte-Carlo steps within a
budget, the inner path within the bound, and each paper experiment on its own game."""

from __future__ import annotations

import autograd
import numpy as np

from mapg_verify.estimators.table import ESTIMATORS
from mapg_verify.exact.compiled import compile_seconds
from mapg_verify.oracles.autodiff import autograd_values
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.params import layout_of
from mapg_verify.spec.case import Case

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


def check_reach(case: Case) -> None:
    """Model E's inner path ``phi_l = phi_{l-1} + A grad V(phi_{l-1})`` stays within
    :data:`THETA_BOUND` (computed with the autograd oracle, which needs no compilation). Model S's
    sampled updates scatter around it; a draw past the bound shows as a case error, not a verdict."""
    layout = layout_of(case.game, case.policy)
    gradient = autograd.jacobian(lambda x: autograd_values(case.game, case.policy, x))
    rates = layout.per_parameter(case.inner.alpha)
    phi = case.flat_theta
    for step in range(1, case.inner.steps + 1):
        phi = phi + rates * layout.own_parts(gradient(phi))
        if not np.all(np.abs(phi) <= THETA_BOUND):
            raise InputError(
                "inner.alpha",
                f"inner step {step} takes the parameters to {np.max(np.abs(phi)):.3g}, past the bound: "
                f"{THETA_REASON}; lower alpha or steps",
            )


def check_experiment(case: Case) -> None:
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
    if paper and paper.experiment == "figure-3" and paper.meta_gradient != "exact":
        estimates += paper.seeds * paper.iterations * paper.task_batch * settings.samples
    return per_estimate * estimates


def check_budget(case: Case) -> None:
    seconds = compile_seconds(case.game, case.policy) if case.backend == "symbolic" else 0.0
    if seconds > MAX_COMPILE_SECONDS:
        game = case.game
        raise InputError(
            "game",
            f"its closed forms would take about {seconds / 3600:.0f} hours to compile (a rough estimate from "
            f"{game.n_states} states, joint actions {list(game.n_actions)}, horizon {game.horizon}), above the "
            f'budget of {MAX_COMPILE_SECONDS / 3600:.0f} hour: use [game] backend = "numeric" or "auto", '
            "fewer states or actions, a shorter horizon, or sigmoid policies",
        )
    steps = trajectory_steps(case)
    if steps > MAX_TRAJECTORY_STEPS:
        raise InputError(
            "estimators.samples",
            f"the case would sample about {steps:.2g} trajectory steps, above the budget of "
            f"{MAX_TRAJECTORY_STEPS:.0e} (about an hour): lower samples, [inner] batch, steps or horizon, "
            "or [checks] seeds",
        )
