"""The event_study dispatcher (analysis.did.event_study): one tidy shape for every estimator,
cluster-level inference, and agreement of the robust estimators with the truth and each other."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.did.event_study import ESTIMATORS, event_study
from analysis.results import TIDY_COLUMNS, combine

from staggered_sim import simulate_staggered, true_event_effects

warnings.filterwarnings("ignore", module="pyfixest")

NON_CS = [e for e in ESTIMATORS if e != "cs"]


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    """A staggered panel with known dynamic effects and a covariate (tests/staggered_sim.py, seed 21)."""
    return simulate_staggered(seed=21)


@pytest.fixture(scope="module")
def results(sim):
    """The event study of each non-CS estimator on it, with the covariate, clustered by cell."""
    return {est: event_study(sim, "y", "firm", "year", "cohort", estimator=est, covariates="x1", cluster="cell")
            for est in NON_CS}


def test_one_tidy_shape_for_every_estimator(results, sim):
    """Every estimator returns the tidy columns with integer event_time rows (terms
    event_time::<e>), a square vcov over exactly those terms whose diagonal is the squared
    standard errors, and meta with n_clusters (the cells), cluster, reference_period and notes."""
    for res in results.values():
        tab = res.tidy()
        assert list(tab.columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
        assert tab["event_time"].notna().all() and tab["event_time"].is_monotonic_increasing
        assert tab["term"].tolist() == [f"event_time::{e}" for e in tab["event_time"]]
        assert list(res.vcov.index) == list(res.vcov.columns) == tab["term"].tolist()
        np.testing.assert_allclose(np.sqrt(np.diag(res.vcov.to_numpy())), tab["std_error"], rtol=1e-10)
        assert res.meta["n_clusters"] == sim["cell"].nunique() and res.meta["cluster"] == "cell"
        assert res.meta["reference_period"] == -1
        assert isinstance(res.meta["notes"], list)
        assert -1 not in tab["event_time"].tolist()
    both = combine(results.values())
    assert set(both["estimator"]) == {"twfe_event_study", "sunab", "imputation", "stacked"}


def test_robust_estimators_recover_truth(results, sim):
    """Sun-Abraham, imputation and stacked (default window kappa_pre=3, kappa_post=2) are within
    4 SE of the true event-time effects (stacked: of its included cohorts). (Static TWFE's bias is
    tested in test_twfe.py; the dynamic TWFE event study is only mildly contaminated here because
    40% of the cells are never treated.)"""
    truth = true_event_effects(sim)
    for est in ("sunab", "imputation", "stacked"):
        tab = results[est].tidy().set_index("event_time")
        cohorts = results[est].meta.get("sub_experiments")
        tr = truth if cohorts is None else true_event_effects(sim, cohorts["sub_experiment"].tolist())
        post = tab[tab.index >= 0]
        assert ((post["estimate"] - tr.loc[post.index]).abs() < 4 * post["std_error"]).all(), est


def test_cluster_above_unit_changes_inference_not_estimates(sim):
    """Clustering on the cell (treatment is assigned to cells, with cell-year shocks) leaves the
    estimates unchanged and widens the standard errors relative to firm clustering."""
    a = event_study(sim, "y", "firm", "year", "cohort", estimator="sunab", covariates="x1").tidy()
    b = event_study(sim, "y", "firm", "year", "cohort", estimator="sunab", covariates="x1", cluster="cell").tidy()
    np.testing.assert_allclose(a["estimate"], b["estimate"], atol=1e-10)
    assert (b["std_error"] > a["std_error"]).mean() > 0.8


def test_kwargs_reach_the_estimator(sim):
    """Estimator options pass through: TWFE bins, stacked window, imputation pre-trend count."""
    tw = event_study(sim, "y", "firm", "year", "cohort", estimator="twfe", bins=(-3, 3))
    assert tw.tidy()["event_time"].tolist() == [-3, -2, 0, 1, 2, 3]
    st = event_study(sim, "y", "firm", "year", "cohort", estimator="stacked", kappa_pre=2, kappa_post=4)
    assert st.tidy()["event_time"].tolist() == [-2, 0, 1, 2, 3, 4]
    imp = event_study(sim, "y", "firm", "year", "cohort", estimator="imputation", pretrends=2)
    assert imp.tidy()["event_time"].tolist()[:2] == [-2, -1] and imp.meta["reference_period"] is None


def test_unknown_estimator():
    """An unknown estimator name is refused with the list of choices."""
    with pytest.raises(ValueError, match="estimator must be one of"):
        event_study(pd.DataFrame(), "y", "i", "t", "g", estimator="did2s")


def test_cs_branch_on_mpdta():
    """Callaway-Sant'Anna through the dispatcher (needs analysis.did.att_gt): never-treated
    controls, event-time rows -3..3 equal R ``did``'s published values (tests/reference/r_did_mpdta.md):
    0.0305, -0.0006, -0.0245, -0.0199, -0.0510, -0.1373, -0.1008."""
    pytest.importorskip("analysis.did.att_gt")
    import moderndid

    mpdta = moderndid.load_mpdta().to_pandas()
    res = event_study(mpdta, "lemp", "countyreal", "year", "first.treat", estimator="cs")
    tab = res.tidy().set_index("event_time")
    published = {-3: 0.0305, -2: -0.0006, -1: -0.0245, 0: -0.0199, 1: -0.0510, 2: -0.1373, 3: -0.1008}
    for e, v in published.items():
        assert abs(tab.loc[e, "estimate"] - v) < 5e-5
    assert res.tidy()["term"].tolist() == [f"event_time::{e}" for e in range(-3, 4)]
    assert list(res.vcov.index) == res.tidy()["term"].tolist()
    assert abs(res.meta["overall"]["estimate"].iloc[0] - (-0.0772)) < 5e-5  # overall event-study ATT


def test_cs_universal_base_period_feeds_honest_did():
    """CS with a universal base period: the zero row at -1 becomes meta['reference_period'] and
    the result goes straight into honest_did (smoothness, M = 0 widens the conventional CI)."""
    pytest.importorskip("analysis.did.att_gt")
    import moderndid

    from analysis.did.honest import honest_did

    mpdta = moderndid.load_mpdta().to_pandas()
    es = event_study(mpdta, "lemp", "countyreal", "year", "first.treat", estimator="cs", base_period="universal")
    assert es.meta["reference_period"] == -1 and -1 not in es.tidy()["event_time"].tolist()
    hd = honest_did(es, restriction="smoothness", M=[0.0], cache=False).tidy()
    assert hd["conf_low"].iloc[1] < hd["conf_low"].iloc[0] < hd["conf_high"].iloc[0] < hd["conf_high"].iloc[1]


@pytest.mark.slow
def test_monte_carlo_coverage():
    """Monte Carlo, 100 simulated panels (60 cells x 6 firms, unbalanced, cell shocks): the 95%
    confidence intervals of Sun-Abraham, imputation and stacked cover the true effect at event
    times 0 and 2 in 88-100% of the replications (binomial 99% band around 95% for 100 draws is
    about 89-99%; BJS standard errors are conservative by construction)."""
    hits = {est: [] for est in ("sunab", "imputation", "stacked")}
    for rep in range(100):
        df = simulate_staggered(n_cells=60, firms_per_cell=6, seed=1000 + rep)
        for est in hits:
            res = event_study(df, "y", "firm", "year", "cohort", estimator=est, covariates="x1", cluster="cell")
            tab = res.tidy().set_index("event_time")
            cohorts = res.meta.get("sub_experiments")
            tr = true_event_effects(df, None if cohorts is None else cohorts["sub_experiment"].tolist())
            for e in (0, 2):
                hits[est].append(tab.loc[e, "conf_low"] <= tr.loc[e] <= tab.loc[e, "conf_high"])
    for est, h in hits.items():
        assert 0.88 <= np.mean(h) <= 1.0, (est, np.mean(h))
