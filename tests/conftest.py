"""Shared fixtures: small synthetic worlds, built once per test session."""

from __future__ import annotations

import pytest

from analysis.config import load_params
from analysis.simulate import simulate_world

from worlds import SMALL  # noqa: F401  (re-exported for fixtures)


@pytest.fixture(scope="session")
def small_params() -> dict:
    """The repository's small parameter set (config/small.yaml over default.yaml)."""
    return load_params("small")


@pytest.fixture(scope="session")
def small_world(small_params):
    """The small synthetic world with the set's seed."""
    return simulate_world(small_params)


@pytest.fixture(scope="session")
def default_world():
    """The default-size synthetic world (about 45,000 firms, 330,000 firm-years)."""
    return simulate_world(load_params("default"))
