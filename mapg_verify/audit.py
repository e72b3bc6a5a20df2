"""``audit CASE.toml LOG.npz``: a logged training run against the exact truth (README, "Audit a
logged run"). The log is read and validated here (every error names its key, before anything is
computed or written); the statistics are :mod:`mapg_verify.checks.audit` and
:mod:`mapg_verify.checks.updates`, the page :func:`mapg_verify.report.render_audit`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from mapg_verify.casefile.budget import THETA_BOUND, THETA_REASON
from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.audit import METRICS, Residuals, TrainingLog, audit_returns, memory_one, search
from mapg_verify.checks.updates import audit_updates
from mapg_verify.estimators.dispatch import estimator_of
from mapg_verify.exact.backend import case_values
from mapg_verify.output import writable, write_atomic
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.problem.params import layout_of
from mapg_verify.report import render_audit
from mapg_verify.results import dumps
from mapg_verify.spec.case import Case

REQUIRED = ("params", "returns", "batch", "horizon", "metric")
OPTIONAL = ("lr", "estimator")
MAX_HORIZON = 100_000  # steps of the backward recursion per point: O(H S^2 A) each
MAX_POINTS = 100_000


def run(case_path: str, log_path: str, out: str) -> int:
    """Audit, write ``audit.json`` and ``audit.html`` in ``out``; 0 consistent, 1 not."""
    case = load_case(case_path)
    log = load_log(log_path, case)
    targets = [Path(out) / "audit.json", Path(out) / "audit.html"]
    for target in targets:
        writable(target, "--out")
    document = audit(case, log, log_path)
    write_atomic(targets[0], dumps(document))
    write_atomic(targets[1], render_audit(document))
    print(f"{document['verdict']}: {document['summary']}")
    print(f"wrote {targets[0]} and {targets[1]}")
    return 0 if document["verdict"] == "consistent" else 1


def audit(case: Case, log: TrainingLog, source: str) -> dict:
    """The audit's document (what ``audit.json`` holds)."""
    level = case.checks.level
    result = audit_returns(case.game, case.policy, log, level)
    found = [] if result.all_consistent else search(case.game, case.policy, log, level)
    verdict = "consistent" if result.all_consistent else "not consistent"
    worst = int(np.argmin(result.p_value))
    summary = (
        f"{len(log.params)} logged points, chi-square over the run per agent: p = "
        + ", ".join(f"{p:.3g}" for p in result.p_value)
        + f" (threshold {level / case.game.n_agents:g}); largest |z| {np.abs(result.z[:, worst]).max():.2f}"
    )
    if found:
        summary += f"; consistent if read as: {found[0][0].label(case.game, log.metric)}"
    return {
        "case": case.name,
        "case file": case.path,
        "log": source,
        "game": case.game.name,
        "policy": case.policy.name,
        "gamma": case.game.gamma,
        "metric": log.metric,
        "metric definition": METRICS[log.metric],
        "batch": log.batch,
        "horizon": log.horizon,
        "points": len(log.params),
        "level": level,
        "exact": "mean and variance of the metric per trajectory by backward recursion over the game's "
        "transition matrices (exact/moments.py); sd of a batch mean = sqrt(Var / batch)",
        "test": f"per agent, sum of z^2 over the {len(log.params)} points against chi-square with "
        f"{len(log.params)} degrees of freedom, at level {level:g} / {case.game.n_agents} (Bonferroni over agents)",
        "verdict": verdict,
        "summary": summary,
        "agents": [_agent(result, k, level / case.game.n_agents) for k in range(case.game.n_agents)],
        "series": {"logged": log.returns, "exact": result.exact, "sd": result.sd, "z": result.z},
        "relabelling": None if result.all_consistent else _relabelling(case.game, log, found),
        "updates": _updates(case, log),
    }


def _agent(result: Residuals, k: int, threshold: float) -> dict:
    residual = result.z[:, k] * result.sd[:, k]
    return {
        "agent": k,
        "statistic": float(result.statistic[k]),
        "p-value": float(result.p_value[k]),
        "threshold": threshold,
        "verdict": "consistent" if result.consistent[k] else "not consistent",
        "max |z|": float(np.abs(result.z[:, k]).max()),
        "mean residual": float(residual.mean()),
        "mean |residual|": float(np.abs(residual).mean()),
    }


def _relabelling(game: Game, log: TrainingLog, found: list) -> dict:
    searched = ["agents' returns swapped", "action labels swapped per agent", "the other metrics"]
    if memory_one(game):
        searched.insert(1, "agent 1's view of CD and DC")
    return {
        "searched": searched,
        "found": [{"label": r.label(game, log.metric), "p-values": res.p_value} for r, res in found],
    }


def _updates(case: Case, log: TrainingLog) -> dict | None:
    if log.estimator is None:
        return None
    result = audit_updates(case, case_values(case), log)
    summary = [_update_summary(k, steps) for k, steps in result.get("agents", {}).items()]
    return {"estimator": log.estimator, "lr": list(log.lr), "summary": summary, **result}


def _update_summary(agent: int, steps: list[dict]) -> dict:
    """An agent's updates at a glance: medians of the projection and relative difference, and the
    mean of z^2 (about 1 when the updates scatter as the estimator's do); ``None`` where no step has one."""
    known = {key: [step[key] for step in steps if step[key] is not None] for key in steps[0]} if steps else {}
    projection, difference, z = (
        np.array(known.get(key, []), dtype=float) for key in ("projection", "relative difference", "z")
    )
    return {
        "agent": agent,
        "steps": len(steps),
        "median projection": float(np.median(projection)) if len(projection) else None,
        "median relative difference": float(np.median(difference)) if len(difference) else None,
        "mean z^2": float(np.mean(z**2)) if len(z) else None,
    }


def load_log(path: str, case: Case) -> TrainingLog:
    """Read and validate ``LOG.npz`` for ``case``; an :class:`InputError` naming the key otherwise."""
    try:
        return _parse(path, case)
    except InputError as error:
        raise error.at(path) from None


def _parse(path: str, case: Case) -> TrainingLog:
    if not isinstance(case.game, Game):
        raise InputError("game", f"{case.game.name!r} has no trajectories to log: audit needs a tabular game")
    try:
        loaded = np.load(path, allow_pickle=False)
    except OSError as error:
        raise InputError("file", f"cannot be read: {error.strerror or error}") from None
    except (ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError("file", f"is not an .npz archive (numpy.savez): {error}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InputError("file", "is a single .npy array, not an .npz archive of params, returns, ... (numpy.savez)")
    with loaded as archive:
        arrays = {key: _array(archive, key) for key in archive.files}
    unknown = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise InputError(unknown[0], f"is not a log key; known: {', '.join(REQUIRED + OPTIONAL)}")
    for key in REQUIRED:
        if key not in arrays:
            raise InputError(key, "is missing from the log")
    agents, shapes = case.game.n_agents, layout_of(case.game, case.policy).shapes
    if len(set(shapes)) != 1:
        raise InputError("params", f"the case's agents have different parameter shapes {shapes}: the log needs equal")
    params = _numbers(arrays["params"], "params")
    if params.ndim != 2 + len(shapes[0]) or params.shape[1:] != (agents, *shapes[0]) or len(params) == 0:
        wanted = ", ".join(map(str, (agents, *shapes[0])))
        raise InputError("params", f"must have shape (N, {wanted}) with N >= 1, got {params.shape}")
    if len(params) > MAX_POINTS or not np.all(np.abs(params) <= THETA_BOUND):
        raise InputError("params", f"at most {MAX_POINTS:,} points; {THETA_REASON}")
    returns = _numbers(arrays["returns"], "returns")
    if returns.shape != (len(params), agents):
        raise InputError("returns", f"must have shape ({len(params)}, {agents}) as params has, got {returns.shape}")
    horizon = _integer(arrays["horizon"], "horizon", MAX_HORIZON)
    if not case.game.infinite and horizon > case.game.horizon:
        raise InputError("horizon", f"is {horizon}, past the game's own horizon {case.game.horizon}")
    metric = _text(arrays["metric"], "metric")
    if metric not in METRICS:
        raise InputError("metric", f"must be one of {', '.join(METRICS)}, got {metric!r}")
    lr, estimator = _update_keys(arrays, agents)
    return TrainingLog(params, returns, _integer(arrays["batch"], "batch", 10**9), horizon, metric, lr, estimator)


def _update_keys(arrays: dict, agents: int) -> tuple[tuple[float, ...] | None, str | None]:
    if ("lr" in arrays) != ("estimator" in arrays):
        raise InputError("lr" if "lr" not in arrays else "estimator", "is needed with the other to audit updates")
    if "lr" not in arrays:
        return None, None
    lr = np.broadcast_to(_numbers(arrays["lr"], "lr"), (agents,)) if np.size(arrays["lr"]) in (1, agents) else None
    if lr is None or not np.all(np.isfinite(lr)):
        raise InputError("lr", f"must be one finite number or one per agent ({agents}), got {arrays['lr']!r}")
    estimator = _text(arrays["estimator"], "estimator")
    if ":" in estimator or estimator_of(estimator) is None:
        raise InputError("estimator", f"must name a built-in estimator (mapg_verify list), got {estimator!r}")
    return tuple(float(v) for v in lr.ravel()), estimator


def _array(archive, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as error:  # object arrays: allow_pickle is off
        raise InputError(key, f"cannot be read without pickle: {error}") from None


def _numbers(array: np.ndarray, key: str) -> np.ndarray:
    if array.dtype.kind not in "iuf":
        raise InputError(key, f"must hold numbers, got dtype {array.dtype}")
    array = array.astype(float)
    if not np.all(np.isfinite(array)):
        raise InputError(key, "must hold finite numbers only (NaN or infinity found)")
    return array


def _integer(array: np.ndarray, key: str, largest: int) -> int:
    if array.shape != () or array.dtype.kind not in "iu" or not 1 <= int(array) <= largest:
        raise InputError(key, f"must be one integer in 1..{largest:,}, got {array!r}")
    return int(array)


def _text(array: np.ndarray, key: str) -> str:
    if array.shape != () or array.dtype.kind != "U":
        raise InputError(key, f"must be one string, got {array!r}")
    return str(array)
