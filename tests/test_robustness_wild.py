"""Wild cluster bootstrap (analysis.did.wild): the wildboottest package's published example, its own
draws, the TWFE and imputation estimators as regressions, and the confidence set by test inversion."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.did import imputation, twfe
from analysis.did.wild import (
    imputation_design,
    twfe_design,
    wild_bootstrap_did,
    wild_cluster_bootstrap,
)


@pytest.fixture(scope="module")
def petersen() -> pd.DataFrame:
    """Petersen's test_data (= R sandwich's PetersenCL), as shipped by statsmodels (tests/reference/wildboottest_petersen.md)."""
    import statsmodels

    path = Path(statsmodels.__file__).parent / "stats" / "tests" / "test_data.txt"
    return pd.read_csv(path, sep=r"\s+", header=None, names=["firm", "year", "x", "y"])


def _xy(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return np.column_stack([np.ones(len(df)), df["x"].to_numpy()]), df["y"].to_numpy()


def test_published_wildboottest_example(petersen):
    """The wildboottest README (tests/reference/wildboottest_petersen.md): WCR11 with Rademacher weights,
    B = 9999, clusters = firms: t(x) = 20.453, p(x) = 0.000; t(Intercept) = 0.443, p(Intercept) = 0.655
    (unseeded draws there: allowed 0.015, three Monte Carlo standard deviations)."""
    X, y = _xy(petersen)
    slope = wild_cluster_bootstrap(X, y, petersen["firm"], param=1, B=9999, seed=1)
    const = wild_cluster_bootstrap(X, y, petersen["firm"], param=0, B=9999, seed=1)
    assert round(slope.t_stat, 3) == 20.453 and slope.p_value < 0.0005
    assert round(const.t_stat, 3) == 0.443
    assert abs(const.p_value - 0.655) < 0.015
    assert slope.meta["draws"] == 9999 and slope.meta["n_clusters"] == 500


@pytest.mark.parametrize("weights", ["rademacher", "webb"])
@pytest.mark.parametrize("impose_null", [True, False])
def test_bootstrap_t_equal_the_package_draw_by_draw(petersen, weights, impose_null):
    """On the first 120 firms of Petersen's data, with the package's own weight draws given to both, our t*
    equal WildboottestCL's to 1e-10, and so do the t statistic and the p-value."""
    from wildboottest.wildboottest import WildboottestCL

    d = petersen[petersen["firm"] <= 120]
    X, y = _xy(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = WildboottestCL(X=X, Y=y, cluster=d["firm"].to_numpy(), R=np.array([0.0, 1.0]), B=499, seed=7, parallel=False)
        wb.get_scores(bootstrap_type="11", impose_null=impose_null)
        wb.get_weights(weights_type=weights)
        wb.get_numer()
        wb.get_denom()
        wb.get_tboot()
        wb.get_vcov()
        wb.get_tstat()
        wb.get_pvalue()
    ours = wild_cluster_bootstrap(X, y, d["firm"], param=1, impose_null=impose_null, v=wb.v)
    np.testing.assert_allclose(ours.t_boot, wb.t_boot, rtol=0, atol=1e-10)
    assert ours.t_stat == pytest.approx(float(np.asarray(wb.t_stat).ravel()[0]), abs=1e-10)
    assert ours.p_value == pytest.approx(wb.pvalue, abs=1e-12)


def test_weight_distributions():
    """Our draws have the package's distributions: Rademacher +-1, Webb's six points (mean 0, variance 1)."""
    from analysis.did.wild import _Weights

    for kind, support in (("rademacher", {-1.0, 1.0}), ("webb", set(np.round(np.concatenate([-np.sqrt([1.5, 1, 0.5]), np.sqrt([0.5, 1, 1.5])]), 12)))):
        v = _Weights(kind, 50, 4000, seed=1).chunk(0, 4000)
        assert set(np.round(np.unique(v), 12)) == support
        assert abs(v.mean()) < 0.01 and abs(v.var() - 1) < 0.01


def test_confidence_set_is_the_set_of_values_not_rejected(petersen):
    """Inverting the restricted bootstrap: the p-value just inside each bound exceeds alpha, just outside it
    does not; the set contains the estimate and, on Petersen's data, is close to the CRV1 interval."""
    X, y = _xy(petersen)
    res = wild_cluster_bootstrap(X, y, petersen["firm"], param=1, B=1999, seed=3, weights="webb")
    eps = 1e-4 * res.std_error
    assert res.conf_low < res.estimate < res.conf_high
    p = res.p_value_at([res.conf_low - 10 * eps, res.conf_low + 10 * eps, res.conf_high - 10 * eps, res.conf_high + 10 * eps])
    assert p[0] <= 0.05 < p[1] and p[2] > 0.05 >= p[3]
    crv1 = (res.estimate - 1.96 * res.std_error, res.estimate + 1.96 * res.std_error)
    assert abs(res.conf_low - crv1[0]) < 0.15 * res.std_error and abs(res.conf_high - crv1[1]) < 0.15 * res.std_error


def test_full_enumeration_with_few_clusters():
    """With 6 clusters and B >= 2^6, Rademacher weights enumerate the 64 sign vectors (as wildboottest)."""
    rng = np.random.default_rng(0)
    cl = np.repeat(np.arange(6), 30)
    X = np.column_stack([np.ones(180), rng.normal(size=180)])
    y = rng.normal(size=180)
    res = wild_cluster_bootstrap(X, y, cl, param=1, B=999)
    assert res.meta["full_enumeration"] and res.meta["draws"] == 64


def test_twfe_design_reproduces_twfe(small_world):
    """The demeaned regression's coefficient equals analysis.did.twfe's static coefficient (pyfixest) to 1e-9,
    and its CRV1 standard error equals pyfixest's up to the degrees-of-freedom factor (1e-3 relative)."""
    p = small_world.panel.assign(lp=lambda d: np.log(d["value_added"] / d["labor"]))
    d = twfe_design(p, "lp", "firm_id", "year", "cohort", keep=["cell_id"])
    res = wild_cluster_bootstrap(d.X, d.y, d.frame["cell_id"], B=99)
    ref = twfe(p, "lp", "firm_id", "year", "cohort", cluster="cell_id")
    assert res.estimate == pytest.approx(float(ref.coef()["ATT"]), abs=1e-9)
    assert res.std_error == pytest.approx(float(ref.se()["ATT"]), rel=1e-3)


def test_imputation_design_reproduces_imputation(mpdta, small_world):
    """z = c / c'c with the imputation weights c: its OLS coefficient is the BJS imputation ATT (Stata
    did_imputation's -0.047710 on mpdta, see analysis.did.imputation) to 1e-10, and on the small world."""
    d = imputation_design(mpdta, "lemp", "countyreal", "year", "first.treat")
    b = np.linalg.lstsq(d.X, d.y, rcond=None)[0][0]
    assert b == pytest.approx(-0.047710, abs=5e-7)
    p = small_world.panel.assign(lp=lambda d: np.log(d["value_added"] / d["labor"]))
    d2 = imputation_design(p, "lp", "firm_id", "year", "cohort")
    ref = imputation(p, "lp", "firm_id", "year", "cohort", aggregate="static")
    assert np.linalg.lstsq(d2.X, d2.y, rcond=None)[0][0] == pytest.approx(float(ref.coef()["ATT"]), abs=1e-10)


def test_wild_bootstrap_did_rows(small_world):
    """One tidy row per weight type, the estimate the estimator's, p-values and sets from the bootstrap."""
    p = small_world.panel.assign(lp=lambda d: np.log(d["value_added"] / d["labor"]))
    tab = wild_bootstrap_did(p, "lp", estimator="imputation", cluster="county_code", B=399, seed=2)
    assert tab["weights"].tolist() == ["rademacher", "webb"]
    assert (tab["n_clusters"] == p["county_code"].nunique()).all()
    assert tab["estimate"].nunique() == 1 and ((tab["conf_low"] < tab["estimate"]) & (tab["estimate"] < tab["conf_high"])).all()
    with pytest.raises(ValueError, match="'twfe' or 'imputation'"):
        wild_bootstrap_did(p, "lp", estimator="cs")
