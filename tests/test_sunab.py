"""Sun-Abraham interaction-weighted event study (analysis.did.sunab): published R ``did`` numbers,
pyfixest's saturated event study, diff-diff's SunAbraham, and recovery of known effects."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.did.sunab import sunab

from staggered_sim import simulate_staggered, true_event_effects

warnings.filterwarnings("ignore", module="pyfixest")


def test_post_periods_equal_published_cs_event_study_on_mpdta(mpdta):
    """On a balanced panel without covariates, with never-treated controls and reference period
    -1, Sun-Abraham's event-time effects for e >= 0 are the cohort-size weighted averages of the
    2x2 DiDs against the never treated, i.e. Callaway-Sant'Anna's event-study aggregation.

    Reference: R ``did`` vignette / reference docs, ``aggte(att_gt(lemp ~ 1, mpdta, never
    treated), type = "dynamic")``, event times 0..3: -0.0199, -0.0510, -0.1373, -0.1008
    (tests/reference/r_did_mpdta.md).
    """
    tab = sunab(mpdta, "lemp", "countyreal", "year", "first.treat").tidy().set_index("event_time")
    published = {0: -0.0199, 1: -0.0510, 2: -0.1373, 3: -0.1008}
    for e, v in published.items():
        assert abs(tab.loc[e, "estimate"] - v) < 5e-5


def test_equals_pyfixest_saturated_event_study_on_mpdta(mpdta):
    """pyfixest's ``event_study(estimator="saturated").aggregate()`` (same cohort-share weights,
    same clustered covariance): estimates and standard errors agree to 1e-10."""
    import pyfixest as pf

    ours = sunab(mpdta, "lemp", "countyreal", "year", "first.treat").tidy().set_index("event_time")
    fit = pf.event_study(mpdta.rename(columns={"first.treat": "g"}), yname="lemp", idname="countyreal",
                         tname="year", gname="g", estimator="saturated", cluster="countyreal")
    agg = fit.aggregate()
    agg.index = agg.index.astype(int)
    np.testing.assert_allclose(ours["estimate"], agg.loc[ours.index, "Estimate"].astype(float), atol=1e-10)
    np.testing.assert_allclose(ours["std_error"], agg.loc[ours.index, "Std. Error"].astype(float), rtol=1e-8)


def test_equals_diff_diff_unbalanced_covariate_cell_clusters(sim):
    """diff-diff's ``SunAbraham(cluster="cell")`` with a time-varying covariate on the unbalanced
    panel: event-time estimates 1e-8 and standard errors 1e-6 (pyfixest demeans iteratively)."""
    import diff_diff as dd

    ours = sunab(sim, "y", "firm", "year", "cohort", covariates="x1", cluster="cell").tidy().set_index("event_time")
    sa = dd.SunAbraham(cluster="cell").fit(sim, outcome="y", unit="firm", time="year", first_treat="cohort",
                                           covariates=["x1"])
    ref = pd.DataFrame(sa.event_study_effects).T
    ref.index = ref.index.astype(int)
    ref = ref.loc[ours.index]
    np.testing.assert_allclose(ours["estimate"], ref["effect"].astype(float), atol=1e-8)
    np.testing.assert_allclose(ours["std_error"], ref["se"].astype(float), rtol=1e-6)


def test_att_aggregate_equals_diff_diff_overall(mpdta):
    """``aggregate="att"`` (all post-treatment CATT weighted by their sample counts, fixest's
    ``agg = "att"``) equals diff-diff's overall ATT on mpdta (-0.0399513, SE 0.0117963)."""
    att = sunab(mpdta, "lemp", "countyreal", "year", "first.treat", aggregate="att").tidy().iloc[0]
    assert abs(att["estimate"] - (-0.03995127515517623)) < 1e-10
    assert abs(att["std_error"] - 0.01179627744175416) < 1e-8


def test_event_time_effect_is_share_weighted_catt(sim):
    """Each event-time row is the cohort-share weighted average of the CATT(g, e) in
    ``meta['catt']`` with the shares in ``meta['weights']`` (summing to one by event time)."""
    res = sunab(sim, "y", "firm", "year", "cohort", covariates="x1", cluster="cell")
    w = res.meta["weights"]
    np.testing.assert_allclose(w.groupby("event_time")["share"].sum(), 1.0, atol=1e-12)
    catt = res.meta["catt"].set_index(["cohort", "event_time"])["estimate"]
    manual = (w.set_index(["cohort", "event_time"])["share"] * catt).groupby(level="event_time").sum()
    np.testing.assert_allclose(res.tidy().set_index("event_time")["estimate"], manual.loc[res.tidy()["event_time"]], atol=1e-12)


def test_recovers_true_dynamic_heterogeneous_effects():
    """On the simulated staggered design (three cohorts, effects growing with event time and
    differing by cohort, cell-level shocks, covariate-driven trends, unbalanced panel) every
    post-treatment estimate is within 4 standard errors of the true average effect at that event
    time and every pre-treatment estimate within 4 standard errors of zero."""
    df = simulate_staggered(seed=21)
    tab = sunab(df, "y", "firm", "year", "cohort", covariates="x1", cluster="cell").tidy().set_index("event_time")
    truth = true_event_effects(df)
    post = tab[tab.index >= 0]
    assert ((post["estimate"] - truth.loc[post.index]).abs() < 4 * post["std_error"]).all()
    pre = tab[tab.index < 0]
    assert (pre["estimate"].abs() < 4 * pre["std_error"]).all()


def test_last_treated_control_equals_recoding_last_cohort_as_never():
    """``control="last"`` (no never-treated units): identical to treating the last cohort as never
    treated on the periods before it is treated, and it recovers the truth within 4 SE."""
    df = simulate_staggered(n_cells=80, firms_per_cell=6, seed=4, never_treated=False)
    last = sunab(df, "y", "firm", "year", "cohort", covariates="x1", cluster="cell", control="last")
    recoded = df[df["year"] < 2018].assign(cohort=lambda d: d["cohort"].where(d["cohort"] != 2018, 0))
    never = sunab(recoded, "y", "firm", "year", "cohort", covariates="x1", cluster="cell")
    pd.testing.assert_frame_equal(last.tidy(), never.tidy())
    tab = last.tidy().set_index("event_time")
    truth = true_event_effects(recoded)
    post = tab[tab.index >= 0]
    assert ((post["estimate"] - truth.loc[post.index]).abs() < 4 * post["std_error"]).all()
    with pytest.raises(ValueError, match="control='last'"):
        sunab(df, "y", "firm", "year", "cohort")


def test_always_treated_units_are_dropped_with_a_note(mpdta):
    """Units treated in the first period cannot contribute and are dropped (as fixest does)."""
    d = mpdta.copy()
    d.loc[d["countyreal"].isin(d["countyreal"].unique()[:5]), "first.treat"] = 2003
    res = sunab(d, "lemp", "countyreal", "year", "first.treat")
    assert any("always treated" in n for n in res.meta["notes"])
    assert res.meta["n_units"] == 500 and res.tidy()["n_obs"].iloc[0] == 2475


def test_cohort_aggregation_equals_published_cs_group_effects_on_mpdta(mpdta):
    """fixest's ``agg = "cohort"`` on a balanced panel without covariates, never-treated controls:
    each cohort's count-weighted mean of CATT(g, e), e >= 0, is the mean of its post-treatment
    2x2 DiDs against the never treated, i.e. R did's group aggregation.

    Reference: R did 2.5.1 reference/aggte.html, ``aggte(type = "group")`` on mpdta:
    2004 -0.0797, 2006 -0.0229, 2007 -0.0261 (tests/reference/r_did_mpdta.md; also in tests/test_att_gt.py).
    The standard errors differ from R did's by design (regression-based clustered covariance).
    """
    tab = sunab(mpdta, "lemp", "countyreal", "year", "first.treat", aggregate="cohort").tidy()
    assert tab["term"].tolist() == ["cohort::2004", "cohort::2006", "cohort::2007"]
    np.testing.assert_allclose(tab["estimate"], [-0.0797, -0.0229, -0.0261], atol=5e-5 + 1e-12)
    assert (tab["std_error"] > 0).all()


def test_cohort_aggregation_recovers_true_cohort_effects_and_covariate():
    """Simulation with known truth (tests/staggered_sim.py, 150 cells x 8 firms, unbalanced,
    heterogeneous dynamic effects, covariate coefficient 0.5): each cohort row is within 3.5
    standard errors of the true mean effect over that cohort's post-treatment observations,
    the covariate's own coefficient (``tidy(covariates=True)``) within 3.5 SE of 0.5, and the
    cohort rows recombined with their observation counts give the ``aggregate="att"`` row."""
    d = simulate_staggered(n_cells=150, firms_per_cell=8, seed=5)
    res = sunab(d, "y", "firm", "year", "cohort", aggregate="cohort", covariates="x1", cluster="cell")
    tab = res.tidy(covariates=True).set_index("term")
    post = d[(d["cohort"] > 0) & (d["year"] >= d["cohort"])]
    truth = post.groupby("cohort")["tau"].mean()
    for g, v in truth.items():
        row = tab.loc[f"cohort::{g}"]
        assert abs(row["estimate"] - v) < 3.5 * row["std_error"]
    assert abs(tab.loc["x1", "estimate"] - 0.5) < 3.5 * tab.loc["x1", "std_error"]
    assert np.isnan(tab.loc["x1", "cohort"]) and "x1" not in res.tidy()["term"].tolist()
    att = sunab(d, "y", "firm", "year", "cohort", aggregate="att", covariates="x1", cluster="cell").tidy()
    n = pd.Series(res.meta["cohort_obs"])
    recombined = float((res.tidy().set_index("term")["estimate"] * n).sum() / n.sum())
    assert recombined == pytest.approx(float(att["estimate"].iloc[0]), abs=1e-12)


def test_covariate_coefficient_equals_pyfixest_regression(sim):
    """The covariate's own coefficient and clustered SE are those of the same saturated
    regression run directly in pyfixest (``y ~ x1 + i(rel, cohort)`` with unit and year effects)."""
    import pyfixest as pf

    res = sunab(sim, "y", "firm", "year", "cohort", covariates="x1", cluster="cell")
    row = res.tidy(covariates=True).set_index("term").loc["x1"]
    d = sim.assign(rel=np.where(sim["cohort"] > 0, sim["year"] - sim["cohort"], -1).astype(int),
                   g=sim["cohort"].astype(int))
    fit = pf.feols("y ~ x1 + i(rel, g, ref=-1, ref2=0) | firm + year", data=d, vcov={"CRV1": "cell"})
    assert row["estimate"] == pytest.approx(float(fit.coef()["x1"]), rel=1e-8)
    assert row["std_error"] == pytest.approx(float(fit.se()["x1"]), rel=1e-6)


def test_indicator_path_equals_pyfixest_on_unbalanced_panel_with_singletons(sim):
    """Without covariates and weights sunab solves its regression with bincount and sparse
    products (analysis.did._fe_ols), never building the dense cell dummies. On the unbalanced
    panel, clustered at the cell above the firm, with singleton firms added (pyfixest drops
    them) and an empty late cohort: the CATT(g, e), their covariance and the degrees of freedom
    equal ``pyfixest.feols("y ~ i(cell, ref=0) | firm + year", vcov={"CRV1": "cell"})`` with its
    alternating projections run to 1e-12 (at its default 1e-6 small covariances differ by 1e-3
    relative: the exact demeaning here is the limit of pyfixest's iterations)."""
    import pyfixest as pf
    from pyfixest.demeaners import MapDemeaner

    from analysis.did._fe_ols import fe_indicator_ols

    df = sim.copy()
    singles = df.groupby("firm").head(1).iloc[:7].assign(firm=lambda d: d["firm"] + 10_000)
    df = pd.concat([df, singles], ignore_index=True)
    g = df["cohort"].fillna(0).to_numpy()
    e = df["year"].to_numpy() - g
    cells = pd.Series(list(zip(g, e)))
    treated = (g > 0) & (e != -1)
    code = np.where(treated, pd.factorize(cells.where(treated))[0] + 1, 0)
    df["cellcode"] = code
    ours = fe_indicator_ols(df["y"].to_numpy(), df["firm"].to_numpy(), df["year"].to_numpy(), code, cluster=df["cell"].to_numpy())
    ref = pf.feols("y ~ i(cellcode, ref=0) | firm + year", data=df, vcov={"CRV1": "cell"},
                    demeaner=MapDemeaner(fixef_tol=1e-12))
    names = [str(n).replace("cellcode", "_cell") for n in ref._coefnames]
    assert ours.names == names
    assert ours.n_obs == ref._N < len(df)
    assert ours.df_t == ref._df_t
    np.testing.assert_allclose(ours.beta, np.asarray(ref._beta_hat), atol=1e-8)
    np.testing.assert_allclose(ours.vcov, np.asarray(ref._vcov), rtol=1e-6, atol=1e-14)
