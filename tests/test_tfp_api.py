"""The interface of :func:`analysis.tfp.estimate_production`: result shape, TFP alignment,
estimation by group, input errors, and the baselines (OLS, FE, Wooldridge) against
independent implementations (statsmodels, linearmodels) or the ACF design's truth."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.results import TIDY_COLUMNS, check_tidy
from analysis.tfp import METHODS, MultipleRootsWarning, ProductionResult, estimate_production

from acf_dgp import TRUE_BK, TRUE_BL, simulate_acf

KW = dict(unit="firm", time="year")


@pytest.fixture(scope="module")
def dgp2() -> pd.DataFrame:
    """DGP2 (every method but OP consistent), 400 firms x 10 years, rows shuffled."""
    return simulate_acf(2, 400, seed=8).sample(frac=1.0, random_state=1).reset_index(drop=True)


def _fit(df, method, **kw):
    proxy = {"op": "i", "ols": None, "fe": None}.get(method, "m")
    extra = {"share": "share"} if method == "gnr" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MultipleRootsWarning)
        return estimate_production(df, "y", "l", "k", proxy, method=method, **KW, **extra, **kw)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "gnr"])
def test_result_has_the_tidy_shape(dgp2, method):
    """Every method returns a ProductionResult whose tidy frame passes ``check_tidy``, one
    row per input (term = input column, outcome = output column, estimator = method), and
    a readable repr."""
    fit = _fit(dgp2, method, se="none" if method not in ("ols", "fe", "wrdg") else None)
    assert isinstance(fit, ProductionResult)
    tidy = check_tidy(fit.tidy())
    assert list(tidy.columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
    assert tidy["term"].tolist() == ["l", "k"]
    assert set(tidy["outcome"]) == {"y"} and set(tidy["estimator"]) == {method}
    assert METHODS[method] in repr(fit) and "<table" in fit._repr_html_()
    if method in ("ols", "fe", "wrdg"):
        assert np.all(fit.tidy()["std_error"] > 0)


def test_tfp_is_aligned_to_data_and_nan_where_unused(dgp2):
    """``.tfp`` has data's index; rows with a missing input get NaN; elsewhere it equals
    y - b'x. With ``exclude_noise`` it is that minus the first-stage residual, and
    ``.elasticities`` repeats the coefficients on the used rows."""
    df = dgp2.copy()
    df.index = df.index * 3 + 7  # a non-default index
    df.loc[df.index[:5], "m"] = np.nan
    fit = _fit(df, "acf", se="none")
    assert fit.tfp.index.equals(df.index)
    assert fit.tfp.iloc[:5].isna().all() and fit.tfp.iloc[5:].notna().all()
    b = fit.coef()
    np.testing.assert_allclose(fit.tfp.iloc[5:], (df["y"] - b["l"] * df["l"] - b["k"] * df["k"]).iloc[5:])
    clean = _fit(df, "acf", se="none", exclude_noise=True)
    np.testing.assert_allclose(clean.tfp.iloc[5:], (fit.tfp - fit.first_stage_noise).iloc[5:])
    assert fit.meta["rows_dropped_missing"] == 5
    e = fit.elasticities
    assert e.index.equals(df.index) and e["l"].iloc[5:].eq(b["l"]).all() and e.iloc[:5].isna().all().all()


def test_acf_tfp_tracks_true_productivity(dgp2):
    """In the ACF design, ACF's log TFP (without first-stage noise) correlates above 0.95
    with the simulated omega."""
    fit = _fit(dgp2, "acf", se="none", exclude_noise=True)
    assert np.corrcoef(fit.tfp, dgp2["omega"])[0, 1] > 0.95


def test_by_group_estimates_each_industry_and_reports_failures():
    """``by=`` estimates each group separately: two industries with different technologies
    ((0.6, 0.4) and (0.5, 0.5)) are both recovered (ACF, within 0.03); TFP covers all rows;
    a third group too small to estimate is listed in ``.failures`` with a warning, not
    dropped silently."""
    a = simulate_acf(2, 1500, seed=31).assign(industry="A")
    b = simulate_acf(2, 1500, seed=32, b_l=0.5, b_k=0.5).assign(industry="B", firm=lambda d: d["firm"] + 10_000)
    c = simulate_acf(2, 3, seed=33).assign(industry="C", firm=lambda d: d["firm"] + 20_000)
    df = pd.concat([a, b, c], ignore_index=True)
    with pytest.warns(RuntimeWarning, match="industry='C' failed"):
        fit = _fit(df, "acf", by="industry", se="none")
    tidy = fit.tidy().set_index(["group", "term"])["estimate"]
    assert tidy[("A", "l")] == pytest.approx(0.6, abs=0.03) and tidy[("A", "k")] == pytest.approx(0.4, abs=0.03)
    assert tidy[("B", "l")] == pytest.approx(0.5, abs=0.03) and tidy[("B", "k")] == pytest.approx(0.5, abs=0.03)
    assert fit.failures["group"].tolist() == ["C"]
    assert fit.tfp.notna().sum() == len(a) + len(b) and fit.tfp[df["industry"] == "C"].isna().all()
    assert set(fit.roots["group"]) == {"A", "B"}
    rts = fit.returns_to_scale.set_index("group")["estimate"]
    assert rts["A"] == pytest.approx(1.0, abs=0.05) and rts["B"] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="xyz"), "method must be one of"),
        (dict(free="labor"), r"not in the data: free: \['labor'\]"),
        (dict(proxy=None), "needs a proxy"),
        (dict(method="gnr"), "needs share="),
        (dict(exit=True), r"selection correction\) is available for method='op' or 'lp'"),
        (dict(se="analytic"), "no analytic standard errors"),
        (dict(method="ols", proxy=None, exclude_noise=True), "needs a first stage"),
        (dict(root_rule="closest"), "root_rule must be"),
        (dict(state=[]), "at least one state input"),
    ],
)
def test_bad_input_raises_clear_errors(dgp2, kwargs, message):
    """Misuse fails early with a ValueError that names the problem."""
    args = dict(output="y", free="l", state="k", proxy="m", method="acf", se="none", **KW)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        estimate_production(dgp2, **args)


def test_data_errors_name_rows_and_columns(dgp2):
    """Duplicate firm-years and non-numeric inputs are ValueErrors naming rows / columns."""
    dup = pd.concat([dgp2.iloc[:3], dgp2.iloc[:1]])
    with pytest.raises(ValueError, match=r"\(firm, year\) pairs are not unique"):
        estimate_production(dup, "y", "l", "k", method="ols", **KW)
    bad = dgp2.assign(l=dgp2["l"].astype(str))
    with pytest.raises(ValueError, match="free column 'l' must be numeric"):
        estimate_production(bad, "y", "l", "k", method="ols", **KW)


def test_ols_matches_statsmodels_cluster(dgp2):
    """OLS estimates and firm-clustered standard errors equal statsmodels' OLS with
    ``cov_type="cluster"`` (statsmodels 0.15, default small-sample correction)."""
    import statsmodels.api as sm

    fit = _fit(dgp2, "ols")
    ref = sm.OLS(dgp2["y"], sm.add_constant(dgp2[["l", "k"]])).fit(cov_type="cluster", cov_kwds={"groups": dgp2["firm"]})
    np.testing.assert_allclose(fit.coef(), ref.params[["l", "k"]], rtol=1e-10)
    np.testing.assert_allclose(fit.se(), ref.bse[["l", "k"]], rtol=1e-8)
    v = ref.cov_params().loc[["l", "k"], ["l", "k"]].to_numpy()
    assert fit.returns_to_scale["std_error"].iloc[0] == pytest.approx(np.sqrt(v.sum()), rel=1e-8)


def test_fe_matches_linearmodels(dgp2):
    """Firm FE (and firm + year FE) estimates equal linearmodels' PanelOLS; clustered standard
    errors agree within 1 % (one-way FE; the small-sample factors differ slightly)."""
    from linearmodels.panel import PanelOLS

    panel = dgp2.set_index(["firm", "year"]).sort_index()
    ref = PanelOLS(panel["y"], panel[["l", "k"]], entity_effects=True).fit(cov_type="clustered", cluster_entity=True)
    fit = _fit(dgp2, "fe")
    np.testing.assert_allclose(fit.coef(), ref.params, rtol=1e-8)
    np.testing.assert_allclose(fit.se(), ref.std_errors, rtol=0.01)
    ref2 = PanelOLS(panel["y"], panel[["l", "k"]], entity_effects=True, time_effects=True).fit()
    np.testing.assert_allclose(_fit(dgp2, "fe", time_effects=True).coef(), ref2.params, rtol=1e-8)


def test_fe_bootstrap_path_matches_pyfixest(dgp2):
    """Inside the bootstrap FE is computed with NumPy (alternating projections); on the full
    sample it equals pyfixest's estimate."""
    from analysis.tfp.core import Options
    from analysis.tfp.estimate import _build_panel
    from analysis.tfp.linear import fit_linear

    panel, _ = _build_panel(dgp2, output="y", free=["l"], state=["k"], proxy=None, share=None, markov=[],
                            exit_col=None, unit="firm", time="year")
    for te in (False, True):
        opt = Options(method="fe", free_names=["l"], state_names=["k"], time_effects=te)
        np.testing.assert_allclose(fit_linear(panel, opt, boot=True).coef, fit_linear(panel, opt).coef, rtol=1e-7)


def test_wooldridge_recovers_truth_in_dgp2():
    """Wooldridge's one-step GMM (shared proxy polynomial) is consistent in DGP2: within 0.03
    of (0.6, 0.4) on 3,000 firms; its clustered analytic SEs are positive and the
    over-identification statistic is reported."""
    df = simulate_acf(2, 3000, seed=41)
    fit = estimate_production(df, "y", "l", "k", "m", method="wrdg", **KW)
    est = fit.coef()
    assert est["l"] == pytest.approx(TRUE_BL, abs=0.03) and est["k"] == pytest.approx(TRUE_BK, abs=0.03)
    assert np.all(fit.se() > 0) and fit.meta["j_df"] > 0


def test_root_selection_rule_tiers():
    """The documented rule (``select_root``): admissible exact roots first; degenerate roots
    (persistence under half the best) dropped; among the rest the lowest over-identification
    J; an admissible near root beats an inadmissible exact root; ``rule="criterion"`` takes
    the lowest criterion."""
    import pandas as pd

    from analysis.tfp.roots import select_root

    cols = ["l", "k", "criterion", "persistence", "admissible", "is_root", "near_root", "overid_j"]
    table = pd.DataFrame(
        [
            [1.00, 0.00, 1e-20, 0.01, True, True, True, 0.1],   # degenerate labor-share root
            [0.55, 0.45, 1e-22, 0.47, True, True, True, 20.0],  # ridge root, rejected by deeper lags
            [0.62, 0.38, 1e-21, 0.41, True, True, True, 3.0],   # ridge root, kept
        ],
        columns=cols,
    )
    pick, notes = select_root(table, ["l", "k"], "persistence")
    assert pick == 2 and "roots disagree" in notes[-1] and "over-identification J" in notes[-1]
    assert select_root(table.assign(overid_j=np.nan), ["l", "k"], "persistence")[0] == 1
    assert select_root(table, ["l", "k"], "criterion")[0] == 1
    near = pd.DataFrame(
        [[8.4, -6.7, 0.0, 0.76, False, True, True, np.nan], [0.59, 0.41, 0.27, 0.44, True, False, True, np.nan]],
        columns=cols,
    )
    pick, notes = select_root(near, ["l", "k"], "persistence")
    assert pick == 1 and "near root" in notes[0]
