"""Panel building blocks of the TFP estimators: gap-respecting lags, polynomials, absorbed OLS,
the firm bootstrap. Each is checked against a brute-force computation or a closed form."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest

from analysis.tfp.arrays import (
    PanelData,
    lag_index,
    ols_absorb,
    panel_lag,
    poly_design,
    poly_terms,
    resample_units,
    take_lag,
)


def _random_panel(seed: int = 0, n_firms: int = 300) -> pd.DataFrame:
    """An unbalanced panel with gaps, entry and exit, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_firms):
        years = np.sort(rng.choice(np.arange(2000, 2015), size=rng.integers(1, 12), replace=False))
        rows += [(f * 7 + 3, y) for y in years]  # non-contiguous firm ids
    df = pd.DataFrame(rows, columns=["firm", "year"])
    df["x"] = rng.normal(size=len(df))
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_lag_is_previous_year_of_same_firm_not_previous_row():
    """A year that follows a gap has no lag; the first year of a firm has none; a firm's lag
    never comes from another firm."""
    df = pd.DataFrame({"firm": [1, 1, 1, 2, 2], "year": [2000, 2001, 2003, 2001, 2002], "x": [1.0, 2, 3, 4, 5]})
    assert panel_lag(df, "x", unit="firm", time="year").tolist() == pytest.approx(
        [np.nan, 1.0, np.nan, np.nan, 4.0], nan_ok=True
    )


@pytest.mark.parametrize("k", [1, 2, 3, -1])
def test_lag_index_matches_brute_force_merge(k):
    """lag_index agrees with an explicit merge on (firm, year - k) on a shuffled unbalanced
    panel with gaps (k = -1 is a lead)."""
    df = _random_panel(seed=k + 10)
    idx = lag_index(pd.factorize(df["firm"])[0], df["year"].to_numpy(), k)
    got = take_lag(df["x"].to_numpy(), idx)
    target = df.assign(year=df["year"] + k)[["firm", "year", "x"]].rename(columns={"x": "x_lag"})
    want = df.merge(target, on=["firm", "year"], how="left")["x_lag"].to_numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)])


def test_panel_lag_rejects_duplicates_and_fractional_years():
    """Repeated firm-years and non-integer years are errors naming the rows."""
    dup = pd.DataFrame({"firm": [1, 1], "year": [2000, 2000], "x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="not unique: rows \\[0, 1\\]"):
        panel_lag(dup, "x", unit="firm", time="year")
    frac = pd.DataFrame({"firm": [1, 1], "year": [2000.0, 2000.5], "x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="whole numbers"):
        panel_lag(frac, "x", unit="firm", time="year")


def test_poly_terms_counts_and_design():
    """A complete polynomial of degree d in q variables has C(q + d, d) terms; the design
    evaluates each monomial."""
    for q, d in [(1, 3), (2, 2), (3, 3), (4, 3)]:
        assert len(poly_terms(q, d)) == comb(q + d, d)
    X = np.array([[2.0, 3.0]])
    got = poly_design(X, poly_terms(2, 2))
    np.testing.assert_allclose(got, [[1, 2, 3, 4, 6, 9]])


def test_ols_absorb_equals_ols_with_dummies():
    """Absorbing year effects from chunked sufficient statistics gives the same slopes and
    fitted values as least squares with explicit year dummies (chunk smaller than n)."""
    rng = np.random.default_rng(1)
    n = 2_000
    g = rng.integers(0, 7, n)
    X = rng.normal(size=(n, 3))
    y = X @ [0.5, -1.0, 2.0] + 0.3 * g + rng.normal(size=n)
    coef, fitted = ols_absorb(y, lambda s: X[s], n, groups=g, chunk=333)
    D = np.eye(7)[g]
    full = np.linalg.lstsq(np.column_stack([X, D]), y, rcond=None)[0]
    np.testing.assert_allclose(coef, full[:3], rtol=1e-10)
    np.testing.assert_allclose(fitted, np.column_stack([X, D]) @ full, rtol=1e-10)


def test_resample_units_keeps_firms_whole_and_lags_inside_copies():
    """A bootstrap draw consists of whole firms with fresh ids; a firm drawn twice gives two
    firms, and no lag links two copies."""
    df = _random_panel(seed=3, n_firms=50).sort_values(["firm", "year"]).reset_index(drop=True)
    unit = pd.factorize(df["firm"])[0].astype(np.int64)
    panel = PanelData(
        y=df["x"].to_numpy(), free=df[["x"]].to_numpy(), state=df[["x"]].to_numpy(),
        unit=unit, time=df["year"].to_numpy(), rows=df.index.to_numpy(),
    )
    draw = resample_units(panel, np.random.default_rng(5))
    assert np.unique(draw.unit).size == np.unique(unit).size  # as many firms as in the sample
    # every new firm is a contiguous copy of one original firm, in time order
    for u in np.unique(draw.unit)[:20]:
        rows = draw.rows[draw.unit == u]
        assert np.unique(unit[rows]).size == 1
        assert np.all(np.diff(draw.time[draw.unit == u]) > 0)
    lag = draw.lag(1)
    ok = lag >= 0
    assert np.all(draw.unit[lag[ok]] == draw.unit[ok])
    assert np.all(draw.time[lag[ok]] == draw.time[ok] - 1)
    np.testing.assert_array_equal(lag, lag_index(draw.unit, draw.time, 1))
