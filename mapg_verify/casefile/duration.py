"""How long a case will take, estimated before it runs, so that ``run`` can say so (over a minute).

A cost model, not a measurement: nothing is compiled, drawn or enumerated. Each part of the work
is counted from the case's budgets and priced with a constant measured on a 2-core machine
(``python -m mapg_verify run FILE --jobs 1`` and the pieces timed alone, on the shipped cases and
experiments); expect the right order of magnitude, not the minute (a loaded machine takes up to
twice as long). The parts:

- compiling the closed forms: :func:`~mapg_verify.exact.compiled.compile_seconds`, the estimate
  the load-time budget uses (off by up to 10x either way), on the symbolic backend only;
- model S's autograd oracle: :data:`ORACLE_BATCH` per enumerated inner batch, up to
  :data:`~mapg_verify.checks.exact.ORACLE_BATCH_LIMIT` of them (the check skips it beyond);
- per estimator, its exact expectation, fingerprint and bias sweep: :data:`ESTIMATOR_EXACT`;
- Monte-Carlo estimates: ``samples`` per estimator, calibration's ``seeds x calibration_samples``
  per built-in, power's ``seeds x samples`` per wrong variant, each :data:`ESTIMATE_BASE` plus
  :data:`ESTIMATE_STEP` per sampled trajectory step and parameter; a plug-in's calls (its samples,
  its enumerated expectation and the fingerprint's) at :data:`PLUGIN_CALL` each, unless batched;
- Figure 3: its meta-gradients (:data:`FIGURE3_EXACT` each, or :data:`FIGURE3_SAMPLED` plus the
  replicates drawn), adaptation steps and task compilations (:data:`FIGURE3_TASK`);
- derivatives: the distinct entries compiled (:data:`DERIVATIVE_ENTRY`), each estimator's exact
  expectation over every trajectory and its estimates, priced per trajectory step and entry of the
  ``D^k`` tensor (:data:`DERIVATIVE_ENUMERATED`, :data:`DERIVATIVE_DRAWN`).

Measured against the model (seconds, one case alone, ``--jobs 1``, load average 1 to 3): the power
study 93 (model 105), the third-order MDP 1,125 (655), the second-order MDP 37 (50), Figure 3 in
full 18.5 (27), the plug-in claim 15 (16); every case in ``cases/`` is estimated under a minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mapg_verify.checks.exact import ORACLE_BATCH_LIMIT
from mapg_verify.estimators.dispatch import split_name
from mapg_verify.estimators.frameworks import split_framework
from mapg_verify.estimators.plugins import resolve_plugin
from mapg_verify.estimators.table import ESTIMATORS, MUTANTS
from mapg_verify.exact.compiled import compile_seconds
from mapg_verify.exact.enumeration import count_batches, count_trajectories
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import layout_of
from mapg_verify.spec.case import Case

ESTIMATE_BASE = 3e-6  # seconds per Monte-Carlo estimate of a built-in (the vectorised draws' overhead)
ESTIMATE_STEP = 1e-7  # ... plus per sampled trajectory step and parameter (dense (N, H, D) scores)
PLUGIN_CALL = {"numpy": 4.5e-3, "torch": 2.5e-3, "jax": 1e-3}  # per unbatched call (README: plug-ins)
ESTIMATOR_EXACT = 1.0  # per estimator: exact expectation, fingerprint draws, bias sweep
ORACLE_BATCH = 3e-3  # model S's autograd oracle, per enumerated inner batch
FIGURE3_EXACT = 1.1e-4  # one model-E meta-gradient on a noisy-IPD task
FIGURE3_SAMPLED = 1.5e-3  # one sampled meta-gradient's set-up, beside its replicates' estimates
FIGURE3_ADAPT = 1e-4  # one adaptation step of one learner on one held-out task
FIGURE3_TASK = 0.5  # compiling one noisy-IPD task's closed forms (symbolic backend)
DERIVATIVE_ENTRY = 1e-2  # compiling one distinct entry of the derivative tensor
DERIVATIVE_ENUMERATED = 7e-8  # exact expectation, per enumerated trajectory step and tensor entry
DERIVATIVE_DRAWN = 4.5e-8  # estimates, per sampled trajectory step and tensor entry
NOTE_SECONDS = 60.0  # run says how long a case will take past this


@dataclass(frozen=True)
class Estimate:
    """A case's estimated seconds, and what they come from: ``(what, seconds)``, largest first."""

    seconds: float
    parts: tuple[tuple[str, float], ...]

    def source(self, shown: int = 3) -> str:
        """The largest parts (of a second or more), as ``what ~time`` joined by commas."""
        large = [(what, seconds) for what, seconds in self.parts[:shown] if seconds >= 1.0] or self.parts[:1]
        return ", ".join(f"{what} ~{duration(seconds)}" for what, seconds in large)


def duration(seconds: float) -> str:
    """``45 s``, ``2.5 min``, ``12 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 10 else f"{minutes:.0f} min"


def estimate(case: Case, sampled: bool = True) -> Estimate:
    """The case's estimated time (:mod:`this module's <mapg_verify.casefile.duration>` cost model);
    ``sampled``: with the Monte-Carlo work ``run`` does (``exact`` does none)."""
    parts: dict[str, float] = {}
    if case.backend == "symbolic":
        parts["compiling the closed forms"] = compile_seconds(case.game, case.policy)
    if "sampled" in case.inner.models and isinstance(case.game, Game):
        batches = count_batches(count_trajectories(case.game, case.inner.horizon), case.inner.batch, case.inner.steps)
        if batches <= ORACLE_BATCH_LIMIT:
            parts[f"model S's oracle over {batches:,} inner batches"] = batches * ORACLE_BATCH
    names = case.estimators.names
    if names:
        parts[f"{len(names)} estimators' exact terms"] = len(names) * ESTIMATOR_EXACT
    if sampled and names:
        parts.update(_monte_carlo(case))
    if case.paper and case.paper.experiment == "figure-3":
        parts.update(_figure_three(case))
    if case.derivatives:
        parts.update(_derivatives(case, sampled))
    ordered = tuple(sorted(((what, s) for what, s in parts.items() if s > 0), key=lambda part: -part[1]))
    return Estimate(sum(s for _, s in ordered), ordered)


def estimate_cost(case: Case) -> float:
    """Seconds for one Monte-Carlo estimate of a built-in estimator on the case."""
    inner = case.inner
    evaluated = inner.steps + 1 if inner.objective == "chain" else 1
    steps = (inner.batch * inner.steps + case.estimators.outer_batch * evaluated) * (inner.horizon or 1)
    return ESTIMATE_BASE + ESTIMATE_STEP * steps * layout_of(case.game, case.policy).size


def _monte_carlo(case: Case) -> dict[str, float]:
    settings, checks = case.estimators, case.checks
    builtins = [name for name in settings.names if ":" not in name]
    estimates = len(builtins) * settings.samples
    if checks.seeds:
        estimates += sum(split_name(n)[0] in ESTIMATORS for n in builtins) * checks.seeds * checks.calibration_samples
        if "meta-mapg" in settings.names:
            estimates += len(MUTANTS) * checks.seeds * settings.samples
    parts = {f"{estimates:,} Monte-Carlo estimates": estimates * estimate_cost(case)}
    plugins = [name for name in settings.names if ":" in name]
    if plugins and case.inner.horizon is not None:
        sequences = count_trajectories(case.game, case.inner.horizon) ** (
            case.inner.batch * case.inner.steps + settings.outer_batch
        )
        enumerating = checks.claim_mode != "statistical"  # statistical mode never enumerates a plug-in
        enumerated = sequences if enumerating and sequences <= settings.plugin_calls else 0
        fitted = sequences * checks.fingerprint_draws if enumerated else 0
        calls = settings.samples + enumerated + (fitted if fitted <= settings.plugin_calls else 0)
        seconds = 0.0
        for name in plugins:
            plugin = resolve_plugin(name)  # imported when the case loaded: no import here
            batched = getattr(plugin.function, "batched", False)
            seconds += calls * (estimate_cost(case) if batched else PLUGIN_CALL[split_framework(name)[0]])
        parts[f"{len(plugins)} plug-ins' {calls:,} calls each"] = seconds
    return parts


def _figure_three(case: Case) -> dict[str, float]:
    paper, agents = case.paper, len(case.theta)
    short = max(2, paper.seeds // 4)  # the sensitivity study's seeds per setting (paper.figure_three)
    trained = 2 * paper.iterations * paper.task_batch * agents  # Meta-MAPG and Meta-PG, per seed
    meta_gradients = paper.seeds * trained + len(paper.sensitivity) * 2 * short * trained
    if paper.meta_gradient == "exact":
        each = FIGURE3_EXACT
    else:
        each = FIGURE3_SAMPLED + case.estimators.samples * estimate_cost(case)
    adaptation = (paper.seeds * 4 + len(paper.sensitivity) * 2 * short * 2) * paper.test_tasks
    tasks = (paper.train_tasks + paper.test_tasks) * (FIGURE3_TASK if case.backend == "symbolic" else 0.0)
    return {
        f"Figure 3's {meta_gradients:,} {paper.meta_gradient} meta-gradients": meta_gradients * each,
        f"Figure 3's {paper.train_tasks + paper.test_tasks} tasks and adaptation": tasks
        + adaptation * paper.adaptation_steps * FIGURE3_ADAPT,
    }


def _derivatives(case: Case, sampled: bool) -> dict[str, float]:
    settings = case.derivatives
    size = layout_of(case.game, case.policy).size
    entries = math.comb(size + settings.order - 1, settings.order)
    parts = {f"compiling {entries:,} derivative entries": entries * DERIVATIVE_ENTRY}
    if not settings.estimators:
        return parts
    width, count = size**settings.order, len(settings.estimators)
    horizon = settings.horizon or int(case.game.horizon)  # the game's when finite (required otherwise)
    trajectories = count_trajectories(case.game, horizon)
    what = f"{count} derivative estimators' expectations over {trajectories:,} trajectories"
    parts[what] = count * trajectories * horizon * width * DERIVATIVE_ENUMERATED
    if sampled:
        drawn = settings.samples * settings.batch + settings.repeats * sum(settings.batches)
        parts[f"{count} derivative estimators x {drawn:,} sampled trajectories"] = (
            count * drawn * horizon * width * DERIVATIVE_DRAWN
        )
    return parts
