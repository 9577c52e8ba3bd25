"""The firm bootstrap: reproducible, every stage re-run, and its standard error close to the
Monte Carlo spread of the estimator in the ACF (2015) design."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from reference.tfp_published import PRODEST_TABLE2

from analysis.tfp import MultipleRootsWarning, estimate_production

from acf_dgp import simulate_acf

KW = dict(unit="firm", time="year", progress=False)


def _est(df, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MultipleRootsWarning)
        return estimate_production(df, "y", "l", "k", "m", method=method, **KW, **kw)


def test_bootstrap_is_reproducible_and_reported():
    """Same seed, same draws; another seed, other draws. The tidy standard error is the
    standard deviation of the stored draws, the bootstrap is described in ``meta``, and
    returns to scale gets its standard error from the same draws."""
    df = simulate_acf(2, 200, seed=5)
    a = _est(df, "acf", n_boot=20, seed=1)
    b = _est(df, "acf", n_boot=20, seed=1)
    c = _est(df, "acf", n_boot=20, seed=2)
    assert a.draws.equals(b.draws) and not a.draws.equals(c.draws)
    assert a.draws.shape == (20, 2) and a.meta["failed_draws"] == 0
    np.testing.assert_allclose(a.se(), a.draws.std(ddof=1))
    assert "firm bootstrap, 20 draws" in a.meta["se"]
    rts = a.returns_to_scale
    assert rts["std_error"].iloc[0] == pytest.approx(a.draws.sum(axis=1).std(ddof=1))
    lo, hi = a.confint().loc["l"]
    assert lo < a.coef()["l"] < hi


@pytest.mark.parametrize("dgp, method", [(1, "acf"), (2, "lp")])
def test_bootstrap_se_close_to_monte_carlo_spread(dgp, method):
    """On 300 firms x 10 years the mean bootstrap standard error (100 draws, 4 samples) is
    within 30 % of the standard deviation of the estimates over 40 Monte Carlo samples:
    ACF in DGP1, LP in DGP2 (where each is consistent)."""
    est = [_est(simulate_acf(dgp, 300, seed=300 + r), method, se="none").coef().to_numpy() for r in range(40)]
    mc_sd = np.std(est, axis=0, ddof=1)
    boot_se = np.mean(
        [_est(simulate_acf(dgp, 300, seed=300 + r), method, n_boot=100, seed=r).se().to_numpy() for r in range(4)],
        axis=0,
    )
    np.testing.assert_allclose(boot_se / mc_sd, 1.0, atol=0.3)


@pytest.mark.slow
def test_bootstrap_se_matches_published_spread_at_acf_sample_size():
    """At the ACF sample size (1,000 firms x 10 years, DGP1) the mean bootstrap standard error
    of ACF (200 draws, 5 samples) is within 30 % of the Monte Carlo spread of 1,000
    replications published in prodest Table 2 (.009 for b_l, .015 for b_k)."""
    pub = PRODEST_TABLE2[(1, 0.0)]
    boot_se = np.mean(
        [_est(simulate_acf(1, 1000, seed=900 + r), "acf", n_boot=200, seed=r).se().to_numpy() for r in range(5)],
        axis=0,
    )
    np.testing.assert_allclose(boot_se / np.array([pub[1], pub[3]]), 1.0, atol=0.3)
