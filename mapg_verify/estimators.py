"""The estimator table of SPEC §4: each stable name, the terms it keeps and its inner derivative.

Implementations arrive with the sampled-estimator work; this table is what
case files are validated against and what ``list`` prints. A case may also
name a plug-in as ``module:function``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class EstimatorEntry:
    """One row of SPEC §4."""

    terms: str
    inner_derivative: str


ESTIMATORS: dict[str, EstimatorEntry] = {
    "meta-mapg": EstimatorEntry("current + own + peer", "DiCE"),
    "meta-pg": EstimatorEntry("current + own", "DiCE, peer update not differentiated"),
    "opponent-only": EstimatorEntry("current + peer", "DiCE, own update not differentiated"),
    "lola-dice": EstimatorEntry("LOLA objective V^i(theta^i, phi^-i)", "DiCE"),
    "naive": EstimatorEntry("plain policy gradient at theta", "none"),
    "sampled-exact": EstimatorEntry("current + own", "pathwise (model S's gradient)"),
    "expected-update": EstimatorEntry("own + peer, no current term", "DiCE"),
}


def resolve_plugin(name: str, key: str = "estimators.names") -> Callable:
    """Import ``module:function``; failure is an input error naming the key."""
    module_name, _, attribute = name.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except ImportError as error:
        raise InputError(key, f"plug-in {name!r} cannot be imported: {error}") from None
    except AttributeError:
        raise InputError(key, f"plug-in {name!r}: module {module_name!r} has no {attribute!r}") from None
    if not callable(function):
        raise InputError(key, f"plug-in {name!r} is not callable")
    return function


def check_names(names: tuple[str, ...]) -> None:
    """Every name is in :data:`ESTIMATORS` or an importable ``module:function``."""
    for name in names:
        if ":" in name:
            resolve_plugin(name)
        elif name not in ESTIMATORS:
            raise InputError(
                "estimators.names",
                f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}, or module:function for a plug-in",
            )
