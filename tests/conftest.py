"""Shared fixtures and Hypothesis profiles: ``ci`` (default, fast) and ``thorough``,
chosen by the environment variable ``MAPG_HYPOTHESIS_PROFILE``."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("MAPG_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


@pytest.fixture(scope="session")
def tiny_result():
    """The gold case's result (``tests/gold/tiny.toml``, seed 0), estimators and all."""
    from pathlib import Path

    from mapg_verify import pipeline
    from mapg_verify.casefile.reader import load_case

    return pipeline.evaluate(load_case(Path(__file__).resolve().parent / "gold" / "tiny.toml"), seed=0)
