"""de Chaisemartin-D'Haultfoeuille weights of the TWFE estimate (analysis.did.dcdh): Theorem 1, an
independent implementation (diff-diff), and Corollary 1 (ii) against the programme that defines it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.did import twfe
from analysis.did.dcdh import _sigma_opposite_sign, twfe_weights


def test_theorem_1_holds_exactly_without_noise(small_world):
    """With y = a_i + l_t + tau_it D_it exactly (heterogeneous, dynamic tau), the TWFE coefficient equals
    sum over treated observations of weight x tau (dCDH 2020, Theorem 1) to 1e-10, and the weights sum to one."""
    p = small_world.panel[["firm_id", "year", "cohort"]].copy()
    rng = np.random.default_rng(4)
    a = pd.Series(rng.normal(size=p["firm_id"].nunique()), index=np.unique(p["firm_id"]))
    lt = pd.Series(rng.normal(size=p["year"].nunique()), index=np.unique(p["year"]))
    D = (p["cohort"] > 0) & (p["year"] >= p["cohort"])
    tau = np.where(D, 0.3 + 0.2 * (p["year"] - p["cohort"]) + 0.1 * (p["cohort"] - 2023) + rng.normal(0, 0.2, len(p)), 0.0)
    p["y"] = p["firm_id"].map(a).to_numpy() + p["year"].map(lt).to_numpy() + tau
    tw = twfe_weights(p, "y", "firm_id", "year", "cohort")
    treated = p[D.to_numpy()].assign(tau=tau[D.to_numpy()])
    merged = tw.weights.merge(treated[["firm_id", "year", "tau"]], left_on=["unit", "time"], right_on=["firm_id", "year"])
    assert len(merged) == len(tw.weights)
    assert tw.weights["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert float((merged["weight"] * merged["tau"]).sum()) == pytest.approx(tw.beta_fe, abs=1e-10)
    ref = twfe(p, "y", "firm_id", "year", "cohort")
    assert tw.beta_fe == pytest.approx(float(ref.coef()["ATT"]), abs=1e-9)


def test_equals_diff_diff_on_the_union_panel():
    """Vella and Verbeek's union panel (linearmodels' wage_panel, 545 men 1980-87; the data of dCDH 2020
    Section V.C, in the version linearmodels ships): beta_fe, the share of negative weights and sigma_fe
    equal diff-diff's independent twowayfeweights to 1e-10 (0.0851, 204 of 1064, 0.0936)."""
    import diff_diff as dd
    from linearmodels.datasets import wage_panel

    df = wage_panel.load()
    tw = twfe_weights(df, "lwage", "nr", "year", treatment="union")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = dd.twowayfeweights(df, outcome="lwage", unit="nr", time="year", treatment="union")
    s = tw.summary()
    assert s["beta_fe"] == pytest.approx(ref.beta_fe, abs=1e-10)
    assert s["share_negative"] == pytest.approx(ref.fraction_negative, abs=1e-12)
    assert s["sigma_fe"] == pytest.approx(ref.sigma_fe, abs=1e-10)
    assert (s["n_treated"], s["n_negative"]) == (1064, 204)
    assert s["sum_positive"] + s["sum_negative"] == pytest.approx(1.0, abs=1e-12)


def test_corollary_1_ii_is_the_minimum_of_its_programme():
    """Corollary 1 (ii): the smallest sd(Delta) with sum pi w Delta = beta and every Delta of the sign opposite
    to beta. The closed form equals the quadratic programme's minimum (cvxpy) to 1e-5 on random weights."""
    import cvxpy as cp

    rng = np.random.default_rng(11)
    for n in (12, 40):
        w = rng.normal(1.0, 1.5, n)
        pi = rng.uniform(0.5, 1.5, n)
        pi /= pi.sum()
        w = w / (pi @ w)                       # the weights have pi-mean one
        beta = 0.7
        delta = cp.Variable(n)
        var = cp.sum(cp.multiply(pi, cp.square(delta - pi @ delta)))
        prob = cp.Problem(cp.Minimize(var), [cp.sum(cp.multiply(pi * w, delta)) == beta, delta <= 0])
        prob.solve()
        assert _sigma_opposite_sign(beta, w, pi) == pytest.approx(float(np.sqrt(prob.value)), rel=1e-4)


def test_with_never_treated_firms_negative_weights_are_small(small_world):
    """With never-treated firms the negative weights come only from entry and exit (small); the summary by
    cohort and year adds up to one."""
    lp = small_world.panel.assign(lp=lambda d: np.log(d["value_added"] / d["labor"]))
    tw = twfe_weights(lp, "lp", "firm_id", "year", "cohort")
    assert tw.by_cohort_time()["weight"].sum() == pytest.approx(1.0)
    assert tw.summary()["sum_negative"] > -0.05
    with pytest.raises(ValueError, match="exactly one"):
        twfe_weights(lp, "lp", "firm_id", "year")
