"""The robustness report's functions (analysis.robustness: run_family and the tables, figures and notes
notebooks/06_robustness.ipynb shows), on the small world with thinned draws, and its partial-data rules.

The checks' numbers are tested elsewhere (tests/test_robustness*.py); here: every table the page exports
has the rows and columns the page promises, the specification curve has as many rows as the parameters
define, the opening note states the truth and the thinning, an absent outcome is left out and said, and
a panel without the main outcome stops the page (analysis.availability.InputsAbsent).
"""

from __future__ import annotations

import copy

import matplotlib
import numpy as np
import pandas as pd
import pytest

from analysis import robustness as R
from analysis.availability import InputsAbsent
from analysis.effects import FamilyInputs, load_family
from analysis.panel import add_outcomes

matplotlib.use("Agg")

#: thinned settings: a few draws, the main outcome's relative magnitudes only, 2 x 1 x 2 x 2 timing x 2 clusters
THIN = {
    "wild_bootstrap": {"draws": 99},
    "ri": {"draws": 19, "min_cell_firms": 4},
    "honest": {"mbar": [1], "m_se": [1], "outcomes": "main"},
    "spec_curve": {"estimators": ["cs_dr", "twfe"], "comparisons": ["all"], "samples": ["all", "drop_last_batch"],
                   "late_months": [12], "clusters": ["cell", "province"]},
}


def _inputs(small_world, small_params, panel=None) -> FamilyInputs:
    """The innovation family's inputs; by default the panel has only the columns the page loads
    (R.panel_columns and the family's outcomes), so every test of the page also checks it needs no other."""
    params = copy.deepcopy(small_params)
    params["robustness"] = THIN
    world = {"truth": small_world.truth, "clusters": small_world.clusters}
    spec = load_family("innovation")
    if panel is None:
        full = add_outcomes(small_world.panel)
        wanted = [*R.panel_columns(params), *(o["column"] for o in [*spec["outcomes"], *spec["counts"]])]
        panel = full[[c for c in dict.fromkeys(wanted) if c in full]]
    return FamilyInputs(config="test", family="innovation", params=params, spec=spec, panel=panel, world=world)


@pytest.fixture(scope="module")
def report(small_world, small_params, tmp_path_factory):
    """run_family on the small world's innovation family (results written into a temporary folder)."""
    tmp = tmp_path_factory.mktemp("robustness")
    mp = pytest.MonkeyPatch()
    mp.setattr("analysis.config.processed_dir", lambda config: tmp / config)
    inp = _inputs(small_world, small_params)
    rb = R.run_family(inp, progress=False, cache_dir=tmp / "cache")
    mp.undo()
    return inp, rb, tmp


def test_run_family_saves_every_frame(report):
    """The tidy frames are written under results/robustness_<family>/, the summary among them."""
    inp, rb, tmp = report
    folder = tmp / "test" / "results" / "robustness_innovation"
    saved = {p.stem for p in folder.glob("*.parquet")}
    assert {"summary", "main", "wild", "clusters", "ri", "design", "placebo", "spillovers", "spec_curve", "honest", "breakdown"} <= saved
    assert rb.main_outcome == inp.main == "log1p_patents"


def test_tables_have_the_promised_rows(report):
    """Wild bootstrap: analytic, Rademacher and Webb rows for TWFE and imputation; clustering: one column per level
    and a row of cluster counts (cells > provinces); RI: the CS and TWFE rows with both p-values in [0, 1]."""
    inp, rb, _ = report
    wild = R.wild_table(rb)
    assert set(wild.index.get_level_values("weights")) == {"analytic", "rademacher", "webb"} and len(wild) == 6
    clus = R.clustering_wide(rb)
    assert list(clus.columns) == ["cell", "county", "prefecture", "province"]
    assert clus.loc["clusters", "cell"] > clus.loc["clusters", "county"] > clus.loc["clusters", "province"]
    ri = R.ri_table(rb)
    assert len(ri) == 2 and ri[["p_value", "analytic_p_value"]].stack().between(0, 1).all()
    assert (ri["draws"] == 19).all() and "thinned" in R.ri_note(rb)
    assert set(R.design_table(rb).index.get_level_values("check")) == {"control", "drop_last", "timing", "anticipation"}
    assert len(R.placebo_table(rb)) == 2
    assert {"spill_county", "no_exposed"} <= set(R.spillover_table(rb).index.get_level_values("check"))
    assert R.matching_table(rb).index[0].startswith("main")
    assert "std. bias % (entropy)" in R.balance_table(rb)
    assert R.bacon_table(rb)["weight"].sum() == pytest.approx(1.0)
    assert "sum of negative weights" in R.dcdh_table(rb).index


def test_specification_curve_has_every_combination(report):
    """2 estimators x 1 comparison x 2 samples x 2 timing rules x 2 clustering levels = 16 rows (none skipped)."""
    _, rb, _ = report
    spec = R.spec_table(rb)
    assert len(spec) + 2 * len(rb.spec.attrs["skipped"]) == 16
    assert spec.groupby(["estimator", "sample", "timing"])["cluster"].nunique().eq(2).all()
    assert R.spec_note(rb).startswith(f"{len(spec)} specifications")


def test_honest_rows_and_figures(report):
    """HonestDiD: relative magnitudes for the main outcome only (thinned), smoothness for both outcomes, one figure each."""
    inp, rb, _ = report
    hon = R.honest_table(rb).reset_index()
    assert set(hon.loc[hon["restriction"] == "relative_magnitude", "outcome"]) == {"log1p_patents"}
    assert set(hon.loc[hon["restriction"] == "smoothness", "outcome"]) == {"log1p_patents", "any_patent"}
    bd = R.breakdown_table(rb, inp.labels)
    assert list(bd.index) == ["any_patent", "log1p_patents"] and bd["label"].notna().all()
    figs = R.honest_figures(rb, inp.labels)
    assert set(figs) == {"robustness_innovation_honestdid_any_patent", "robustness_innovation_honestdid_log1p_patents"}


def test_figures_and_notes(report):
    """The RI, TWFE and specification-curve figures draw; the opening note gives the truth and the thinning;
    the summary has one row per check the results hold, each with a verdict."""
    inp, rb, _ = report
    assert len(R.ri_figure(rb).axes) == 2
    assert len(R.twfe_figure(rb).axes) == 2
    assert R.spec_figure(rb).axes
    note = R.opening_note(rb, inp)
    assert "true effect in the synthetic world" in note and "thinned" in note
    summary = rb.summary()
    assert summary["changes the conclusion"].str.match(r"^(yes|no|n/a)").all()
    assert {"Wild cluster bootstrap", "Randomization inference", "Specification curve", "HonestDiD: relative magnitudes"} <= set(summary["check"])
    assert R.summary_styler(summary).to_html().count("<tr") == len(summary) + 1
    assert list(R.timings_table(rb).columns)[:3] == ["main", "wild", "clusters"]


def test_partial_data(small_world, small_params, tmp_path, monkeypatch):
    """Without the main outcome the page stops with the paragraph (InputsAbsent, recorded as skipped); without
    another outcome of the family it runs and the note names the one left out."""
    monkeypatch.setattr("analysis.availability.processed_dir", lambda config: tmp_path / config)
    monkeypatch.setattr("analysis.config.processed_dir", lambda config: tmp_path / config)
    panel = add_outcomes(small_world.panel)
    with pytest.raises(InputsAbsent, match="log1p_patents"):
        R.require_family_inputs(_inputs(small_world, small_params, panel.drop(columns=["log1p_patents"])))
    assert (tmp_path / "test" / "skipped" / "robustness_innovation.json").is_file()
    inp = _inputs(small_world, small_params, panel.assign(any_patent=np.nan))
    R.require_family_inputs(inp)
    spec = R.copy_spec(inp.spec)
    assert spec == inp.spec and spec["outcomes"] is not inp.spec["outcomes"]
    dates, why = R.family_announcements(inp)
    assert why is None and len(dates) == small_world.clusters["cluster_id"].nunique()
    inp.world = {}
    inp.params["data"]["source"] = "raw"
    inp.params["data"]["raw_clusters"] = str(tmp_path / "absent.csv")
    dates, why = R.family_announcements(inp)
    assert dates is None and "not varied" in why


def test_run_family_names_absent_outcomes(small_world, small_params, tmp_path, monkeypatch):
    """An outcome the panel lacks is left out of HonestDiD and named in the notes."""
    monkeypatch.setattr("analysis.config.processed_dir", lambda config: tmp_path / config)
    inp = _inputs(small_world, small_params, add_outcomes(small_world.panel).drop(columns=["any_patent"]))
    inp.params["robustness"] = {**THIN, "ri": {"draws": 9, "min_cell_firms": 4},
                                "spec_curve": {**THIN["spec_curve"], "estimators": ["twfe"], "samples": ["all"], "clusters": ["cell"]}}
    rb = R.run_family(inp, progress=False, cache_dir=None)
    assert set(rb.honest["breakdown"]["outcome"]) == {"log1p_patents"}
    assert any("`any_patent`" in n for n in rb.notes) and "`any_patent`" in R.opening_note(rb, inp)
    assert isinstance(rb.spec, pd.DataFrame)


def test_breakdown_at_the_end_of_the_grid_is_a_lower_bound():
    """A breakdown value equal to the largest M tried is reported as a lower bound; inside the grid as is."""
    assert R._at_least(2.0, 2.0) == "at least 2.00 (the largest value tried)"
    assert R._at_least(1.0, 2.0) == "1.00"
    assert R._at_least(float("nan"), 2.0) == "n/a"


def test_an_exposed_group_that_cannot_be_estimated_is_named(small_world, monkeypatch):
    """When the second exposed group's fit fails (as on some small worlds: every ATT(g,t) of a few exposed firms
    missing), spillovers warns, leaves it out, names it in attrs["skipped"], and the summary says so."""
    panel = R.add_geography(add_outcomes(small_world.panel))
    fit, calls = R.fit_variant, []

    def failing_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("every ATT(g,t) is missing: nothing to aggregate")
        return fit(*args, **kwargs)

    monkeypatch.setattr(R, "fit_variant", failing_second)
    s = R.settings({"did": {"cluster": "cell_id", "alpha": 0.05, "window": [-5, 2]}, "robustness": {}, "seed": 0})
    with pytest.warns(RuntimeWarning, match="not estimable"):
        sp = R.spillovers(panel, "log_labor_productivity", s)
    assert set(sp["check"]) == {"spill_county", "no_exposed"}
    assert "every ATT(g,t) is missing" in sp.attrs["skipped"]["spill_prefecture"]
    main = sp[sp["check"] == "no_exposed"].assign(estimator="cs_dr")
    rb = R.Robustness(family="x", main_outcome="y", settings=s, main=main, wild=pd.DataFrame({"weights": []}), clusters=pd.DataFrame(),
                      ri={}, design=pd.DataFrame(columns=["check", "variant", "estimate", "p_value"]), placebo=pd.DataFrame(), spill=sp,
                      matching={}, twfe={}, honest={}, spec=pd.DataFrame())
    row = rb.summary().set_index("check").loc["Spillovers: same industry, same prefecture"]
    assert row["result"].startswith("not estimated") and row["changes the conclusion"] == "n/a"


def test_honest_grid_is_extended_to_bracket_the_breakdown(small_world, tmp_path):
    """On the small world's log(1 + patents) (a clear effect), relative magnitudes on the grid [0.25]: the largest
    Mbar is still robust, so the grid is doubled while it stays robust, up to extend_to = 8; the breakdown value
    is then inside the grid or at 8. Without extension the grid stays [0.25]."""
    panel = add_outcomes(small_world.panel)
    s = R.settings({"did": {"cluster": "cell_id", "alpha": 0.05, "window": [-5, 2]}, "robustness": {}, "seed": 0})
    es = R.event_study_cs(panel, "log1p_patents", s, base_period="universal")
    fixed, grid0 = R.honest_sets(es, "relative_magnitude", [0.25], extend_to=0, cache_dir=tmp_path)
    assert grid0 == [0.25] and R._breakdown(fixed) == 0.25
    sets, grid = R.honest_sets(es, "relative_magnitude", [0.25], extend_to=8, cache_dir=tmp_path)
    assert grid[:2] == [0.25, 0.5] and all(b == 2 * a for a, b in zip(grid, grid[1:])) and grid[-1] <= 8
    b = R._breakdown(sets)
    assert b < grid[-1] or grid[-1] == 8
    assert set(sets["M"].dropna()) == set(grid)
