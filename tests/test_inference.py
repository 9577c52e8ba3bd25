"""Tests of ``analysis.inference``: variance from influence functions and the multiplier bootstrap.

References
----------
* The influence function of OLS is ``psi_i = n (X'X)^{-1} x_i e_i`` (``beta_hat - beta ~=
  sum_i psi_i / n``), so the cluster-robust variance from it must equal the textbook sandwich;
  statsmodels 0.15 ``OLS(...).fit().get_robustcov_results(...)`` is the reference ("HC0",
  "cluster" with and without its small-sample correction
  ``G / (G - 1) * (n - 1) / (n - k)``).
* A multiplier bootstrap of an asymptotically linear estimator reproduces its asymptotic
  variance (Callaway and Sant'Anna 2021, Theorem 3); the uniform critical value for ``k``
  independent standard normal t-statistics is ``Phi^{-1}((1 + (1 - alpha)^(1/k)) / 2)``
  (Sidak), and for ``k`` identical ones it is the pointwise ``Phi^{-1}(1 - alpha/2)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.inference import (
    cluster_codes,
    cluster_se_from_if,
    cluster_sums,
    multiplier_bootstrap,
    vcov_from_if,
)


@pytest.fixture(scope="module")
def ols_problem():
    """A regression with cluster-correlated errors, its statsmodels fit and OLS influence function."""
    rng = np.random.default_rng(20240601)
    n, n_clusters = 600, 40
    groups = rng.integers(0, n_clusters, n)
    x = sm.add_constant(rng.normal(size=(n, 2)) + rng.normal(size=(n_clusters, 2))[groups])
    y = x @ np.array([1.0, 2.0, -1.0]) + rng.normal(size=n) + rng.normal(size=n_clusters)[groups]
    fit = sm.OLS(y, x).fit()
    psi = n * (x * fit.resid[:, None]) @ np.linalg.inv(x.T @ x)
    return fit, psi, groups


def test_vcov_equals_hc0_sandwich(ols_problem):
    """Without clusters, (1/n^2) sum psi psi' is the HC0 sandwich of statsmodels."""
    fit, psi, _ = ols_problem
    expected = fit.get_robustcov_results("HC0").cov_params()
    np.testing.assert_allclose(vcov_from_if(psi), expected, rtol=1e-12, atol=1e-15)


def test_vcov_equals_cluster_sandwich(ols_problem):
    """With clusters, the variance is the Liang-Zeger sandwich (statsmodels, no correction)."""
    fit, psi, groups = ols_problem
    expected = fit.get_robustcov_results("cluster", groups=groups, use_correction=False).cov_params()
    np.testing.assert_allclose(vcov_from_if(psi, groups), expected, rtol=1e-12, atol=1e-15)


def test_vcov_cr1_correction(ols_problem):
    """``df_correction=True`` multiplies by G/(G-1): statsmodels' CR1 is that times (n-1)/(n-k)."""
    fit, psi, groups = ols_problem
    n, k = psi.shape
    expected = fit.get_robustcov_results("cluster", groups=groups, use_correction=True).cov_params()
    ours = vcov_from_if(psi, groups, df_correction=True) * (n - 1) / (n - k)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


def test_se_is_sqrt_of_vcov_diagonal(ols_problem):
    """``cluster_se_from_if`` is the square root of the diagonal of ``vcov_from_if``."""
    _, psi, groups = ols_problem
    for cl in (None, groups):
        np.testing.assert_allclose(cluster_se_from_if(psi, cl), np.sqrt(np.diag(vcov_from_if(psi, cl))), rtol=1e-13)


def test_sum_convention_via_n():
    """``n=1`` reads psi in the sum convention: V = sum psi psi' (here 1 + 4)."""
    psi = np.array([1.0, -2.0])
    assert vcov_from_if(psi, n=1)[0, 0] == pytest.approx(5.0)
    assert vcov_from_if(psi)[0, 0] == pytest.approx(5.0 / 4)


def test_cluster_sums_and_codes():
    """Cluster sums add rows of the same label, in order of first appearance."""
    psi = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]])
    np.testing.assert_allclose(cluster_sums(psi, ["b", "a", "b"]), [[5.0, 50.0], [2.0, 20.0]])
    codes, g = cluster_codes(np.array([3, 3, 7]), 3)
    assert g == 2 and codes.tolist() == [0, 0, 1]


def test_bad_cluster_input():
    """Cluster labels of the wrong length or with missing values are rejected."""
    with pytest.raises(ValueError, match="labels"):
        vcov_from_if(np.ones((3, 1)), [1, 2])
    with pytest.raises(ValueError, match="missing"):
        vcov_from_if(np.ones((3, 1)), np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="n_boot"):
        multiplier_bootstrap(np.ones((3, 1)), n_boot=1)


def test_bootstrap_se_matches_analytic_and_crit_is_sidak():
    """Bootstrap SEs are within 6% of the analytic ones; for 5 independent columns the uniform
    critical value is near Sidak's 2.57 (Monte Carlo error of 4999 draws: about 0.04)."""
    rng = np.random.default_rng(7)
    psi = rng.normal(size=(4000, 5)) * np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    se, crit = multiplier_bootstrap(psi, n_boot=4999, seed=11)
    np.testing.assert_allclose(se, cluster_se_from_if(psi), rtol=0.06)
    sidak = stats.norm.ppf((1 + 0.95 ** (1 / 5)) / 2)
    assert crit == pytest.approx(sidak, abs=0.1)
    assert crit > stats.norm.ppf(0.975)


def test_bootstrap_crit_pointwise_for_identical_columns():
    """For perfectly correlated columns the uniform band is the pointwise one (1.96 +- MC error)."""
    rng = np.random.default_rng(3)
    col = rng.normal(size=(3000, 1))
    _, crit = multiplier_bootstrap(np.hstack([col, 2 * col, -col]), n_boot=4999, seed=5)
    assert crit == pytest.approx(1.96, abs=0.08)


def test_cluster_bootstrap_tracks_clustered_variance():
    """With a common shock per cluster, one multiplier per cluster reproduces the clustered SE
    (within 10%), which is far above the unit-level SE the cluster-blind bootstrap gives."""
    rng = np.random.default_rng(9)
    n_clusters, size = 200, 20
    groups = np.repeat(np.arange(n_clusters), size)
    psi = rng.normal(size=(n_clusters, 2))[groups] + rng.normal(size=(n_clusters * size, 2))
    se_cl, _ = multiplier_bootstrap(psi, groups, n_boot=2999, seed=2)
    analytic_cl = cluster_se_from_if(psi, groups)
    np.testing.assert_allclose(se_cl, analytic_cl, rtol=0.10)
    assert (analytic_cl > 3 * cluster_se_from_if(psi)).all()


def test_bootstrap_reproducible_and_degenerate_columns():
    """Same seed, same output; a zero column gets a NaN SE and does not enter the critical value."""
    rng = np.random.default_rng(1)
    psi = np.column_stack([rng.normal(size=500), np.zeros(500)])
    a = multiplier_bootstrap(psi, n_boot=199, seed=4, multipliers="rademacher")
    b = multiplier_bootstrap(psi, n_boot=199, seed=4, multipliers="rademacher")
    np.testing.assert_array_equal(a.se, b.se)
    assert a.crit == b.crit
    assert np.isnan(a.se[1]) and np.isfinite(a.se[0])
    c = multiplier_bootstrap(psi, n_boot=199, seed=5)
    assert c.se[0] != a.se[0]
