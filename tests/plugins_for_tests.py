"""Plug-ins for the tests: some misbehave (a run must fail their checks and go on), some are
cheap, correct numpy estimators for calibration and the inner-update check."""

import os
import sys
import time

import numpy as np

from mapg_verify.plugins import policy_rows, returns


def raises(inner, outer, theta, settings):
    raise RuntimeError("this estimator is broken")


def returns_nan(inner, outer, theta, settings):
    return np.full(np.shape(theta[settings.meta_agent]), np.nan)


def wrong_shape(inner, outer, theta, settings):
    return np.zeros(7)


def biased_sometimes(inner, outer, theta, settings):
    """Finite and well shaped, but NaN on one particular batch: found when enumerating."""
    if inner and np.all(inner[0].actions == 1):
        return np.full(np.shape(theta[settings.meta_agent]), np.nan)
    return np.zeros(np.shape(theta[settings.meta_agent]))


def _scores(params, batch, settings, agent: int) -> np.ndarray:
    """``(K, H, S)``: ``grad log pi^k(a_t | s_t)`` of a sigmoid table ``params[k]`` of shape ``(S,)``."""
    rows = policy_rows(batch, settings, agent)
    p0 = 1.0 / (1.0 + np.exp(-np.asarray(params[agent])[rows]))
    value = np.where(batch.actions[..., agent] == 0, 1.0 - p0, -p0)
    scores = np.zeros((*rows.shape, np.size(params[agent])))
    np.put_along_axis(scores, rows[..., None], value[..., None], axis=-1)
    return scores


def _reinforce(
    params, batch, settings, agent: int, baseline: bool = False, convention: str = "from-zero"
) -> np.ndarray:
    """``(1/K) sum_b sum_t score_t (G_t - b_t)``, ``b_t`` the other trajectories' mean ``G_t`` or 0,
    the returns in ``convention``."""
    to_go = returns(batch, settings, agent, convention)
    if baseline:
        to_go = to_go - (to_go.sum(axis=0, keepdims=True) - to_go) / (len(to_go) - 1)
    return np.einsum("khs,kh->s", _scores(params, batch, settings, agent), to_go) / len(to_go)


def adapted_loo(inner, outer, theta, settings):
    """REINFORCE at ``phi_L`` with a leave-one-out baseline (sigmoid policies): unbiased for the
    fingerprint's ``adapted`` term, and not equal, batch by batch, to the plain REINFORCE gradient."""
    batch = outer[-1]
    return _reinforce(batch.phi, batch, settings, settings.meta_agent, baseline=True)


def _with_phis(inner, outer, theta, settings, factor: float):
    phi, phis = [np.asarray(t, dtype=float) for t in theta], []
    for batch in inner:
        phi = [
            p + factor * a * _reinforce(phi, batch, settings, k)
            for k, (p, a) in enumerate(zip(phi, settings.alpha, strict=True))
        ]
        phis.append(phi)
    return _reinforce(outer[-1].phi, outer[-1], settings, settings.meta_agent), phis


def adapted_with_phis(inner, outer, theta, settings):
    """REINFORCE at ``phi_L``, returning the ``phi_l`` of its own (model S) inner update."""
    return _with_phis(inner, outer, theta, settings, 1.0)


def adapted_with_wrong_phis(inner, outer, theta, settings):
    """As :func:`adapted_with_phis`, with an inner update at twice the case's rates."""
    return _with_phis(inner, outer, theta, settings, 2.0)


def exits(inner, outer, theta, settings):
    sys.exit(0)


def interrupts(inner, outer, theta, settings):
    raise KeyboardInterrupt


def hangs(inner, outer, theta, settings):
    time.sleep(3600)


def adapted_in_float32(inner, outer, theta, settings):
    """:func:`adapted_with_phis` computed in float32: its estimate and phis come back as float32."""
    estimate, phis = adapted_with_phis(inner, outer, theta, settings)
    return np.float32(estimate), [[np.float32(p) for p in phi] for phi in phis]


def adapted_with_a_float32_constant(inner, outer, theta, settings):
    """:func:`adapted_with_phis` in float64, its phis rounded through a float32 constant (as the
    official code's float32 ridge does): float64 arrays off by float32 rounding."""
    estimate, phis = adapted_with_phis(inner, outer, theta, settings)
    nudge = 1.0 + float(np.float32(1.0 + 1e-9)) - 1.0 + 3e-9  # what a float32 constant leaves behind
    return estimate, [[p * nudge for p in phi] for phi in phis]


def declared_float32(inner, outer, theta, settings):
    return adapted_with_a_float32_constant(inner, outer, theta, settings)


declared_float32.precision = "float32"


def ends_its_process(inner, outer, theta, settings):
    os._exit(0)
