"""The robustness study (analysis.robustness) and the pre-trend power calculation (analysis.did.pretrends):
published numbers, agreement with the estimators, the rules of the summary table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import robustness as R
from analysis.did import att_gt, imputation, twfe
from analysis.did.pretrends import pretrend_diagnostics, pretrend_power, slope_for_power
from analysis.panel import add_outcomes

REFERENCE = Path(__file__).parent / "reference"
S = R.settings({"did": {"cluster": "cell_id", "alpha": 0.05, "window": [-5, 2]}, "robustness": {}, "seed": 0})


@pytest.fixture(scope="module")
def panel(small_world) -> pd.DataFrame:
    """The small world's panel with outcomes and geography."""
    return R.add_geography(add_outcomes(small_world.panel))


# --- Roth (2022): the He and Wang example of the pretrends package ---------------------------------
def test_pretrend_power_reproduces_the_pretrends_readme():
    """tests/reference/pretrends_hewang.json (extracted by pretrends_hewang.py from the R package's data):
    slope_for_power(0.5) = 0.05205871 (relative 5e-4: both sides integrate the normal rectangle by Genz's
    randomised algorithm); at that slope the power is 0.4999776 (5e-4), the Bayes factor 0.56901 (5e-4) and the
    likelihood ratio 0.1057627 (exact formula: 1e-6)."""
    ref = json.loads((REFERENCE / "pretrends_hewang.json").read_text())
    pub = ref["published"]
    b, V, t = np.array(ref["beta"]), np.array(ref["sigma"]), np.array(ref["tVec"], dtype=float)
    np.testing.assert_allclose(np.sqrt(np.diag(V)), pub["se"], atol=5e-9)
    pre = t < -1
    slope = slope_for_power(V[np.ix_(pre, pre)], t[pre], reference=-1, power=0.5)
    assert slope == pytest.approx(pub["slope_for_power_50"], rel=5e-4)
    d = pretrend_diagnostics(b, V, t, pub["slope_for_power_50"] * (t + 1), reference=-1)
    assert d["power"] == pytest.approx(pub["power_at_slope50"], abs=5e-4)
    assert d["bayes_factor"] == pytest.approx(pub["bayes_factor_at_slope50"], abs=5e-4)
    assert d["likelihood_ratio"] == pytest.approx(pub["likelihood_ratio_at_slope50"], abs=1e-6)


def test_wald_power_is_the_noncentral_chi2_and_any_test_size():
    """With independent coefficients the 'any significant' test has size 1 - 0.95^k; the Wald test's power at
    delta = 0 is alpha and grows with the noncentrality delta' V^-1 delta (scipy's ncx2)."""
    from scipy import stats

    V = np.diag([0.01, 0.02, 0.04])
    assert pretrend_power(V, np.zeros(3)) == pytest.approx(1 - 0.95**3, abs=1e-4)
    assert pretrend_power(V, np.zeros(3), test="wald") == pytest.approx(0.05)
    delta = np.array([0.1, 0.2, 0.3])
    ncp = float(delta @ np.linalg.inv(V) @ delta)
    assert pretrend_power(V, delta, test="wald") == pytest.approx(stats.ncx2.sf(stats.chi2.ppf(0.95, 3), 3, ncp))


# --- settings, timing, groups ------------------------------------------------------------------------
def test_default_yaml_section_equals_module_defaults():
    """config/default.yaml's robustness section and robustness.DEFAULTS are the same (one source of truth for
    hand-made parameter dicts)."""
    from analysis.config import load_params

    assert load_params("default")["robustness"] == R.DEFAULTS


def test_late_month_rule_reproduces_the_world_and_varies_it(small_world, panel):
    """With the world's cut-off (July) the recomputed cohorts equal the panel's; with December the batch
    announced in November 2025 is first treated in 2025; with January every batch a year later."""
    ann = pd.Series(pd.to_datetime(small_world.clusters["announced"]).to_numpy(), index=small_world.clusters["cluster_id"].astype(str))
    assert (R.cohorts_for_late_month(panel, ann, 7).to_numpy() == panel["cohort"].to_numpy()).all()
    dec = R.cohorts_for_late_month(panel, ann, 12)
    by_batch = pd.DataFrame({"batch": panel["batch"], "g": dec}).dropna().groupby("batch")["g"].first().to_dict()
    assert by_batch == {2022: 2023, 2023: 2023, 2024: 2024, 2025: 2025}
    jan = R.cohorts_for_late_month(panel, ann, 1)
    assert pd.DataFrame({"batch": panel["batch"], "g": jan}).dropna().groupby("batch")["g"].first().to_dict() == {2022: 2024, 2023: 2024, 2024: 2025, 2025: 0}


def test_exposure_groups_partition_the_firms(panel):
    """Members are the certified cells' firms; county-exposed firms sit in a certified county outside its
    certified cells; prefecture-exposed firms share a certified cell's industry and prefecture but not its county;
    far firms' prefectures have no certified cell."""
    grp = R.exposure_groups(panel)
    g = panel["cohort"]
    assert ((grp["group"] == "member") == (g > 0)).all()
    cert = panel[g > 0]
    county = panel[grp["group"] == "county"]
    assert county["county_code"].isin(cert["county_code"]).all() and (county["cohort"] == 0).all()
    pref = panel[grp["group"] == "prefecture"]
    pairs = set(zip(cert["prefecture"], cert["industry_code"]))
    assert all(pi in pairs for pi in zip(pref["prefecture"], pref["industry_code"]))
    assert not pref["county_code"].isin(cert["county_code"]).any()
    assert not panel.loc[grp["group"] == "far", "prefecture"].isin(cert["prefecture"]).any()
    first = cert.groupby("county_code")["cohort"].min()
    assert (grp.loc[county.index, "spill_cohort"] == county["county_code"].map(first)).all()


# --- one fit, every clustering level ------------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["cs_dr", "imputation", "twfe"])
def test_fit_variant_equals_the_estimators_at_every_level(panel, estimator):
    """fit_variant's estimate and standard errors equal att_gt (1e-10), imputation (1e-10) and twfe (pyfixest,
    whose demeaning is iterative: relative 1e-4) clustered at each level."""
    levels = {"cell": "cell_id", "county": "county_code", "prefecture": "prefecture", "province": "province"}
    out = R.fit_variant(panel, "log_labor_productivity", estimator, levels).set_index("cluster")
    for name, col in levels.items():
        if estimator == "cs_dr":
            ref = att_gt(panel, "log_labor_productivity", "firm_id", "year", "cohort", cluster=col).aggregate("simple")
            tol = {"abs": 1e-10}
        elif estimator == "imputation":
            ref = imputation(panel, "log_labor_productivity", "firm_id", "year", "cohort", cluster=col, aggregate="static")
            tol = {"abs": 1e-10}
        else:
            ref = twfe(panel, "log_labor_productivity", "firm_id", "year", "cohort", cluster=col)
            tol = {"rel": 1e-4}
        assert out.loc[name, "estimate"] == pytest.approx(float(ref.coef()["ATT"]), abs=1e-8)
        assert out.loc[name, "std_error"] == pytest.approx(float(ref.se()["ATT"]), **tol)
        assert out.loc[name, "n_clusters"] == panel[col].nunique() or estimator != "cs_dr"


def test_entropy_balance_matches_means_exactly():
    """Entropy balancing reproduces the target means (1e-8) with positive weights summing to one, and with a
    target equal to the controls' mean returns uniform weights."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 3)) * [1, 2, 5] + [0, 1, 10]
    target = np.array([0.2, 1.5, 11.0])
    w = R.entropy_balance(X, target)
    assert (w > 0).all() and w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w @ X, target, atol=1e-8)
    np.testing.assert_allclose(R.entropy_balance(X, X.mean(axis=0)), np.full(800, 1 / 800), atol=1e-10)


def _kernel_loop(pt, pc, h):
    """The definition, one treated unit at a time (psmatch2's kernel option, Epanechnikov): the reference."""
    w, ok = np.zeros(pc.size), np.zeros(pt.size, bool)
    for i, p in enumerate(pt):
        inside = np.abs(pc - p) < h
        k = 0.75 * (1 - ((pc[inside] - p) / h) ** 2)
        if inside.any() and k.sum() > 0:
            w[inside] += k / k.sum()
            ok[i] = True
    return w, ok


@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_weights_equal_the_loop_over_treated_units(seed):
    """Kernel matching weights by prefix sums equal the definition (a loop over treated units) to 1e-9,
    on skewed scores like a propensity score with treated units beyond the controls' support."""
    rng = np.random.default_rng(seed)
    pc = rng.beta(1, 12, 3000)
    pt = np.concatenate([rng.beta(2, 10, 300), [0.9, 0.95]])  # the last two have no control within 0.06
    w, ok = R.kernel_match_weights(pt, pc, 0.06)
    w_ref, ok_ref = _kernel_loop(pt, pc, 0.06)
    assert (ok == ok_ref).all() and not ok[-2:].any()
    np.testing.assert_allclose(w, w_ref, rtol=1e-9, atol=1e-9)
    assert w.sum() == pytest.approx(ok.sum())  # every matched treated unit hands out weight one


def test_thinning_notes_name_what_a_parameter_set_leaves_out():
    """The default parameter set thins nothing; config/asif.yaml's thinned specification curve (no alternative
    announcement-month cut-offs) is named with the setting that restores it, as are fewer wild bootstrap draws."""
    from analysis.config import deep_merge, load_params

    assert R.thinning_notes(R.settings(load_params("default"))) == []
    notes = R.thinning_notes(R.settings(load_params("asif")))
    assert any("announcement-month cut-offs 1, 12" in n and "robustness.spec_curve.late_months" in n for n in notes), notes
    fewer = deep_merge(load_params("default"), {"robustness": {"wild_bootstrap": {"draws": 999}}})
    assert R.thinning_notes(R.settings(fewer)) == ["wild bootstrap thinned to 999 draws (default 9999)"]


def test_matching_balances_and_estimates(panel):
    """On the small world: entropy balancing removes the standardised bias of every baseline covariate (to 1e-6 %),
    nearest-neighbour matching shrinks the largest one, and every matched estimate has a finite standard error."""
    res = R.matching_estimates(panel, "log_labor_productivity", S)
    bal = res["balance"]
    assert bal["std. bias % (entropy)"].abs().max() < 1e-6
    assert bal["std. bias % (NN)"].abs().max() < bal["std. bias % (all)"].abs().max()
    est = res["estimates"]
    assert len(est) == 8 and np.isfinite(est["std_error"]).all()
    assert set(est["check"]) == {"psm", "reweighting"}


def test_placebo_uses_only_pre_treatment_years(panel):
    """The placebo rows use only event times 0..shift-1 of the placebo cohorts, which are real pre-treatment years:
    adding a constant to every treated firm-year after certification leaves them unchanged."""
    base = R.placebo_in_time(panel, "log_labor_productivity", S)
    bumped = panel.assign(log_labor_productivity=panel["log_labor_productivity"] + 5.0 * ((panel["cohort"] > 0) & (panel["year"] >= panel["cohort"])))
    again = R.placebo_in_time(bumped, "log_labor_productivity", S)
    np.testing.assert_allclose(base["estimate"], again["estimate"], atol=1e-12)
    assert base["shift"].tolist() == [2, 3]


# --- the summary table ------------------------------------------------------------------------------
def _rows(**kw) -> pd.DataFrame:
    return pd.DataFrame([kw])


def test_summary_rules():
    """A check changes the conclusion when its estimate's sign or significance differs from the main one; a
    placebo, when it is significant; a significant spillover, when the main estimate without exposed controls
    changes; the specification curve, when more than 10 % differ."""
    main = pd.DataFrame({"estimator": ["cs_dr"], "estimate": [0.03], "p_value": [0.001], "std_error": [0.01]})
    design = pd.DataFrame({
        "check": ["control", "control", "timing", "anticipation"],
        "variant": ["never treated (main)", "not yet treated", "cut-off month 1", "1 year"],
        "estimate": [0.03, 0.029, 0.01, -0.02], "p_value": [0.001, 0.002, 0.3, 0.01],
    })
    placebo = pd.DataFrame({"check": ["placebo"], "variant": ["2 years earlier"], "estimate": [0.001], "p_value": [0.8]})
    spill = pd.DataFrame({"check": ["spill_county", "no_exposed"], "variant": ["a", "b"], "estimate": [0.01, 0.03],
                          "p_value": [0.01, 0.001], "n_exposed_firms": [100, 0]})
    spec = pd.DataFrame({"estimate": [0.03] * 8 + [-0.01] * 2, "p_value": [0.001] * 8 + [0.5] * 2})
    rb = R.Robustness(family="x", main_outcome="y", settings=S, main=main, wild=pd.DataFrame({"weights": []}), clusters=pd.DataFrame(),
                      ri={}, design=design, placebo=placebo, spill=spill, matching={}, twfe={}, honest={}, spec=spec)
    t = rb.summary().set_index("check")["changes the conclusion"]
    assert t["Control group"].startswith("no")
    assert t["First-treated-year rule"].startswith("yes")
    assert t["Anticipation"].startswith("yes")
    assert t["Placebo in time"].startswith("no")
    assert t["Spillovers: same county"].startswith("no (significant")  # the estimate without exposed controls is unchanged
    assert t["Without exposed controls"].startswith("no")
    assert t["Specification curve"].startswith("yes")
    rb.spill = spill.assign(p_value=[0.01, 0.4])  # without the exposed controls the main estimate loses significance
    t = rb.summary().set_index("check")["changes the conclusion"]
    assert t["Spillovers: same county"].startswith("yes") and t["Without exposed controls"].startswith("yes")
