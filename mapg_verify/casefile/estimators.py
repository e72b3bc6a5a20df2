"""The ``[estimators]`` section of a case file and its claims (SPEC §8): names (built-ins with
their ``[key=value]`` options, or plug-ins), samples, the outer term and its pairing, the
return convention and baselines, and ``[estimators.claims]``."""

from __future__ import annotations

import math

from mapg_verify.casefile.values import positive_integer
from mapg_verify.estimators.conventions import check_fits, convention_for, parse_convention
from mapg_verify.estimators.dispatch import check_names, option_value, split_name
from mapg_verify.estimators.plugins import resolve_plugin
from mapg_verify.estimators.table import ESTIMATORS
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import DifferentiableGame
from mapg_verify.spec.case import (
    BASIS,
    CLAIM_MODELS,
    DEFAULT_PLUGIN_CALLS,
    DEFAULT_PLUGIN_TIMEOUT,
    OUTERS,
    PAIRINGS,
    Claim,
    EstimatorSettings,
    InnerLoop,
)

CASE_OPTIONS = (
    "returns",
    "baseline",
    "gae_lambda",
    "dice_lambda",
)  # for every estimator; a name's [...] can set inner_baseline


def estimator_settings(table: dict, game, inner: InnerLoop) -> EstimatorSettings:
    names = table.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InputError("estimators.names", f"must be a list of names or module:function, got {names!r}")
    check_names(tuple(names))
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InputError("estimators.names", f"lists {', '.join(map(repr, twice))} twice")
    if names and isinstance(game, DifferentiableGame):
        raise InputError("estimators.names", f"estimators sample trajectories; {game.name!r} has none")
    if names and inner.horizon is None:
        raise InputError("inner.horizon", "estimators sample trajectories: give their length for this game")
    outer = table.get("outer", "sampled")
    if outer not in OUTERS:
        raise InputError("estimators.outer", f"must be one of {', '.join(OUTERS)}, got {outer!r}")
    pairing = table.get("pairing", "batch")
    if pairing not in PAIRINGS:
        raise InputError("estimators.pairing", f"must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    if outer == "exact" and any(":" in name for name in names):
        raise InputError("estimators.outer", 'plug-ins are handed sampled outer batches: use outer = "sampled"')
    if pairing == "timestep" and outer == "exact":
        raise InputError("estimators.pairing", 'timestep pairing needs outer trajectories: use outer = "sampled"')
    outer_batch = positive_integer(table.get("outer_batch", inner.batch), "estimators.outer_batch")
    if pairing != "batch" and outer_batch != inner.batch:
        raise InputError(
            "estimators.outer_batch",
            f"{pairing} pairing matches inner trajectory b with outer trajectory b: it must equal "
            f"[inner] batch ({inner.batch}), got {outer_batch}",
        )
    samples = positive_integer(table.get("samples", 20000), "estimators.samples")
    if samples < 2:
        raise InputError("estimators.samples", "must be at least 2 (a covariance needs two samples)")
    plugin_calls = positive_integer(table.get("plugin_calls", DEFAULT_PLUGIN_CALLS), "estimators.plugin_calls")
    timeout = table.get("plugin_timeout", DEFAULT_PLUGIN_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
        raise InputError("estimators.plugin_timeout", f"must be a positive number of seconds, got {timeout!r}")
    claims = parse_claims(table.get("claims", {}), names)
    conventions = parse_conventions(table.get("conventions", {}), names, game)
    options = {key: option_value(key, table[key], f"estimators.{key}") for key in CASE_OPTIONS if key in table}
    chosen = [options.get("baseline")] + [
        split_name(n)[1].get(k) for n in names for k in ("baseline", "inner_baseline")
    ]
    if "leave-one-out" in chosen and min(inner.batch, outer_batch) < 2:
        raise InputError(
            "estimators.baseline",
            f"leave-one-out needs two trajectories per batch; [inner] batch is {inner.batch}, "
            f"outer_batch {outer_batch}",
        )
    return EstimatorSettings(
        tuple(names),
        samples,
        outer,
        pairing,
        outer_batch,
        claims,
        options.get("returns"),
        options.get("baseline"),
        options.get("gae_lambda"),
        options.get("dice_lambda"),
        plugin_calls,
        float(timeout),
        conventions,
    )


def parse_conventions(table: object, names: list[str], game) -> tuple[tuple[str, object], ...]:
    """``[estimators.conventions]``: plug-in name -> a named convention or one spelled out
    (:func:`mapg_verify.estimators.conventions.parse_convention`); each plug-in's convention, this
    or its function's ``conventions``, must fit the game."""
    if not isinstance(table, dict):
        raise InputError("estimators.conventions", f"must be a table of plug-in = convention, got {table!r}")
    found = []
    for name, value in table.items():
        key = f"estimators.conventions.{name}"
        if name not in names or ":" not in name:
            raise InputError(key, f"declares the conventions of {name!r}, which is not a plug-in in [estimators] names")
        found.append((name, parse_convention(value, key)))
    for name in (n for n in names if ":" in n):
        convention = convention_for(dict(found), resolve_plugin(name))
        if convention is not None:
            check_fits(convention, game, f"estimators.conventions.{name}")
    return tuple(found)


def parse_claims(table: object, names: list[str]) -> tuple[tuple[str, Claim], ...]:
    """``[estimators.claims]``: estimator name -> ``"model-S"``, ``"model-E"``, a built-in
    estimator's name, or a table of fingerprint coefficients (terms of ``BASIS``; missing ones 0)."""
    if not isinstance(table, dict):
        raise InputError("estimators.claims", f"must be a table of estimator = claim, got {table!r}")
    claims = []
    for name, value in table.items():
        key = f"estimators.claims.{name}"
        if name not in names:
            raise InputError(key, f"claims something of {name!r}, which is not in [estimators] names")
        if isinstance(value, dict):
            unknown = [term for term in value if term not in BASIS]
            if unknown or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value.values()
            ):
                raise InputError(
                    key, f"a fingerprint claim has finite numbers for the terms {', '.join(BASIS)}, got {value!r}"
                )
            claims.append((name, Claim("fingerprint", tuple(float(value.get(term, 0.0)) for term in BASIS))))
        elif value in CLAIM_MODELS:
            claims.append((name, Claim("model", value)))
        elif isinstance(value, str) and ":" not in value and split_name(value, key)[0] in ESTIMATORS:
            claims.append((name, Claim("estimator", value)))
        else:
            raise InputError(
                key,
                f"unknown claim {value!r}: {' or '.join(CLAIM_MODELS)}, a built-in estimator "
                f"({', '.join(ESTIMATORS)}, with [key=value] options if any), or a table of fingerprint coefficients",
            )
    return tuple(claims)
