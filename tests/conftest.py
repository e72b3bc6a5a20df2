"""Shared fixtures: compiled games are cached per process by ``compile_game``."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)
