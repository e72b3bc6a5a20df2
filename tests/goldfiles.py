"""Comparing a run's files with the gold files, on any machine.

Structure and text are compared exactly: the same keys, list lengths, booleans, nulls, and the
same words around every number. Numbers are compared by what they are:

- a **rounding-level** figure (an oracle's error, an identity's residual, a fingerprint
  coefficient's zero-width interval): both sides at most :data:`ROUNDING_BOUND` in magnitude.
  Which rounding error a processor or BLAS build leaves there is not compared, only that it stays
  below the bound (every check's tolerance for such figures is 1e-8 or tighter, their values
  1e-17 to 1e-11);
- any other figure, exact or statistical: within :data:`RELATIVE` of each other. A seeded
  Monte-Carlo figure is reproduced by the same seed up to the rounding it propagates (1e-13 or
  less here), far inside its own statistical uncertainty (the tiny case's standard errors are
  1e-2 of its means), so a change of seed, sampler or estimator moves it by much more;
- a number printed in text is also allowed one unit in its last printed digit (``0.178`` and
  ``0.179`` when the value sits on a rounding boundary).
"""

from __future__ import annotations

import math
import re

ROUNDING_BOUND = 1e-9
RELATIVE = 1e-6
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def close(a: float, b: float, unit: float = 0.0) -> bool:
    """Two figures agree: both at rounding level, or within :data:`RELATIVE` (plus ``unit``)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if max(abs(a), abs(b)) <= ROUNDING_BOUND:
        return True
    return abs(a - b) <= RELATIVE * max(abs(a), abs(b)) + unit


def _unit(token: str) -> float:
    """One unit in the last printed digit of a number as text: ``0.178`` -> 0.001, ``1.3e-16`` -> 1e-17."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def text_differences(gold: str, produced: str, where: str = "") -> list[str]:
    """Where two texts differ in their words, or in a number beyond :func:`close`."""
    words = NUMBER.split(gold), NUMBER.split(produced)
    numbers = NUMBER.findall(gold), NUMBER.findall(produced)
    if words[0] != words[1] or len(numbers[0]) != len(numbers[1]):
        return [f"{where}: text differs: {_first_difference(gold, produced)}"]
    return [
        f"{where}: {a} != {b}"
        for a, b in zip(*numbers, strict=True)
        if not close(float(a), float(b), max(_unit(a), _unit(b)))
    ]


def _first_difference(a: str, b: str) -> str:
    index = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"...{a[max(0, index - 60) : index + 60]!r} vs ...{b[max(0, index - 60) : index + 60]!r}"


def json_differences(gold: object, produced: object, where: str = "") -> list[str]:
    """Where two JSON documents differ in structure, text, or a number beyond :func:`close`."""
    if isinstance(gold, dict) and isinstance(produced, dict):
        if gold.keys() != produced.keys():
            return [f"{where}: keys differ: {sorted(gold.keys() ^ produced.keys())}"]
        return [d for key in gold for d in json_differences(gold[key], produced[key], f"{where}.{key}")]
    if isinstance(gold, list) and isinstance(produced, list):
        if len(gold) != len(produced):
            return [f"{where}: length {len(gold)} != {len(produced)}"]
        return [
            d
            for n, (a, b) in enumerate(zip(gold, produced, strict=True))
            for d in json_differences(a, b, f"{where}[{n}]")
        ]
    if isinstance(gold, str) and isinstance(produced, str):
        return text_differences(gold, produced, where)
    numbers = (int, float)
    if all(isinstance(v, numbers) and not isinstance(v, bool) for v in (gold, produced)):
        return [] if close(float(gold), float(produced)) else [f"{where}: {gold} != {produced}"]
    return [] if gold == produced and type(gold) is type(produced) else [f"{where}: {gold!r} != {produced!r}"]
