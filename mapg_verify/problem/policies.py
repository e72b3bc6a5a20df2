"""Tabular policies: ``softmax`` (``theta^k[s]`` are logits) and ``sigmoid`` (two actions).

- softmax: ``pi(a|s) = exp(theta[s, a]) / sum_b exp(theta[s, b])``,
  ``d log pi(a|s) / d theta[s] = e_a - pi(.|s)``, Hessian ``-(diag(pi) - pi pi^T)``;
- sigmoid: ``pi(0|s) = sigmoid(theta[s])``, ``pi(1|s) = sigmoid(-theta[s])``,
  ``d log pi(0|s)/d theta[s] = pi(1|s)``, ``d log pi(1|s)/d theta[s] = -pi(0|s)``,
  second derivative ``-pi(0|s) pi(1|s)`` for both actions.

Numeric forms use ``autograd.numpy`` so that the autograd oracle can
differentiate them; log-probabilities go through log-sum-exp and softplus so
they stay finite for ``|theta|`` far beyond 50.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
import symengine as se


def _softmax_log_probs(theta):
    top = anp.max(theta, axis=-1, keepdims=True)
    shifted = theta - top
    return shifted - anp.log(anp.sum(anp.exp(shifted), axis=-1, keepdims=True))


def _sigmoid_log_probs(theta):
    both = anp.stack([-theta, theta], axis=-1)  # log pi(0) = -softplus(-theta), log pi(1) = -softplus(theta)
    return -anp.logaddexp(0.0, both)


def _softmax_symbolic(row: Sequence[se.Basic]) -> list[se.Basic]:
    return [1 / sum((se.exp(b - a) for b in row), se.Integer(0)) for a in row]


def _sigmoid_symbolic(x: se.Basic) -> list[se.Basic]:
    return [1 / (1 + se.exp(-x)), 1 / (1 + se.exp(x))]


def _softmax_scores(probs: np.ndarray) -> np.ndarray:
    eye = np.eye(probs.shape[-1])
    return eye - probs[..., None, :]


def _sigmoid_scores(probs: np.ndarray) -> np.ndarray:
    return np.stack([probs[..., 1], -probs[..., 0]], axis=-1)


def _softmax_hessians(probs: np.ndarray) -> np.ndarray:
    outer = probs[..., :, None] * probs[..., None, :]
    hessian = outer - probs[..., :, None] * np.eye(probs.shape[-1])
    return np.broadcast_to(hessian[..., None, :, :], (*probs.shape, probs.shape[-1], probs.shape[-1]))


def _sigmoid_hessians(probs: np.ndarray) -> np.ndarray:
    curvature = -probs[..., 0] * probs[..., 1]
    return np.stack([curvature, curvature], axis=-1)


@dataclass(frozen=True)
class Policy:
    """A tabular policy kind: parameter shapes, probabilities, scores and score Hessians.

    Shapes for ``theta`` of shape ``(|S|, *row)`` and ``|A|`` actions:
    ``log_probs -> (|S|, |A|)``, ``scores -> (|S|, |A|, *row)``,
    ``score_hessians -> (|S|, |A|, *row, *row)``; derivatives are of
    ``log pi(a|s)`` with respect to the row ``theta[s]``.
    """

    name: str
    summary: str
    _log_probs: Callable
    _symbolic: Callable
    _scores: Callable
    _hessians: Callable
    two_actions_only: bool

    def shape(self, n_states: int, n_actions: int) -> tuple[int, ...]:
        return (n_states,) if self.two_actions_only else (n_states, n_actions)

    def log_probs(self, theta):
        return self._log_probs(theta)

    def probs(self, theta):
        return anp.exp(self._log_probs(theta))

    def symbolic_probs(self, row) -> list[se.Basic]:
        """``pi(.|s)`` as symengine expressions of one parameter row (a symbol or a list)."""
        return self._symbolic(row)

    def scores(self, theta: np.ndarray) -> np.ndarray:
        return self._scores(np.exp(self._log_probs(np.asarray(theta, dtype=float))))

    def score_hessians(self, theta: np.ndarray) -> np.ndarray:
        return self._hessians(np.exp(self._log_probs(np.asarray(theta, dtype=float))))

    def derivatives(self, theta: np.ndarray, order: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``probs``, ``scores`` and (at ``order`` 2) ``score_hessians``, from one evaluation of the
        probabilities."""
        probs = np.exp(self._log_probs(np.asarray(theta, dtype=float)))
        return probs, self._scores(probs), self._hessians(probs) if order >= 2 else None


POLICIES: dict[str, Policy] = {
    "softmax": Policy(
        "softmax",
        "logits per state and action, any number of actions",
        _softmax_log_probs,
        _softmax_symbolic,
        _softmax_scores,
        _softmax_hessians,
        False,
    ),
    "sigmoid": Policy(
        "sigmoid",
        "one logit per state for the probability of action 0; two actions only",
        _sigmoid_log_probs,
        _sigmoid_symbolic,
        _sigmoid_scores,
        _sigmoid_hessians,
        True,
    ),
}
