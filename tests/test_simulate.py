"""The synthetic world: its truth is what it claims, it is deterministic, and it looks like ASIF.

What is checked, and against what:
- the truth table equals the mean of Y(1) - Y(0) over certified members' firm-years, recomputed
  here from the potential outcomes (not with the module's own aggregation code);
- observed outcomes equal the potential outcome of the firm's treatment state;
- same seed, same bytes of the written panel; another seed, another panel;
- moments fall in the ranges public sources give for the Annual Survey of Industrial Firms,
  CNIPA patents and the pollution survey (cited per test; ranges are deliberately wide);
- the scenario switches do what they say.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from analysis.config import ParameterError
from analysis.io import write_parquet
from analysis.panel import add_outcomes, assign_clusters
from analysis.simulate import OUTCOMES, cohort_from_date, simulate_world, world_params

from worlds import SMALL


def _with(**scenario) -> dict:
    return {"world": {**SMALL["world"], "scenario": scenario}}


def test_truth_is_mean_of_potential_outcome_differences(small_world):
    """ATT(simple) and ATT(g,t) in World.truth = mean of Y(1)-Y(0) over member firm-years (post)."""
    pot, truth = small_world.potential, small_world.truth
    post = pot[pot["event_time"] >= 0]
    for outcome in ("tfp", "log_value_added", "patents_total", "any_patent"):
        diff = post[f"{outcome}_1"] - post[f"{outcome}_0"]
        simple = truth.query("aggregation == 'simple' and outcome == @outcome")["att"].item()
        assert simple == pytest.approx(diff.mean(), abs=1e-12)
        by_gt = diff.groupby([post["cohort"], post["year"]]).mean()
        table = truth.query("aggregation == 'group_time' and outcome == @outcome").set_index(["cohort", "time"])["att"]
        for (g, t), v in by_gt.items():
            assert table.loc[(g, t)] == pytest.approx(v, abs=1e-12)


def test_truth_covers_every_outcome_and_aggregation(small_world):
    """Every outcome of OUTCOMES has simple, event, group, calendar and group_time rows."""
    t = small_world.truth
    for outcome in OUTCOMES:
        assert set(t.loc[t["outcome"] == outcome, "aggregation"]) == {"simple", "event", "group", "calendar", "group_time"}


def test_observed_outcomes_are_the_treated_potential_outcomes(small_world):
    """Members' observed log value added equals Y(1); before certification Y(1) = Y(0) (no anticipation)."""
    panel = add_outcomes(small_world.panel)
    pot = small_world.potential
    merged = pot.merge(panel[["firm_id", "year", "log_value_added", "patents_invention"]], on=["firm_id", "year"])
    assert len(merged) == len(pot)
    np.testing.assert_allclose(merged["log_value_added"], merged["log_value_added_1"], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(merged["patents_invention"], merged["patents_invention_1"])
    pre = pot[pot["event_time"] < 0]
    np.testing.assert_array_equal(pre["log_value_added_0"], pre["log_value_added_1"])
    assert (small_world.truth.query("aggregation == 'event' and event_time < 0")["att"] == 0).all()


def test_effects_positive_on_tfp_and_patents_negative_on_intensity(small_world):
    """Signs of the default effects: TFP up, patents up, emission intensities down, growing with event time."""
    t = small_world.truth.query("aggregation == 'simple'").set_index("outcome")["att"]
    assert t["tfp"] > 0 and t["patents_total"] > 0 and t["log_so2_intensity"] < 0
    ev = small_world.truth.query("aggregation == 'event' and outcome == 'tfp' and event_time >= 0").sort_values("event_time")["att"]
    assert ev.is_monotonic_increasing


def test_same_seed_same_bytes(tmp_path):
    """Same seed gives byte-identical panel.parquet; another seed gives a different one."""
    def digest(seed: int, name: str) -> str:
        path = write_parquet(simulate_world(SMALL, seed=seed).panel, tmp_path / name)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert digest(7, "a.parquet") == digest(7, "b.parquet")
    assert digest(7, "a.parquet") != digest(8, "c.parquet")


def test_unknown_world_parameter_is_an_error():
    """A misspelt world parameter stops the run, naming it."""
    with pytest.raises(ParameterError, match="world.n_firm"):
        simulate_world({"world": {"n_firm": 10}})
    with pytest.raises(ParameterError, match="world.certification.per_bacth"):
        world_params({"world": {"certification": {"per_bacth": 3}}})


def test_first_treated_year_rule():
    """Batch dates of data/clusters/README.md: 2023-01 -> 2023, 2023-10 -> 2024, 2024-09 -> 2025, 2025-11 -> 2026."""
    dates = ["2023-01-11", "2023-10-18", "2024-09-20", "2025-11-15"]
    assert [cohort_from_date(d, late_month=7) for d in dates] == [2023, 2024, 2025, 2026]
    assert [cohort_from_date(d, late_month=13) for d in dates] == [2023, 2023, 2024, 2025]


def test_clusters_assign_back_to_the_same_firms(small_world):
    """analysis.panel.assign_clusters (the real-data path) reproduces the world's cluster and cohort columns."""
    p = small_world.panel
    again = assign_clusters(p.drop(columns=["cluster_id", "batch", "cohort"]), small_world.clusters, late_month=7, last_year=int(p["year"].max()))
    pd.testing.assert_series_equal(again["cohort"], p["cohort"])
    pd.testing.assert_series_equal(again["cluster_id"], p["cluster_id"])


def test_certification_follows_the_rules(small_world):
    """Four batches of per_batch cells, at most max_per_province per province and batch, one cell once."""
    c = small_world.clusters
    assert sorted(c["batch"].unique()) == [2022, 2023, 2024, 2025]
    assert (c.groupby("batch").size() == 8).all()
    assert c.groupby(["batch", "province"]).size().max() <= 8
    assert not c["cell_id"].duplicated().any()


def test_selection_on_observables(default_world):
    """Certified cells are larger than other cells before certification (criteria: output >= 4 bn yuan)."""
    p = default_world.panel
    pre = p[p["year"] == 2021]
    size = pre.groupby("cell_id")["output"].sum()
    certified = size.index.isin(default_world.clusters["cell_id"])
    assert size[certified].median() > 3 * size[~certified].median()


# --- plausibility against public facts (the table of the world's defaults in data/README.md, with sources) ---
def test_zero_patent_share_like_asif(default_world):
    """He et al. (2018), as cited in data/README.md: about 94 % of ASIF firm-years have no patent application; allow 85-96 %."""
    p = add_outcomes(default_world.panel)
    zero = (p["patents_total"] == 0).groupby(p["year"]).mean()
    assert zero.between(0.85, 0.96).all(), zero.to_dict()


def test_entry_exit_and_size_plausible(default_world):
    """Net entry positive and exit 4-10 % a year (ASIF: 20-30 thousand net entrants on ~300-400 thousand firms);
    median employment 50-400 persons; SMEs (2011 standard) at least 85 % of firm-years (census: 99 %+ of all firms)."""
    p = default_world.panel
    firms = p.groupby("year").size()
    assert (firms.diff().dropna() > 0).all()
    last = p.groupby("firm_id")["year"].max()
    exit_rate = last[last < p["year"].max()].value_counts().sort_index() / firms.reindex(last[last < p["year"].max()].value_counts().sort_index().index)
    assert exit_rate.between(0.04, 0.10).all()
    assert 50 <= p["labor"].median() <= 400
    assert p["sme"].mean() >= 0.85


def test_emissions_reported_by_a_subset(default_world):
    """Pollution records cover the key polluters only: 20-50 % of firms, more in polluting industries."""
    p = default_world.panel
    share = p.groupby("firm_id")["reports_emissions"].first().mean()
    assert 0.2 <= share <= 0.5
    assert p["so2"].isna().equals(~p["reports_emissions"])


def test_value_added_production_function(default_world):
    """log VA = 0.6 l + 0.4 k + omega + e (ACF 2015 design): OLS of log VA - omega on l, k recovers (0.6, 0.4)."""
    p = add_outcomes(default_world.panel).merge(default_world.latent, on=["firm_id", "year"])
    X = np.column_stack([np.ones(len(p)), np.log(p["labor"]), p["log_capital"]])
    beta = np.linalg.lstsq(X, p["log_value_added"] - p["omega"], rcond=None)[0]
    assert beta[1:] == pytest.approx([0.6, 0.4], abs=0.01)  # labor is rounded to persons


# --- scenarios ---------------------------------------------------------------------------------
def test_anticipation_moves_effects_before_certification():
    """With anticipation = 1, the true effect at event time -1 is the anticipation share of the base effect."""
    w = simulate_world(_with(anticipation=1, anticipation_share=0.5), seed=3)
    ev = w.truth.query("aggregation == 'event' and outcome == 'tfp'").set_index("event_time")["att"]
    assert ev.loc[-1] > 0.01 and ev.loc[-2] == 0


def test_pretrend_scenario_bends_untreated_trends():
    """pretrend > 0 raises the untreated TFP path of ever-certified firms over time (a violated parallel trend)."""
    base = simulate_world(SMALL, seed=4)
    bent = simulate_world(_with(pretrend=0.02), seed=4)
    a = base.potential.groupby("year")["tfp_0"].mean()
    b = bent.potential.groupby("year")["tfp_0"].mean()
    gap = (b - a).dropna()
    assert gap.iloc[-1] - gap.iloc[0] == pytest.approx(0.02 * (gap.index[-1] - gap.index[0]), rel=1e-6)


def test_spillover_scenario_reaches_non_members():
    """spillover > 0 changes non-member firms in certified counties after certification, and nobody else."""
    base = simulate_world(SMALL, seed=5)
    spill = simulate_world(_with(spillover=0.5), seed=5)
    a, b = base.panel, spill.panel
    assert a[["firm_id", "year"]].equals(b[["firm_id", "year"]])
    counties = base.clusters.loc[base.clusters["cohort"] <= 2025, "county_code"]
    neighbour = a["cohort"].eq(0) & a["county_code"].isin(counties) & (a["year"] >= 2023)
    changed = ~np.isclose(a["value_added"], b["value_added"])
    assert changed[neighbour].mean() > 0.5
    far = a["cohort"].eq(0) & ~a["county_code"].isin(base.clusters["county_code"])
    assert not changed[far].any()


def test_no_never_treated_scenario():
    """no_never_treated keeps only firms of clusters certified within the data years."""
    w = simulate_world(_with(no_never_treated=True), seed=6)
    assert (w.panel["cohort"] > 0).all()
