"""Plug-ins that misbehave, for the tests: a run must fail their checks and go on."""

import numpy as np


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
