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

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
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


OUTPUT_BYTES_PER_CASE = 256 * 1024  # free space asked of --out per case: twice a large case's results and report


@contextlib.contextmanager
def output_folder(out: Path, cases: int):
    """Claim ``out`` for one run before any work: its files writable, a probe write of
    :data:`OUTPUT_BYTES_PER_CASE` per case (a full disk or a read-only folder is found now, not
    after the work), and a lock (``out/.lock``) that refuses a second run into the same folder
    while this one runs. On the way out the lock goes, and a folder made here and left empty too."""
    for name in ("results.json", "index.html"):
        writable(out / name, "--out")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = open(out / ".lock", "w")  # noqa: SIM115 (held for the run)
    except OSError as error:
        raise InputError("--out", f"cannot be written: {error.strerror}", str(out)) from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                "--out", "another run is writing into this folder: wait for it, or choose another --out", str(out)
            ) from None
        _probe(out, cases * OUTPUT_BYTES_PER_CASE)
        yield
    finally:
        lock.close()
        (out / ".lock").unlink(missing_ok=True)
        if made and not any(out.iterdir()):
            out.rmdir()


def _probe(out: Path, size: int) -> None:
    """Write and remove ``size`` bytes in ``out``: an input error if the disk cannot take them."""
    handle, probe = tempfile.mkstemp(dir=out, prefix=".probe.")
    try:
        with os.fdopen(handle, "wb") as stream:
            for start in range(0, size, 1 << 20):
                stream.write(b"\0" * min(1 << 20, size - start))
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as error:
        raise InputError("--out", f"cannot hold this run's {size / 1e6:.1f} MB: {error.strerror}", str(out)) from None
    finally:
        Path(probe).unlink(missing_ok=True)


def publish(out: Path, files: dict[str, str]) -> None:
    """Write ``files`` (name -> text) into a fresh folder ``out/.runs/ID`` and swap it in with one
    rename of the link ``out/.run``; each ``out/NAME`` is a link to ``.run/NAME``, so a reader
    sees the old set or the new one, never a mixed pair. The previous set is then removed."""
    try:
        runs = out / ".runs"
        runs.mkdir(exist_ok=True)
        fresh = Path(tempfile.mkdtemp(dir=runs))
        for name, text in files.items():
            write_atomic(fresh / name, text)
        link = out / ".run"
        old = link.resolve() if link.is_symlink() else None
        _link(out, ".run", os.path.relpath(fresh, out))
        for name in files:
            if not ((out / name).is_symlink() and os.readlink(out / name) == f".run/{name}"):
                _link(out, name, f".run/{name}")
        if old is not None and old != fresh.resolve():
            shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        raise InputError("--out", f"cannot write the results: {error.strerror}", str(out)) from None


def _link(folder: Path, name: str, target: str) -> None:
    """Make ``folder/name`` a symbolic link to ``target`` with one rename (atomic)."""
    temporary = folder / f".{name}.{os.getpid()}.link"
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, folder / name)


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
