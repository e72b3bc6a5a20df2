"""A case file's scalar values, checked one key at a time: known keys, tables, booleans, positive
integers (within :data:`mapg_verify.casefile.budget.LIMITS`), numbers in a range. Every error names the key."""

from __future__ import annotations

import math

from mapg_verify.casefile.budget import LIMITS
from mapg_verify.problem.errors import InputError


def known_keys(table: dict, allowed, prefix: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise InputError(prefix + unknown[0], f"is not a known key (known: {', '.join(allowed)})")


def subtable(document: dict, key: str) -> dict:
    value = document.get(key)
    if not isinstance(value, dict):
        raise InputError(key, "must be a table" if key in document else "is required")
    return value


def boolean(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(key, f"must be true or false, got {value!r}")
    return value


def positive_integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(key, f"must be a positive integer, got {value!r}")
    if key in LIMITS and value > LIMITS[key][0]:
        high, reason = LIMITS[key]
        raise InputError(key, f"is {value:,}, above the limit of {high:,}: {reason}")
    return value


def number_in(value: object, key: str, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(key, f"must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise InputError(key, f"must be >= {low}, got {value!r}")
    return float(value)
