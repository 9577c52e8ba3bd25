"""Validation of ``analysis.did.att_gt`` (Callaway and Sant'Anna 2021) and its aggregations.

Data: ``mpdta`` (county teen employment, 500 counties x 2003-2007, cohorts 2004/2006/2007 and
never treated), as shipped in the moderndid 0.2.0 wheel (``moderndid.load_mpdta()``), identical
to R ``did``'s ``data(mpdta)``.

References, in order of authority:

1. Published numbers of R ``did`` 2.5.1 (pkgdown reference pages ``reference/att_gt.html`` and
   ``reference/aggte.html``, examples "Basic att_gt() call", "Using covariates", "Specify
   comparison units" and the four ``aggte`` types). They are printed to 4 decimals, so they are
   compared with a tolerance of 5e-5. Their standard errors come from the default bootstrap and
   are not used; the analytic standard errors below are those of
   ``att_gt(..., bstrap = FALSE, cband = FALSE)`` (``tests/reference/r_did_mpdta.R`` and ``.md``; R ``did``,
   moderndid, diff-diff and csdid agree on them).
2. moderndid 0.2.0 (a line-by-line port of R ``did``), run inside the tests with
   ``boot=False``: every ATT(g,t), aggregation and analytic standard error must agree to 1e-10
   (measured agreement: 1e-13 or better), for DR / IPW / REG with covariates, not-yet-treated
   controls, universal base period, anticipation and ``balance_e``.
3. diff-diff 3.13 ``CallawaySantAnna``, run inside the tests, for what moderndid does not do:
   clustering above the unit (diff-diff reports CR1 standard errors, ours times
   ``sqrt(G / (G - 1))``), unbalanced panels (diff-diff's default panel treatment of an
   unbalanced panel is the same as ours: each 2x2 uses the units observed in both periods) and
   sampling weights in the aggregations (``SurveyDesign(weights=...)``; moderndid 0.2.0 drops
   the sampling weights from its aggregation weights).
4. Simulations with known truth: a staggered design with heterogeneous dynamic effects, entry
   and exit of firms, treatment and shocks at the cluster level (one large sample here; a
   Monte Carlo of bias and coverage marked ``slow``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.did import att_gt
from analysis.results import TIDY_COLUMNS

moderndid = pytest.importorskip("moderndid")

KEYS = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}
MD_KEYS = {"yname": "lemp", "tname": "year", "idname": "countyreal", "gname": "first.treat"}

# --- R did 2.5.1, reference/att_gt.html: ATT(g,t) in the order (2004,2004..2007), (2006,...), (2007,...)
R_ATT_NOCOV = [-0.0105, -0.0704, -0.1373, -0.1008, 0.0065, -0.0028, -0.0046, -0.0412, 0.0305, -0.0027, -0.0311, -0.0261]
R_ATT_LPOP = [-0.0145, -0.0764, -0.1404, -0.1069, -0.0005, -0.0062, 0.0010, -0.0413, 0.0267, -0.0046, -0.0284, -0.0288]
R_ATT_LPOP_NOTYET = [-0.0212, -0.0816, -0.1382, -0.1069, -0.0075, -0.0046, 0.0087, -0.0413, 0.0269, -0.0042, -0.0284, -0.0288]
# --- analytic SEs of R_ATT_NOCOV: R did att_gt(bstrap=FALSE, cband=FALSE), tests/reference/r_did_mpdta.md
R_SE_NOCOV = [0.0233, 0.0310, 0.0364, 0.0344, 0.0233, 0.0196, 0.0178, 0.0202, 0.0150, 0.0164, 0.0179, 0.0167]
# --- R did 2.5.1, reference/aggte.html (no covariates, never-treated controls)
R_SIMPLE = -0.0400  # printed "-0.04"; full precision -0.039951 (tests/reference/r_did_mpdta.md)
R_EVENT = {-3: 0.0305, -2: -0.0006, -1: -0.0245, 0: -0.0199, 1: -0.0510, 2: -0.1373, 3: -0.1008}
R_EVENT_OVERALL = -0.0772
R_GROUP = {2004: -0.0797, 2006: -0.0229, 2007: -0.0261}
R_GROUP_OVERALL = -0.0310
R_CALENDAR = {2004: -0.0105, 2005: -0.0704, 2006: -0.0488, 2007: -0.0371}
R_CALENDAR_OVERALL = -0.0417
PRINTED = 5e-5 + 1e-12  # half a unit of the 4th decimal
PEER = 1e-10


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    """mpdta with a state column (FIPS state, the level minimum wages are set at) to cluster on."""
    df = moderndid.load_mpdta().to_pandas()
    df["state"] = df["countyreal"] // 1000  # FIPS state: 29 states, the level minimum wages are set at
    return df


@pytest.fixture(scope="module")
def mpdta_unbalanced(mpdta) -> pd.DataFrame:
    """mpdta with 400 of its 2500 rows dropped at random (16% of county-years missing)."""
    rng = np.random.default_rng(1)
    return mpdta.drop(index=rng.choice(len(mpdta), 400, replace=False)).reset_index(drop=True)


@pytest.fixture(scope="module")
def baseline(mpdta):
    """att_gt on mpdta with R did's defaults (no covariates, never-treated controls, DR)."""
    return att_gt(mpdta, **KEYS)


def _md(data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return moderndid.att_gt(data=data, boot=False, **MD_KEYS, **kwargs)


def _md_agg(mp, kind, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return moderndid.aggte(mp, type=kind, **kwargs)


# ---------------------------------------------------------------------------------------------
# 1. Published R did numbers
# ---------------------------------------------------------------------------------------------


def test_att_gt_matches_r_did_published(baseline):
    """ATT(g,t) and analytic SEs, no covariates, never-treated controls: R did 2.5.1 (tests/reference/r_did_mpdta.md)."""
    t = baseline.tidy()
    assert list(zip(t["cohort"], t["time"], strict=True)) == [(g, y) for g in (2004, 2006, 2007) for y in range(2004, 2008)]
    np.testing.assert_allclose(t["estimate"], R_ATT_NOCOV, atol=PRINTED)
    np.testing.assert_allclose(t["std_error"], R_SE_NOCOV, atol=PRINTED)
    np.testing.assert_array_equal(t["event_time"], t["time"] - t["cohort"])


def test_aggregations_match_r_did_published(baseline):
    """simple / event / group / calendar aggregations: R did 2.5.1 reference/aggte.html."""
    simple = baseline.aggregate("simple").tidy()
    assert simple["estimate"].iloc[0] == pytest.approx(-0.039951, abs=5e-7)
    assert simple["estimate"].iloc[0] == pytest.approx(R_SIMPLE, abs=PRINTED)

    es = baseline.aggregate("event").tidy()
    np.testing.assert_allclose(es["estimate"].iloc[:-1], list(R_EVENT.values()), atol=PRINTED)
    np.testing.assert_array_equal(es["event_time"].iloc[:-1], list(R_EVENT))
    assert es["term"].iloc[-1] == "ATT" and np.isnan(es["event_time"].iloc[-1])
    assert es["estimate"].iloc[-1] == pytest.approx(R_EVENT_OVERALL, abs=PRINTED)

    grp = baseline.aggregate("group").tidy()
    np.testing.assert_allclose(grp["estimate"].iloc[:-1], list(R_GROUP.values()), atol=PRINTED)
    np.testing.assert_array_equal(grp["cohort"].iloc[:-1], list(R_GROUP))
    assert grp["estimate"].iloc[-1] == pytest.approx(R_GROUP_OVERALL, abs=PRINTED)

    cal = baseline.aggregate("calendar").tidy()
    np.testing.assert_allclose(cal["estimate"].iloc[:-1], list(R_CALENDAR.values()), atol=PRINTED)
    np.testing.assert_array_equal(cal["time"].iloc[:-1], list(R_CALENDAR))
    assert cal["estimate"].iloc[-1] == pytest.approx(R_CALENDAR_OVERALL, abs=PRINTED)


@pytest.mark.parametrize(("control", "expected"), [("never", R_ATT_LPOP), ("notyet", R_ATT_LPOP_NOTYET)])
def test_covariates_match_r_did_published(mpdta, control, expected):
    """DR with ``xformla = ~lpop``, never- and not-yet-treated controls: R did 2.5.1 docs."""
    res = att_gt(mpdta, **KEYS, covariates="lpop", control=control)
    np.testing.assert_allclose(res.tidy()["estimate"], expected, atol=PRINTED)


# ---------------------------------------------------------------------------------------------
# 2. moderndid, in-test, to 1e-10
# ---------------------------------------------------------------------------------------------

CONFIGS = {
    "dr-nocov": ({}, {}),
    "dr-lpop": ({"covariates": "lpop", "method": "dr"}, {"xformla": "~lpop", "est_method": "dr"}),
    "ipw-lpop": ({"covariates": "lpop", "method": "ipw"}, {"xformla": "~lpop", "est_method": "ipw"}),
    "reg-lpop": ({"covariates": "lpop", "method": "reg"}, {"xformla": "~lpop", "est_method": "reg"}),
    "notyet-dr-lpop": ({"covariates": "lpop", "control": "notyet"}, {"xformla": "~lpop", "control_group": "notyettreated"}),
    "universal": ({"base_period": "universal"}, {"base_period": "universal"}),
    "anticipation": ({"anticipation": 1}, {"anticipation": 1}),
    "notyet-universal-antic-ipw": (
        {"covariates": "lpop", "control": "notyet", "base_period": "universal", "anticipation": 1, "method": "ipw"},
        {"xformla": "~lpop", "control_group": "notyettreated", "base_period": "universal", "anticipation": 1, "est_method": "ipw"},
    ),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_moderndid(mpdta, config):
    """ATT(g,t), their analytic SEs and all four aggregations (with SEs) equal moderndid's."""
    ours_kw, md_kw = CONFIGS[config]
    res = att_gt(mpdta, **KEYS, **ours_kw)
    mp = _md(mpdta, **md_kw)
    t = res.tidy()
    np.testing.assert_array_equal(t["cohort"], mp.groups)
    np.testing.assert_array_equal(t["time"], mp.times)
    np.testing.assert_allclose(t["estimate"], mp.att_gt, atol=PEER)
    np.testing.assert_allclose(t["std_error"], mp.se_gt, atol=PEER)  # NaN = NaN for reference cells
    for kind, md_kind in (("simple", "simple"), ("event", "dynamic"), ("group", "group"), ("calendar", "calendar")):
        ours = res.aggregate(kind).tidy()
        theirs = _md_agg(mp, md_kind)
        assert ours["estimate"].iloc[-1] == pytest.approx(theirs.overall_att, abs=PEER)
        assert ours["std_error"].iloc[-1] == pytest.approx(theirs.overall_se, abs=PEER)
        if kind != "simple":
            np.testing.assert_allclose(ours["estimate"].iloc[:-1], theirs.att_by_event, atol=PEER)
            np.testing.assert_allclose(ours["std_error"].iloc[:-1], theirs.se_by_event, atol=PEER)


@pytest.mark.parametrize("base_period", ["varying", "universal"])
@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_time_varying_covariate_matches_moderndid(mpdta, method, base_period):
    """A covariate that varies within county: each 2x2 uses its value in the earlier of the two
    periods (R did's rule), for every method and base period; equal to moderndid to 1e-10."""
    rng = np.random.default_rng(3)
    df = mpdta.assign(xtv=mpdta["lpop"] + rng.normal(scale=0.3, size=len(mpdta)))
    res = att_gt(df, **KEYS, covariates="xtv", method=method, base_period=base_period)
    assert "earlier period" in res.meta["notes"]
    mp = _md(df, xformla="~xtv", est_method=method, base_period=base_period)
    np.testing.assert_allclose(res.tidy()["estimate"], mp.att_gt, atol=PEER)
    np.testing.assert_allclose(res.tidy()["std_error"], mp.se_gt, atol=PEER)


@pytest.mark.parametrize("base_period", ["varying", "universal"])
def test_gapped_periods_match_moderndid(mpdta, base_period):
    """Without 2005 (periods 2003, 2004, 2006, 2007) base periods are the previous *observed*
    period, event times stay calendar differences; cells and aggregations equal moderndid's."""
    df = mpdta[mpdta["year"] != 2005]
    res = att_gt(df, **KEYS, base_period=base_period)
    mp = _md(df, base_period=base_period)
    np.testing.assert_allclose(res.tidy()["estimate"], mp.att_gt, atol=PEER)
    np.testing.assert_allclose(res.tidy()["std_error"], mp.se_gt, atol=PEER)
    for kind, md_kind in (("event", "dynamic"), ("calendar", "calendar"), ("group", "group")):
        ours = res.aggregate(kind).tidy()
        theirs = _md_agg(mp, md_kind)
        np.testing.assert_allclose(ours["estimate"], [*theirs.att_by_event, theirs.overall_att], atol=PEER)
        np.testing.assert_allclose(ours["std_error"], [*theirs.se_by_event, theirs.overall_se], atol=PEER)


def test_universal_base_reference_cell(mpdta):
    """Universal base period: the cell at g-1 is 0 with no standard error (R did convention)."""
    t = att_gt(mpdta, **KEYS, base_period="universal").tidy()
    ref = t[t["time"] == t["cohort"] - 1]
    assert (ref["estimate"] == 0).all() and ref["std_error"].isna().all()
    es = att_gt(mpdta, **KEYS, base_period="universal").aggregate("event").tidy()
    assert es.loc[es["event_time"] == -1, "estimate"].item() == 0


def test_event_window_and_balance_match_moderndid(baseline, mpdta):
    """``balance_e=1, min_e=-2, max_e=2`` keeps the cohorts seen one period after treatment, as R."""
    ours = baseline.aggregate("event", balance_e=1, min_e=-2, max_e=2).tidy()
    theirs = _md_agg(_md(mpdta), "dynamic", balance_e=1, min_e=-2, max_e=2)
    np.testing.assert_array_equal(ours["event_time"].iloc[:-1], theirs.event_times)
    np.testing.assert_allclose(ours["estimate"], [*theirs.att_by_event, theirs.overall_att], atol=PEER)
    np.testing.assert_allclose(ours["std_error"], [*theirs.se_by_event, theirs.overall_se], atol=PEER)


def test_notyet_without_never_treated(mpdta):
    """No never-treated unit and not-yet-treated controls: periods from the last cohort on are
    dropped and that cohort is only a control (R did 2.5.1 NEWS); the other cells equal moderndid's."""
    treated_only = mpdta[mpdta["first.treat"] > 0]
    res = att_gt(treated_only, **KEYS, control="notyet")
    t = res.tidy()
    assert set(t["cohort"]) == {2004, 2006} and t["time"].max() == 2006
    assert "no never-treated units" in res.meta["notes"]
    mp = _md(treated_only, control_group="notyettreated")
    keep = np.isin(mp.groups, [2004, 2006])
    np.testing.assert_allclose(t["estimate"], mp.att_gt[keep], atol=PEER)
    np.testing.assert_allclose(t["std_error"], mp.se_gt[keep], atol=PEER)


def test_weights_match_moderndid_cells(mpdta):
    """Sampling weights (constant within county): ATT(g,t) and SEs with covariates equal moderndid's."""
    df = _with_weights(mpdta)
    res = att_gt(df, **KEYS, covariates="lpop", weights="w")
    mp = _md(df, xformla="~lpop", weightsname="w")
    np.testing.assert_allclose(res.tidy()["estimate"], mp.att_gt, atol=PEER)
    np.testing.assert_allclose(res.tidy()["std_error"], mp.se_gt, atol=PEER)


# ---------------------------------------------------------------------------------------------
# 3. diff-diff, in-test: clusters above the unit, unbalanced panels, weighted aggregations
# ---------------------------------------------------------------------------------------------


def _dd_fit(data, **kwargs):
    diff_diff = pytest.importorskip("diff_diff")
    fit_kw = {k: kwargs.pop(k) for k in ("covariates", "survey_design") if k in kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return diff_diff.CallawaySantAnna(**kwargs).fit(data, outcome="lemp", unit="countyreal", time="year", first_treat="first.treat", **fit_kw)


def _dd_cells(fit, tidy, key):
    return np.array([fit.group_time_effects[(int(g), int(t))][key] for g, t in zip(tidy["cohort"], tidy["time"], strict=True)])


def _with_weights(df):
    rng = np.random.default_rng(5)
    units = df["countyreal"].unique()
    return df.assign(w=df["countyreal"].map(dict(zip(units, rng.uniform(0.5, 2.0, units.size), strict=True))))


@pytest.mark.parametrize("panel", ["balanced", "unbalanced"])
def test_clustered_se_match_diff_diff(mpdta, mpdta_unbalanced, panel):
    """Clustering at the state (29 clusters above the county): cell and event-study SEs times
    sqrt(G/(G-1)) equal diff-diff's CR1 SEs; point estimates are unchanged by clustering."""
    df = mpdta if panel == "balanced" else mpdta_unbalanced
    res = att_gt(df, **KEYS, cluster="state")
    assert res.meta["n_clusters"] == 29 and res.meta["cluster"] == "state"
    cr1 = np.sqrt(29 / 28)
    fit = _dd_fit(df, cluster="state")
    t = res.tidy()
    np.testing.assert_allclose(t["estimate"], _dd_cells(fit, t, "effect"), atol=PEER)
    np.testing.assert_allclose(t["std_error"] * cr1, _dd_cells(fit, t, "se"), atol=PEER)
    np.testing.assert_allclose(t["estimate"], att_gt(df, **KEYS).tidy()["estimate"], atol=1e-14)
    if panel == "balanced":
        es = res.aggregate("event").tidy()
        dd_es = fit.aggregate("event_study").to_dataframe()
        np.testing.assert_allclose(es["estimate"].iloc[:-1], dd_es["att"], atol=PEER)
        np.testing.assert_allclose(es["std_error"].iloc[:-1] * cr1, dd_es["se"], atol=PEER)
        assert res.aggregate("simple").tidy()["std_error"].iloc[0] * cr1 == pytest.approx(fit.overall_se, abs=PEER)


@pytest.mark.parametrize(("control", "dd_control"), [("never", "never_treated"), ("notyet", "not_yet_treated")])
def test_unbalanced_panel_matches_diff_diff(mpdta_unbalanced, control, dd_control):
    """Unbalanced panel (16% of rows dropped at random): ATT(g,t) and SEs equal diff-diff's
    (each 2x2 on the units observed in both periods, influence functions stacked by unit)."""
    res = att_gt(mpdta_unbalanced, **KEYS, control=control)
    assert res.meta["panel"].startswith("unbalanced")
    fit = _dd_fit(mpdta_unbalanced, control_group=dd_control)
    t = res.tidy()
    np.testing.assert_allclose(t["estimate"], _dd_cells(fit, t, "effect"), atol=PEER)
    np.testing.assert_allclose(t["std_error"], _dd_cells(fit, t, "se"), atol=PEER)


def test_unbalanced_with_covariates_close_to_diff_diff(mpdta_unbalanced):
    """With a covariate, diff-diff's DR differs from R's in its propensity-score details (it is
    off R by ~1e-5 on the balanced panel too); agreement to 1e-4 on the unbalanced panel."""
    res = att_gt(mpdta_unbalanced, **KEYS, covariates="lpop")
    fit = _dd_fit(mpdta_unbalanced, covariates=["lpop"])
    t = res.tidy()
    np.testing.assert_allclose(t["estimate"], _dd_cells(fit, t, "effect"), atol=1e-4)
    np.testing.assert_allclose(t["std_error"], _dd_cells(fit, t, "se"), atol=1e-4)


def test_weighted_aggregations_match_diff_diff(mpdta):
    """Sampling weights enter the cells and the cohort-share aggregation weights: ATT(g,t), simple
    and event-study estimates and SEs equal diff-diff with ``SurveyDesign(weights="w")``."""
    diff_diff = pytest.importorskip("diff_diff")
    df = _with_weights(mpdta)
    res = att_gt(df, **KEYS, weights="w")
    fit = _dd_fit(df, survey_design=diff_diff.SurveyDesign(weights="w"))
    t = res.tidy()
    np.testing.assert_allclose(t["estimate"], _dd_cells(fit, t, "effect"), atol=PEER)
    np.testing.assert_allclose(t["std_error"], _dd_cells(fit, t, "se"), atol=PEER)
    simple = res.aggregate("simple").tidy()
    assert simple["estimate"].iloc[0] == pytest.approx(fit.overall_att, abs=PEER)
    assert simple["std_error"].iloc[0] == pytest.approx(fit.overall_se, abs=PEER)
    es = res.aggregate("event").tidy()
    dd_es = fit.aggregate("event_study").to_dataframe()
    np.testing.assert_allclose(es["estimate"].iloc[:-1], dd_es["att"], atol=PEER)
    np.testing.assert_allclose(es["std_error"].iloc[:-1], dd_es["se"], atol=PEER)


def test_integer_weights_equal_duplicated_units(mpdta):
    """Frequency weights: weight 2 or 3 on a county gives the same estimates as copying it."""
    rng = np.random.default_rng(8)
    units = mpdta["countyreal"].unique()
    freq = dict(zip(units, rng.integers(1, 4, units.size), strict=True))
    df = mpdta.assign(w=mpdta["countyreal"].map(freq))
    copies = [mpdta.assign(countyreal=mpdta["countyreal"] * 10 + k)[mpdta["countyreal"].map(freq) > k] for k in range(3)]
    expanded = pd.concat(copies, ignore_index=True)
    for kind in (None, "event", "group", "calendar"):
        a = att_gt(df, **KEYS, covariates="lpop", weights="w")
        b = att_gt(expanded, **KEYS, covariates="lpop")
        ta, tb = (a.tidy(), b.tidy()) if kind is None else (a.aggregate(kind).tidy(), b.aggregate(kind).tidy())
        np.testing.assert_allclose(ta["estimate"], tb["estimate"], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Bootstrap, covariance, result shape
# ---------------------------------------------------------------------------------------------


def test_bootstrap_close_to_analytic_and_band_wider(mpdta):
    """Multiplier bootstrap (999 draws, one Mammen multiplier per county): SEs within 15% of the
    analytic ones (5% on average; the IQR-based bootstrap SE of R is noisier than a standard
    deviation), uniform-band critical value near R's (its docs' bands for these 12 cells
    imply 2.73), so the band is wider than the pointwise interval; the aggregated event study
    gets its own band and a pointwise interval on the overall row. Same seed, same result."""
    analytic = att_gt(mpdta, **KEYS)
    boot = att_gt(mpdta, **KEYS, n_boot=999, seed=42)
    a, b = analytic.tidy(), boot.tidy()
    ratio = b["std_error"] / a["std_error"]
    assert ratio.between(0.85, 1.15).all() and abs(ratio.mean() - 1) < 0.05
    crit = (b["conf_high"] - b["estimate"]) / b["std_error"]
    assert np.allclose(crit, crit.iloc[0]) and 2.5 < crit.iloc[0] < 3.0
    assert ((b["conf_high"] - b["conf_low"]) > (a["conf_high"] - a["conf_low"])).all()
    assert "uniform" in boot.meta["band"] and "bootstrap" in boot.meta["se"]
    es = boot.aggregate("event").tidy()
    es_crit = (es["conf_high"] - es["estimate"]) / es["std_error"]
    assert es_crit.iloc[:-1].min() > 1.96 + 0.1
    assert es_crit.iloc[-1] == pytest.approx(stats.norm.ppf(0.975))
    again = att_gt(mpdta, **KEYS, n_boot=999, seed=42).tidy()
    pd.testing.assert_frame_equal(b, again)


def test_event_study_vcov(baseline):
    """The event study carries its covariance (for HonestDiD): indexed by term, symmetric,
    positive semi-definite, with the squared SEs on its diagonal."""
    es = baseline.aggregate("event")
    t = es.tidy()
    v = es.vcov
    assert list(v.index) == list(t["term"]) == list(v.columns)
    np.testing.assert_allclose(v.to_numpy(), v.to_numpy().T, atol=1e-15)
    np.testing.assert_allclose(np.sqrt(np.diag(v)), t["std_error"], rtol=1e-12)
    assert np.linalg.eigvalsh(v.to_numpy()).min() > -1e-12
    assert es.influence.shape == (500, len(t))
    assert sorted(es.units) == sorted(baseline.units) and len(set(es.units)) == 500


def test_result_shape(baseline):
    """Tidy columns in order, readable terms, n_obs, and the meta a reader needs."""
    t = baseline.tidy()
    assert list(t.columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
    assert {"event_time", "cohort", "time"} <= set(t.columns)
    assert t["term"].iloc[0] == "ATT(2004,2004)" and (t["estimator"] == "cs").all()
    # 2 periods x (cohort: 20, 40, 131 counties + 309 never treated)
    assert (t["n_obs"] == 2 * np.array([329] * 4 + [349] * 4 + [440] * 4)).all()
    for key in ("n_clusters", "control", "method", "base_period", "n_units", "panel"):
        assert key in baseline.meta
    assert baseline.meta["n_units"] == baseline.meta["n_clusters"] == 500
    assert "Callaway-Sant'Anna" in repr(baseline) and "<table" in baseline._repr_html_()
    for kind in ("simple", "event", "group", "calendar", "dynamic"):
        agg = baseline.aggregate(kind)
        assert list(agg.tidy().columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
        assert agg.tidy()["term"].iloc[-1] == "ATT"


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_missing_column(mpdta):
    """A missing outcome or covariate column is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"\['nope'\] not found"):
        att_gt(mpdta, **{**KEYS, "outcome": "nope"})
    with pytest.raises(ValueError, match="not found"):
        att_gt(mpdta, **KEYS, covariates=["lpop", "zz"])


def test_cohort_not_constant_within_unit(mpdta):
    """A cohort that changes within a county is an error naming the county (8001)."""
    bad = mpdta.copy()
    bad.loc[(bad["countyreal"] == 8001) & (bad["year"] == 2005), "first.treat"] = 2006
    with pytest.raises(ValueError, match=r"cohort column 'first.treat' is not constant within 'countyreal'.*8001"):
        att_gt(bad, **KEYS)


def test_duplicate_unit_time_rows(mpdta):
    """A repeated county-year is an error naming the pair."""
    bad = pd.concat([mpdta, mpdta.iloc[[3]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"duplicate \('countyreal', 'year'\) rows.*\(8001, 2006\)"):
        att_gt(bad, **KEYS)


def test_no_never_treated_with_never_control(mpdta):
    """Without never-treated units, control='never' fails and points to control='notyet'."""
    with pytest.raises(ValueError, match="no never-treated units.*control='notyet'"):
        att_gt(mpdta[mpdta["first.treat"] > 0], **KEYS)


def test_units_not_nested_in_clusters(mpdta):
    """A cluster that is not constant within a unit is an error (clusters must sit above units)."""
    bad = mpdta.assign(state=np.where(mpdta["year"] == 2007, 0, mpdta["state"]))
    with pytest.raises(ValueError, match="units are not nested in clusters"):
        att_gt(bad, **KEYS, cluster="state")


def test_bad_arguments_and_values(mpdta):
    """Unknown method, control, base period, varying or negative weights and aggregation kinds fail clearly."""
    with pytest.raises(ValueError, match="method"):
        att_gt(mpdta, **KEYS, method="ols")
    with pytest.raises(ValueError, match="control"):
        att_gt(mpdta, **KEYS, control="everyone")
    with pytest.raises(ValueError, match="base_period"):
        att_gt(mpdta, **KEYS, base_period="fixed")
    with pytest.raises(ValueError, match="weights column 'lemp' is not constant"):
        att_gt(mpdta, **KEYS, weights="lemp")
    with pytest.raises(ValueError, match="negative"):
        att_gt(mpdta.assign(**{"first.treat": -mpdta["first.treat"]}), **KEYS)
    with pytest.raises(ValueError, match="kind"):
        att_gt(mpdta, **KEYS).aggregate("cohort")


def test_never_treated_as_missing_and_missing_outcomes(mpdta):
    """Cohort NaN means never treated; rows with a missing outcome become gaps (noted in meta)."""
    df = mpdta.assign(**{"first.treat": mpdta["first.treat"].replace(0, np.nan)})
    np.testing.assert_allclose(att_gt(df, **KEYS).tidy()["estimate"], R_ATT_NOCOV, atol=PRINTED)
    gap = mpdta.copy()
    gap.loc[5, "lemp"] = np.nan
    res = att_gt(gap, **KEYS)
    assert "dropped 1 row(s)" in res.meta["notes"] and res.meta["panel"].startswith("unbalanced")


# ---------------------------------------------------------------------------------------------
# 4. Simulations with known truth
# ---------------------------------------------------------------------------------------------

PERIODS = np.arange(1, 9)
COHORTS = np.array([0, 4, 5, 6])
COHORT_P = np.array([0.4, 0.2, 0.2, 0.2])


def _tau(g, e):
    """True effect of cohort g at event time e: grows with exposure, twice as large for g = 4."""
    return np.where(e >= 0, 0.1 * (e + 1) * np.where(g == 4, 2.0, 1.0), 0.0)


def simulate_staggered(n_clusters: int, firms_per_cluster: int, seed: int) -> pd.DataFrame:
    """Firms in clusters; cohorts assigned by cluster (as certification); firm fixed effects that
    differ by cohort (so levels are not comparable, trends are); year effects; cluster-year shocks;
    entry in periods 1-3 and exit in periods 6-8 plus 5% of firm-years missing at random."""
    rng = np.random.default_rng(seed)
    n = n_clusters * firms_per_cluster
    cluster = np.repeat(np.arange(n_clusters), firms_per_cluster)
    g = rng.choice(COHORTS, size=n_clusters, p=COHORT_P)[cluster]
    alpha = rng.normal(size=n) + 0.5 * (g > 0) + 0.05 * g
    firm = np.repeat(np.arange(n), PERIODS.size)
    t = np.tile(PERIODS, n)
    gi = g[firm]
    shock = rng.normal(scale=0.3, size=(n_clusters, PERIODS.size))[cluster[firm], t - 1]
    y = alpha[firm] + 0.2 * t + np.sin(t) + shock + _tau(gi, t - gi) * (gi > 0) + rng.normal(scale=0.5, size=firm.size)
    entry = rng.integers(1, 4, n)[firm]
    exit_ = rng.integers(6, 9, n)[firm]
    seen = (t >= entry) & (t <= exit_) & (rng.random(firm.size) > 0.05)
    return pd.DataFrame({"firm": firm, "year": t, "cohort": gi, "cluster": cluster[firm], "y": y})[seen]


def _truth_event(e_values):
    """Event-time truth: cohort-share weighted mean of tau over cohorts with a cell at e."""
    g, p = COHORTS[1:], COHORT_P[1:]
    out = []
    for e in e_values:
        has = (g + e >= PERIODS[1]) & (g + e <= PERIODS[-1])
        out.append(float((p[has] * _tau(g[has], e)).sum() / p[has].sum()))
    return np.array(out)


def _truth_calendar(t_values):
    g, p = COHORTS[1:], COHORT_P[1:]
    return np.array([float((p[g <= t] * _tau(g[g <= t], t - g[g <= t])).sum() / p[g <= t].sum()) for t in t_values])


def test_simulation_recovers_truth_unbalanced_clustered():
    """One large unbalanced sample (20,000 firms in 400 clusters): every ATT(g,t), event-time,
    cohort and calendar effect, and the overall ATTs, lie within 4 clustered SEs of the truth."""
    df = simulate_staggered(400, 50, seed=123)
    res = att_gt(df, outcome="y", unit="firm", time="year", cohort="cohort", cluster="cluster")
    assert res.meta["panel"].startswith("unbalanced") and res.meta["n_clusters"] == 400
    t = res.tidy()
    z = (t["estimate"] - _tau(t["cohort"], t["event_time"])) / t["std_error"]
    assert np.abs(z).max() < 4

    es = res.aggregate("event").tidy()
    e = es["event_time"].iloc[:-1].to_numpy()
    truth = _truth_event(e)
    assert np.abs((es["estimate"].iloc[:-1] - truth) / es["std_error"].iloc[:-1]).max() < 4
    assert abs(es["estimate"].iloc[-1] - truth[e >= 0].mean()) < 4 * es["std_error"].iloc[-1]

    grp = res.aggregate("group").tidy()
    g_truth = [np.mean(_tau(g, np.arange(0, PERIODS[-1] - g + 1))) for g in grp["cohort"].iloc[:-1]]
    assert np.abs((grp["estimate"].iloc[:-1] - g_truth) / grp["std_error"].iloc[:-1]).max() < 4
    g_overall = np.dot(COHORT_P[1:], g_truth) / COHORT_P[1:].sum()
    assert abs(grp["estimate"].iloc[-1] - g_overall) < 4 * grp["std_error"].iloc[-1]

    cal = res.aggregate("calendar").tidy()
    c_truth = _truth_calendar(cal["time"].iloc[:-1].to_numpy())
    assert np.abs((cal["estimate"].iloc[:-1] - c_truth) / cal["std_error"].iloc[:-1]).max() < 4


@pytest.mark.slow
def test_monte_carlo_bias_and_coverage():
    """Monte Carlo, 500 samples of 2,000 firms in 100 clusters, unbalanced: for each event time
    the mean estimate is within 3.5 Monte Carlo standard errors of the truth; clustered 95%
    intervals cover 93-97% on average over event times (each 90-99%); the bootstrap uniform band
    (199 draws) covers the whole event-time path in 90-99% of samples; unit-level (unclustered)
    intervals under-cover, as they should with cluster-level shocks."""
    reps = 500
    est, cover, cover_unit, cover_band = [], [], [], []
    for r in range(reps):
        df = simulate_staggered(100, 20, seed=1000 + r)
        res = att_gt(df, outcome="y", unit="firm", time="year", cohort="cohort", cluster="cluster", n_boot=199, seed=r)
        es = res.aggregate("event").tidy().iloc[:-1]
        if r == 0:
            e = es["event_time"].to_numpy()
            truth = _truth_event(e)
        assert np.array_equal(es["event_time"], e)
        est.append(es["estimate"].to_numpy())
        cover_band.append(bool(((es["conf_low"] <= truth) & (truth <= es["conf_high"])).all()))
        analytic = att_gt(df, outcome="y", unit="firm", time="year", cohort="cohort", cluster="cluster").aggregate("event").tidy().iloc[:-1]
        cover.append(((analytic["conf_low"] <= truth) & (truth <= analytic["conf_high"])).to_numpy())
        unit_level = att_gt(df, outcome="y", unit="firm", time="year", cohort="cohort").aggregate("event").tidy().iloc[:-1]
        cover_unit.append(((unit_level["conf_low"] <= truth) & (truth <= unit_level["conf_high"])).to_numpy())
    est = np.array(est)
    mc_se = est.std(axis=0, ddof=1) / np.sqrt(reps)
    assert (np.abs(est.mean(axis=0) - truth) < 3.5 * mc_se).all()
    coverage = np.array(cover).mean(axis=0)
    assert 0.93 <= coverage.mean() <= 0.97 and coverage.min() >= 0.90 and coverage.max() <= 0.99
    assert 0.90 <= np.mean(cover_band) <= 0.99
    assert np.array(cover_unit).mean() < coverage.mean() - 0.05


def test_cluster_bootstrap_band(mpdta):
    """Bootstrap clustered at the state (29 clusters): a uniform band wider than the pointwise
    clustered interval; SEs within 30% of the analytic clustered ones (29 clusters make the
    IQR-based bootstrap SE noisy)."""
    a = att_gt(mpdta, **KEYS, cluster="state").tidy()
    b = att_gt(mpdta, **KEYS, cluster="state", n_boot=999, seed=1).tidy()
    np.testing.assert_allclose(b["std_error"], a["std_error"], rtol=0.30)
    assert ((b["conf_high"] - b["estimate"]) / b["std_error"]).iloc[0] > 2.3


# -- LaLonde / CPS: the propensity-score logit with money covariates (tests/reference/drdid_nsw.md) -------
#: Stata drdid (= R DRDID drdid_panel / std_ipw_did_panel / reg_did_panel), printed to 4 decimals in
#: friosavila/playingwithstata drdid/drdid_stata.md; see tests/reference/drdid_nsw.md (also moderndid 0.2.0).
NSW_REFERENCE = {"dr": (-871.3271, 396.0211), "ipw": (-1021.609, 397.5201), "reg": (-1300.645, 349.8259)}
NSW_COVARIATES = ["age", "educ", "black", "married", "nodegree", "hisp", "re74"]


@pytest.fixture(scope="module")
def nsw():
    """LaLonde's NSW experiment with the CPS comparison (moderndid's copy), the experimental group as cohort 1978."""
    import moderndid

    d = moderndid.load_nsw().to_pandas()
    return d.assign(cohort=np.where(d["experimental"] == 1, 1978, 0))


NSW_KEYS = {"outcome": "re", "unit": "id", "time": "year", "cohort": "cohort"}


@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_lalonde_cps_matches_stata_drdid(nsw, method):
    """ATT and SE on the LaLonde/CPS panel equal Stata drdid's printed output (dripw, stdipw, reg).

    Source: tests/reference/drdid_nsw.md. Earnings in dollars (re74) made the old full-step
    Newton logit diverge and DR / IPW returned NaN; the estimate must now be finite and equal to
    the printed value to its last digit (tolerance: half a unit of the 4th decimal / 7th digit).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        row = att_gt(nsw, **NSW_KEYS, covariates=NSW_COVARIATES, method=method).tidy().iloc[0]
    att, se = NSW_REFERENCE[method]
    assert row["estimate"] == pytest.approx(att, abs=5e-4)
    assert row["std_error"] == pytest.approx(se, abs=5e-4)


def test_lalonde_cps_invariant_to_covariate_units(nsw):
    """Earnings in thousands of cents instead of dollars (x 1e5) or shifted by 1e6 change nothing.

    The covariates are standardised internally, an exact reparametrisation: ATT and SE must
    agree with the dollar version to 1e-8 relative.
    """
    base = att_gt(nsw, **NSW_KEYS, covariates=NSW_COVARIATES, method="dr").tidy().iloc[0]
    scaled = nsw.assign(re74=nsw["re74"] * 1e5 + 1e6, age=nsw["age"] * 1e-3)
    other = att_gt(scaled, **NSW_KEYS, covariates=NSW_COVARIATES, method="dr").tidy().iloc[0]
    assert other["estimate"] == pytest.approx(base["estimate"], rel=1e-8)
    assert other["std_error"] == pytest.approx(base["std_error"], rel=1e-8)


def test_logit_failures_name_their_cause(nsw):
    """A failed propensity score says why: collinear covariates (named), or separation.

    Constructed cases: ``re74_copy = 2 * re74 + 3`` is collinear with re74 and the intercept;
    ``sep`` equals 1 exactly for the treated units (complete separation: the MLE does not exist
    and the treated get scores of 1, an overlap violation, as in R did).
    """
    dup = nsw.assign(re74_copy=2 * nsw["re74"] + 3)
    with pytest.warns(RuntimeWarning, match=r"collinear.*'re74'.*'re74_copy'"):
        res = att_gt(dup, **NSW_KEYS, covariates=[*NSW_COVARIATES, "re74_copy"], method="ipw")
    assert np.isnan(res.tidy()["estimate"].iloc[0])
    sep = nsw.assign(sep=(nsw["cohort"] > 0).astype(float))
    with pytest.warns(RuntimeWarning, match=r"overlap violated.*separation.*predict treatment status perfectly"):
        res = att_gt(sep, **NSW_KEYS, covariates=["age", "sep"], method="ipw")
    assert np.isnan(res.tidy()["estimate"].iloc[0])


def test_fix_weights_takes_first_period_weight(mpdta):
    """Weights varying within unit: an error naming the column by default; ``fix_weights=True``
    gives exactly the estimates of a constant weight equal to each unit's first-period weight
    (R did's rule), also when the rows are shuffled."""
    rng = np.random.default_rng(3)
    df = mpdta.assign(w=rng.uniform(0.5, 2.0, len(mpdta)))
    with pytest.raises(ValueError, match=r"weights column 'w' is not constant.*fix_weights=True"):
        att_gt(df, **KEYS, weights="w")
    first = df.sort_values("year").groupby("countyreal")["w"].transform("first")
    expected = att_gt(df.assign(w1=first), **KEYS, covariates="lpop", weights="w1").tidy()
    got = att_gt(df.sample(frac=1.0, random_state=1), **KEYS, covariates="lpop", weights="w", fix_weights=True)
    np.testing.assert_allclose(got.tidy()["estimate"], expected["estimate"], rtol=1e-12)
    np.testing.assert_allclose(got.tidy()["std_error"], expected["std_error"], rtol=1e-10)
    assert "first period" in got.meta["weights"]


def test_fix_weights_matches_moderndid_time_varying_weights(mpdta):
    """moderndid 0.2.0 (a port of R did, which reads each unit's weight in the first period)
    given weights that vary within units: ATT(g,t) and analytic SEs equal ours with
    ``fix_weights=True`` to 1e-10 (measured 2e-15), DR with covariate lpop."""
    rng = np.random.default_rng(3)
    df = mpdta.assign(w=rng.uniform(0.5, 2.0, len(mpdta)))
    ours = att_gt(df, **KEYS, covariates="lpop", weights="w", fix_weights=True).tidy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = moderndid.att_gt(data=df, **MD_KEYS, xformla="~ lpop", weightsname="w", boot=False, cband=False)
    np.testing.assert_allclose(ours["estimate"], np.asarray(ref.att_gt), atol=PEER)
    np.testing.assert_allclose(ours["std_error"], np.asarray(ref.se_gt), atol=PEER)


def test_quasi_separation_gives_the_limit_estimate(nsw):
    """Quasi-complete separation on the control side (a dummy equal to 1 for 300 random CPS
    controls and no treated unit): the logit MLE does not exist, R's glm stops with fitted
    scores near 0 and R did carries on. Known limit: those controls get no IPW weight and the
    other coefficients are the MLE on the remaining units, so the IPW ATT and its SE equal
    those computed without the 300 controls and without the dummy (to 1e-6 relative)."""
    rng = np.random.default_rng(7)
    ctrl_ids = nsw.loc[nsw["cohort"] == 0, "id"].unique()
    picked = rng.choice(ctrl_ids, 300, replace=False)
    df = nsw.assign(z=nsw["id"].isin(picked).astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = att_gt(df, **NSW_KEYS, covariates=[*NSW_COVARIATES, "z"], method="ipw").tidy().iloc[0]
    ref = att_gt(df[df["z"] == 0], **NSW_KEYS, covariates=NSW_COVARIATES, method="ipw").tidy().iloc[0]
    assert got["estimate"] == pytest.approx(ref["estimate"], rel=1e-6)
    assert got["std_error"] == pytest.approx(ref["std_error"], rel=1e-6)
