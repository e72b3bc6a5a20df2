"""mapg_verify: exact ground truth and statistical checks for multi-agent meta-policy gradients.

The layers, lowest first (each imports only from those below it; see docs/ARCHITECTURE.md):
``problem`` (games, policies, parameters), ``spec`` (the case record), ``exact`` (symbolic
values, enumeration, meta-gradients), ``oracles``, ``estimators``, ``checks``, then the
application: ``casefile``, ``pipeline``, ``results``, ``figures``, ``report``, ``paper``,
``strategies``, ``console``, ``verify``, ``cli``. The names below are the public API.
"""

from mapg_verify.casefile.reader import load_case
from mapg_verify.checks.statistics import mean_test
from mapg_verify.estimators.plugins import draw_plugin, plugin_expectation
from mapg_verify.estimators.records import Batch, Settings
from mapg_verify.exact.backend import exact_values
from mapg_verify.exact.compiled import CompiledValues, compile_game
from mapg_verify.exact.metagradient import (
    LolaGradient,
    MetaGradient,
    expected_update,
    lola,
    meta_gradients,
    sampled_update,
)
from mapg_verify.problem.catalog import GAMES, build_game
from mapg_verify.problem.errors import InputError
from mapg_verify.problem.game import DifferentiableGame, Game, make_game
from mapg_verify.problem.policies import POLICIES
from mapg_verify.spec.case import Case
from mapg_verify.verify import EstimatorCheck, check_estimator

__all__ = [
    "GAMES",
    "POLICIES",
    "Batch",
    "Case",
    "CompiledValues",
    "DifferentiableGame",
    "EstimatorCheck",
    "Game",
    "InputError",
    "LolaGradient",
    "MetaGradient",
    "Settings",
    "build_game",
    "check_estimator",
    "compile_game",
    "draw_plugin",
    "exact_values",
    "expected_update",
    "load_case",
    "lola",
    "make_game",
    "mean_test",
    "meta_gradients",
    "plugin_expectation",
    "sampled_update",
]
