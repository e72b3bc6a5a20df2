"""One entry point per question about a named estimator, built-in or plug-in: its exact
expectation, its Monte-Carlo rows, its generator; and the validation of estimator names."""

from __future__ import annotations

import contextlib
import zlib

import numpy as np

from mapg_verify.estimators.expectations import expectation
from mapg_verify.estimators.montecarlo import draw
from mapg_verify.estimators.plugins import draw_plugin, plugin_expectation, resolve_plugin
from mapg_verify.estimators.records import Plugin, PluginError
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS, FROZEN, MUTANTS, OPTION_FIELDS, Estimator, Parts, configured
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import BASELINE_FITS, BASELINES, RETURNS, Case

REGISTERED: dict[str, Plugin] = {}  # plug-ins handed over as functions (check_estimator), by name


def resolve(name: str) -> Plugin:
    """The plug-in of that name: one registered in this process, else ``[jax:|torch:]module:function``."""
    return REGISTERED.get(name) or resolve_plugin(name)


def check_names(names: tuple[str, ...]) -> None:
    """Every name is in :data:`ESTIMATORS` or :data:`MUTANTS` (with options, see :func:`split_name`),
    or an importable ``[jax:|torch:]module:function``."""
    for name in names:
        if ":" in name:
            resolve_plugin(name)
            continue
        base, _ = split_name(name)
        if base not in ESTIMATORS and base not in MUTANTS:
            raise InputError(
                "estimators.names",
                f"unknown estimator {base!r}; known: {', '.join(ESTIMATORS)}, the wrong variants "
                f"{', '.join(MUTANTS)}, or [jax:|torch:]module:function for a plug-in",
            )


def split_name(name: str, key: str = "estimators.names") -> tuple[str, dict]:
    """``"meta-mapg[baseline=value, gae_lambda=0.9]"`` to ``("meta-mapg", {"baseline": "value",
    "gae_lambda": 0.9})``; options ``returns``, ``baseline``, ``inner_baseline``, ``gae_lambda``
    and ``dice_lambda`` as in ``[estimators]``, and ``baseline_fit``, each once; an input error (at
    ``key``) for anything else."""
    if "[" not in name:
        return name, {}
    base, _, rest = name.partition("[")
    if not rest.endswith("]"):
        raise InputError(key, f"{name!r}: options go in brackets at the end, name[key=value, ...]")
    options = {}
    for item in filter(None, (part.strip() for part in rest[:-1].split(","))):
        option, equals, value = (part.strip() for part in item.partition("="))
        if not equals or option not in OPTION_FIELDS:
            raise InputError(key, f"{name!r}: unknown option {item!r}; known: {', '.join(OPTION_FIELDS)} (key=value)")
        if option in options:
            raise InputError(key, f"{name!r}: option {option!r} is given twice")
        options[option] = option_value(option, value, key, name)
    return base.strip(), options


def option_value(key: str, value, where: str, name: str = ""):
    """One estimator option, validated: ``returns`` in :data:`RETURNS`, baselines in
    :data:`BASELINES`, ``baseline_fit`` in :data:`BASELINE_FITS`, ``gae_lambda`` and ``dice_lambda``
    numbers in [0, 1] (a number in a case file's table, a numeral in a name's options); ``name`` the
    estimator name it came from, if any."""
    source = f"{name!r}: " if name else ""
    if key in ("gae_lambda", "dice_lambda"):
        if name and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise InputError(where, f"{source}{key} must be a number in [0, 1], got {value!r}")
        return float(value)
    allowed = {"returns": RETURNS, "baseline_fit": BASELINE_FITS}.get(key, BASELINES)
    if value not in allowed:
        raise InputError(where, f"{source}{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def estimator_of(name: str) -> Estimator | None:
    """The built-in estimator (or wrong variant) a name stands for, without options; ``None`` for a plug-in."""
    base, _ = split_name(name) if ":" not in name else (name, {})
    return ESTIMATORS.get(base) or MUTANTS.get(base)


def builtin_for(case: Case, name: str) -> Estimator | None:
    """The built-in as it runs on this case: the case's options, then the name's own; ``None`` for a plug-in."""
    estimator = estimator_of(name)
    if estimator is None:
        return None
    return configured(estimator, case, split_name(name)[1])


def inner_loop_for(case: Case, name: str) -> Estimator:
    """The inner loop that draws a plug-in's batches: that of the built-in its claim names, where
    it has one (its inner baseline, ``lola-dice``'s meta-agent that does not learn), so that the
    plug-in is scored on the batches its own update would draw; model S's otherwise."""
    claim = dict(case.estimators.claims).get(name)
    if claim is not None and claim.kind == "estimator":
        estimator = builtin_for(case, claim.target)
        if estimator.inner:
            return estimator
    return FROZEN


def rng_for(seed: int, case: Case, name: str, *index: int) -> np.random.Generator:
    """The generator of one estimator on one case: fixed by the run's seed, both names, and the
    repetition ``index`` where there are several (calibration's seeds)."""
    return np.random.default_rng([seed, zlib.crc32(case.name.encode()), zlib.crc32(name.encode()), *index])


def exact_expectation(case: Case, compiled: CompiledValues, name: str) -> Parts:
    """The estimator's exact expectation (an :class:`InputError` when it cannot be enumerated)."""
    estimator = builtin_for(case, name)
    if estimator is None:
        return plugin_expectation(case, compiled, resolve(name), inner_loop_for(case, name))
    return expectation(plan(case, compiled, estimator))


def draw_rows(case: Case, compiled: CompiledValues, name: str, samples: int, rng) -> np.ndarray:
    """``samples`` Monte-Carlo estimates, one row each."""
    estimator = builtin_for(case, name)
    if estimator is None:
        return draw_plugin(case, compiled, resolve(name), samples, rng, inner_loop_for(case, name))
    return draw(plan(case, compiled, estimator), samples, rng).total


STATISTICAL_ONLY = 'statistical mode ([checks] claim_mode = "statistical") never enumerates a plug-in'


def expectations(case: Case, compiled: CompiledValues) -> tuple[dict, dict]:
    """Each listed estimator's exact expectation (name -> :class:`Parts`), and the reason for each
    that has none (over the enumeration cap or the plug-in call budget, statistical mode for a
    plug-in, or a plug-in that failed)."""
    found, skipped = {}, {}
    for name in case.estimators.names:
        if case.checks.claim_mode == "statistical" and builtin_for(case, name) is None:
            skipped[name] = STATISTICAL_ONLY
            continue
        try:
            found[name] = exact_expectation(case, compiled, name)
        except (InputError, PluginError) as error:
            skipped[name] = error.reason if isinstance(error, InputError) else f"plug-in {error}"
    return found, skipped
