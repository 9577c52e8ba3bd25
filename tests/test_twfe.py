"""Two-way fixed effects DiD (analysis.did.twfe): published numbers, linearmodels and a
from-scratch dummy-variable regression, and its known failure under dynamic heterogeneous effects.

Data: ``ehec`` (Medicaid expansion, ships inside the moderndid wheel), ``mpdta`` (moderndid) and
the simulation of tests/staggered_sim.py.
"""

from __future__ import annotations

import warnings

import moderndid
import numpy as np
import pandas as pd
import pytest

from analysis.did.imputation import imputation
from analysis.did.twfe import twfe

from staggered_sim import simulate_staggered, true_att

warnings.filterwarnings("ignore", module="pyfixest")


@pytest.fixture(scope="module")
def ehec() -> pd.DataFrame:
    """The Medicaid expansion panel (ehec) as shipped in the moderndid wheel."""
    return moderndid.load_ehec().to_pandas()


def test_static_twfe_matches_published_fixest_on_ehec(ehec):
    """Static TWFE of insurance coverage on Medicaid expansion, clustered by state.

    Reference: Mixtape Sessions Advanced-DID, Exercise 1 solutions (R, fixest):
    ``feols(dins ~ postTreated | stfips + year, data = df, cluster = "stfips")`` ->
    0.070321 (0.007401), 552 observations.
    """
    res = twfe(ehec, "dins", "stfips", "year", "yexp2")
    row = res.tidy().iloc[0]
    assert row["n_obs"] == 552
    assert abs(row["estimate"] - 0.070321) < 5e-7
    assert abs(row["std_error"] - 0.007401) < 5e-7
    assert res.meta["n_clusters"] == 46


def test_static_twfe_without_never_treated_matches_published(ehec):
    """Same regression without the never-treated states.

    Reference: same source, ``data = df %>% filter(!is.na(yexp2))`` -> 0.062817 (0.007653), 360 obs.
    """
    res = twfe(ehec[ehec["yexp2"].notna()], "dins", "stfips", "year", "yexp2")
    row = res.tidy().iloc[0]
    assert row["n_obs"] == 360
    assert abs(row["estimate"] - 0.062817) < 5e-7
    assert abs(row["std_error"] - 0.007653) < 5e-7


def _dummy_regression(df: pd.DataFrame, rel: np.ndarray, drop: list[int], cluster: str):
    """Event study by explicit dummies (firm, year, event time), cluster-robust with fixest's CR1."""
    ev = sorted(set(rel[~np.isnan(rel)].astype(int)) - set(drop))
    E = np.column_stack([(rel == e).astype(float) for e in ev])
    F = pd.get_dummies(df["firm"], drop_first=True).to_numpy(float)
    Y = pd.get_dummies(df["year"], drop_first=True).to_numpy(float)
    Z = np.hstack([E, df[["x1"]].to_numpy(), F, Y, np.ones((len(df), 1))])
    ZtZi = np.linalg.inv(Z.T @ Z)
    b = ZtZi @ Z.T @ df["y"].to_numpy()
    r = df["y"].to_numpy() - Z @ b
    cl = pd.factorize(df[cluster])[0]
    G = cl.max() + 1
    S = np.zeros((G, Z.shape[1]))
    np.add.at(S, cl, Z * r[:, None])
    n, k_nonnested = len(df), E.shape[1] + 1 + Y.shape[1] + 1  # firm effects are nested in cells
    V = ZtZi @ S.T @ S @ ZtZi * G / (G - 1) * (n - 1) / (n - k_nonnested)
    k = len(ev)
    return ev, b[:k], np.sqrt(np.diag(V)[:k])


def test_event_study_equals_dummy_regression_unbalanced_cell_clusters(sim):
    """Dynamic TWFE on an unbalanced panel clustered by cell equals OLS with explicit firm, year
    and event-time dummies (coefficients 1e-9) and the textbook CR1 sandwich with fixest's
    small-sample factor G/(G-1) (n-1)/(n-K), K excluding the firm effects nested in cells (1e-6:
    pyfixest demeans iteratively on unbalanced panels)."""
    res = twfe(sim, "y", "firm", "year", "cohort", dynamic=True, covariates="x1", cluster="cell")
    rel = np.where(sim["cohort"] > 0, sim["year"] - sim["cohort"], np.nan)
    ev, b, se = _dummy_regression(sim, rel, [-1], "cell")
    tab = res.tidy()
    assert tab["event_time"].tolist() == ev
    np.testing.assert_allclose(tab["estimate"], b, atol=1e-9)
    np.testing.assert_allclose(tab["std_error"], se, rtol=1e-6)
    assert res.meta["n_clusters"] == sim["cell"].nunique()
    np.testing.assert_allclose(np.sqrt(np.diag(res.vcov.to_numpy())), tab["std_error"], rtol=1e-12)


def test_event_study_matches_linearmodels(sim):
    """linearmodels PanelOLS with entity and time effects and event-time dummies gives the same
    coefficients (1e-9); its clustered covariance is the same sandwich up to one scalar
    small-sample factor (constant ratio across coefficients to 1e-6)."""
    from linearmodels.panel import PanelOLS

    res = twfe(sim, "y", "firm", "year", "cohort", dynamic=True, covariates="x1", cluster="cell")
    rel = np.where(sim["cohort"] > 0, sim["year"] - sim["cohort"], -1)
    dummies = pd.get_dummies(rel, prefix="e").astype(float).drop(columns="e_-1")
    idx = pd.MultiIndex.from_arrays([sim["firm"], sim["year"]])
    X = pd.concat([dummies, sim[["x1"]]], axis=1).set_index(idx)
    lm = PanelOLS(sim["y"].set_axis(idx), X, entity_effects=True, time_effects=True).fit(
        cov_type="clustered", clusters=pd.Series(sim["cell"].to_numpy(), index=idx))
    tab = res.tidy()
    names = [f"e_{e}" for e in tab["event_time"]]
    np.testing.assert_allclose(tab["estimate"], lm.params[names], atol=1e-9)
    ratio = (tab["std_error"].to_numpy() / lm.std_errors[names].to_numpy()) ** 2
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)  # both demean iteratively (tol ~1e-8)


def test_binned_endpoints_equal_dummy_regression(sim):
    """``bins=(-3, 3)`` pools event times below -3 into -3 and above 3 into 3; the coefficients
    equal the explicit-dummy regression with the binned event time."""
    res = twfe(sim, "y", "firm", "year", "cohort", dynamic=True, covariates="x1", cluster="cell", bins=(-3, 3))
    rel = np.where(sim["cohort"] > 0, np.clip(sim["year"] - sim["cohort"], -3, 3), np.nan)
    ev, b, se = _dummy_regression(sim, rel, [-1], "cell")
    assert res.tidy()["event_time"].tolist() == [-3, -2, 0, 1, 2, 3] == ev
    np.testing.assert_allclose(res.tidy()["estimate"], b, atol=1e-9)
    np.testing.assert_allclose(res.tidy()["std_error"], se, rtol=1e-6)


def test_no_never_treated_pools_earliest_event_time():
    """Without never-treated units the earliest event time joins -1 in the reference (fixest's
    ``ref = c(-1, .F)``), a note says so, and the coefficients equal the dummy regression with
    both omitted. (Cohorts 2014, 2015, 2018: with equally spaced cohorts a further periodic
    function of event time would also be collinear.)"""
    df = simulate_staggered(n_cells=40, firms_per_cell=5, never_treated=False, unbalanced=False, seed=5,
                            cohort_shares={2014: 0.3, 2015: 0.3, 2018: 0.4}, scale={2014: 1.0, 2015: 0.5, 2018: 0.25})
    res = twfe(df, "y", "firm", "year", "cohort", dynamic=True, covariates="x1", cluster="cell")
    rel = (df["year"] - df["cohort"]).to_numpy(float)
    earliest = int(rel.min())
    ev, b, _ = _dummy_regression(df, rel, [-1, earliest], "cell")
    assert res.meta["pooled_reference"] == [-1, earliest]
    assert any("no never-treated" in n for n in res.meta["notes"])
    assert res.tidy()["event_time"].tolist() == ev
    np.testing.assert_allclose(res.tidy()["estimate"], b, atol=1e-8)


def test_static_twfe_is_biased_with_dynamic_heterogeneous_effects():
    """With large, growing effects for the earliest cohort static TWFE is far from the average
    effect on the treated (more than 8 standard errors, here it even halves it), while the
    imputation estimator of the same average is within 4 standard errors of the truth."""
    df = simulate_staggered(seed=11)
    truth = true_att(df)
    tw = twfe(df, "y", "firm", "year", "cohort", covariates="x1", cluster="cell").tidy().iloc[0]
    imp = imputation(df, "y", "firm", "year", "cohort", covariates="x1", cluster="cell", aggregate="static").tidy().iloc[0]
    assert abs(tw["estimate"] - truth) > 8 * tw["std_error"]
    assert tw["estimate"] < 0.75 * truth
    assert abs(imp["estimate"] - truth) < 4 * imp["std_error"]


@pytest.mark.parametrize("case", ["static", "dynamic", "binned", "no_never_treated", "singleton"])
def test_indicator_path_equals_pyfixest(sim, case):
    """Without covariates and weights TWFE runs through fe_indicator_ols (no dense dummies); the reference is
    the same regression through pyfixest.feols, which twfe takes with weights (here all equal to 1, which
    change nothing): coefficients (1e-9), clustered standard errors (1e-6: pyfixest demeans iteratively on
    this unbalanced panel), intervals and p-values (t with G - 1 degrees of freedom), n_obs, singleton and
    pooled-reference notes, event times."""
    df = sim.assign(one=1.0)
    kw = dict(cluster="cell")
    if case == "static":
        kw |= dict(dynamic=False)
    elif case == "dynamic":
        kw |= dict(dynamic=True)
    elif case == "binned":
        kw |= dict(dynamic=True, bins=(-3, 3))
    elif case == "no_never_treated":
        df, kw = df[df["cohort"] > 0], kw | dict(dynamic=True)
    else:
        df, kw = pd.concat([df, df.iloc[:1].assign(firm=-1)]), kw | dict(dynamic=True)
    fast = twfe(df, "y", "firm", "year", "cohort", **kw)
    ref = twfe(df, "y", "firm", "year", "cohort", weights="one", **kw)
    a, b = fast.tidy(), ref.tidy()
    assert a["term"].tolist() == b["term"].tolist() and len(a) >= 1
    np.testing.assert_allclose(a["estimate"], b["estimate"], atol=1e-9)
    np.testing.assert_allclose(a["std_error"], b["std_error"], rtol=1e-6)
    np.testing.assert_allclose(a[["conf_low", "conf_high", "p_value"]], b[["conf_low", "conf_high", "p_value"]], rtol=1e-6, atol=1e-9)
    assert (a["n_obs"] == b["n_obs"]).all()
    assert fast.meta["notes"] == ref.meta["notes"]
    assert fast.meta.get("n_obs_by_event_time") == ref.meta.get("n_obs_by_event_time")
    assert list(fast.meta["coefficients"].columns) == list(ref.meta["coefficients"].columns)
    np.testing.assert_allclose(fast.meta["coefficients"].to_numpy(), ref.meta["coefficients"].to_numpy(), rtol=1e-5, atol=1e-9)
    if case == "singleton":
        assert any("1 singleton" in n for n in fast.meta["notes"])
    if case == "no_never_treated":
        assert len(fast.meta["pooled_reference"]) == 2


def test_singletons_are_dropped_with_a_note(sim):
    """A firm observed in a single year carries no within variation: it is dropped (noted, n_obs
    one lower) and the coefficients do not change."""
    one = sim[sim["firm"] == sim["firm"].iloc[0]].iloc[:1].assign(firm=-1)
    a = twfe(sim, "y", "firm", "year", "cohort", dynamic=True, cluster="cell")
    b = twfe(pd.concat([sim, one]), "y", "firm", "year", "cohort", dynamic=True, cluster="cell")
    np.testing.assert_allclose(a.tidy()["estimate"], b.tidy()["estimate"], atol=1e-9)
    assert b.tidy()["n_obs"].iloc[0] == a.tidy()["n_obs"].iloc[0] == len(sim)
    assert any("1 singleton" in n for n in b.meta["notes"])


def test_never_treated_zero_or_missing_are_the_same(ehec):
    """A never-treated unit may carry cohort 0 or a missing value: identical results."""
    zero = ehec.assign(yexp2=ehec["yexp2"].fillna(0))
    a = twfe(ehec, "dins", "stfips", "year", "yexp2", dynamic=True).tidy()
    b = twfe(zero, "dins", "stfips", "year", "yexp2", dynamic=True).tidy()
    pd.testing.assert_frame_equal(a, b)


def test_bad_input_raises_clear_errors(ehec):
    """Missing column, cohort varying within a unit, duplicated unit-period rows, inconsistent bins
    (the messages of the one panel container, analysis.did.data.DiDPanel)."""
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] not found in data"):
        twfe(ehec, "nope", "stfips", "year", "yexp2")
    bad = ehec.copy()
    bad.loc[bad.index[0], "yexp2"] = 2016.0  # state 1 never treated otherwise
    with pytest.raises(ValueError, match=r"cohort column 'yexp2' is not constant within 'stfips'.*\(1 unit\(s\) in all\)"):
        twfe(bad, "dins", "stfips", "year", "yexp2")
    with pytest.raises(ValueError, match=r"duplicate \('stfips', 'year'\) rows: 1 unit-period pair"):
        twfe(pd.concat([ehec, ehec.iloc[:1]]), "dins", "stfips", "year", "yexp2")
    with pytest.raises(ValueError, match="bins"):
        twfe(ehec, "dins", "stfips", "year", "yexp2", dynamic=True, bins=(0, 3))
