"""The seed paper's claims, reproduced (SPEC §7): Remark 1 / Figure 1 and Table 1 measured.

Figure 1: on the bilinear game ``V^0 = x y``, ``V^1 = -x y``, every agent follows its own
gradient with step ``eta``: naive simultaneous ascent, LOLA's exact gradient, LOLA's Eq. 6 and
the Meta-MAPG meta-gradient (model E, one inner step, both agents learning with rate ``a``).
Each update is linear, ``z' = M z`` with ``M = [[p, q], [-q, p]]``, so the distance to the
equilibrium changes by ``|det M|^(1/2) = sqrt(p^2 + q^2)`` every iteration:

- naive: ``x' = x + eta y``: ``p = 1``, ``q = eta``;
- LOLA exact: ``d/dx [x (y - a x)] = y - 2 a x``: ``p = 1 - 2 eta a``, ``q = eta``;
- LOLA Eq. 6: ``y - a x``: ``p = 1 - eta a``, ``q = eta``;
- Meta-MAPG: ``d/dx [(x + a y)(y - a x)] = (1 - a^2) y - 2 a x``: ``p = 1 - 2 eta a``,
  ``q = eta (1 - a^2)``.

The paths are computed with the toolkit's own meta-gradients and LOLA (not these formulas),
and the measured rate is checked against the closed form.

Table 1: whether each estimator's expectation contains self-shaping and opponent shaping,
read off its fingerprint (:func:`mapg_verify.verification.fingerprint`): self-shaping where the
``own-pathwise`` or ``own-dice`` coefficient is nonzero beyond its interval, opponent shaping
where ``peer`` is. An estimator whose inner loop differs from the case's is fitted on its own
loop: ``lola-dice`` with the meta-agent's rate 0, ``naive`` with every rate 0 (terms that
vanish there are absent from its expectation).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

from mapg_verify.checks.findings import newer_findings
from mapg_verify.checks.fingerprint import design_for, fit_fingerprint
from mapg_verify.checks.result import CheckResult
from mapg_verify.estimators.montecarlo import draw
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS
from mapg_verify.exact.backend import exact_values
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.metagradient import expected_update, inner_path, lola
from mapg_verify.problem.catalog import noisy_ipd
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case

RATE_TOLERANCE = 1e-9
PAPER_TABLE = {  # the paper's Table 1: (self shaping, opponent shaping)
    "meta-mapg": ("yes", "yes"),
    "meta-pg": ("yes", "no"),
    "lola-dice": ("no", "yes"),
    "naive": ("no", "no"),
}


def closed_form_rates(eta: float, a: float) -> dict[str, float]:
    """Per-iteration factor of the distance to the equilibrium on the bilinear game."""
    return {
        "naive": math.hypot(1.0, eta),
        "LOLA (exact)": math.hypot(1.0 - 2.0 * eta * a, eta),
        "LOLA (Eq. 6)": math.hypot(1.0 - eta * a, eta),
        "Meta-MAPG (model E)": math.hypot(1.0 - 2.0 * eta * a, eta * (1.0 - a * a)),
    }


def learning_directions(compiled: CompiledValues, alpha: tuple[float, ...]) -> dict:
    """Each method's joint update direction ``x -> (g^0, .., g^{n-1})``, every agent its own."""
    agents = range(compiled.n_agents)

    def naive(x):
        return compiled.layout.own_parts(compiled.gradient(x))

    def lola_exact(x):
        return np.concatenate([lola(compiled, x, alpha, k).exact for k in agents])

    def lola_eq6(x):
        return np.concatenate([lola(compiled, x, alpha, k).first_order for k in agents])

    def meta_mapg(x):
        return np.concatenate([expected_update(compiled, x, alpha, 1, k).total for k in agents])

    return {"naive": naive, "LOLA (exact)": lola_exact, "LOLA (Eq. 6)": lola_eq6, "Meta-MAPG (model E)": meta_mapg}


def figure_one(case: Case, compiled: CompiledValues) -> tuple[dict, CheckResult]:
    """Learning paths, distances to the equilibrium and their rates, against the closed forms."""
    settings = case.paper
    eta, alpha = settings.learning_rate, case.inner.alpha
    start = case.flat_theta
    paths, distances, rates = {}, {}, {}
    bilinear = case.game.name == "bilinear" and len(set(alpha)) == 1
    closed = closed_form_rates(eta, alpha[0]) if bilinear else {}
    for method, direction in learning_directions(compiled, alpha).items():
        path = [start]
        for _ in range(settings.iterations):
            path.append(path[-1] + eta * direction(path[-1]))
        norms = [float(np.linalg.norm(z)) for z in path]
        measured = (norms[-1] / norms[0]) ** (1.0 / settings.iterations)
        paths[method] = [z.tolist() for z in path]
        distances[method] = norms
        rates[method] = {
            "measured": measured,
            "closed form": closed.get(method),
            "verdict": "converges" if measured < 1 else "diverges",
        }
    errors = {m: abs(r["measured"] - r["closed form"]) for m, r in rates.items() if r["closed form"] is not None}
    failed = [m for m, e in errors.items() if e > RATE_TOLERANCE]
    paper_claim = rates["naive"]["verdict"] == "diverges" and rates["LOLA (exact)"]["verdict"] == "converges"
    record = {
        "experiment": "figure-1",
        "settings": {"iterations": settings.iterations, "learning rate": eta, "look-ahead rate": list(alpha)},
        "paths": paths,
        "distances": distances,
        "rates": rates,
        "paper": "naive gradient ascent spirals away from the equilibrium, LOLA converges to it",
        "agrees with the paper": paper_claim,
    }
    summary = ", ".join(f"{m} {r['measured']:.6f} ({r['verdict']})" for m, r in rates.items())
    summary += f"; closed forms matched to {max(errors.values(), default=0.0):.0e}" if errors else ""
    summary += "; the paper's claim holds" if paper_claim else "; the paper's claim does NOT hold here"
    figures = {f"{m}: rate": r["measured"] for m, r in rates.items()} | {
        f"{m}: |rate - closed form|": e for m, e in errors.items()
    }
    check = CheckResult("paper:figure-1", not failed, figures, ("closed form missed: " if failed else "") + summary)
    return record, check


def table_one(case: Case, compiled: CompiledValues) -> tuple[dict, CheckResult]:
    """Self-shaping and opponent shaping per estimator, from its fingerprint, beside the paper."""
    rows, residuals, contexts = [], {}, {}
    for name in (n for n in case.estimators.names if n in ESTIMATORS):
        estimator = ESTIMATORS[name]
        variant = case
        if not estimator.inner:
            variant = dataclasses.replace(
                case, inner=dataclasses.replace(case.inner, alpha=(0.0,) * len(case.inner.alpha))
            )
        elif not estimator.self_learns:
            alpha = tuple(0.0 if k == case.inner.meta_agent else a for k, a in enumerate(case.inner.alpha))
            variant = dataclasses.replace(case, inner=dataclasses.replace(case.inner, alpha=alpha))
        if variant.inner.alpha not in contexts:  # one design per inner loop, shared by its estimators
            contexts[variant.inner.alpha] = design_for(variant, compiled)
        fit = fit_fingerprint(compiled, name, contexts[variant.inner.alpha])
        residuals[name] = fit.residual
        self_shaping = fit.present("own-pathwise") or fit.present("own-dice")
        opponent = fit.present("peer")
        paper = PAPER_TABLE.get(name)
        measured = ("yes" if self_shaping else "no", "yes" if opponent else "no")
        rows.append(
            {
                "estimator": name,
                "self shaping": measured[0],
                "opponent shaping": measured[1],
                "paper": paper,
                "agrees": None if paper is None else paper == measured,
                "coefficients": {t: fit.coefficients[t] for t in ("own-pathwise", "own-dice", "peer")},
                "half-widths": {t: fit.half_widths[t] for t in ("own-pathwise", "own-dice", "peer")},
            }
        )
    inexact = [n for n, r in residuals.items() if r > 1e-8]
    differ = [row["estimator"] for row in rows if row["agrees"] is False]
    summary = "; ".join(f"{r['estimator']}: self {r['self shaping']}, opponent {r['opponent shaping']}" for r in rows)
    summary += f"; differs from the paper for {', '.join(differ)}" if differ else "; agrees with the paper's marks"
    figures = {f"{n}: relative residual": r for n, r in residuals.items()}
    record = {"experiment": "table-1", "rows": rows}
    return record, CheckResult("paper:table-1", not inexact, figures, ("fits not exact: " if inexact else "") + summary)


def figure_three(case: Case, compiled: CompiledValues) -> tuple[dict, CheckResult]:
    """Meta-train on noisy-IPD tasks, meta-test on held-out ones (see :func:`adaptation_curves`)."""
    settings = case.paper
    tasks = task_pools(case)
    curves = adaptation_curves(case, tasks, case.inner.alpha, settings.seeds)
    summary_rows = {method: _band(values) for method, values in curves.items()}
    sensitivity = {}
    for factor in settings.sensitivity:  # each choice the paper leaves open, scaled by each factor
        alpha = tuple(factor * a for a in case.inner.alpha)
        faster = dataclasses.replace(
            case, paper=dataclasses.replace(settings, learning_rate=factor * settings.learning_rate)
        )
        for label, variant, rates in (("inner rate", case, alpha), ("meta learning rate", faster, case.inner.alpha)):
            short = adaptation_curves(variant, tasks, rates, max(2, settings.seeds // 4), ("Meta-MAPG", "Meta-PG"))
            sensitivity[f"{label} x{factor:g}"] = {m: float(np.mean(v[:, 1])) for m, v in short.items()}
    after_one = {m: rows["mean"][1] for m, rows in summary_rows.items()}
    finite = all(np.all(np.isfinite(v)) for v in curves.values())
    record = {
        "experiment": "figure-3",
        "settings": {
            "meta-gradients": settings.meta_gradient
            + (
                f" ({case.estimators.samples} replicates of K = {case.inner.batch} trajectories of "
                f"{case.inner.horizon} steps per estimate)"
                if settings.meta_gradient != "exact"
                else " (model E)"
            ),
            "noise half-width": settings.noise,
            "gamma": case.game.gamma,
            "inner rate alpha": list(case.inner.alpha),
            "inner steps": case.inner.steps,
            "meta learning rate": settings.learning_rate,
            "meta iterations": settings.iterations,
            "tasks per meta-gradient": settings.task_batch,
            "training tasks": settings.train_tasks,
            "held-out tasks": settings.test_tasks,
            "adaptation steps": settings.adaptation_steps,
            "initial parameters": f"Normal(0, {settings.init_scale}^2)",
            "seeds": settings.seeds,
        },
        "curves": summary_rows,
        "after one adaptation step": after_one,
        "sensitivity (after one step)": sensitivity,
        "paper": "about -1 (cooperation) for Meta-MAPG after one adaptation step, about -2 for Meta-PG",
    }
    summary = "after one adaptation step: " + ", ".join(f"{m} {v:.2f}" for m, v in after_one.items())
    summary += " (paper: Meta-MAPG about -1, Meta-PG about -2)"
    figures = {f"{m}: reward per step after one step": v for m, v in after_one.items()}
    return record, CheckResult(
        "paper:figure-3", finite, figures, summary if finite else "non-finite rewards: " + summary
    )


def task_pools(case: Case) -> dict[str, list[tuple[Game, CompiledValues]]]:
    """Training and held-out tasks, each game with its exact values from the case's backend: noisy
    IPDs with task seeds 1000+j and 2000+j."""
    settings = case.paper
    noise, gamma = settings.noise, case.game.gamma

    def pool(base: int, count: int) -> list[tuple[Game, CompiledValues]]:
        games = [noisy_ipd(seed=base + j, noise=noise, gamma=gamma) for j in range(count)]
        return [(game, exact_values(game, case.policy, case.backend)) for game in games]

    return {"train": pool(1000, settings.train_tasks), "test": pool(2000, settings.test_tasks)}


METHODS = ("Meta-MAPG", "Meta-PG", "LOLA", "naive")


def adaptation_curves(case: Case, tasks: dict, alpha: tuple[float, ...], seeds: int, methods=METHODS) -> dict:
    """Per method, the average reward per step of both agents on the held-out tasks after
    ``0 .. adaptation_steps`` adaptation steps, one row per seed ``(seeds, steps + 1)``.

    Meta-MAPG and Meta-PG meta-train both agents' initial parameters for ``iterations`` steps of
    ``learning_rate`` on the model-E meta-gradient (Meta-PG without its peer term), averaged over
    ``task_batch`` training tasks drawn per step; they adapt at meta-test as their inner loop does
    (simultaneous gradient steps of rate ``alpha``). LOLA and naive learners start from the same
    random parameters without meta-training and adapt with LOLA's exact gradient or plainly."""
    settings, layout = case.paper, tasks["train"][0][1].layout
    curves = {method: np.zeros((seeds, settings.adaptation_steps + 1)) for method in methods}
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 3])
        start = settings.init_scale * rng.standard_normal(layout.size)
        for method in methods:
            theta = _meta_train(case, tasks["train"], start, alpha, method, np.random.default_rng([seed, 5]))
            per_task = [_adapt(case, task, theta, alpha, method) for _, task in tasks["test"]]
            curves[method][seed] = np.mean(per_task, axis=0)
    return curves


def _meta_train(case, train, start, alpha, method, rng) -> np.ndarray:
    if method not in ("Meta-MAPG", "Meta-PG"):
        return start
    settings, theta = case.paper, start.copy()
    layout = train[0][1].layout
    for _ in range(settings.iterations):
        chosen = rng.choice(len(train), size=settings.task_batch, replace=False)
        step = np.zeros_like(theta)
        for k in range(len(layout.shapes)):
            for index in chosen:
                step[layout.slice(k)] += _meta_gradient(case, train[index], theta, alpha, method, k, rng)
        theta = theta + settings.learning_rate * step / settings.task_batch
    return theta


def _meta_gradient(case: Case, task, theta, alpha, method: str, agent: int, rng) -> np.ndarray:
    """Agent ``agent``'s meta-gradient on one task: exact (model E; Meta-PG without its peer
    term), or with ``meta_gradient = "sampled"`` the Monte-Carlo mean of the ``meta-mapg`` or
    ``meta-pg`` estimator over ``[estimators] samples`` replicates of the case's inner loop
    (``official``: ``meta-mapg-official`` or ``meta-pg-official``, with their baselines;
    ``official-aligned``: with ``baseline_fit = "aligned"``)."""
    game, compiled = task
    if case.paper.meta_gradient == "exact":
        gradient = expected_update(compiled, theta, alpha, case.inner.steps, agent)
        return gradient.total - (gradient.peer if method == "Meta-PG" else 0.0)
    inner = dataclasses.replace(case.inner, alpha=alpha, meta_agent=agent)
    task_case = dataclasses.replace(case, game=game, theta=compiled.layout.unflatten(theta), inner=inner)
    name = ("meta-mapg" if method == "Meta-MAPG" else "meta-pg") + (
        "" if case.paper.meta_gradient == "sampled" else "-official"
    )
    estimator = ESTIMATORS[name]
    if case.paper.meta_gradient == "official-aligned":
        estimator = dataclasses.replace(estimator, baseline_fit="aligned")
    surrogate = plan(task_case, compiled, estimator)
    return draw(surrogate, case.estimators.samples, rng).total.mean(axis=0)


def _adapt(case, task: CompiledValues, theta, alpha, method) -> np.ndarray:
    """Average reward per step of both agents after each adaptation step on one task: LOLA
    learners take LOLA's exact steps, the others their inner loop's (model E's path)."""
    steps = case.paper.adaptation_steps
    if method == "LOLA":
        rates, path = task.layout.per_parameter(alpha), [theta]
        for _ in range(steps):
            phi = path[-1]
            path.append(phi + rates * np.concatenate([lola(task, phi, alpha, k).exact for k in range(task.n_agents)]))
    else:
        path = inner_path(task, theta, alpha, steps)
    return np.array([float(np.mean(task.value(phi))) for phi in path]) / case.game.discount_mass()


def _band(values: np.ndarray) -> dict:
    """Mean and 95% t-interval over seeds, per adaptation step."""
    mean = values.mean(axis=0)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(axis=0, ddof=1) / np.sqrt(len(values))
    return {"mean": mean.tolist(), "low": (mean - half).tolist(), "high": (mean + half).tolist()}


RUNS = {"figure-1": figure_one, "table-1": table_one, "figure-3": figure_three, "newer-findings": newer_findings}
