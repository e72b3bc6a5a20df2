"""The record every check returns, and the two error measures all checks share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.problem.game import DifferentiableGame, Game
from mapg_verify.spec.case import Case

DEFINITION_TOLERANCE = 1e-10  # an estimator against what it equals by definition, or as declared
ROUNDING_FACTOR = 256  # rounding in a plug-in's arithmetic: this many machine epsilons of its precision
DOUBLE = float(np.finfo(float).eps)
VERDICTS = ("pass", "fail", "untested", "info")
UNTESTED_EXIT = 3  # `run` and `exact`: no check failed, but something claimed was not tested


@dataclass(frozen=True)
class CheckResult:
    """A named check's verdict, its figures (name -> number, or ``None`` with the reason in the
    summary) and a one-line summary. ``verdict`` is ``pass`` (a claim was tested and held),
    ``fail`` (tested, and it did not hold), ``untested`` (something was claimed but could not be
    tested here: the summary says why and what would make it testable) or ``info`` (figures
    nobody claimed). ``passed`` is true for ``pass`` and ``info`` only: "not tested" never reads
    as a pass. The name is ``kind:subject``: ``kind`` the check (``claim``, ``bias``, ...) and
    ``subject`` the estimator or quantity it is about (empty for a case-wide check such as
    ``oracles``); what readers read of the figures, they read through the records below
    (:class:`Bias`, :class:`Spread`, :class:`MeanTestFigures`, :class:`Claimed`, and the fingerprint's
    :class:`~mapg_verify.checks.fingerprint.Fit`)."""

    name: str
    passed: bool
    figures: dict
    summary: str
    verdict: str = ""
    kind: str = field(init=False, repr=False, compare=False)
    subject: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        verdict = self.verdict or ("pass" if self.passed else "fail")
        if verdict not in VERDICTS or (verdict in ("pass", "info")) != self.passed:
            raise ValueError(f"check {self.name}: verdict {verdict!r} with passed={self.passed}")
        object.__setattr__(self, "verdict", verdict)
        kind, subject = name_parts(self.name)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "subject", subject)


def name_parts(name: str) -> tuple[str, str]:
    """A check's name ``kind:subject`` as its kind and subject (empty for a case-wide check): the
    one place a check's name is taken apart."""
    kind, _, subject = name.partition(":")
    return kind, subject


def info(name: str, figures: dict, summary: str) -> CheckResult:
    """A check that reports, or that could not run (the summary says why): neither pass nor fail."""
    return CheckResult(name, True, figures, summary, "info")


def precision_tolerance(eps: float) -> float:
    """The definition tolerance for a plug-in that computes with machine epsilon ``eps``:
    ``max(1e-10, 256 eps)`` (1e-10 in float64; 3.1e-5 in float32)."""
    return max(DEFINITION_TOLERANCE, ROUNDING_FACTOR * eps)


def precision_note(eps: float) -> str:
    """What a summary says of a plug-in computing in less than float64 (nothing for float64)."""
    if eps <= DOUBLE:
        return ""
    name = next(n for n in ("float16", "float32", "float64") if eps >= np.finfo(n).eps)
    return f"; it computes in {name}, so the tolerance is {precision_tolerance(eps):.2g} (256 of its epsilons)"


def untested(name: str, figures: dict, reason: str) -> CheckResult:
    """A claimed check that could not run here: ``reason`` says why and what would make it testable."""
    return CheckResult(name, False, figures, f"not tested: {reason}", "untested")


def overall(verdicts) -> str:
    """The verdict of a set of checks: ``fail`` if any failed, else ``untested`` if any was not
    tested, else ``pass`` (``info`` rows inform and change nothing)."""
    verdicts = set(verdicts)
    return next((v for v in ("fail", "untested") if v in verdicts), "pass")


def estimator_verdict(checks: Sequence[CheckResult]) -> tuple[str, str]:
    """One estimator's verdict from its checks, and why: a failed ``inner-update`` first (its own
    inner loop differs, so the rest was scored on batches it would not draw), then a failed claim
    or other check, then an untested claim."""
    kinds = {check.kind: check for check in checks}
    verdict = overall(check.verdict for check in checks)
    inner, claim = kinds.get("inner-update"), kinds.get("claim")
    if inner and inner.verdict == "fail":
        return verdict, "its inner loop, not its outer term, differs: " + inner.summary
    failed = next((check for check in checks if check.verdict == "fail"), None)
    if failed:
        return verdict, f"{failed.kind}: {failed.summary}"
    if claim and claim.verdict == "untested":
        return verdict, claim.summary
    if claim:
        return verdict, f"its claim ({Claimed.of(claim).claim or ''}) held"
    return verdict, "nothing claimed: its figures are information"


def exit_code(verdicts) -> int:
    """A command's exit code from its checks' verdicts: 0 all held, 1 a check failed,
    :data:`UNTESTED_EXIT` nothing failed but a claim was not tested."""
    return {"pass": 0, "fail": 1, "untested": UNTESTED_EXIT}[overall(verdicts)]


def relative_error(a, b, scale: float = 1e-12) -> float:
    """``||a - b||_inf / max(||b||_inf, scale)``: relative, absolute (at ``scale``) below it."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), scale, 1e-300))


def error_floor(game: Game | DifferentiableGame, values) -> float:
    """``1e-3`` of the scale rounding is relative to: ``max |R| sum_{t<H} gamma^t`` (a bound on
    every ``|V^k|``), or ``max_k |V^k(theta)|`` (at least 1) for a differentiable game."""
    if isinstance(game, DifferentiableGame):
        return 1e-3 * max(float(np.max(np.abs(values))), 1.0)
    return max(1e-3 * float(np.max(np.abs(game.rewards), initial=0.0)) * game.discount_mass(), 1e-300)


def relative_bias(value, reference) -> float:
    """``||value - reference||_2 / ||reference||_2``: the bias check's measure (a direction's whole
    error, where :func:`relative_error`'s max norm bounds every component)."""
    value, reference = np.asarray(value, dtype=float), np.asarray(reference, dtype=float)
    return float(np.linalg.norm(value - reference) / max(float(np.linalg.norm(reference)), 1e-300))


def case_floor(case: Case, compiled: CompiledValues) -> float:
    """:func:`error_floor` at the case's own ``theta``."""
    return error_floor(case.game, compiled.value(case.flat_theta))


@dataclass(frozen=True)
class Bias:
    """An expectation against one model's truth (check ``bias``): model ``E`` or ``S``, the
    ``relative`` bias ``||E - g|| / ||g||``, the ``cosine``, and ``samples_needed``, the replicates
    whose mean reaches the case's target relative error (``None``: never, the bias alone exceeds it)."""

    model: str
    relative: float
    cosine: float
    samples_needed: float | None

    def figures(self, target: float) -> dict:
        """The figures of ``bias:NAME`` this record holds (``target``: the case's relative error)."""
        return {
            f"relative bias vs model {self.model}": self.relative,
            f"cosine vs model {self.model}": self.cosine,
            f"samples for {target:g} relative error vs model {self.model}": self.samples_needed,
        }

    @staticmethod
    def of(check: CheckResult, target: float) -> tuple[Bias, ...]:
        """A bias check's records, model E first (none where its estimator produced no estimate)."""
        figures = check.figures
        return tuple(
            Bias(model, figures[f"relative bias vs model {model}"], figures[f"cosine vs model {model}"],
                 figures[f"samples for {target:g} relative error vs model {model}"])
            for model in "ES" if f"relative bias vs model {model}" in figures
        )  # fmt: skip


@dataclass(frozen=True)
class Spread:
    """An estimator's own spread (in ``bias:NAME``): ``samples_needed``, the replicates whose mean
    reaches relative spread ``target`` about its own expectation (``None``: never, a zero mean)."""

    target: float
    samples_needed: float | None

    def figures(self) -> dict:
        return {f"samples for {self.target:g} relative spread": self.samples_needed}

    @staticmethod
    def of(check: CheckResult, target: float) -> Spread | None:
        """A bias check's spread at the case's ``target``; ``None`` where it was not run."""
        key = f"samples for {target:g} relative spread"
        return Spread(target, check.figures[key]) if key in check.figures else None


@dataclass(frozen=True)
class MeanTestFigures:
    """The figures of a test of a mean at a level (``implementation``, a statistical ``claim``; the
    test itself is :class:`mapg_verify.checks.statistics.MeanTest`): Hotelling's
    ``statistic`` and its ``p`` value (``None`` where not testable), the ``level``, and for a claim
    ``detectable``, the smallest relative difference it detects with 99% power."""

    statistic: float | None
    p: float | None
    level: float
    detectable: float | None = None

    @staticmethod
    def of(check: CheckResult) -> MeanTestFigures | None:
        """The test a check ran at the case's level; ``None`` for a check that tests at no level."""
        figures = check.figures
        if "level" not in figures:
            return None
        detectable = figures.get("smallest relative difference detected (99% power)")
        return MeanTestFigures(figures.get("T-squared"), figures.get("p-value"), figures["level"], detectable)


@dataclass(frozen=True)
class Claimed:
    """What a ``claim`` check compared: the ``claim`` in words (``None`` if unnamed), its ``mode``
    (exact or statistical), what it was tested ``against``, and the ``diagnosis`` sentence of a
    plug-in's failed claim (empty strings where there is none)."""

    claim: str | None
    mode: str
    against: str
    diagnosis: str

    @staticmethod
    def of(check: CheckResult) -> Claimed:
        figures = check.figures
        diagnosis = figures.get("diagnosis", {}).get("sentence", "")
        return Claimed(figures.get("claim"), figures.get("mode", ""), figures.get("against", ""), diagnosis)


def per_estimator(check: CheckResult, figure: str) -> dict[str, float]:
    """Figure ``figure`` of each estimator in a case-wide check (``calibration``'s ``false alarms``,
    ``power``'s ``rejection rate``), by estimator."""
    return {key[: -len(figure) - 2]: value for key, value in check.figures.items() if key.endswith(f": {figure}")}
