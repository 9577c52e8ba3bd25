"""From raw records to the panel: cluster matching, timing, outcomes, and the real-data path.

The real-data path is exercised end to end on files written to a temporary folder: the raw
files are read, never modified (their bytes are hashed before and after).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from analysis.config import ParameterError, load_params
from analysis.panel import add_outcomes, assign_clusters, baseline, build_panel, event_time
from analysis.schema import PanelError


def test_event_time_missing_for_never_treated():
    """Event time is year minus cohort, missing for never-treated firms."""
    df = pd.DataFrame({"year": [2020, 2024, 2024], "cohort": [2023, 2023, 0]})
    assert event_time(df).tolist() == [-3, 1, pd.NA]


def test_assign_clusters_rejects_a_cell_certified_twice():
    """A county x industry cell on the list twice is an error."""
    clusters = pd.DataFrame({"cluster_id": ["a", "b"], "county_code": [1, 1], "industry_code": [26, 26], "batch": [2022, 2023],
                             "announced": ["2023-01-11", "2023-10-18"]})
    firms = pd.DataFrame({"firm_id": [1], "year": [2020], "county_code": [1], "industry_code": [26]})
    with pytest.raises(PanelError, match="certifies the same county x industry cell twice"):
        assign_clusters(firms, clusters, late_month=7, last_year=2025)


def test_add_outcomes_definitions():
    """Logs, labor productivity, patent totals and emission intensity per unit of output."""
    df = pd.DataFrame({"firm_id": [1], "year": [2020], "cohort": [0], "county_code": [1], "industry_code": [26],
                       "output": [200.0], "value_added": [50.0], "labor": [10.0], "investment": [0.0],
                       "patents_invention": [1], "patents_utility": [2], "patents_design": [0], "so2": [4.0]})
    out = add_outcomes(df).iloc[0]
    assert out["log_labor_productivity"] == pytest.approx(np.log(5.0))
    assert out["patents_total"] == 3 and out["any_patent"] == 1 and out["log1p_patents"] == pytest.approx(np.log(4))
    assert out["log_so2_intensity"] == pytest.approx(np.log(4 / 200))
    assert pd.isna(out["log_investment"])
    assert out["cell_id"] == 126


def test_baseline_is_the_year_before_certification():
    """A treated firm's baseline is its value the year before its cohort; a never-treated firm's, its first year."""
    df = pd.DataFrame({"firm_id": [1, 1, 1, 2, 2], "year": [2021, 2022, 2023, 2021, 2022], "cohort": [2023] * 3 + [0] * 2, "x": [1, 2, 3, 7, 8]})
    assert baseline(df, "x").tolist() == [2, 2, 2, 7, 7]


def _write_raw(tmp_path, world, id_header="法人代码"):
    firms = world.panel.drop(columns=["cluster_id", "batch", "cohort"]).rename(columns={"firm_id": id_header, "output": "gross_output"})
    for col in ("gross_output", "value_added", "capital", "materials", "investment"):
        firms[col] *= 1000  # yuan, not thousand yuan (data.money_scale scales every money column)
    clusters = world.clusters[["cluster_id", "county_code", "industry_code", "batch", "announced"]]
    fpath, cpath = tmp_path / "firms.csv", tmp_path / "clusters.csv"
    firms.to_csv(fpath, index=False)
    clusters.to_csv(cpath, index=False)
    return fpath, cpath


def test_real_data_path_reproduces_the_panel_and_leaves_raw_files_untouched(tmp_path, small_world):
    """A user's raw files (other column names, money in yuan) give the same panel as the world, read only."""
    fpath, cpath = _write_raw(tmp_path, small_world)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (fpath, cpath)}
    params = load_params("small")
    params["data"].update(source="raw", raw_firms=str(fpath), raw_clusters=str(cpath), rename={"法人代码": "firm_id", "gross_output": "output"})
    params["data"].update(money_scale=0.001, clusters_complete=True)  # the world's list is complete
    panel, world = build_panel(params)
    assert world is None
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (fpath, cpath)} == before
    ref = add_outcomes(small_world.panel)
    np.testing.assert_allclose(panel["log_output"], ref["log_output"], rtol=1e-9)
    assert (panel["cohort"].to_numpy() == ref["cohort"].to_numpy()).all()


def test_real_data_errors_name_the_file_and_column(tmp_path, small_world):
    """Bad rename maps and missing contract columns in raw files are errors naming the column and file."""
    fpath, cpath = _write_raw(tmp_path, small_world, id_header="企业编号")  # not a header the ASIF defaults know
    params = load_params("small")
    params["data"].update(source="raw", raw_firms=str(fpath), raw_clusters=str(cpath), rename={"no_such_column": "firm_id"}, money_scale=0.001)
    with pytest.raises(ParameterError, match="no_such_column"):
        build_panel(params)
    params["data"]["rename"] = {"gross_output": "output"}  # firm_id left unnamed
    with pytest.raises(PanelError, match=r"firms.csv: missing required column\(s\) \['firm_id'\]"):
        build_panel(params)
    params["data"]["raw_firms"] = str(tmp_path / "nope.parquet")
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        build_panel(params)
