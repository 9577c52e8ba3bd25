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
    ClusterScores,
    SmallSample,
    TestResult,
    cluster_codes,
    cluster_se_from_if,
    cluster_sums,
    multiplier_bootstrap,
    ols_cluster_scores,
    vcov_from_if,
    wald_test,
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


# --- few clusters: CR2, Bell-McCaffrey, HTZ, wild bootstrap ------------------------------------
# References:
# * with every observation its own cluster, CR2 is HC2 (MacKinnon and White 1985); statsmodels'
#   ``get_robustcov_results("HC2")`` is the reference;
# * for a binary regressor (a difference of two means) with singleton clusters the
#   Bell-McCaffrey degrees of freedom under the homoskedastic working model are
#   Welch-Satterthwaite's with equal variances (Imbens and Kolesar 2016, Section 3):
#   (1/N1 + 1/N0)^2 / (1/(N1^2 (N1-1)) + 1/(N0^2 (N0-1)));
# * for the mean of G equal-sized clusters the CR2 variance is the sample variance of the cluster
#   means over G and the degrees of freedom are G - 1 (the t test on cluster means);
# * HTZ with one restriction is the Bell-McCaffrey t test (F(1, df) = t(df)^2, Pustejovsky and
#   Tipton 2018, Section 3).


def _ols(X, y, cluster, w=None):
    ww = np.ones(len(y)) if w is None else w
    b = np.linalg.lstsq(X * np.sqrt(ww)[:, None], y * np.sqrt(ww), rcond=None)[0]
    return ols_cluster_scores(X, y - X @ b, cluster, weights=w, estimate=b)


def test_cr2_does_not_depend_on_the_row_order():
    """Rows sorted by cluster (the small-sample designs' fast path, cluster blocks as slices) and the same rows
    shuffled (blocks gathered) give the same CR2 covariance and Bell-McCaffrey df (1e-10), weighted or not."""
    rng = np.random.default_rng(11)
    cl = np.sort(rng.integers(0, 15, 300))
    X = np.column_stack([np.ones(300), rng.normal(size=300), (cl < 4).astype(float)])
    y = X @ [1.0, 0.5, 0.2] + rng.normal(size=15)[cl] + rng.normal(size=300)
    w = rng.uniform(0.5, 2.0, 300)
    perm = rng.permutation(300)
    L = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    for weights in (None, w):
        a = SmallSample(_ols(X, y, cl, weights), L)
        b = SmallSample(_ols(X[perm], y[perm], cl[perm], None if weights is None else weights[perm]), L)
        np.testing.assert_allclose(a.vcov, b.vcov, rtol=1e-10)
        np.testing.assert_allclose(a.df, b.df, rtol=1e-10)


def test_cr2_with_singleton_clusters_is_hc2(ols_problem):
    """CR2 with one observation per cluster equals statsmodels' HC2 covariance."""
    fit, _, _ = ols_problem
    X, y = fit.model.exog, fit.model.endog
    ss = SmallSample(_ols(X, y, np.arange(len(y))), np.eye(X.shape[1]))
    np.testing.assert_allclose(ss.vcov, fit.get_robustcov_results("HC2").cov_params(), rtol=1e-10)


def test_bell_mccaffrey_df_of_a_difference_in_means_is_welch_satterthwaite():
    """With one observation per cluster, Bell-McCaffrey df of a difference in means equal Welch-Satterthwaite's formula."""
    rng = np.random.default_rng(4)
    n1, n0 = 7, 40
    d = np.r_[np.ones(n1), np.zeros(n0)]
    X = np.column_stack([np.ones(n1 + n0), d])
    ss = SmallSample(_ols(X, rng.normal(size=n1 + n0), np.arange(n1 + n0)), np.array([[0.0, 1.0]]))
    expected = (1 / n1 + 1 / n0) ** 2 / (1 / (n1**2 * (n1 - 1)) + 1 / (n0**2 * (n0 - 1)))
    assert ss.df[0] == pytest.approx(expected, rel=1e-10)


def test_cr2_mean_of_equal_clusters_is_the_t_test_on_cluster_means():
    """With equal clusters, CR2 on a mean reproduces the classical t test on the cluster means (SE and df G - 1)."""
    rng = np.random.default_rng(5)
    G, m = 9, 4
    cl = np.repeat(np.arange(G), m)
    y = rng.normal(size=G)[cl] + rng.normal(size=G * m)
    ss = SmallSample(_ols(np.ones((G * m, 1)), y, cl), np.array([[1.0]]))
    means = y.reshape(G, m).mean(1)
    assert ss.vcov[0, 0] == pytest.approx(means.var(ddof=1) / G, rel=1e-10)
    assert ss.df[0] == pytest.approx(G - 1, rel=1e-10)


def test_diagonal_and_full_forms_agree_and_htz_with_one_restriction_is_bm_t():
    """A difference of cluster-nested group means, written as diagonal ClusterScores and as a regression."""
    rng = np.random.default_rng(6)
    sizes = np.array([30, 3, 3, 8, 12, 5])
    cl = np.concatenate([np.repeat(np.arange(6), sizes), 6 + np.repeat(np.arange(60), 3)])
    d = (cl < 6).astype(float)
    y = rng.normal(size=len(d)) + 0.3 * d
    X = np.column_stack([d, 1 - d])
    full = _ols(X, y, cl)
    W = X.sum(0)
    gram = np.column_stack([np.bincount(cl, weights=d), np.bincount(cl, weights=1 - d)])
    diag = ClusterScores(scores=full.scores, bread=1 / W, gram=gram, estimate=full.estimate)
    L = np.array([[1.0, -1.0], [1.0, 0.0]])
    a, b = SmallSample(full, L), SmallSample(diag, L)
    np.testing.assert_allclose(a.vcov, b.vcov, rtol=1e-10)
    np.testing.assert_allclose(a.df, b.df, rtol=1e-8)
    F, df1, df2, p = a.htz([0])
    t = a.estimate[0] / a.std_error[0]
    assert df1 == 1 and df2 == pytest.approx(a.df[0]) and F == pytest.approx(t**2)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), a.df[0]))


def test_cr2_is_unbiased_under_the_working_model_where_cr0_is_not():
    """Both variances are quadratic forms ``y' A y`` of the outcome, so their expectation under iid
    unit-variance errors is ``tr A = sum_i V(e_i)`` (the unit vectors as outcomes): exact, no Monte
    Carlo. CR2's equals the true variance of the estimate; CR0's is at least 20 % smaller (one
    cluster holds half the treated observations)."""
    sizes = np.array([20, 4, 4, 4, 4, 4])
    cl = np.concatenate([np.repeat(np.arange(6), sizes), 6 + np.arange(80)])
    d = (cl < 6).astype(float)
    X = np.column_stack([d, 1 - d])
    L = np.array([[1.0, -1.0]])
    true = 1 / d.sum() + 1 / (1 - d).sum()
    e2 = e0 = 0.0
    for i in range(len(d)):
        cs = _ols(X, np.eye(len(d))[i], cl)
        e2 += SmallSample(cs, L).vcov[0, 0]
        e0 += float(((cs.scores @ L.T) ** 2).sum())
    assert e2 == pytest.approx(true, rel=1e-10)
    assert e0 < 0.8 * true


def test_one_cluster_alone_carrying_a_parameter_gives_nan():
    """A group made of a single cluster has no estimable variance: NaN standard error and df."""
    cl = np.r_[np.zeros(5), 1 + np.arange(30)]
    d = (cl == 0).astype(float)
    X = np.column_stack([d, 1 - d])
    ss = SmallSample(_ols(X, np.random.default_rng(1).normal(size=35), cl), np.array([[1.0, -1.0], [0.0, 1.0]]))
    assert np.isnan(ss.std_error[0]) and np.isnan(ss.df[0])
    assert np.isfinite(ss.std_error[1]) and ss.df[1] == pytest.approx(29, rel=1e-8)


def test_wild_bootstrap_agrees_with_t_when_clusters_are_many_and_equal():
    """With 200 equal clusters the bootstrap-t p-value of one coefficient is close to the t test's,
    its |t| quantile close to t(df)'s (Monte Carlo error of 1999 draws: about 0.02 on p)."""
    rng = np.random.default_rng(10)
    G, m = 200, 3
    cl = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    X = np.column_stack([np.ones(G * m), x])
    y = 0.07 * x + rng.normal(size=G)[cl] + rng.normal(size=G * m)
    ss = SmallSample(_ols(X, y, cl), np.array([[0.0, 1.0]]))
    boot = ss.wild_bootstrap(n_boot=1999, seed=3, progress=False)
    t = ss.estimate[0] / ss.std_error[0]
    assert boot.stat == pytest.approx(t**2)
    assert boot.p_value == pytest.approx(2 * stats.t.sf(abs(t), ss.df[0]), abs=0.04)
    assert boot.crit[0] == pytest.approx(stats.t.ppf(0.975, ss.df[0]), abs=0.12)
    again = ss.wild_bootstrap(n_boot=1999, seed=3, progress=False)
    assert again.p_value == boot.p_value


def test_test_result_repr_and_chi2_wald():
    """A Wald test of independent coefficients is the sum of squared t statistics, against chi2(k); the repr says so."""
    res = wald_test(np.array([1.0, 2.0]), np.diag([1.0, 4.0]), null="a = b = 0")
    assert isinstance(res, TestResult) and res.stat == pytest.approx(2.0) and res.df == 2
    assert res.p_value == pytest.approx(stats.chi2.sf(2.0, 2))
    assert "a = b = 0" in repr(res) and "chi2(2)" in repr(res) and "<table" in res._repr_html_()
    assert res.to_dict()["method"] == "chi2"
