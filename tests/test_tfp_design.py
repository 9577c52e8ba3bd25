"""Designs with dummy blocks (analysis.tfp.design) equal their dense matrices.

Wooldridge's GMM keeps its year and industry dummies as codes so that a census-size panel does
not hold 40 dense 0/1 columns per equation. Checked here against the dense matrices built with
numpy (the reference is the plain matrix algebra on the same random data), and the GMM estimate
against the same estimator with dense dummies.
"""

import numpy as np
import pandas as pd
import pytest

from analysis.tfp import estimate_production
from analysis.tfp.design import Design, Dummies, cluster_meat

from acf_dgp import simulate_acf


@pytest.fixture()
def designs():
    """Two random designs with dense and dummy blocks in mixed order."""
    rng = np.random.default_rng(0)
    n = 600
    year, group = rng.integers(0, 4, n), rng.integers(0, 5, n)
    X, m = rng.normal(size=(n, 3)), rng.normal(size=(n, 1))
    Z = Design([np.ones((n, 1)), Dummies(year, 4), Dummies(group, 5), m, X])
    A = Design([X, Dummies(group, 5), np.ones((n, 1)), Dummies(year, 4)])
    return rng, n, Z, A


def test_products_equal_the_dense_algebra(designs):
    """Z c, Z'v, Z'V and Z'A equal the products of the dense matrices to 1e-12."""
    rng, n, Z, A = designs
    Zd, Ad = Z.dense(), A.dense()
    assert Zd.shape == (n, 1 + 3 + 4 + 1 + 3)
    v, V, c = rng.normal(size=n), rng.normal(size=(n, 2)), rng.normal(size=Z.width)
    np.testing.assert_allclose(Z.tdot(v), Zd.T @ v, atol=1e-12)
    np.testing.assert_allclose(Z.tdot(V), Zd.T @ V, atol=1e-12)
    np.testing.assert_allclose(Z.cross(A), Zd.T @ Ad, atol=1e-12)
    np.testing.assert_allclose(Z.dot(c), Zd @ c, atol=1e-12)


def test_cluster_meat_equals_the_sum_of_firm_outer_products(designs):
    """H'H from firm sums of z * r, with sparse dummy blocks, equals the dense computation."""
    rng, n, Z, A = designs
    firm = np.sort(rng.integers(0, 60, n))
    code = np.cumsum(np.r_[True, firm[1:] != firm[:-1]]) - 1
    r1, r2 = rng.normal(size=n), rng.normal(size=n)
    h = np.column_stack([Z.dense() * r1[:, None], A.dense() * r2[:, None]])
    H = np.add.reduceat(h, np.flatnonzero(np.r_[True, firm[1:] != firm[:-1]]), axis=0)
    np.testing.assert_allclose(cluster_meat([(Z, r1), (A, r2)], code, int(code[-1]) + 1), H.T @ H, atol=1e-10)


def test_wooldridge_with_group_effects_matches_dense_dummy_regression():
    """With industry and year effects, the estimate equals Wooldridge's GMM written with dense
    dummies (the formulation before the design blocks), run here on the same panel."""
    df = simulate_acf(2, n_firms=400, n_periods=8, seed=3)  # the ACF (2015) design of test_tfp_api
    df["industry"] = df["firm"] % 4
    fit = estimate_production(df, "y", "l", "k", "m", unit="firm", method="wrdg", time_effects=True, group_effects="industry")
    # dense reference: the same moments, dummies as 0/1 columns
    from analysis.tfp import wooldridge

    real = wooldridge.Dummies
    try:
        wooldridge.Dummies = _DenseDummies
        dense = estimate_production(df, "y", "l", "k", "m", unit="firm", method="wrdg", time_effects=True, group_effects="industry")
    finally:
        wooldridge.Dummies = real
    pd.testing.assert_frame_equal(fit.tidy()[["estimate", "std_error"]], dense.tidy()[["estimate", "std_error"]], rtol=1e-6)


def _DenseDummies(codes, n_levels):  # noqa: N802 - stands in for the class
    return np.eye(n_levels)[codes][:, 1:]
