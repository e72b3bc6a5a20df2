"""The plug-in API, where plug-in authors import it: the records a plug-in receives
(:class:`Batch`, :class:`Settings`), the helpers of :mod:`mapg_verify.estimators.authoring`
(log-probabilities, scores, policy rows, returns in both conventions), and the functions that
draw and enumerate a plug-in (:mod:`mapg_verify.estimators.plugins`)."""

from mapg_verify.estimators.authoring import (
    CONVENTIONS,
    discounts,
    joint_log_probs,
    log_probs,
    policy_rows,
    returns,
    scores,
)
from mapg_verify.estimators.plugins import draw_plugin, plugin_expectation
from mapg_verify.estimators.records import Batch, Settings

__all__ = [
    "CONVENTIONS",
    "Batch",
    "Settings",
    "discounts",
    "draw_plugin",
    "joint_log_probs",
    "log_probs",
    "plugin_expectation",
    "policy_rows",
    "returns",
    "scores",
]
