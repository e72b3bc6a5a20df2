"""Result records and their JSON form, written atomically.

The ``exact`` JSON (SPEC §8): ``values`` per agent, ``truth.expected`` with
``total``, ``current``, ``own``, ``peer`` (flat over ``theta^i``), ``truth.sampled``
likewise, ``lola`` with
``exact``, ``first_order`` (Eq. 6) and ``taylor``, ``per_step`` per agent
(``V / sum_{t<H} gamma^t``, which is ``(1 - gamma) V`` for infinite horizons;
reported for finite horizons too, as the discount-weighted mean reward per
step), the oracle agreement figures under ``oracles``, and ``skipped`` with
a reason for each part not computed. ``estimators`` holds, for each listed estimator whose
exact expectation could be enumerated, ``expectation`` (flat over ``theta^i``) and its
``current``, ``own`` and ``peer`` parts; the others are under ``skipped`` as ``estimators.NAME``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import symengine
import sympy

from mapg_verify.checks.result import CheckResult
from mapg_verify.exact.compiled import CompiledValues, default_backend
from mapg_verify.exact.metagradient import LolaGradient, lola
from mapg_verify.exact.symbolic import symbolic_values
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case


@dataclass(frozen=True)
class ExactTruth:
    """Exact values, meta-gradients (model name -> terms) and LOLA of a case; what was skipped, and why."""

    values: tuple[float, ...]
    per_step: tuple[float, ...]
    truth: dict
    lola: LolaGradient
    oracles: CheckResult
    skipped: dict
    estimators: dict  # name -> Parts

    def to_json(self) -> dict:
        return {
            "values": list(self.values),
            "per_step": list(self.per_step),
            "truth": {model: _lists(asdict(gradient)) for model, gradient in self.truth.items()},
            "lola": _lists(asdict(self.lola)),
            "oracles": asdict(self.oracles),
            "skipped": dict(self.skipped),
            "estimators": {
                name: {"expectation": parts.total.tolist(), **_lists(asdict(parts))}
                for name, parts in self.estimators.items()
            },
        }


NOT_ASKED = "not asked for ([inner] model)"


def exact_truth(
    case: Case, compiled: CompiledValues, oracles: CheckResult, truth: dict, expectations: tuple[dict, dict]
) -> ExactTruth:
    """The case's exact values ``V^k(theta)``, per-step averages, meta-gradients in each model asked
    for, LOLA, and the estimators' exact expectations with the reasons for those missing."""
    x, inner = case.flat_theta, case.inner
    values = compiled.value(x)
    mass = case.game.discount_mass() if isinstance(case.game, Game) else 1.0
    skipped = {f"truth.{model}": NOT_ASKED for model in ("expected", "sampled") if model not in truth}
    found, missing = expectations
    skipped |= {f"estimators.{name}": reason for name, reason in missing.items()}
    return ExactTruth(
        tuple(map(float, values)),
        tuple(float(v) / mass for v in values),
        truth,
        lola(compiled, x, inner.alpha, inner.meta_agent),
        oracles,
        skipped,
        found,
    )


LATEX_LIMIT = 400  # characters: larger closed forms are not shown


# operations: 2x2 one-shot games count 23 to 39, and simplify takes 0.1-0.4 s there; 2x3 softmax games
# (59-77) take 0.8-1.3 s and their LaTeX is too long to show anyway; some larger ones take minutes
SIMPLIFY_LIMIT = 40


def describe_case(case: Case) -> dict:
    """What the report shows of a case's game and settings: sizes, payoffs, conventions, the inner
    loop and estimator settings, and each value ``V^k`` in LaTeX where the closed form is small
    (one-shot and differentiable games)."""
    game = case.game
    info: dict = {"name": game.name, "description": " ".join(game.description.split())}
    latex = None
    if isinstance(game, Game):
        info |= {
            "states": game.n_states,
            "actions": list(game.n_actions),
            "gamma": game.gamma,
            "horizon": "inf" if game.infinite else int(game.horizon),
        }
        if game.rewards.size <= 64:
            info["rewards"] = game.rewards.tolist()
        if game.n_states == 1 and not game.infinite and game.horizon == 1:
            latex = _latex(case)
    else:
        latex = _latex(case)
    inner, estimators = case.inner, case.estimators
    return {
        "game": info,
        "value_latex": latex,
        "inner": {
            "models": list(inner.models),
            "steps": inner.steps,
            "alpha": list(inner.alpha),
            "batch": inner.batch,
            "horizon": inner.horizon,
            "objective": inner.objective,
            "meta_agent": inner.meta_agent,
        },
        "estimators": {
            "names": list(estimators.names),
            "samples": estimators.samples,
            "outer": estimators.outer,
            "pairing": estimators.pairing,
            "outer_batch": estimators.outer_batch,
            "returns": estimators.returns,
            "baseline": estimators.baseline,
            "gae_lambda": estimators.gae_lambda,
            "dice_lambda": estimators.dice_lambda,
            "plugin_calls": estimators.plugin_calls,
            "plugin_timeout": estimators.plugin_timeout,
        },
        "checks": asdict(case.checks),
    }


def _latex(case: Case) -> list[str] | None:
    """Each value typeset, simplified by sympy only when small: ``simplify`` on a one-shot 3x3
    softmax game's value (about 100 operations) runs for minutes."""
    values = symbolic_values(case.game, case.policy).to_sympy()
    shown = [
        sympy.latex(sympy.simplify(value) if sympy.count_ops(value) <= SIMPLIFY_LIMIT else value) for value in values
    ]
    return shown if all(len(text) <= LATEX_LIMIT for text in shown) else None


def _lists(record: dict) -> dict:
    return {key: np.asarray(value).tolist() for key, value in record.items()}


def writable(path: str | Path, key: str) -> None:
    """Check, before any work, that file ``path`` can be written: not a folder, and its nearest
    existing ancestor a writable folder (the folders in between are made when it is written)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(key, "names a folder where a file is to be written", str(path))
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(key, f"cannot be written: {folder} is a file, not a folder", str(path))
    if not os.access(folder, os.W_OK):
        raise InputError(key, f"cannot be written: no permission to write in {folder}", str(path))


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a synced temporary file and a rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())  # on disk before the rename makes it the file
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the report from other readers
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def dumps(document: dict) -> str:
    """Stable JSON: sorted keys, numpy values as plain numbers; NaN and infinities are refused."""
    return json.dumps(document, indent=2, sort_keys=True, default=_plain, allow_nan=False) + "\n"


def canonical(document) -> str:
    """One line of stable JSON (sorted keys, no spaces, ASCII): what :func:`digest` hashes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=_plain, allow_nan=False)


def digest(document) -> str:
    """The sha256, in hex, of a document's :func:`canonical` JSON."""
    return hashlib.sha256(canonical(document).encode()).hexdigest()


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def results_document(documents: list[dict], seed: int, quick: bool, seconds: float) -> dict:
    """A run's results file: versions, the run's options, every case's document, the timings."""
    return {
        "mapg_verify": versions(),
        "run": {"seed": seed, "quick": quick},
        "cases": [{k: v for k, v in d.items() if k != "timings"} for d in documents],
        "timings": {"total seconds": seconds, "cases": {d["case"]["name"]: d["timings"] for d in documents}},
    }


def load_results(path: Path) -> dict:
    """A results file written by ``run``, read back (bad input names the file)."""
    try:
        results = json.loads(path.read_text())
    except OSError as error:
        raise InputError("file", f"cannot be read: {error.strerror}", str(path)) from None
    except json.JSONDecodeError as error:
        raise InputError("file", f"is not valid JSON: {error}", str(path)) from None
    if not isinstance(results, dict) or not isinstance(results.get("cases"), list):
        raise InputError("cases", "is missing: not a results file written by run", str(path))
    return results


def versions() -> dict:
    """The versions a results file records (the package, symengine, numpy, the compiler backend)."""
    return {
        "version": metadata.version("mapg-verify"),
        "symengine": symengine.__version__,
        "numpy": np.__version__,
        "compiler": default_backend(),
    }
