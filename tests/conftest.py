"""Shared fixtures: small synthetic worlds, mpdta, and a simulated staggered panel."""

from __future__ import annotations

import moderndid
import pandas as pd
import pytest

from analysis.config import load_params
from analysis.simulate import simulate_world

from staggered_sim import simulate_staggered
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


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    """Callaway and Sant'Anna's mpdta (500 US counties, 2003-2007), as shipped in the moderndid wheel."""
    return moderndid.load_mpdta().to_pandas()


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    """A staggered panel with known, dynamic and heterogeneous effects (tests/staggered_sim.py)."""
    return simulate_staggered(n_cells=60, firms_per_cell=6, seed=3)
