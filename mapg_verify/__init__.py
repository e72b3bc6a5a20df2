"""mapg_verify: exact ground truth and statistical checks for multi-agent meta-policy gradients."""

from .cases import Case, load_case
from .compiled import CompiledValues, compile_game
from .errors import InputError
from .game import DifferentiableGame, Game, make_game
from .games import GAMES, build_game
from .policies import POLICIES

__all__ = [
    "GAMES",
    "POLICIES",
    "Case",
    "CompiledValues",
    "DifferentiableGame",
    "Game",
    "InputError",
    "build_game",
    "compile_game",
    "load_case",
    "make_game",
]
