"""The estimators of SPEC §4 as a table: each a set of switches on one DiCE surrogate
(:mod:`mapg_verify.estimators.surrogate`), with the terms it keeps, its inner derivative and its
declared fingerprint (on :data:`mapg_verify.spec.case.BASIS`); the deliberately wrong variants; and :class:`Parts`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mapg_verify.spec.case import Case


@dataclass(frozen=True)
class Estimator:
    """One estimator of the family above; ``declared`` is its fingerprint by construction on the
    terms ``(current, adapted, own-pathwise, own-dice, peer)``, ``1`` on ``current`` standing for the
    current term with the estimator's tangent and pairing (:func:`declared_terms` spells it on
    :data:`BASIS`); ``None`` where it is not a combination of the basis. ``partial`` marks
    estimators that differentiate some agents' updates only: from ``L = 2`` on, their tangent
    mixes in products of the rows they keep, outside the basis."""

    terms: str
    inner_derivative: str
    current: bool = True
    jacobian: str = "dice"
    own: bool = True
    peers: bool = True
    self_learns: bool = True
    inner: bool = True
    pairing: str | None = None  # forced, whatever the case says
    returns: str = "reward-to-go"  # or the defects "undiscounted", "immediate"
    peer_sign: float = 1.0
    declared: tuple[float, ...] | None = None
    convention: str = "from-zero"  # of the returns in outer score-function terms, or "from-t"
    baseline: str = "none"  # in outer score-function terms (mapg_verify.exact.baselines)
    inner_baseline: str = "none"  # in the inner DiCE objective, as its (1 - box(log pi_t)) b_t term
    gae_lambda: float = 1.0  # GAE's lambda for the outer advantage (with a baseline)
    current_advantage: bool = False  # the current term takes the outer advantage, not the return
    dice_lambda: float = 1.0  # Loaded DiCE's discount of the dependencies (jacobian = "loaded-dice")
    baseline_fit: str = "aligned"  # the linear baseline's fit, or "as-shipped" (mapg_verify.exact.baselines)

    @property
    def partial(self) -> bool:
        return self.own != self.peers


_FULL = Estimator("current + own + peer", "DiCE", declared=(1, 1, 1, 1, 1))


ESTIMATORS: dict[str, Estimator] = {
    "meta-mapg": _FULL,
    "meta-pg": Estimator(
        "current + own", "DiCE, peer update not differentiated", peers=False, declared=(1, 1, 1, 1, 0)
    ),
    "opponent-only": Estimator(
        "current + peer", "DiCE, own update not differentiated", own=False, declared=(1, 1, 0, 0, 1)
    ),
    "lola-dice": Estimator(
        "LOLA objective V^i(theta^i, phi^-i)", "DiCE; the meta-agent does not learn", current=False, self_learns=False
    ),
    "naive": Estimator("plain policy gradient at theta", "none", current=False, inner=False),
    "sampled-exact": Estimator(
        "current + own", "pathwise (model S's gradient)", jacobian="pathwise", pairing="batch", declared=(1, 1, 1, 0, 0)
    ),
    "expected-update": Estimator("own + peer, no current term", "DiCE", current=False, declared=(0, 1, 1, 1, 1)),
    "loaded-dice": Estimator(
        "current + own + peer, the inner update differentiated through Loaded DiCE",
        "Loaded DiCE (Farquhar et al. 2019): dependencies discounted by dice_lambda, advantages G_t - gamma^t V_t",
        jacobian="loaded-dice",
        baseline="value",
        inner_baseline="value",
    ),
    "meta-mapg-official": Estimator(
        "the official Meta-MAPG outer loss (dkkim93/meta-mapg): base + self-shaping + opponent-shaping, "
        "each step's log-probability times the last trajectory's GAE advantage at the same (b, t)",
        "DiCE over every agent's log-probabilities, with the linear baseline's (1 - box) term",
        pairing="timestep",
        convention="from-t",
        baseline="value",
        inner_baseline="linear",
        gae_lambda=0.95,
        current_advantage=True,
        baseline_fit="as-shipped",
    ),
}


ESTIMATORS["meta-pg-official"] = dataclasses.replace(
    ESTIMATORS["meta-mapg-official"],
    terms="the official code with opponent shaping off (Meta-PG): base + self-shaping",
    inner_derivative="DiCE over the agent's own log-probabilities, with the linear baseline's (1 - box) term",
    peers=False,
)


FROZEN = Estimator("adapted gradient", "none", current=False, own=False, peers=False)


"""No update differentiated: its expectation is ``E[grad_{phi^i} V^i(phi_L)]``, the fingerprint's
``adapted`` term; its draws are the plain inner loop (what plug-ins receive)."""


BASIS_ESTIMATORS: dict[str, Estimator] = {
    "pathwise": ESTIMATORS["sampled-exact"],
    "dice": dataclasses.replace(_FULL, pairing="batch"),
    "timestep": dataclasses.replace(_FULL, pairing="timestep"),
    "frozen": FROZEN,
}
"""The surrogates whose parts span the fingerprint's terms (:func:`basis_weights`)."""


def basis_weights(coefficients, batch: int) -> tuple[tuple[str, str, float], ...]:
    """``sum_j c_j term_j`` over :data:`mapg_verify.spec.case.BASIS` as a weighted sum of parts of
    :data:`BASIS_ESTIMATORS`, ``(estimator, part, weight)``, zero weights left out:
    ``current = C^path``, ``current-dice = C^dice - C^path``, ``current-timestep = C^step - C^dice / K``,
    ``adapted = O^frozen``, ``own-pathwise = O^path - O^frozen``, ``own-dice = O^dice - O^path``,
    ``peer = P^dice``. Holds for expectations and, sample by sample, for draws on the same batches."""
    c = [float(x) for x in coefficients]
    weights = (
        ("pathwise", "current", c[0] - c[1]),
        ("dice", "current", c[1] - c[2] / batch),
        ("timestep", "current", c[2]),
        ("frozen", "own", c[3] - c[4]),
        ("pathwise", "own", c[4] - c[5]),
        ("dice", "own", c[5]),
        ("dice", "peer", c[6]),
    )
    return tuple(w for w in weights if w[2] != 0.0)


MUTANTS: dict[str, Estimator] = {
    "meta-mapg/dropped-current": dataclasses.replace(_FULL, terms="meta-mapg without its current term", current=False),
    "meta-mapg/flipped-peer": dataclasses.replace(_FULL, terms="meta-mapg with the peer term negated", peer_sign=-1.0),
    "meta-mapg/undiscounted": dataclasses.replace(
        _FULL, terms="meta-mapg with undiscounted returns", returns="undiscounted"
    ),
    "meta-mapg/no-reward-to-go": dataclasses.replace(
        _FULL,
        terms="meta-mapg weighting each step's score by its own reward only (no reward-to-go, no causal sum)",
        returns="immediate",
    ),
}


"""Deliberately wrong variants of ``meta-mapg``, each with one defect, for the power study."""


@dataclass(frozen=True)
class Parts:
    """An estimate split into its ``current``, ``own`` and ``peer`` parts; a leading sample axis
    for Monte-Carlo draws, none for exact expectations."""

    current: np.ndarray
    own: np.ndarray
    peer: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.current + self.own + self.peer


def pairing_of(estimator: Estimator, case: Case) -> str:
    """The pairing an estimator runs with: its own where it fixes one (``sampled-exact``: batch),
    else the case's ``[estimators] pairing``."""
    return estimator.pairing or case.estimators.pairing


UNBIASED_BASELINES = ("none", "value", "leave-one-out")  # independent of the trajectory they weight


def configured(estimator: Estimator, case: Case, options: dict | None = None) -> Estimator:
    """The estimator with the case's ``returns``, ``baseline``, ``gae_lambda`` and ``dice_lambda`` where set, then
    a name's own options (:func:`mapg_verify.estimators.dispatch.split_name`) over them."""
    settings, changes = case.estimators, {}
    if settings.returns is not None:
        changes["convention"] = settings.returns
    if settings.baseline is not None:
        changes["baseline"] = changes["inner_baseline"] = settings.baseline
    if settings.gae_lambda is not None:
        changes["gae_lambda"] = settings.gae_lambda
    if settings.dice_lambda is not None:
        changes["dice_lambda"] = settings.dice_lambda
    for key, value in (options or {}).items():
        if key == "baseline":
            changes["baseline"] = changes["inner_baseline"] = value
        else:
            changes[OPTION_FIELDS[key]] = value
    return dataclasses.replace(estimator, **changes) if changes else estimator


OPTION_FIELDS = {
    "returns": "convention",
    "baseline": "baseline",
    "inner_baseline": "inner_baseline",
    "gae_lambda": "gae_lambda",
    "dice_lambda": "dice_lambda",
    "baseline_fit": "baseline_fit",
}
"""A name's options (``meta-mapg[baseline=value]``) and the fields they set."""


def outer_of(estimator: Estimator, case: Case) -> tuple[str, int]:
    """The outer term (``sampled`` or ``exact``) and outer batch an estimator runs with: one that
    fixes a pairing other than ``batch`` matches inner trajectory ``b`` with a sampled outer one
    (``K_out = K``, as the official code's last trajectories); the case's otherwise."""
    if estimator.pairing not in (None, "batch"):
        return "sampled", case.inner.batch
    return case.estimators.outer, case.estimators.outer_batch


def declared_terms(estimator: Estimator, case: Case) -> tuple[float, ...] | None:
    """The declared fingerprint on :data:`BASIS` for this case (see :class:`Estimator`): the current
    term's ``c`` becomes ``c w`` on ``current`` (``w`` from :func:`current_weight`), ``c w`` on
    ``current-dice`` with DiCE's tangent, and ``c`` on ``current-timestep`` with that pairing. None
    with from-t returns (off the basis on games of more than one step), an inner baseline (another
    inner loop) or an outer baseline that depends on the trajectory it weights."""
    if estimator.declared is None or (estimator.partial and case.inner.steps > 1):
        return None
    if estimator.convention != "from-zero" or estimator.inner_baseline != "none":
        return None
    if estimator.baseline not in UNBIASED_BASELINES:
        return None
    c, *rest = estimator.declared
    pairing = pairing_of(estimator, case)
    weight = c * current_weight(pairing, case.inner.batch)
    dice = weight if estimator.jacobian == "dice" else 0.0
    return (weight, dice, c if pairing == "timestep" else 0.0, *rest)


def current_weight(pairing: str, batch: int) -> float:
    """The current term's expectation in units of ``C`` for the ``batch`` pairing (1) and the
    ``trajectory`` pairing (``1/K``: one inner trajectory's score times its own outer return);
    ``1/K`` for the ``timestep`` pairing too, whose difference from it is a term of its own."""
    return 1.0 if pairing == "batch" else 1.0 / batch
