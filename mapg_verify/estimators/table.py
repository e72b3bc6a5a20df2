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

    @property
    def partial(self) -> bool:
        return self.own != self.peers

    @property
    def plain_inner_loop(self) -> bool:
        """Whether its batches are model S's inner loop unchanged (what plug-ins receive)."""
        return self.inner and self.self_learns and self.returns == "reward-to-go"


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
}


FROZEN = Estimator("adapted gradient", "none", current=False, own=False, peers=False)


"""No update differentiated: its expectation is ``E[grad_{phi^i} V^i(phi_L)]``, the fingerprint's
``adapted`` term; its draws are the plain inner loop (what plug-ins receive)."""


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


def declared_terms(estimator: Estimator, case: Case) -> tuple[float, ...] | None:
    """The declared fingerprint on :data:`BASIS` for this case (see :class:`Estimator`): the current
    term's ``c`` becomes ``c w`` on ``current`` (``w`` from :func:`current_weight`), ``c w`` on
    ``current-dice`` with DiCE's tangent, and ``c`` on ``current-timestep`` with that pairing."""
    if estimator.declared is None or (estimator.partial and case.inner.steps > 1):
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
