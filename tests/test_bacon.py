"""Goodman-Bacon decomposition (analysis.did.bacon): the published R bacondecomp output on the
Medicaid-expansion data, the decomposition identity, and diff-diff's implementation."""

from __future__ import annotations

import warnings

import moderndid
import pandas as pd
import pytest

from analysis.did.bacon import bacon_decomp
from analysis.did.twfe import twfe

from staggered_sim import simulate_staggered

warnings.filterwarnings("ignore", module="pyfixest")

# Mixtape Sessions, Advanced-DID, Exercises/Exercise-1/Solutions/medicaid-analysis-solutions-R.md
# (commit 102d2d44), R bacondecomp: bacon(dins ~ postTreated, data = df, id_var = "stfips",
# time_var = "year"); columns treated, untreated (99999 = never), estimate, weight.
PUBLISHED_2X2 = [
    (2016, 99999, 0.082728773, 0.0502256229), (2014, 99999, 0.074935691, 0.6215420836),
    (2015, 99999, 0.046864475, 0.0824014126), (2017, 99999, 0.102274094, 0.0211889347),
    (2019, 99999, 0.030943646, 0.0172650579), (2014, 2016, 0.050191048, 0.0258975868),
    (2015, 2016, 0.004156228, 0.0020600353), (2017, 2016, 0.031975667, 0.0002942908),
    (2019, 2016, 0.005429020, 0.0005885815), (2016, 2014, 0.054292531, 0.0172650579),
    (2015, 2014, 0.030656579, 0.0161859918), (2017, 2014, 0.077060485, 0.0097115951),
    (2019, 2014, 0.025483405, 0.0107906612), (2016, 2015, 0.041763062, 0.0011771630),
    (2014, 2015, 0.066569262, 0.0194231901), (2017, 2015, 0.063993540, 0.0008828723),
    (2019, 2015, 0.027470457, 0.0011771630), (2016, 2017, 0.014518637, 0.0007847754),
    (2014, 2017, 0.048755447, 0.0194231901), (2015, 2017, 0.008627171, 0.0020600353),
    (2019, 2017, 0.033588931, 0.0001961938), (2016, 2019, 0.090774537, 0.0047086521),
    (2014, 2019, 0.088170864, 0.0647439670), (2015, 2019, 0.061097391, 0.0082401413),
    (2017, 2019, 0.110885473, 0.0017657446),
]
PUBLISHED_TYPES = {  # type: (weight, avg_est)
    "Earlier vs Later Treated": (0.14911, 0.06983),
    "Later vs Earlier Treated": (0.05827, 0.04486),
    "Treated vs Untreated": (0.79262, 0.07228),
}


@pytest.fixture(scope="module")
def ehec() -> pd.DataFrame:
    """The Medicaid expansion panel (ehec) as shipped in the moderndid wheel."""
    return moderndid.load_ehec().to_pandas()


def test_matches_published_bacondecomp_on_ehec(ehec):
    """Every one of the 25 2x2 estimates and weights equals R bacondecomp's published output
    (to the 9-10 printed digits), and the by-type summary its 5-digit table."""
    bd = bacon_decomp(ehec, "dins", "stfips", "year", "yexp2")
    tab = bd.tidy()
    tab["untreated"] = tab["control_cohort"].fillna(99999).astype(int)
    got = tab.set_index(["cohort", "untreated"])
    assert len(got) == len(PUBLISHED_2X2)
    for treated, untreated, est, w in PUBLISHED_2X2:
        assert abs(got.loc[(treated, untreated), "estimate"] - est) < 1e-9
        assert abs(got.loc[(treated, untreated), "weight"] - w) < 1e-10
    types = bd.by_type().set_index("type")
    for kind, (w, avg) in PUBLISHED_TYPES.items():
        assert abs(types.loc[kind, "weight"] - w) < 5e-6
        assert abs(types.loc[kind, "avg_est"] - avg) < 5e-6


def test_weights_sum_to_one_and_reproduce_twfe(ehec):
    """Goodman-Bacon Theorem 1 on ehec, mpdta and a balanced simulated panel with an
    always-treated group: weights are non-negative and sum to 1, and the weighted sum of the 2x2
    estimates equals the static TWFE coefficient from pyfixest to 1e-8."""
    mpdta = moderndid.load_mpdta().to_pandas()
    sim = simulate_staggered(n_cells=40, firms_per_cell=5, unbalanced=False, seed=9,
                             cohort_shares={2009: 0.15, 2014: 0.2, 2016: 0.2, 2018: 0.2, 0: 0.25},
                             scale={2009: 2.0, 2014: 1.0, 2016: 0.5, 2018: 0.25})
    cases = [(ehec, "dins", "stfips", "year", "yexp2"), (mpdta, "lemp", "countyreal", "year", "first.treat"),
             (sim, "y", "firm", "year", "cohort")]
    for df, y, i, t, g in cases:
        bd = bacon_decomp(df, y, i, t, g)
        tab = bd.tidy()
        assert (tab["weight"] >= 0).all()
        assert abs(tab["weight"].sum() - 1) < 1e-10
        beta = twfe(df, y, i, t, g).tidy()["estimate"].iloc[0]
        assert abs((tab["weight"] * tab["estimate"]).sum() - beta) < 1e-8
        assert abs(bd.meta["twfe_estimate"] - beta) < 1e-8
    assert "Later vs Always Treated" in set(bd.tidy()["type"])  # the simulated panel's 2009 cohort


def test_equals_diff_diff_bacon_on_mpdta():
    """diff-diff's ``bacon_decompose`` on mpdta: same TWFE estimate and weights by type (1e-10)."""
    import diff_diff as dd

    mpdta = moderndid.load_mpdta().to_pandas()
    bd = bacon_decomp(mpdta, "lemp", "countyreal", "year", "first.treat").by_type().set_index("type")
    ref = dd.bacon_decompose(mpdta.rename(columns={"first.treat": "g"}), outcome="lemp", unit="countyreal",
                             time="year", first_treat="g")
    assert abs(ref.twfe_estimate - bacon_decomp(mpdta, "lemp", "countyreal", "year", "first.treat").meta["twfe_estimate"]) < 1e-10
    assert abs(bd.loc["Treated vs Untreated", "weight"] - ref.total_weight_treated_vs_never) < 1e-10
    assert abs(bd.loc["Earlier vs Later Treated", "weight"] - ref.total_weight_earlier_vs_later) < 1e-10
    assert abs(bd.loc["Later vs Earlier Treated", "weight"] - ref.total_weight_later_vs_earlier) < 1e-10


def test_unbalanced_panel_is_refused(ehec):
    """The decomposition is defined for balanced panels only: a clear error names the problem."""
    with pytest.raises(ValueError, match="balanced panel: 1 of 46 units"):
        bacon_decomp(ehec.iloc[1:], "dins", "stfips", "year", "yexp2")


def _ehec_post(ehec: pd.DataFrame) -> pd.DataFrame:
    """The Mixtape solution's ``postTreated``: 1 from the expansion year on (never for NaN)."""
    return ehec.assign(post=((ehec["year"] >= ehec["yexp2"]) & ehec["yexp2"].notna()).astype(int))


def test_treatment_column_matches_published_bacondecomp(ehec):
    """From the 0/1 column ``postTreated`` (the very input of the published R bacondecomp call,
    ``bacon(dins ~ postTreated, ...)``), the 25 2x2 estimates and weights equal the published
    ones, as from the cohort column."""
    bd = bacon_decomp(_ehec_post(ehec), "dins", "stfips", "year", treatment="post")
    tab = bd.tidy()
    tab["untreated"] = tab["control_cohort"].fillna(99999).astype(int)
    got = tab.set_index(["cohort", "untreated"])
    assert len(got) == len(PUBLISHED_2X2)
    for treated, untreated, est, w in PUBLISHED_2X2:
        assert abs(got.loc[(treated, untreated), "estimate"] - est) < 1e-9
        assert abs(got.loc[(treated, untreated), "weight"] - w) < 1e-10


def test_treatment_column_errors(ehec):
    """A treatment that switches off, a non-0/1 value, or both/neither of cohort and treatment:
    clear errors naming the column and units."""
    df = _ehec_post(ehec)
    off = df.copy()
    off.loc[(off["stfips"] == off["stfips"].iloc[0]) & (off["year"] == 2019), "post"] = 0
    off.loc[(off["stfips"] == off["stfips"].iloc[0]) & (off["year"] == 2018), "post"] = 1
    with pytest.raises(ValueError, match="treatment column 'post' switches from 1 back to 0 in 1 unit"):
        bacon_decomp(off, "dins", "stfips", "year", treatment="post")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        bacon_decomp(df.assign(post=df["post"] * 2), "dins", "stfips", "year", treatment="post")
    with pytest.raises(ValueError, match="exactly one of cohort"):
        bacon_decomp(df, "dins", "stfips", "year", "yexp2", treatment="post")
    assert "post" in df and (df["post"] == _ehec_post(ehec)["post"]).all()  # raw data untouched


def test_covariate_decomposition_reproduces_twfe_with_covariates(ehec):
    """Goodman-Bacon (2021) Section 5: with a time-varying covariate the within term and the
    between-group pair terms have weights summing to one and weighted estimates summing to the
    coefficient on D of ``feols(dins ~ post + x | stfips + year)`` (pyfixest), to 1e-10."""
    import numpy as np
    import pyfixest as pf

    df = _ehec_post(ehec)
    rng = np.random.default_rng(0)
    df["x"] = rng.normal(size=len(df)) + 0.3 * df["post"] + 0.01 * (df["year"] - 2008) * (df["stfips"] % 3)
    bd = bacon_decomp(df, "dins", "stfips", "year", treatment="post", covariates="x")
    tab = bd.tidy()
    ref = float(pf.feols("dins ~ post + x | stfips + year", data=df).coef()["post"])
    assert bd.meta["twfe_estimate"] == pytest.approx(ref, abs=1e-10)
    assert float((tab["weight"] * tab["estimate"]).sum()) == pytest.approx(ref, abs=1e-10)
    assert tab["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert 0 < bd.meta["within_weight"] < 1
    assert set(tab["type"]) == {"Within", "Both Treated", "Treated vs Untreated"}


def test_covariate_decomposition_without_within_variation_equals_theorem_1(ehec):
    """A covariate constant within units is absorbed by the unit effects: Omega = 0, and each pair
    of timing groups carries the summed weight and the weighted mean estimate of its Theorem 1
    2x2s (earlier vs later and later vs earlier), which match the published output above."""
    df = _ehec_post(ehec).assign(z=lambda d: d["stfips"] * 1.5)
    bd = bacon_decomp(df, "dins", "stfips", "year", treatment="post", covariates="z")
    assert "do not vary within units" in " ".join(bd.meta["notes"])
    assert (bd.tidy()["type"] != "Within").all()
    plain = bacon_decomp(df, "dins", "stfips", "year", treatment="post").tidy()
    ctrl = plain["control_cohort"].fillna(1e9)
    plain["pair"] = [tuple(sorted((a, b))) for a, b in zip(plain["cohort"], ctrl)]
    grouped = plain.assign(we=plain["weight"] * plain["estimate"]).groupby("pair")[["weight", "we"]].sum()
    for _, row in bd.tidy().iterrows():
        a = int(row["treated"])
        b = 1e9 if row["control"] == "never treated" else int(row["control"])
        w, we = grouped.loc[[tuple(sorted((a, b)))]].iloc[0]
        assert row["weight"] == pytest.approx(w, abs=1e-12)
        assert row["estimate"] == pytest.approx(we / w, abs=1e-10)
