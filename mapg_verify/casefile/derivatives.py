"""The ``[derivatives]`` section of a case file: the derivative, its estimators and the papers'
correlation protocol, each key checked against the game and the budget it implies."""

from __future__ import annotations

import math

from mapg_verify.casefile.values import number_in, positive_integer
from mapg_verify.estimators.derivatives import DERIVATIVE_ESTIMATORS
from mapg_verify.exact.enumeration import count_trajectories
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import DifferentiableGame, Game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import Policy
from mapg_verify.spec.case import DEFAULT_CAP, DerivativeSettings

DERIVATIVE_ENTRIES = 3000  # distinct entries of a derivative tensor that may be built symbolically
DERIVATIVE_HORIZON = 100
DERIVATIVE_TRAJECTORIES = 10**7  # sampled trajectories in all


def derivative_settings(table: dict, game: Game | DifferentiableGame, policy: Policy | None) -> DerivativeSettings:
    """``[derivatives]`` as settings; an :class:`InputError` names the key and the reason."""
    order = positive_integer(table.get("order", 2), "derivatives.order")
    if order > 3:
        raise InputError("derivatives.order", f"must be 1, 2 or 3, got {order}")
    of = table.get("of", 0)
    if isinstance(of, bool) or not isinstance(of, int) or not 0 <= of < game.n_agents:
        raise InputError("derivatives.of", f"must be an agent, 0 to {game.n_agents - 1}, got {of!r}")
    horizon = table.get("horizon")
    if horizon is not None:
        if isinstance(game, DifferentiableGame):
            raise InputError("derivatives.horizon", f"{game.name!r} has values, not steps, to truncate")
        horizon = positive_integer(horizon, "derivatives.horizon")
        if horizon > DERIVATIVE_HORIZON:
            raise InputError("derivatives.horizon", f"must be at most {DERIVATIVE_HORIZON}, got {horizon}")
    names = table.get("estimators", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n in DERIVATIVE_ESTIMATORS for n in names):
        raise InputError(
            "derivatives.estimators", f"must be a list of {', '.join(DERIVATIVE_ESTIMATORS)}, got {names!r}"
        )
    if len(set(names)) < len(names):
        raise InputError("derivatives.estimators", f"lists an estimator twice: {names!r}")
    if names and horizon is None:
        if isinstance(game, DifferentiableGame) or game.infinite:
            raise InputError("derivatives.horizon", "the estimators need trajectories of a finite horizon: set it")
        horizon = int(game.horizon)
    batch = positive_integer(table.get("batch", 64), "derivatives.batch")
    samples = positive_integer(table.get("samples", 2000), "derivatives.samples")
    if samples < 2:
        raise InputError("derivatives.samples", "must be at least 2 (a covariance needs two samples)")
    if batch * samples > DERIVATIVE_TRAJECTORIES:
        raise InputError(
            "derivatives.samples",
            f"batch x samples is {batch * samples:,}, above {DERIVATIVE_TRAJECTORIES:,} trajectories",
        )
    batches = table.get("batches", [])
    if not isinstance(batches, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in batches
    ):
        raise InputError("derivatives.batches", f"must be a list of positive integers, got {batches!r}")
    if batches and not names:
        raise InputError("derivatives.batches", "the correlation protocol needs estimators: list them")
    repeats = positive_integer(table.get("repeats", 20), "derivatives.repeats")
    if repeats < 2:
        raise InputError("derivatives.repeats", f"an interval over seeds needs at least 2 repeats, got {repeats}")
    if sum(batches) * repeats > DERIVATIVE_TRAJECTORIES:
        raise InputError(
            "derivatives.repeats",
            f"sum(batches) x repeats is {sum(batches) * repeats:,}, above {DERIVATIVE_TRAJECTORIES:,} trajectories",
        )
    lam = number_in(table.get("dice_lambda", 1.0), "derivatives.dice_lambda", low=0.0)
    if lam > 1.0:
        raise InputError("derivatives.dice_lambda", f"must be in [0, 1], got {lam}")
    entries = math.comb(layout_of(game, policy).size + order - 1, order)
    if entries > DERIVATIVE_ENTRIES:
        raise InputError(
            "derivatives.order",
            f"the derivative has {entries:,} distinct entries, above the {DERIVATIVE_ENTRIES:,} built symbolically: "
            "lower the order or use a game with fewer parameters",
        )
    if names and count_trajectories(game, horizon) > DEFAULT_CAP:
        raise InputError(
            "derivatives.horizon",
            f"the estimators' exact expectations enumerate {count_trajectories(game, horizon):,} trajectories of "
            f"{horizon} steps, above {DEFAULT_CAP:,}: shorten the horizon",
        )
    return DerivativeSettings(
        order, of, horizon, tuple(dict.fromkeys(names)), batch, samples, lam, tuple(sorted(set(batches))), repeats
    )
