"""Size, power and coverage of the reports' inference when treated clusters are few (issue 16).

The reports' pre-trend test and intervals (``analysis.effects.run_estimator``, see
``analysis.did.small_sample``) are checked on null worlds where parallel trends hold by
construction: one world of 6,000 firms with 12 certified cells a batch, every firm at its
untreated outcome, cohorts re-drawn by the design's rule for each replication
(``tests/permuted.py``). Every true effect is zero there, so

* the pre-test must reject at 5 % in a share of replications inside [0.02, 0.10];
* the pointwise 95 % intervals of the event-study rows must contain zero in a share inside
  [0.92, 0.98];
* on worlds of the ``pretrend`` scenario (certified cells' TFP trending up) the test must
  reject (power).

The fast tests (``make test``) check the mechanics and the linear forms against known
references; the Monte Carlo tests are ``slow`` (``make test-slow``). Measured with these tests' code (R permuted worlds;
before = the chi-squared test and CR0 / CR1 intervals the reports had):

========================================  ===================  ==========================
quantity                                  before               after
========================================  ===================  ==========================
CS pre-test of the window (5 leads),      0.165 / 0.22 / 0.19  0.065 / 0.065 / 0.065
R = 200 each (VA / SO2 int. / patents)
CS pre-test of all 12 leads, R = 100      0.55                 0.11 (0.03 in another 100)
CS pointwise coverage, R = 200 x 8 rows   0.916 / 0.908 / 0.930 0.960 / 0.958 / 0.964
CS uniform band, joint, R = 100                                0.96
other estimators' coverage, VA, R = 40    0.906 to 0.940       0.934 to 0.980
equality test across regions, R = 100     (chi2, CR2 SE) 0.07  0.0375 (80 computable)
power, pretrend 0 / 0.005 / 0.01, 20 each 0.30 / 0.95 / 1.00   0.10 / 0.85 / 1.00
========================================  ===================  ==========================
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from permuted import (
    OUTCOMES,
    band_study,
    equality_study,
    null_study,
    null_world,
    permute_cohorts,
    pretrend_power,
)
from scipy import stats

from analysis.did import small_sample as sm
from analysis.did.att_gt import att_gt
from analysis.effects import pretrend_test, run_estimator

ESTIMATORS = ("cs_dr", "cs_notyet", "sunab", "imputation", "stacked", "twfe")
#: replications of the slow studies (override with PRETREND_REPS for a quicker look)
REPS = int(os.environ.get("PRETREND_REPS", "200"))
REPS_COVERAGE = int(os.environ.get("PRETREND_REPS_COVERAGE", "100"))


def binomial_band(p: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` range of the share of ``n`` Bernoulli(``p``) draws."""
    lo, hi = stats.binom.ppf([(1 - level) / 2, (1 + level) / 2], n, p)
    return float(lo / n), float(hi / n)


@pytest.fixture(scope="module")
def world():
    """The null world: every firm at its untreated outcome (tests/permuted.py)."""
    return null_world()


@pytest.fixture(scope="module")
def one_draw(world):
    """One permutation of the cohorts across cells by the design's rule."""
    return permute_cohorts(world, np.random.default_rng(2024)).dropna(subset=["log_value_added"])


# --- fast: mechanics and references ----------------------------------------------------------------
def test_permutation_follows_the_design_rule(world):
    """12 cells a cohort, distinct, at most 8 in a province, all candidates."""
    panel = permute_cohorts(world, np.random.default_rng(0))
    cells = panel[panel["cohort"] > 0].groupby("cell_id").agg(cohort=("cohort", "first"), province=("province", "first"))
    assert cells.groupby("cohort").size().tolist() == [12, 12, 12]
    assert cells.groupby(["cohort", "province"]).size().max() <= 8
    assert cells.index.isin(world.candidates.index).all()
    assert (panel.groupby("cell_id")["cohort"].nunique() == 1).all()


def test_cs_design_reproduces_att_gt_and_its_covariance(one_draw):
    """Reference: ``att_gt`` (which equals R did 2.5, tests/test_att_gt.py). The design's means give
    the same ATT(g,t) and, without the CR2 adjustment, the same clustered covariance of the event
    study (influence-function scores plus the cohort-share term) to 1e-10."""
    res = att_gt(one_draw, "log_value_added", "firm_id", "year", "cohort", cluster="cell_id")
    agg = res.aggregate("event", min_e=-5, max_e=2)
    ss = sm.cs_small_sample(agg, res, one_draw, outcome="log_value_added", unit="firm_id", time="year", cohort="cohort", cluster="cell_id")
    np.testing.assert_allclose(ss.estimate, agg.tidy()["estimate"], atol=1e-12)
    r0 = ss.scores.scores @ ss.contrast.T + ss.extra
    np.testing.assert_allclose(r0.T @ r0, agg.vcov.to_numpy(), rtol=1e-10, atol=1e-14)
    assert (ss.std_error[:-1] > agg.tidy()["std_error"].to_numpy()[:-1]).all()  # CR2 corrects the leverage upwards


def test_twfe_design_reproduces_pyfixest(one_draw):
    """Reference: pyfixest's CRV1 event study (``analysis.did.twfe``). Our regression with unit effects
    partialled out and period dummies gives the same coefficients, and its CR0 covariance times one
    constant (fixest's small-sample factor) its clustered covariance, up to the tolerance of pyfixest's
    iterative two-way demeaning (about 1e-4 relative with its default tolerance; constant to 1e-7
    with ``fixef_tol=1e-12``)."""
    from analysis.did.twfe import twfe

    es = twfe(one_draw, "log_value_added", "firm_id", "year", "cohort", dynamic=True, cluster="cell_id")
    ss = sm.twfe_small_sample(one_draw, "log_value_added", "firm_id", "year", "cohort", dynamic=True, cluster="cell_id")
    np.testing.assert_allclose(ss.estimate, es.tidy()["estimate"], rtol=1e-8, atol=1e-10)
    r0 = ss.scores.scores @ ss.contrast.T
    V0 = r0.T @ r0
    ratio = es.vcov.to_numpy() / V0
    np.testing.assert_allclose(np.diag(ratio), ratio[0, 0], rtol=5e-4)
    # covariances on the scale of the variances (correlation units): the ratio of a near-zero covariance
    # (correlation -0.004 between two terms here) is the demeaning's noise, which varies between processes
    scale = np.sqrt(np.outer(np.diag(V0), np.diag(V0)))
    np.testing.assert_allclose(es.vcov.to_numpy() / scale, ratio[0, 0] * V0 / scale, rtol=0, atol=5e-4)
    G = one_draw["cell_id"].nunique()
    assert G / (G - 1) <= ratio[0, 0] < 1.01


def test_design_fit_equals_least_squares_with_unit_dummies():
    """The designs' regression (unit effects partialled out, normal equations, rows in cluster order) against
    statsmodels OLS with explicit unit dummies: the same coefficients and CR0 covariance (no small-sample factor)
    (1e-9); a collinear column switches to least squares, whose minimum-norm solution it then equals."""
    import statsmodels.api as smapi

    rng = np.random.default_rng(8)
    n_u, T = 60, 6
    u = np.repeat(np.arange(n_u), T)
    t = np.tile(np.arange(T), n_u)
    cl = u // 5
    g = np.where(u < 20, 3, np.where(u < 35, 4, 0))
    e = np.where(g > 0, t - g, -99)
    y = rng.normal(size=n_u)[u] + 0.1 * t + 0.3 * (e >= 0) + rng.normal(size=u.size)
    shuffle = rng.permutation(u.size)
    u, t, cl, e, y = u[shuffle], t[shuffle], cl[shuffle], e[shuffle], y[shuffle]
    levels = [v for v in range(-3, 3) if v != -1]
    fit = sm._fit(y, [(e, levels), (t, np.arange(1, T))], u, cl)
    D = np.column_stack([(e == v).astype(float) for v in levels] + [(t == k).astype(float) for k in range(1, T)])
    ref = smapi.OLS(y, np.column_stack([D, (u[:, None] == np.arange(n_u)).astype(float)])).fit()
    k = D.shape[1]
    np.testing.assert_allclose(fit.estimate, ref.params[:k], rtol=1e-9, atol=1e-12)
    V0 = fit.scores.T @ fit.scores
    V_ref = ref.get_robustcov_results("cluster", groups=cl, use_correction=False).cov_params()[:k, :k]
    np.testing.assert_allclose(V0, V_ref, rtol=1e-8, atol=1e-14)
    dup = sm._fit(y, [(e, levels), (e, levels[:1])], None, cl)   # first column twice: X'X singular
    Xd = np.column_stack([(e == v).astype(float) for v in levels] + [(e == levels[0]).astype(float)])
    np.testing.assert_allclose(dup.estimate, np.linalg.lstsq(Xd, y, rcond=None)[0], rtol=1e-9, atol=1e-12)


def test_every_estimator_gets_small_sample_rows_with_the_same_estimates(one_draw):
    """run_estimator's default inference: same estimates as without it, CR2 standard errors, a
    Bell-McCaffrey ``df`` column far below the 892 clusters (a dozen treated cells carry each row),
    a pre-test by wild bootstrap."""
    for est in ESTIMATORS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            small = run_estimator(est, one_draw, "log_value_added", cluster="cell_id")
            plain = run_estimator(est, one_draw, "log_value_added", cluster="cell_id", small_sample=False)
        for key in ("simple", "event"):
            a, b = small[key].tidy(), plain[key].tidy()
            np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=1e-10, err_msg=f"{est} {key}")
            assert a["df"].between(1, 60).all(), (est, key, a["df"].tolist())
            assert (a["std_error"] >= 0.97 * b["std_error"]).all(), (est, key)
        test = pretrend_test(small["event"], n_boot=199)
        assert test.method == "wild_bootstrap" and 0 <= test.p_value <= 1 and test.df >= 4, (est, test)


def test_null_study_mechanics(world):
    """Two replications of the study through the reports' code path: one pre-test per replication,
    one coverage flag per event-study row."""
    out = null_study(world, ("cs_dr",), ("log_value_added",), replications=2, n_boot=99)
    pre = out[out["kind"] == "pretest"]
    rows = out[out["kind"] == "row"]
    assert len(pre) == 2 and pre["p_value"].between(0, 1).all() and pre["p_chi2"].between(0, 1).all()
    assert len(rows) == 2 * 8 and rows["covered"].isin([0.0, 1.0]).all()


# --- slow: the Monte Carlo ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_reports_pretest_has_its_size(world, outcome):
    """Callaway-Sant'Anna pre-test of the report window on REPS permuted worlds: rejection share at 5 %
    inside [0.02, 0.10] (the binomial 95 % range at 5 % for R = 200 is [0.02, 0.08]); the chi-squared
    test of the uncorrected covariance, for comparison, above 0.10."""
    out = null_study(world, ("cs_dr",), (outcome,), replications=REPS, seed=11)
    pre = out[out["kind"] == "pretest"]
    size, size_chi2 = float((pre["p_value"] < 0.05).mean()), float((pre["p_chi2"] < 0.05).mean())
    print(f"\n{outcome}: R = {len(pre)}, reports' pre-test rejects {size:.3f}, chi-squared {size_chi2:.3f}, "
          f"binomial 95 % range at 0.05: {binomial_band(0.05, len(pre))}")
    assert 0.02 <= size <= 0.10
    assert size_chi2 > 0.10


@pytest.mark.slow
def test_pretest_of_all_leads_has_its_size(world):
    """The same test of all 12 leads the data allow (window [-12, 2]; the far leads rest on one cohort's
    12 cells), REPS_COVERAGE permuted worlds, log value added: rejection share inside [0.01, 0.12], where
    the chi-squared test rejects in about half. The bound is wider than the window's: the unrestricted
    wild bootstrap is slightly liberal when many leads rest on one cohort (measured 0.11 with these
    100 worlds, 0.03 with another 100; the reports test the window)."""
    out = null_study(world, ("cs_dr",), ("log_value_added",), replications=REPS_COVERAGE, seed=15, window=(-12, 2))
    pre = out[out["kind"] == "pretest"]
    size, size_chi2 = float((pre["p_value"] < 0.05).mean()), float((pre["p_chi2"] < 0.05).mean())
    print(f"\nall leads ({int(pre['df'].iloc[0])}): R = {len(pre)}, reports' test rejects {size:.3f}, chi-squared {size_chi2:.3f}")
    assert 0.01 <= size <= 0.12
    assert size_chi2 > 0.25


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_event_study_intervals_cover(world, estimator):
    """Pointwise 95 % intervals of every event-study row of the report window, REPS_COVERAGE permuted
    worlds, log value added: share containing the true effect (zero) inside [0.92, 0.98]; the
    pre-test of each estimator inside [0.01, 0.12] (fewer replications)."""
    out = null_study(world, (estimator,), ("log_value_added",), replications=REPS_COVERAGE, seed=12)
    rows = out[out["kind"] == "row"]
    cover = float(rows["covered"].mean())
    by_e = rows.groupby("event_time")["covered"].mean().round(3).to_dict()
    size = float((out.loc[out["kind"] == "pretest", "p_value"] < 0.05).mean())
    print(f"\n{estimator}: R = {REPS_COVERAGE}, coverage {cover:.3f} (before: {rows['covered_plain'].mean():.3f}), "
          f"by event time {by_e}, pre-test size {size:.3f}")
    assert 0.92 <= cover <= 0.98
    assert 0.01 <= size <= 0.12


@pytest.mark.slow
def test_pretest_has_power_against_the_pretrend_scenario():
    """Worlds of the ``pretrend`` scenario (world.scenario.pretrend: certified cells' TFP grows faster
    by that much a year), 20 seeds each: the reports' pre-test rejects in at least half at 0.005 and
    in at least 90 % at 0.01; with no violation (pretrend = 0, the world's own selection of cells) in
    at most 15 % (the world selects cells on recent output growth, so a few rejections are genuine)."""
    seeds = range(100, 120)
    res = {d: pretrend_power(d, seeds) for d in (0.0, 0.005, 0.01)}
    rate = {d: float((r["p_value"] < 0.05).mean()) for d, r in res.items()}
    rate_chi2 = {d: float((r["p_chi2"] < 0.05).mean()) for d, r in res.items()}
    print(f"\nrejection at 5 % by pretrend: {rate} (chi-squared: {rate_chi2})")
    assert rate[0.005] >= 0.5 and rate[0.01] >= 0.9
    assert rate[0.0] <= 0.15


@pytest.mark.slow
def test_equality_test_has_its_size(world):
    """Welch's test of equal effects across regions (east, central, west: disjoint clusters), REPS_COVERAGE
    permuted worlds where every effect is zero: rejection share at 5 % inside [0.01, 0.10] among the
    replications where it can be computed. With 12 cells a cohort spread over three regions, a
    cohort is sometimes a single cell in a region, whose variance no cluster-robust method can
    estimate (NaN standard error); the test then has fewer than two groups and is not computed."""
    out = equality_study(world, replications=REPS_COVERAGE, seed=13)
    valid = out["method"] == "welch"
    size, size_chi2 = float((out.loc[valid, "p_value"] < 0.05).mean()), float((out.loc[valid, "p_chi2"] < 0.05).mean())
    print(f"\nequality test across regions: R = {len(out)}, computable in {valid.mean():.2f}; Welch rejects {size:.3f}, "
          f"chi-squared (CR2 errors) {size_chi2:.3f}")
    assert valid.mean() >= 0.6
    assert 0.01 <= size <= 0.10


@pytest.mark.slow
def test_uniform_band_covers_jointly(world):
    """The main estimator's uniform band (wild cluster bootstrap-t sup-t, as the event-study figure
    draws it), REPS_COVERAGE permuted worlds: it contains zero at all 8 event times of the window in a
    share inside [0.92, 0.99]."""
    out = band_study(world, replications=REPS_COVERAGE, seed=14)
    joint = float(out["covered"].mean())
    print(f"\nuniform band: R = {len(out)}, joint coverage {joint:.3f}, pointwise {out['pointwise'].mean():.3f}")
    assert 0.92 <= joint <= 0.99


def test_cs_event_covariance_agrees_with_the_multiplier_bootstrap(one_draw):
    """Diagnosis, not remedy: the chi-squared failure is not a wrong covariance. The analytic clustered
    standard errors of the event study equal the multiplier bootstrap's of the same influence
    functions (R did's bootstrap; IQR-based, 4999 draws: Monte Carlo error about 3 %) within 8 %."""
    from analysis.inference import multiplier_bootstrap

    res = att_gt(one_draw, "log_value_added", "firm_id", "year", "cohort", cluster="cell_id")
    agg = res.aggregate("event")
    boot = multiplier_bootstrap(agg.influence, res._context.cluster, n_boot=4999, seed=1, n=agg.influence.shape[0])
    np.testing.assert_allclose(boot.se, agg.tidy()["std_error"], rtol=0.08)
