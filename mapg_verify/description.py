"""The case as the results file names and describes it: its header, with the game's sizes and
payoffs, the inner loop and estimator settings, and each value ``V^k`` in LaTeX where the closed
form is small (what the report shows of a case)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import sympy

from mapg_verify.exact.symbolic import symbolic_values
from mapg_verify.problem.game import Game
from mapg_verify.spec.case import Case, loop_settings


def header(case: Case) -> dict:
    """The case as the results file names and describes it."""
    return {
        "name": case.name,
        "path": case.path,
        "game": case.game.name,
        "policy": case.policy.name if case.policy else None,
        "backend": case.backend,
        "theta": [np.asarray(part).tolist() for part in case.theta],
        **describe_case(case),
    }


LATEX_LIMIT = 400  # characters: larger closed forms are not shown


# operations: 2x2 one-shot games count 23 to 39, and simplify takes 0.1-0.4 s there; 2x3 softmax games
# (59-77) take 0.8-1.3 s and their LaTeX is too long to show anyway; some larger ones take minutes
SIMPLIFY_LIMIT = 40


def describe_case(case: Case) -> dict:
    """What the report shows of a case's game and settings: sizes, payoffs, conventions, the inner
    loop and estimator settings, and each value ``V^k`` in LaTeX where the closed form is small
    (one-shot and differentiable games)."""
    game = case.game
    info: dict = {"name": game.name, "description": " ".join(game.description.split())}
    latex = None
    if isinstance(game, Game):
        info |= {
            "states": game.n_states,
            "actions": list(game.n_actions),
            "gamma": game.gamma,
            "horizon": "inf" if game.infinite else int(game.horizon),
        }
        if game.rewards.size <= 64:
            info["rewards"] = game.rewards.tolist()
        if game.n_states == 1 and not game.infinite and game.horizon == 1:
            latex = _latex(case)
    else:
        latex = _latex(case)
    inner, estimators = case.inner, case.estimators
    return {
        "game": info,
        "value_latex": latex,
        "inner": {
            "models": list(inner.models),
            **loop_settings(inner),
        },
        "estimators": {
            "names": list(estimators.names),
            "samples": estimators.samples,
            "outer": estimators.outer,
            "pairing": estimators.pairing,
            "outer_batch": estimators.outer_batch,
            "returns": estimators.returns,
            "baseline": estimators.baseline,
            "gae_lambda": estimators.gae_lambda,
            "dice_lambda": estimators.dice_lambda,
            "plugin_calls": estimators.plugin_calls,
            "plugin_timeout": estimators.plugin_timeout,
        },
        "checks": asdict(case.checks),
    }


def _latex(case: Case) -> list[str] | None:
    """Each value typeset, simplified by sympy only when small: ``simplify`` on a one-shot 3x3
    softmax game's value (about 100 operations) runs for minutes."""
    values = symbolic_values(case.game, case.policy).to_sympy()
    shown = [
        sympy.latex(sympy.simplify(value) if sympy.count_ops(value) <= SIMPLIFY_LIMIT else value) for value in values
    ]
    return shown if all(len(text) <= LATEX_LIMIT for text in shown) else None
