"""The effects study: family specifications, tests on results, PPML, and recovery of the truth.

- pre-trend and equality Wald statistics (chi-squared, Welch's F) are checked against hand computations;
- the Poisson PML estimate is checked against statsmodels' GLM Poisson with unit and year dummies
  (the textbook estimator the fixed-effects version must equal);
- on the default synthetic world, each family's main outcome estimated by Callaway-Sant'Anna is
  within 3 standard errors of the true ATT (the stated tolerance), and the violated-parallel-trend
  scenario makes the joint pre-trend test reject while the default world does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.config import CONFIG_DIR, ParameterError, load_params
from analysis.effects import (
    attach_truth,
    attach_truth_overall,
    count_effects,
    equality_test,
    load_family,
    pretrend_test,
    proportional_truth,
    run_estimator,
)
from analysis.panel import add_outcomes
from analysis.results import EstimationResult
from analysis.simulate import simulate_world

from worlds import SMALL

FAMILIES = sorted(p.stem.removeprefix("effects_") for p in CONFIG_DIR.glob("effects_*.yaml"))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_specification_loads(family):
    """Each config/effects_*.yaml loads and its main outcome is one of its outcomes."""
    spec = load_family(family)
    assert spec["family"] == family and spec["main"] in [o["column"] for o in spec["outcomes"]]


def test_family_errors_name_the_problem(tmp_path):
    """A misspelt key and a main outcome outside the list are errors naming them."""
    (tmp_path / "effects_x.yaml").write_text("family: x\nmain: a\noutcomes: [{column: a}]\nsampel: null\n")
    with pytest.raises(ParameterError, match=r"unknown key\(s\) \['sampel'\]"):
        load_family("x", config_dir=tmp_path)
    (tmp_path / "effects_y.yaml").write_text("family: y\nmain: b\noutcomes: [{column: a}]\n")
    with pytest.raises(ParameterError, match="main outcome 'b' is not among its outcomes"):
        load_family("y", config_dir=tmp_path)


def _event_result(estimates, vcov):
    e = [-3, -2, 0, 1]
    return EstimationResult.from_estimates(estimate=estimates, std_error=np.sqrt(np.diag(vcov)), term=[f"e{x}" for x in e],
                                           outcome="y", estimator="x", n_obs=100, vcov=vcov, event_time=e)


def test_pretrend_test_is_the_wald_statistic_of_pre_periods():
    """b' V^-1 b over the pre-period rows only, chi2 with 2 df (computed by hand)."""
    V = np.array([[0.04, 0.01, 0, 0], [0.01, 0.09, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    res = _event_result([0.2, -0.3, 5.0, 7.0], V)
    b = np.array([0.2, -0.3])
    stat = b @ np.linalg.inv(V[:2, :2]) @ b
    out = pretrend_test(res)  # no small-sample inference attached: chi-squared
    assert out.method == "chi2" and out.stat == pytest.approx(stat) and out.df == 2
    assert out.p_value == pytest.approx(stats.chi2.sf(stat, 2))
    assert "e-3 = e-2 = 0" in out.null


def test_equality_test_against_hand_computation():
    """The equality Wald statistic equals sum w (b - weighted mean)^2 computed by hand, df = groups - 1."""
    b, se = np.array([0.1, 0.3, 0.2]), np.array([0.05, 0.1, 0.05])
    w = 1 / se**2
    stat = np.sum(w * (b - np.sum(w * b) / w.sum()) ** 2)
    out = equality_test(b, se)
    assert out.stat == pytest.approx(stat) and out.df == 2 and out.method == "chi2"
    assert np.isnan(equality_test([0.1], [0.1]).p_value)


def test_welch_equality_test_against_hand_computation():
    """Welch (1951) heteroscedastic F test: statistic, degrees of freedom and p-value by hand;
    with very many degrees of freedom it approaches the chi-squared test."""
    b, se, df = np.array([0.1, 0.3, 0.2]), np.array([0.05, 0.1, 0.05]), np.array([6.0, 9.0, 12.0])
    w = 1 / se**2
    W = np.sum(w * (b - np.sum(w * b) / w.sum()) ** 2)
    lam = np.sum((1 - w / w.sum()) ** 2 / df)
    F = W / 2 / (1 + 2 * 1 * lam / 8)
    out = equality_test(b, se, df)
    assert out.method == "welch" and out.stat == pytest.approx(F) and out.df_denom == pytest.approx(8 / (3 * lam))
    assert out.p_value == pytest.approx(stats.f.sf(F, 2, 8 / (3 * lam)))
    big = equality_test(b, se, np.full(3, 1e9))
    assert big.p_value == pytest.approx(equality_test(b, se).p_value, rel=1e-6)


def test_attach_truth_marks_coverage():
    """Bias is estimate minus truth; covered is truth inside the interval; no truth leaves it missing."""
    tidy = pd.DataFrame({"outcome": ["y", "y"], "estimator": ["a", "b"], "term": "ATT", "estimate": [1.0, 2.0], "std_error": 0.1,
                         "conf_low": [0.8, 1.8], "conf_high": [1.2, 2.2], "p_value": 0.0, "n_obs": 10})
    truth = pd.DataFrame({"outcome": ["ty"], "aggregation": ["simple"], "att": [1.1]})
    out = attach_truth(tidy, truth, {"y": "ty"}, "simple")
    assert out["bias"].tolist() == pytest.approx([-0.1, 0.9])
    assert out["covered"].tolist() == [True, False]
    assert attach_truth(tidy, None, {"y": "ty"}, "simple")["covered"].isna().all()


def test_stacked_is_compared_with_the_effect_at_impact():
    """Overall ATTs meet the simple truth, stacked DiD (window ending at event time 0) the truth at e = 0."""
    tidy = pd.DataFrame({"outcome": "y", "estimator": ["cs_dr", "stacked"], "term": "ATT", "estimate": [1.0, 0.5], "std_error": 0.1,
                         "conf_low": [0.8, 0.3], "conf_high": [1.2, 0.7], "p_value": 0.0, "n_obs": 10})
    truth = pd.DataFrame({"outcome": ["ty", "ty", "ty"], "aggregation": ["simple", "event", "event"], "event_time": [pd.NA, 0, 1], "att": [1.1, 0.45, 1.5]})
    out = attach_truth_overall(tidy, truth, {"y": "ty"})
    assert out["truth"].tolist() == pytest.approx([1.1, 0.45])
    assert out["covered"].tolist() == [True, True]


def test_proportional_truth_weights_cells_by_treated_observations():
    """The ETWFE Poisson estimand, computed by hand on two cells weighted 2:1."""
    pot = pd.DataFrame({"cohort": [2020] * 3, "year": [2020, 2020, 2021], "event_time": [0, 0, 1],
                        "p_1": [2.0, 4.0, 3.0], "p_0": [1.0, 2.0, 1.0]})
    expected = (2 * np.log(6 / 3) + 1 * np.log(3 / 1)) / 3
    assert proportional_truth(pot, "p") == pytest.approx(expected)


def test_ppml_equals_glm_poisson_with_dummies():
    """pyfixest's fepois with firm and year effects = statsmodels GLM Poisson on dummies (same data)."""
    rng = np.random.default_rng(3)
    n, T = 60, 6
    d = pd.DataFrame({"firm_id": np.repeat(np.arange(n), T), "year": np.tile(np.arange(2015, 2015 + T), n)})
    d["cohort"] = np.repeat(rng.choice([0, 2017, 2019], n), T)
    d["cell_id"] = d["firm_id"] // 4
    a = np.repeat(rng.normal(0, 0.5, n), T)
    treat = (d["cohort"] > 0) & (d["year"] >= d["cohort"])
    d["y"] = rng.poisson(np.exp(0.5 + a + 0.05 * (d["year"] - 2015) + 0.3 * treat))
    ours = count_effects(d, "y").set_index("estimator").loc["ppml_twfe", "estimate"]
    X = pd.get_dummies(d[["firm_id", "year"]].astype(str), drop_first=True, dtype=float).assign(tp=treat.astype(float))
    ref = sm.GLM(d["y"], sm.add_constant(X), family=sm.families.Poisson()).fit()
    assert ours == pytest.approx(ref.params["tp"], abs=1e-6)


# --- recovery of the truth on the synthetic world --------------------------------------------------
def _cs(panel, outcome, **kw):
    return run_estimator("cs_dr", panel.dropna(subset=[outcome]), outcome, cluster="cell_id", window=(-5, 2), **kw)


@pytest.mark.parametrize("outcome", ["log1p_patents", "log_so2_intensity", "log_value_added"])
def test_main_estimates_within_three_standard_errors_of_truth(default_world, outcome):
    """Callaway-Sant'Anna (never-treated, clustered by cell) is within 3 SE of the true ATT on the default world.

    (Not TFP, which must be estimated first; tests/test_tfp_world.py checks the production function on this world.)"""
    panel = add_outcomes(default_world.panel)
    if "so2" in outcome:
        panel = panel[panel["reports_emissions"]]
    res = _cs(panel, outcome)["simple"].tidy().iloc[0]
    truth = default_world.truth.query("aggregation == 'simple' and outcome == @outcome")["att"].item()
    assert abs(res["estimate"] - truth) < 3 * res["std_error"], (res["estimate"], truth, res["std_error"])


def test_pretrend_test_rejects_a_violated_parallel_trend_and_not_the_default(small_world):
    """With world.scenario.pretrend = 0.02 (TFP of certified cells trending up 2 % a year before
    certification) the joint pre-trend test of log value added rejects at 1 %; on the same world
    without it, it does not."""
    bent = simulate_world({"world": {**SMALL["world"], "scenario": {"pretrend": 0.02}}}, seed=small_world.params["seed"])
    t_bent = pretrend_test(_cs(add_outcomes(bent.panel), "log_value_added")["event"])
    t_null = pretrend_test(_cs(add_outcomes(small_world.panel), "log_value_added")["event"])
    assert t_bent.method == t_null.method == "wild_bootstrap"
    assert t_bent.p_value < 0.01 < t_null.p_value


def test_family_keeps_its_pretrend_tests_and_releases_the_per_cluster_blocks(small_world):
    """``estimate_family`` runs each fit's joint pre-trend test as soon as the fit is done and then
    releases the fit's small-sample blocks and ``att_gt`` object (at 4.9 million firm-years, kept
    for 6 estimators x 6 outcomes, they took 13 GB). Checked against a fresh ``run_estimator`` +
    ``pretrend_test`` on the same data: the same statistic and p-value for every estimator; the
    retained results have no blocks, and a further joint test on them says why it cannot run
    instead of falling back to chi-squared."""
    from analysis.did.data import as_panel
    from analysis.effects import _did_frame, estimate_family, load_family

    panel = add_outcomes(small_world.panel)
    spec = {**load_family("productivity"), "outcomes": [{"column": "log_value_added", "label": "log VA", "truth": "log_value_added"}]}
    did = {**load_params("default")["did"], "estimators": ["cs_dr", "imputation", "twfe"], "n_boot": 0}
    fx = estimate_family(panel, spec, did, seed=3, progress=False)
    data = as_panel(_did_frame(panel, did, "log_value_added"), unit="firm_id", time="year", cohort="cohort", cluster=did["cluster"])
    for est in did["estimators"]:
        fresh = run_estimator(est, data, "log_value_added", cluster=did["cluster"], window=tuple(did["window"]), alpha=did["alpha"])
        ref = pretrend_test(fresh["event"], seed=3)
        row = fx.pretrends.set_index("estimator").loc[est]
        assert row["method"] == ref.method == "wild_bootstrap"
        assert row["stat"] == pytest.approx(ref.stat, rel=1e-10) and row["p_value"] == ref.p_value
        kept = fx.results[("log_value_added", est)]
        assert "att_gt" not in kept and all(getattr(r, "small_sample", None) is None for r in kept.values())
        with pytest.raises(ValueError, match="released after the report's pre-trend test"):
            pretrend_test(kept["event"])
