"""Which exact backend computes a game's values and derivatives: ``symbolic`` (closed forms,
:mod:`mapg_verify.exact.compiled`) or ``numeric`` (matrix calculus, :mod:`mapg_verify.exact.numeric`).

``auto`` picks ``symbolic`` where its closed forms are estimated to compile within
:data:`AUTO_SECONDS` (:func:`~mapg_verify.exact.compiled.compile_seconds`) and ``numeric``
beyond; differentiable games are given as formulas, so they are always ``symbolic``. Both
agree to rounding (``tests/test_numeric.py``) and both are checked by the same oracles.
"""

from __future__ import annotations

from mapg_verify.exact.compiled import CompiledValues, compile_game, compile_seconds, game_key
from mapg_verify.exact.numeric import numeric_values
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case

BACKENDS = {
    "auto": "symbolic where its closed forms compile within seconds (estimated), numeric beyond (the default)",
    "symbolic": "closed forms in symengine, differentiated and compiled; fastest per evaluation on small games",
    "numeric": "matrix calculus in float64 on any tabular game; no compile; exact up to rounding",
}

# seconds of estimated compile time (the estimate is rough: the IPD's is 7 s for 0.4 s measured, a
# dense 4-state softmax game's 4.7 s for 1.8 s, an 8-state one's 20 minutes for over one): on
# small games a symbolic evaluation is ten times faster than a numeric one
# (benchmarks/bench_numeric.py), worth a compile of seconds, not of minutes
AUTO_SECONDS = 10.0


def resolve_backend(game, policy, requested: str) -> str:
    """``symbolic`` or ``numeric`` for ``requested`` (a key of :data:`BACKENDS`)."""
    if requested != "auto":
        return requested
    if not isinstance(game, Game):
        return "symbolic"
    return "symbolic" if compile_seconds(game, policy) <= AUTO_SECONDS else "numeric"


_NUMERIC: dict[str, CompiledValues] = {}


def exact_values(game, policy, backend: str = "auto") -> CompiledValues:
    """The game's :class:`CompiledValues` from the backend ``backend`` resolves to, memoised per
    process by content."""
    if resolve_backend(game, policy, backend) == "symbolic":
        return compile_game(game, policy)
    key = game_key(game, policy)
    if key not in _NUMERIC:
        _NUMERIC[key] = numeric_values(game, policy)
    return _NUMERIC[key]


def case_values(case: Case) -> CompiledValues:
    """:func:`exact_values` for a case's game, policy and ``[game] backend``."""
    return exact_values(case.game, case.policy, case.backend)
