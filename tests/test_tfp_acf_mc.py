"""Validation of ACF and LP on the Ackerberg-Caves-Frazer (2015) Monte Carlo design.

The design is implemented in ``tests/acf_dgp.py`` from the paper's description. Published
numbers: prodest vignette Table 2 (1,000 replications of 1,000 firms x 10 years), stored with
their source in ``tests/reference/tfp_published.py``. CI tests use one large fixed-seed sample
per DGP; the ``slow`` test runs 50 replications per cell and compares means and spreads with
the table.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from reference.tfp_published import PRODEST_TABLE2

from analysis.tfp import MultipleRootsWarning, estimate_production

from acf_dgp import TRUE_BK, TRUE_BL, simulate_acf

KW = dict(unit="firm", time="year", se="none")
N_LARGE = 20_000  # firms in the CI samples (x 10 years)


@pytest.fixture(scope="module")
def large_samples() -> dict[int, pd.DataFrame]:
    """One 20,000-firm x 10-year sample per DGP (fixed seeds)."""
    return {dgp: simulate_acf(dgp, N_LARGE, seed=2015 + dgp) for dgp in (1, 2, 3)}


def _fit(df, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MultipleRootsWarning)
        return estimate_production(df, "y", "l", "k", "m", method=method, **KW, **kw)


@pytest.mark.parametrize("dgp", [1, 2, 3])
def test_acf_recovers_truth_in_every_dgp(large_samples, dgp):
    """ACF is consistent in all three DGPs (ACF 2015, Table I; prodest Table 2: means
    .599/.401, .606/.395, .593/.409): with default settings on 200,000 firm-years both
    coefficients are within 0.03 of (0.6, 0.4)."""
    est = _fit(large_samples[dgp], "acf").coef()
    assert est["l"] == pytest.approx(TRUE_BL, abs=0.03)
    assert est["k"] == pytest.approx(TRUE_BK, abs=0.03)


def test_lp_consistent_in_dgp2(large_samples):
    """With labor optimisation error and no wage shocks (DGP2) LP is consistent (prodest
    Table 2: .600/.401): within 0.01 of the truth. First stage of degree 2 as in prodest."""
    est = _fit(large_samples[2], "lp", poly_degree=2).coef()
    assert est["l"] == pytest.approx(TRUE_BL, abs=0.01)
    assert est["k"] == pytest.approx(TRUE_BK, abs=0.01)


def test_lp_collapses_in_dgp1(large_samples):
    """LP's known failure: in DGP1 labor is a deterministic function of (k, m), so the first
    stage cannot separate it and b_l ~ 0 (prodest Table 2: -.004, b_k 1.099)."""
    est = _fit(large_samples[1], "lp", poly_degree=2).coef()
    assert abs(est["l"]) < 0.02
    assert est["k"] > 0.9


def test_spurious_root_is_found_reported_and_rejected(large_samples):
    """DGP1 has two exact roots of the ACF moments: the truth and a degenerate one near
    (1, 0) where omega(b) = y - l is serially uncorrelated noise. Both have a criterion of
    zero (so 'lowest criterion' cannot choose); the default rule keeps the persistent one and
    warns that the roots disagree."""
    with pytest.warns(MultipleRootsWarning, match="roots disagree"):
        fit = estimate_production(large_samples[1], "y", "l", "k", "m", method="acf", **KW)
    roots = fit.roots
    exact = roots[roots["is_root"]]
    spurious = exact[(exact["l"] - 1).abs() < 0.1]
    true = exact[(exact["l"] - TRUE_BL).abs() < 0.03]
    assert len(spurious) == 1 and len(true) == 1
    assert spurious["criterion"].iloc[0] < 1e-6 and true["criterion"].iloc[0] < 1e-6
    assert abs(spurious["k"].iloc[0]) < 0.1
    assert spurious["persistence"].iloc[0] < 0.05 < 0.3 < true["persistence"].iloc[0]
    assert bool(true["selected"].iloc[0]) and not bool(spurious["selected"].iloc[0])
    # the degenerate root's labor moves against the productivity innovation
    assert spurious["corr_l_xi"].iloc[0] < 0 < true["corr_l_xi"].iloc[0]


# --------------------------------------------------------------------------------------
# Slow: 50 replications per cell against prodest Table 2
# --------------------------------------------------------------------------------------
N_REPS = 50


def monte_carlo(dgp: int, meas_error: float, reps: int = N_REPS) -> pd.DataFrame:
    """ACF (default settings) and LP (degree-2 first stage, as prodest) on ``reps`` samples of
    1,000 firms x 10 years."""
    rows = []
    for r in range(reps):
        df = simulate_acf(dgp, 1000, meas_error=meas_error, seed=10_000 * dgp + 1000 * int(10 * meas_error) + r)
        acf = _fit(df, "acf").coef()
        lp = _fit(df, "lp", poly_degree=2).coef()
        rows.append({"acf_bl": acf["l"], "acf_bk": acf["k"], "lp_bl": lp["l"], "lp_bk": lp["k"]})
    return pd.DataFrame(rows)


@pytest.mark.slow
@pytest.mark.parametrize("cell", sorted(PRODEST_TABLE2))
def test_monte_carlo_matches_published_table(cell):
    """50 replications per cell against prodest Table 2 (means and spreads).

    Means. Without measurement error, every mean is within 0.015 of the published one
    (ACF and LP, all DGPs), except LP's b_k in DGP1 (tolerance 0.03): LP is inconsistent
    there and its limit depends on the shape of the investment policy, which our DGP derives
    from the paper while prodest's ``panelSim`` weights the horizons differently (we get 1.12
    vs 1.10; the failure pattern b_l ~ 0, b_k ~ 1.1 is the same). With measurement error the
    tolerance is 0.03: prodest's ACF spreads jump (DGP3: .005 without error, .04 with .1) and
    its LP b_k spreads at error .5 (.16-.24) show an optimiser that does not settle, so its
    means there are not exact roots; those three LP b_k means are not compared.

    Spreads. ACF's standard deviation is at most twice the published one everywhere and, in
    DGP1 and DGP3 without error, within a factor 2 either way. prodest's ACF spread in DGP2
    (.054) comes from its search landing on the spurious (1, 0) root in some replications
    (its mean .606/.395 leans that way); our root rule avoids it, so ours is smaller. LP's
    spread in DGP2 without error (its consistent case) is within a factor 2.
    """
    dgp, me = cell
    pub = PRODEST_TABLE2[cell]
    mc = monte_carlo(dgp, me)
    names = ["acf_bl", "acf_bk", "lp_bl", "lp_bk"]
    pub_mean = dict(zip(names, pub[0::2]))
    pub_sd = dict(zip(names, pub[1::2]))
    report = pd.DataFrame({"ours": mc.mean(), "published": pd.Series(pub_mean), "our_sd": mc.std(ddof=1),
                           "published_sd": pd.Series(pub_sd)})
    print(f"\nDGP{dgp}, measurement error {me}\n{report.round(3)}")
    for c in names:
        if me > 0 and pub_sd[c] > 0.1:
            continue
        tol = 0.015 if me == 0 else 0.03
        if cell == (1, 0.0) and c == "lp_bk":
            tol = 0.03
        assert mc[c].mean() == pytest.approx(pub_mean[c], abs=tol), c
    for c in ("acf_bl", "acf_bk"):
        ratio = mc[c].std(ddof=1) / pub_sd[c]
        assert ratio < 2.0, c
        if me == 0 and dgp != 2:
            assert ratio > 0.5, c
    if cell == (2, 0.0):
        for c in ("lp_bl", "lp_bk"):
            assert 0.5 < mc[c].std(ddof=1) / pub_sd[c] < 2.0, c
