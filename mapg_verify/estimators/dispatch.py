"""One entry point per question about a named estimator, built-in or plug-in: its exact
expectation, its Monte-Carlo rows, its generator; and the validation of estimator names."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from mapg_verify.estimators.expectations import expectation
from mapg_verify.estimators.montecarlo import draw
from mapg_verify.estimators.plugins import PluginError, draw_plugin, plugin_expectation, resolve_plugin
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS, MUTANTS, Estimator, Parts
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import Case

REGISTERED: dict[str, Callable] = {}  # plug-ins handed over as functions (check_estimator), by name


def resolve(name: str) -> Callable:
    """The plug-in function of that name: one registered in this process, else ``module:function``."""
    return REGISTERED.get(name) or resolve_plugin(name)


def check_names(names: tuple[str, ...]) -> None:
    """Every name is in :data:`ESTIMATORS` or :data:`MUTANTS`, or an importable ``module:function``."""
    for name in names:
        if ":" in name:
            resolve_plugin(name)
        elif name not in ESTIMATORS and name not in MUTANTS:
            raise InputError(
                "estimators.names",
                f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}, the wrong variants "
                f"{', '.join(MUTANTS)}, or module:function for a plug-in",
            )


def estimator_of(name: str) -> Estimator | None:
    """The built-in estimator (or wrong variant) of that name; ``None`` for a plug-in."""
    return ESTIMATORS.get(name) or MUTANTS.get(name)


def rng_for(seed: int, case: Case, name: str, *index: int) -> np.random.Generator:
    """The generator of one estimator on one case: fixed by the run's seed, both names, and the
    repetition ``index`` where there are several (calibration's seeds)."""
    return np.random.default_rng([seed, zlib.crc32(case.name.encode()), zlib.crc32(name.encode()), *index])


def exact_expectation(case: Case, compiled: CompiledValues, name: str) -> Parts:
    """The estimator's exact expectation (an :class:`InputError` when it cannot be enumerated)."""
    estimator = estimator_of(name)
    if estimator is None:
        return plugin_expectation(case, compiled, resolve(name))
    return expectation(plan(case, compiled, estimator))


def draw_rows(case: Case, compiled: CompiledValues, name: str, samples: int, rng) -> np.ndarray:
    """``samples`` Monte-Carlo estimates, one row each."""
    estimator = estimator_of(name)
    if estimator is None:
        return draw_plugin(case, compiled, resolve(name), samples, rng)
    return draw(plan(case, compiled, estimator), samples, rng).total


def expectations(case: Case, compiled: CompiledValues) -> tuple[dict, dict]:
    """Each listed estimator's exact expectation (name -> :class:`Parts`), and the reason for each
    that has none (over the enumeration cap, or a plug-in that failed)."""
    found, skipped = {}, {}
    for name in case.estimators.names:
        try:
            found[name] = exact_expectation(case, compiled, name)
        except (InputError, PluginError) as error:
            skipped[name] = error.reason if isinstance(error, InputError) else f"plug-in {error}"
    return found, skipped
