"""HonestDiD sensitivity (analysis.did.honest, wrapping moderndid's port of the R package)
validated against the R package's published Medicaid example."""

from __future__ import annotations

import warnings

import moderndid
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.did.honest import honest_did
from analysis.did.imputation import imputation
from analysis.did.sunab import sunab
from analysis.did.twfe import twfe

warnings.filterwarnings("ignore", module="pyfixest")
warnings.filterwarnings("ignore", module="cvxpy")

# HonestDiD README (asheshrambachan/HonestDiD, commit 02b541bb): non-staggered Medicaid example,
# feols(dins ~ i(year, D, ref = 2013) | stfips + year, cluster = "stfips") on years < 2016 without
# the 2015 cohort; first post-period effect (2014), numPrePeriods = 5, numPostPeriods = 2.
README_SD = {  # M: (lb, ub), createSensitivityResults (FLCI)
    0.00: (0.0259, 0.0607), 0.01: (0.0132, 0.0787), 0.02: (0.00286, 0.0907),
    0.03: (-0.00714, 0.101), 0.04: (-0.0171, 0.111), 0.05: (-0.0271, 0.121),
}
README_RM = {  # Mbar: (lb, ub), createSensitivityResults_relativeMagnitudes (C-LF)
    0.5: (0.0240, 0.0672), 1.0: (0.0170, 0.0720), 1.5: (0.00824, 0.0797), 2.0: (-0.000916, 0.0881),
}
# Tolerances: the README prints 3 significant digits; FLCI bounds are an optimum found numerically
# (agreement 1e-4); relative-magnitude bounds are the ends of the accepted region of a
# 1,000-point grid over [identified set -/+ 20 SE] (grid step ~4e-4 here), so they agree to one step.
TOL_SD, TOL_RM = 1e-4, 5e-4


def _tol(published: float, tol: float) -> float:
    """The larger of ``tol`` and half a unit in the third significant digit the README prints."""
    return max(tol, 0.5 * 10 ** (np.floor(np.log10(abs(published))) - 2))


@pytest.fixture(scope="module")
def es():
    """The TWFE event study of Medicaid expansion on insurance (ehec before 2016, 2015 adopters dropped), as in HonestDiD's README."""
    ehec = moderndid.load_ehec().to_pandas()
    d = ehec[(ehec["year"] < 2016) & (ehec["yexp2"].isna() | (ehec["yexp2"] != 2015))]
    return twfe(d, "dins", "stfips", "year", "yexp2", dynamic=True)


def test_smoothness_matches_readme(es):
    """Delta^SD with M = 0, 0.01, ..., 0.05: every bound within 1e-4 of the README (or half a
    unit of its third printed digit, e.g. 0.101 -> 5e-4)."""
    res = honest_did(es, restriction="smoothness", M=list(README_SD), cache=False)
    tab = res.tidy().iloc[1:]
    assert tab["method"].unique().tolist() == ["FLCI"]
    for (_, row), (lb, ub) in zip(tab.iterrows(), README_SD.values()):
        assert abs(row["conf_low"] - lb) < _tol(lb, TOL_SD) and abs(row["conf_high"] - ub) < _tol(ub, TOL_SD)


def test_relative_magnitude_matches_readme_and_caches(es, tmp_path):
    """Delta^RM with Mbar = 1 (C-LF): within one grid step of the README; a second call reads the
    on-disk cache (no recomputation: recorded time 0, cache_hits 1) and returns the same bounds."""
    first = honest_did(es, restriction="relative_magnitude", M=1.0, cache_dir=tmp_path)
    lb, ub = README_RM[1.0]
    row = first.tidy().iloc[1]
    assert abs(row["conf_low"] - lb) < TOL_RM and abs(row["conf_high"] - ub) < TOL_RM
    assert first.meta["cache_hits"] == 0 and first.meta["timings"][1.0] > 0
    second = honest_did(es, restriction="relative_magnitude", M=[1.0], cache_dir=tmp_path)
    assert second.meta["cache_hits"] == 1 and second.meta["timings"][1.0] == 0.0
    pd.testing.assert_frame_equal(first.tidy(), second.tidy())
    assert len(list(tmp_path.glob("*.json"))) == 1


@pytest.mark.slow
def test_relative_magnitude_all_readme_values(es, tmp_path):
    """All four Mbar values of the README (about 50 s on 2 cores): within one grid step."""
    res = honest_did(es, restriction="relative_magnitude", M=list(README_RM), cache_dir=tmp_path)
    for (_, row), (lb, ub) in zip(res.tidy().iloc[1:].iterrows(), README_RM.values()):
        assert abs(row["conf_low"] - lb) < TOL_RM and abs(row["conf_high"] - ub) < TOL_RM


def test_original_row_is_the_conventional_ci(es):
    """The ``original`` row is the event-time-0 estimate with the normal 95% CI from the event
    study's covariance (HonestDiD's constructOriginalCS)."""
    res = honest_did(es, restriction="smoothness", M=[0.0], cache=False)
    orig = res.tidy().iloc[0]
    e0 = es.tidy().set_index("event_time").loc[0]
    z = stats.norm.ppf(0.975)
    assert orig["term"] == "original" and orig["event_time"] == 0
    assert abs(orig["estimate"] - e0["estimate"]) < 1e-12
    assert abs(orig["conf_low"] - (e0["estimate"] - z * e0["std_error"])) < 1e-9
    assert abs(orig["conf_high"] - (e0["estimate"] + z * e0["std_error"])) < 1e-9


def test_target_average_and_other_estimators():
    """Any event-study result with a covariance works: Sun-Abraham and imputation (pre-trends
    with reference -1) on mpdta; the robust set contains the original CI's point estimate and
    widens with M; a target outside the post periods is refused."""
    mpdta = moderndid.load_mpdta().to_pandas()
    for es in (sunab(mpdta, "lemp", "countyreal", "year", "first.treat"),
               imputation(mpdta, "lemp", "countyreal", "year", "first.treat", pretrends="all")):
        res = honest_did(es, restriction="smoothness", M=[0.0, 0.02], target="average", cache=False)
        tab = res.tidy()
        width = (tab["conf_high"] - tab["conf_low"]).to_numpy()
        assert width[2] > width[1]
        assert tab["conf_low"].iloc[2] <= tab["estimate"].iloc[0] <= tab["conf_high"].iloc[2]
        with pytest.raises(ValueError, match="target event time 7"):
            honest_did(es, restriction="smoothness", M=[0.0], target=7, cache=False)


def test_refuses_results_it_cannot_use(es):
    """No covariance, no event times, or an estimated coefficient at the reference period."""
    from analysis.results import EstimationResult

    no_vcov = EstimationResult(table=es.tidy(), vcov=None, meta=es.meta)
    with pytest.raises(ValueError, match="covariance"):
        honest_did(no_vcov, restriction="smoothness", M=[0.0], cache=False)
    mpdta = moderndid.load_mpdta().to_pandas()
    k3 = imputation(mpdta, "lemp", "countyreal", "year", "first.treat", pretrends=3)
    with pytest.raises(ValueError, match="not normalised"):
        honest_did(k3, restriction="smoothness", M=[0.0], cache=False)
    with pytest.raises(ValueError, match="estimated coefficient at the reference period"):
        honest_did(k3, restriction="smoothness", M=[0.0], reference=-1, cache=False)
