"""Stacked DiD with Wing-Freedman-Hollingsworth weights (analysis.did.stacked): the published
tutorial's stacking and weights, diff-diff's StackedDiD, the weights' defining property, and
recovery of known effects."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.did._common import prepare_panel
from analysis.did.stacked import _wfh_cell_fit, stack_data, stacked

from staggered_sim import simulate_staggered, true_event_effects

warnings.filterwarnings("ignore", module="pyfixest")


def _acs_structure(seed: int = 0) -> pd.DataFrame:
    """A panel with the adoption structure of WFH's ACS example (51 states, 2008-2021): 28 states
    expand Medicaid in 2014, 3 in 2015, 2 in 2016, 2 in 2019, 3 in 2020, 2 in 2021, 11 never.
    The outcome is noise: the stacking and weights depend on the structure only."""
    cohorts = [2014] * 28 + [2015] * 3 + [2016] * 2 + [2019] * 2 + [2020] * 3 + [2021] * 2 + [np.nan] * 11
    years = np.arange(2008, 2022)
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "state": np.repeat(np.arange(51), len(years)),
        "year": np.tile(years, 51),
        "adopt_year": np.repeat(cohorts, len(years)),
        "unins": rng.normal(0.15, 0.03, 51 * len(years)),
    })


def test_stacking_and_weights_match_published_wfh_tutorial():
    """WFH tutorial (hollina/stacked-did-weights, stacked-example-r-and-stata.html, kappa_pre = 3,
    kappa_post = 2): sub-experiments 2014, 2015, 2016, 2019 (2020 and 2021 trimmed), 600 stacked
    rows, mean control weight at event time 0 of 2.8888889, 0.3095238, 0.2063492, 0.3376623."""
    res = stacked(_acs_structure(), "unins", "state", "year", "adopt_year", kappa_pre=3, kappa_post=2)
    subs = res.meta["sub_experiments"]
    assert subs["sub_experiment"].tolist() == [2014, 2015, 2016, 2019]
    assert res.meta["n_stacked_rows"] == 600 and res.tidy()["n_obs"].iloc[0] == 600
    np.testing.assert_allclose(subs["mean_control_weight_e0"], [2.8888889, 0.3095238, 0.2063492, 0.3376623], atol=5e-8)
    assert subs["n_treated_units"].tolist() == [28, 3, 2, 2]
    assert subs["n_control_units"].tolist() == [18, 18, 18, 11]
    assert any("trimmed" in n and "2020" in n for n in res.meta["notes"])
    assert res.tidy()["event_time"].tolist() == [-3, -2, 0, 1, 2]


def test_weights_balance_control_composition_to_treated_composition():
    """The defining property of the Q-weights (WFH Section 4): at each event time the weighted
    share of every sub-experiment among the control rows equals its share of the treated rows."""
    panel = prepare_panel(simulate_staggered(seed=5), outcome="y", unit="firm", time="year", cohort="cohort")
    st, _, _ = stack_data(panel.frame, kappa_pre=2, kappa_post=3)
    ctrl = st[st["_treat"] == 0].groupby(["_ev", "_sub"])["_Q"].sum()
    ctrl = ctrl / ctrl.groupby(level="_ev").transform("sum")
    trt = st[st["_treat"] == 1].groupby(["_ev", "_sub"]).size()
    trt = trt / trt.groupby(level="_ev").transform("sum")
    np.testing.assert_allclose(ctrl.sort_index(), trt.reindex(ctrl.index).sort_index(), atol=1e-12)


def test_equals_diff_diff_stacked_did_unbalanced():
    """diff-diff's ``StackedDiD(kappa_pre=3, kappa_post=3)`` (same trimming, clean controls,
    Q-weights and WFH regression, unit clusters) on the unbalanced simulated panel: estimates
    1e-8, standard errors 1e-6."""
    import diff_diff as dd

    df = simulate_staggered(n_cells=60, firms_per_cell=6, seed=3)
    ours = stacked(df, "y", "firm", "year", "cohort", kappa_pre=3, kappa_post=3).tidy().set_index("event_time")
    ref = dd.StackedDiD(kappa_pre=3, kappa_post=3).fit(df, outcome="y", unit="firm", time="year", first_treat="cohort")
    ref = pd.DataFrame(ref.event_study_effects).T
    ref.index = ref.index.astype(int)
    ref = ref.loc[ours.index]
    np.testing.assert_allclose(ours["estimate"], ref["effect"].astype(float), atol=1e-8)
    np.testing.assert_allclose(ours["std_error"], ref["se"].astype(float), rtol=1e-6)


def test_unit_fixed_effects_equal_wfh_on_balanced_panel():
    """On a balanced panel sub-experiment x unit and sub-experiment x event-time effects give the
    same point estimates as WFH's treat and event-time effects (1e-8)."""
    df = simulate_staggered(n_cells=50, firms_per_cell=5, unbalanced=False, seed=6)
    a = stacked(df, "y", "firm", "year", "cohort", kappa_pre=2, kappa_post=2).tidy()
    b = stacked(df, "y", "firm", "year", "cohort", kappa_pre=2, kappa_post=2, fixed_effects="unit").tidy()
    np.testing.assert_allclose(a["estimate"], b["estimate"], atol=1e-8)


def test_recovers_true_effects_in_the_window():
    """Simulated staggered design (dynamic heterogeneous effects, cell shocks, unbalanced,
    covariate trends), cell clusters: post-treatment estimates within 4 SE of the true average
    effect of the included cohorts at each event time; pre-treatment estimates within 4 SE of 0;
    the average-post aggregate within 4 SE of the mean of the true event-time effects."""
    df = simulate_staggered(seed=21)
    res = stacked(df, "y", "firm", "year", "cohort", kappa_pre=3, kappa_post=3, covariates="x1", cluster="cell")
    tab = res.tidy().set_index("event_time")
    included = res.meta["sub_experiments"]["sub_experiment"].tolist()
    assert included == [2014, 2016, 2018]
    truth = true_event_effects(df, cohorts=included)
    post = tab[tab.index >= 0]
    assert ((post["estimate"] - truth.loc[post.index]).abs() < 4 * post["std_error"]).all()
    pre = tab[tab.index < 0]
    assert (pre["estimate"].abs() < 4 * pre["std_error"]).all()
    avg = stacked(df, "y", "firm", "year", "cohort", kappa_pre=3, kappa_post=3, covariates="x1", cluster="cell",
                  aggregate="average").tidy().iloc[0]
    assert abs(avg["estimate"] - truth.loc[0:3].mean()) < 4 * avg["std_error"]
    assert res.meta["n_clusters"] == df["cell"].nunique()


def test_bad_input():
    """No feasible window, kappa_pre < 1, unknown options."""
    df = simulate_staggered(n_cells=20, firms_per_cell=3, seed=1)
    with pytest.raises(ValueError, match="no feasible sub-experiment"):
        stacked(df, "y", "firm", "year", "cohort", kappa_pre=6, kappa_post=6)
    with pytest.raises(ValueError, match="kappa_pre"):
        stacked(df, "y", "firm", "year", "cohort", kappa_pre=0)
    with pytest.raises(ValueError, match="weighting"):
        stacked(df, "y", "firm", "year", "cohort", weighting="population")


@pytest.mark.parametrize("control, weighting, cluster", [("notyet", "aggregate", None), ("never", "aggregate", None),
                                                         ("notyet", "none", "cell"), ("never", "aggregate", "cell"),
                                                         ("never", "aggregate", "ever")])
def test_closed_form_equals_pyfixest(control, weighting, cluster):
    """Without covariates the WFH regression is saturated in the treat x event-time cells and is
    solved in closed form; it equals ``pyfixest.feols("_y ~ i(_ev, _treat, ref=-1) | _treat + _ev",
    weights="_Q", vcov={"CRV1": cluster})`` on the same stacked rows (unbalanced panel; clean
    controls not yet or never treated; unit and cell clusters; Q-weights and none; and two
    clusters, ever and never treated, in which the treat effect is nested): coefficients
    1e-10, covariance 1e-8 relative, degrees of freedom, observations."""
    import pyfixest as pf

    from analysis.did.stacked import _wfh_cell_fit

    df = simulate_staggered(n_cells=40, firms_per_cell=5, seed=11)
    df["ever"] = (df["cohort"] > 0).astype(int)
    panel = prepare_panel(df, outcome="y", unit="firm", time="year", cohort="cohort", cluster=cluster)
    st, _, _ = stack_data(panel.frame, kappa_pre=3, kappa_post=2, control=control)
    if weighting == "none":
        st["_Q"] = 1.0
    ev, beta, V, df_t = _wfh_cell_fit(st, kappa_pre=3, kappa_post=2)
    fit = pf.feols("_y ~ i(_ev, _treat, ref=-1) | _treat + _ev", data=st, vcov={"CRV1": "_cl"}, weights="_Q")
    ref = fit.tidy()
    order = [f"_ev::{e}:_treat" for e in ev]
    np.testing.assert_allclose(beta, ref.loc[order, "Estimate"].to_numpy(), atol=1e-10)
    Vref = fit._vcov
    np.testing.assert_allclose(V, Vref, rtol=1e-8, atol=1e-14)
    assert df_t == fit._df_t
    res = stacked(df, "y", "firm", "year", "cohort", kappa_pre=3, kappa_post=2, control=control, weighting=weighting,
                  cluster=cluster).tidy()
    np.testing.assert_allclose(res["estimate"], beta, atol=1e-12)
    assert res["n_obs"].iloc[0] == fit._N == len(st)


def test_empty_cell_falls_back_to_pyfixest():
    """A treat x event-time cell without rows (no treated firm observed at event time 2) has no
    closed form; the regression then goes through pyfixest, which drops the collinear
    coefficient, and the note says which."""
    df = simulate_staggered(n_cells=40, firms_per_cell=5, seed=11)
    treated = df["cohort"].fillna(0) > 0
    df = df[~(treated & (df["year"] - df["cohort"] == 2))]
    panel = prepare_panel(df, outcome="y", unit="firm", time="year", cohort="cohort")
    st, _, _ = stack_data(panel.frame, kappa_pre=3, kappa_post=2)
    assert _wfh_cell_fit(st, kappa_pre=3, kappa_post=2) is None
    res = stacked(df, "y", "firm", "year", "cohort", kappa_pre=3, kappa_post=2)
    assert 2 not in res.tidy()["event_time"].tolist()
    assert any("missing (collinear): [2]" in n for n in res.meta["notes"])
