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

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .cases import Case
from .checks import CheckResult
from .compiled import CompiledValues
from .game import Game
from .metagradient import LolaGradient, lola


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
    x, inner = compiled.layout.flatten(case.theta), case.inner
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


def _lists(record: dict) -> dict:
    return {key: np.asarray(value).tolist() for key, value in record.items()}


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def dumps(document: dict) -> str:
    """Stable JSON: sorted keys, numpy values as plain numbers; NaN and infinities are refused."""
    return json.dumps(document, indent=2, sort_keys=True, default=_plain, allow_nan=False) + "\n"


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
