"""mapg_verify: exact ground truth and statistical checks for multi-agent meta-policy gradients."""

from .cases import Case, load_case
from .compiled import CompiledValues, compile_game
from .errors import InputError
from .game import DifferentiableGame, Game, make_game
from .games import GAMES, build_game
from .metagradient import LolaGradient, MetaGradient, expected_update, lola, meta_gradients, sampled_update
from .policies import POLICIES

__all__ = [
    "GAMES",
    "POLICIES",
    "Case",
    "CompiledValues",
    "DifferentiableGame",
    "Game",
    "InputError",
    "LolaGradient",
    "MetaGradient",
    "build_game",
    "compile_game",
    "expected_update",
    "load_case",
    "lola",
    "make_game",
    "meta_gradients",
    "sampled_update",
]
