"""The national cluster list in data/external/ and the choice of never-treated control counties.

Checked against the list's own contract (one row per cluster, codes valid in the NBS 2023
county code table committed beside it, a source on every row, no county x industry cell
certified twice) and against the builder script that produced it (data/external/clusters_build.py).
"""

from __future__ import annotations

import csv
import importlib.util

import pandas as pd
import pytest

from analysis.config import EXTERNAL
from analysis.sources.clusters import (
    ClusterListError,
    check_cluster_list,
    coverage,
    read_cluster_list,
    usable_control_counties,
)

PROVINCE_CODE_OF_XPCC = "65"  # XPCC cities are coded under Xinjiang (自治区直辖县级行政区划)


@pytest.fixture(scope="module")
def clusters() -> pd.DataFrame:
    """The committed national cluster list, read by its reader."""
    return read_cluster_list(EXTERNAL / "clusters_national.csv")


@pytest.fixture(scope="module")
def codes() -> pd.DataFrame:
    """The committed county codes (NBS 2023) the cluster list is checked against."""
    return pd.read_csv(EXTERNAL / "clusters_county_codes_nbs2023.csv", dtype=str)


def test_one_row_per_cluster_with_source(clusters):
    """Each cluster once (id, and name within batch), every row sourced, at most 100 per batch."""
    assert clusters["cluster_id"].is_unique
    assert not clusters.duplicated(["batch", "cluster_name"]).any()
    assert clusters["source"].str.strip().str.len().gt(10).all()
    cov = coverage(clusters)
    assert (cov["rows"] <= 100).all() and cov["rows"].sum() == len(clusters)


def test_codes_exist_and_match_province_and_county(clusters, codes):
    """Every county code is a county-level unit of the NBS 2023 table, with the row's county
    name and province; rows without a code say why in their source."""
    table = codes.set_index("county_code")
    have = clusters[clusters["county_code"].notna()]
    assert have["county_code"].isin(table.index).all()
    t = table.loc[have["county_code"]]
    assert (t["county"].to_numpy() == have["county"].to_numpy()).all()
    prov = have["province"].replace({"新疆生产建设兵团": "新疆维吾尔自治区"}).to_numpy()
    assert (t["province"].to_numpy() == prov).all()
    assert clusters["county_code"].isna().sum() <= 3  # towns of Dongguan and Zhongshan, Guiyang high-tech zone
    cic = pd.to_numeric(clusters["industry_cic2"], errors="coerce").dropna()
    assert cic.between(13, 43).all()
    assert set(clusters["match_type"]) <= {"core", "related", "none"}


def test_no_cell_certified_twice(clusters):
    """No county x 2-digit industry cell carries two clusters (panel.assign_clusters relies on it)."""
    cell = clusters.dropna(subset=["county_code", "industry_cic2"])
    assert not cell.duplicated(["county_code", "industry_cic2"]).any()


def test_checks_catch_broken_lists(clusters):
    """Each rule of the contract fails on a list that breaks it, naming the rule."""
    bad = {
        "cell certified twice": pd.concat([clusters, clusters.iloc[[0]].assign(cluster_id="X", cluster_name="dup")], ignore_index=True),
        "no source": clusters.assign(source=[""] + clusters["source"].tolist()[1:]),
        "six digits": clusters.assign(county_code=["12345"] + clusters["county_code"].tolist()[1:]),
        "13-43": clusters.assign(industry_cic2=["55"] + clusters["industry_cic2"].tolist()[1:]),
        "cluster_id repeated": clusters.assign(cluster_id="same"),
    }
    for rule, df in bad.items():
        with pytest.raises(ClusterListError, match=rule):
            check_cluster_list(df)


def test_file_is_what_the_builder_makes(clusters):
    """The committed CSV equals the output of data/external/clusters_build.py (no hand edits)."""
    spec = importlib.util.spec_from_file_location("clusters_build", EXTERNAL / "clusters_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built = mod.build()
    with open(EXTERNAL / "clusters_national.csv", encoding="utf-8") as f:
        committed = list(csv.DictReader(f))
    assert [{k: str(v) for k, v in r.items()} for r in built] == committed


def test_controls_drop_counties_the_incomplete_list_cannot_vouch_for():
    """Incomplete list: a county is a never-treated control only where its province's lists are
    complete for every batch (a source gives the count and all are listed); otherwise dropped
    (or kept and flagged with policy='warn'). A complete list makes every unlisted county a control."""
    cl = pd.DataFrame({"cluster_id": ["a", "b"], "batch": [2022, 2023], "province": ["甲省", "甲省"], "county_code": ["110001", "110002"]})
    counties = pd.DataFrame({"county_code": [110001, 110002, 110003, 120001], "province": ["甲省", "甲省", "甲省", "乙省"]})
    cov = pd.DataFrame({"batch": [2022, 2023], "province": ["甲省", "甲省"], "n_certified": [1, 1]})
    got = usable_control_counties(counties, cl, complete=False, coverage=cov, batches=[2022, 2023])
    assert got["status"].tolist() == ["treated", "treated", "control", "dropped"]
    # a batch without a complete provincial count makes the province unsafe
    got = usable_control_counties(counties, cl, complete=False, coverage=cov, batches=[2022, 2023, 2024])
    assert got["status"].tolist() == ["treated", "treated", "dropped", "dropped"]
    # a source count above what is listed: not complete
    got = usable_control_counties(counties, cl, complete=False, coverage=cov.assign(n_certified=[2, 1]), batches=[2022, 2023])
    assert got["status"].tolist()[2] == "dropped"
    got = usable_control_counties(counties, cl, complete=False, coverage=cov, batches=[2022, 2023, 2024], policy="warn")
    assert got["status"].tolist() == ["treated", "treated", "warn", "warn"]
    got = usable_control_counties(counties, cl, complete=True)
    assert got["status"].tolist() == ["treated", "treated", "control", "control"]


def test_committed_coverage_table_is_consistent(clusters):
    """Province-batches marked complete in clusters_coverage.csv have all their clusters listed."""
    cov = pd.read_csv(EXTERNAL / "clusters_coverage.csv")
    n = clusters.groupby(["batch", "province"]).size()
    for b, p, k in zip(cov["batch"], cov["province"], cov["n_certified"]):
        assert n.get((b, p), 0) == k, (b, p)


def test_list_feeds_panel_assignment(clusters):
    """for_assignment gives panel.assign_clusters what it needs; a firm in a listed cell gets
    the cluster and the cohort of its announcement (batch 2023, announced 2023-10-18, late
    month 7 -> first treated 2024)."""
    from analysis.panel import assign_clusters
    from analysis.sources.clusters import for_assignment

    a = for_assignment(clusters)
    assert len(a) == clusters[["county_code", "industry_cic2"]].notna().all(axis=1).sum()
    row = a[a["batch"] == 2023].iloc[0]
    firms = pd.DataFrame({"firm_id": [1, 2], "year": [2024, 2024], "county_code": [row["county_code"], 999999], "industry_code": [row["industry_code"], 13]})
    out = assign_clusters(firms, a, late_month=7, last_year=2025)
    assert out["cluster_id"].tolist()[0] == row["cluster_id"] and out["cohort"].tolist() == [2024, 0]
