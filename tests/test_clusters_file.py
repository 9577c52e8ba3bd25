"""The national and provincial cluster lists in data/external/, the treatment definitions and
the choice of never-treated controls.

The lists are checked against their own contract (one row per cluster, codes valid in the NBS
2023 county code table committed beside them, a source on every row, no county x industry cell
certified twice) and against the builder script that produced them (data/external/clusters_build.py).
Each treatment definition is checked on a hand-made panel whose members are known by
construction, and the default one against the synthetic world's own assignment.
"""

from __future__ import annotations

import csv
import importlib.util

import pandas as pd
import pytest

from analysis.config import EXTERNAL
from analysis.sources.clusters import (
    DEFINITIONS,
    ClusterListError,
    as_assignment,
    check_cluster_list,
    control_sample,
    coverage,
    for_assignment,
    membership,
    provincial_flag,
    read_cluster_list,
    treatment_statement,
    usable_control_counties,
)

PROVINCE_CODE_OF_XPCC = (
    "65"  # XPCC cities are coded under Xinjiang (自治区直辖县级行政区划)
)


@pytest.fixture(scope="module")
def clusters() -> pd.DataFrame:
    return read_cluster_list(EXTERNAL / "clusters_national.csv")


@pytest.fixture(scope="module")
def provincial() -> pd.DataFrame:
    return read_cluster_list(EXTERNAL / "clusters_provincial.csv", provincial=True)


@pytest.fixture(scope="module")
def codes() -> pd.DataFrame:
    return pd.read_csv(EXTERNAL / "clusters_county_codes_nbs2023.csv", dtype=str)


def test_one_row_per_cluster_with_source(clusters):
    """Each cluster once (id, and name within batch), every row sourced, at most 100 per batch."""
    assert clusters["cluster_id"].is_unique
    assert not clusters.duplicated(["batch", "cluster_name"]).any()
    assert clusters["source"].str.strip().str.len().gt(10).all()
    cov = coverage(clusters)
    assert (cov["rows"] <= 100).all() and cov["rows"].sum() == len(clusters)


@pytest.mark.parametrize("which", ["national", "provincial"])
def test_codes_exist_and_match_province_and_county(which, clusters, provincial, codes):
    """Every county code is a county-level unit of the NBS 2023 table, with the row's county
    name and province; rows without a code say why in their source."""
    clusters = clusters if which == "national" else provincial
    table = codes.set_index("county_code")
    have = clusters[clusters["county_code"].notna()]
    assert have["county_code"].isin(table.index).all()
    t = table.loc[have["county_code"]]
    assert (t["county"].to_numpy() == have["county"].to_numpy()).all()
    prov = have["province"].replace({"新疆生产建设兵团": "新疆维吾尔自治区"}).to_numpy()
    assert (t["province"].to_numpy() == prov).all()
    no_code = clusters.loc[clusters["county_code"].isna(), "source"]
    assert no_code.str.contains("no county-level code").all()
    if which == "national":
        assert (
            len(no_code) <= 3
        )  # towns of Dongguan and Zhongshan, Guiyang high-tech zone
    cic = pd.to_numeric(clusters["industry_cic2"], errors="coerce").dropna()
    assert cic.between(13, 43).all()
    assert set(clusters["match_type"]) <= {"core", "related", "none"}


@pytest.mark.parametrize("which", ["national", "provincial"])
def test_no_cell_certified_twice_and_codings_valid(which, clusters, provincial):
    """No county x 2-digit industry cell carries two clusters (panel.assign_clusters relies on
    it); 4-digit codes sit under their 2-digit code, related codes differ from it, match_type
    is core or related exactly when there is a 2-digit code; one row per cluster, each sourced."""
    df = clusters if which == "national" else provincial
    cell = df.dropna(subset=["county_code", "industry_cic2"])
    assert not cell.duplicated(["county_code", "industry_cic2"]).any()
    assert (
        df["cluster_id"].is_unique
        and not df.duplicated(["batch", "cluster_name"]).any()
    )
    assert df["source"].str.strip().str.len().gt(10).all()
    for c2, c4, rel in zip(
        df["industry_cic2"], df["industry_cic4"], df["related_cic2"]
    ):
        assert pd.isna(c4) or all(k[:2] == c2 and len(k) == 4 for k in c4.split(";"))
        assert pd.isna(rel) or pd.isna(c2) or c2 not in rel.split(";")
    assert ((df["match_type"] == "none") == df["industry_cic2"].isna()).all()
    if which == "national":
        assert df["match_type"].value_counts().get("core", 0) > 0.8 * len(df)
        assert df["industry_cic4"].notna().sum() >= 30  # the clear 4-digit mappings


def test_checks_catch_broken_lists(clusters):
    """Each rule of the contract fails on a list that breaks it, naming the rule."""
    bad = {
        "cell certified twice": pd.concat(
            [clusters, clusters.iloc[[0]].assign(cluster_id="X", cluster_name="dup")],
            ignore_index=True,
        ),
        "no source": clusters.assign(source=[""] + clusters["source"].tolist()[1:]),
        "six digits": clusters.assign(
            county_code=["12345"] + clusters["county_code"].tolist()[1:]
        ),
        "13-43": clusters.assign(
            industry_cic2=["55"] + clusters["industry_cic2"].tolist()[1:]
        ),
        "cluster_id repeated": clusters.assign(cluster_id="same"),
        "four-digit": clusters.assign(
            industry_cic4=["1512"] + clusters["industry_cic4"].tolist()[1:]
        ),
        "related_cic2": clusters.assign(
            related_cic2=[clusters["industry_cic2"].iloc[0]]
            + clusters["related_cic2"].tolist()[1:]
        ),
        "match_type none": clusters.assign(
            match_type=["none"] + clusters["match_type"].tolist()[1:]
        ),
    }
    for rule, df in bad.items():
        with pytest.raises(ClusterListError, match=rule):
            check_cluster_list(df)


def test_file_is_what_the_builder_makes(clusters):
    """The committed CSV equals the output of data/external/clusters_build.py (no hand edits)."""
    spec = importlib.util.spec_from_file_location(
        "clusters_build", EXTERNAL / "clusters_build.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built = mod.build()
    with open(EXTERNAL / "clusters_national.csv", encoding="utf-8") as f:
        committed = list(csv.DictReader(f))
    assert [{k: str(v) for k, v in r.items()} for r in built] == committed
    with open(EXTERNAL / "clusters_provincial.csv", encoding="utf-8") as f:
        assert [
            {k: str(v) for k, v in r.items()} for r in mod.build_provincial()
        ] == list(csv.DictReader(f))


def test_controls_drop_counties_the_incomplete_list_cannot_vouch_for():
    """Incomplete list: a county is a never-treated control only where its province's lists are
    complete for every batch (a source gives the count and all are listed); otherwise dropped
    (or kept and flagged with policy='warn'). A complete list makes every unlisted county a control."""
    cl = pd.DataFrame(
        {
            "cluster_id": ["a", "b"],
            "batch": [2022, 2023],
            "province": ["甲省", "甲省"],
            "county_code": ["110001", "110002"],
        }
    )
    counties = pd.DataFrame(
        {
            "county_code": [110001, 110002, 110003, 120001],
            "province": ["甲省", "甲省", "甲省", "乙省"],
        }
    )
    cov = pd.DataFrame(
        {"batch": [2022, 2023], "province": ["甲省", "甲省"], "n_certified": [1, 1]}
    )
    got = usable_control_counties(
        counties, cl, complete=False, coverage=cov, batches=[2022, 2023]
    )
    assert got["status"].tolist() == ["treated", "treated", "control", "dropped"]
    # a batch without a complete provincial count makes the province unsafe
    got = usable_control_counties(
        counties, cl, complete=False, coverage=cov, batches=[2022, 2023, 2024]
    )
    assert got["status"].tolist() == ["treated", "treated", "dropped", "dropped"]
    # a source count above what is listed: not complete
    got = usable_control_counties(
        counties,
        cl,
        complete=False,
        coverage=cov.assign(n_certified=[2, 1]),
        batches=[2022, 2023],
    )
    assert got["status"].tolist()[2] == "dropped"
    got = usable_control_counties(
        counties,
        cl,
        complete=False,
        coverage=cov,
        batches=[2022, 2023, 2024],
        policy="warn",
    )
    assert got["status"].tolist() == ["treated", "treated", "warn", "warn"]
    got = usable_control_counties(counties, cl, complete=True)
    assert got["status"].tolist() == ["treated", "treated", "control", "control"]


def test_committed_coverage_table_is_consistent(clusters):
    """Province-batches marked complete in clusters_coverage.csv have all their clusters listed."""
    cov = pd.read_csv(EXTERNAL / "clusters_coverage.csv")
    n = clusters.groupby(["batch", "province"]).size()
    for b, p, k in zip(cov["batch"], cov["province"], cov["n_certified"]):
        assert n.get((b, p), 0) == k, (b, p)


def test_stated_counts_are_not_exceeded(clusters):
    """clusters_counts.csv holds province-batch counts that sources state (or that follow from
    stated totals) without naming every cluster: the list never has more rows there than the
    count, which catches a cluster put in the wrong batch or province."""
    counts = pd.read_csv(EXTERNAL / "clusters_counts.csv")
    assert counts["source"].str.len().gt(3).all() and set(counts["basis"]) <= {"stated", "derived"}
    n = clusters.groupby(["batch", "province"]).size()
    for b, p, k in zip(counts["batch"], counts["province"], counts["n_certified"]):
        assert n.get((b, p), 0) <= k, (b, p)
    cov = pd.read_csv(EXTERNAL / "clusters_coverage.csv")
    assert not counts.merge(cov, on=["batch", "province"]).shape[0]  # a complete province-batch belongs in the coverage table


def test_list_feeds_panel_assignment(clusters):
    """for_assignment gives panel.assign_clusters what it needs (every row with a county code;
    a service cluster keeps a missing industry); a firm in a listed cell gets the cluster and the
    cohort of its announcement (batch 2023, announced 2023-10-18, late month 7 -> first treated 2024)."""
    from analysis.panel import assign_clusters

    a = for_assignment(clusters)
    assert len(a) == clusters["county_code"].notna().sum()
    assert (
        a["industry_code"].isna().sum()
        == clusters.loc[clusters["county_code"].notna(), "industry_cic2"].isna().sum()
    )
    row = a[(a["batch"] == 2023) & a["industry_code"].notna()].iloc[0]
    firms = pd.DataFrame(
        {
            "firm_id": [1, 2],
            "year": [2024, 2024],
            "county_code": [row["county_code"], 999999],
            "industry_code": [row["industry_code"], 13],
        }
    )
    out = assign_clusters(firms, a, late_month=7, last_year=2025)
    assert out["cluster_id"].tolist()[0] == row["cluster_id"] and out[
        "cohort"
    ].tolist() == [2024, 0]


# ----------------------------------------------------------------------------------------
# treatment definitions on a hand-made panel whose members are known by construction
# ----------------------------------------------------------------------------------------
def _toy():
    """Two counties. County 1 holds cluster A (2023: leading industry 26, core 4-digit 2641,
    related 30) and cluster B (2024: leading industry 38, no 4-digit mapping); county 2 holds
    service cluster S (2022: no manufacturing code, related 39). Firm k's expected membership
    under each definition is written beside it."""
    firms = pd.DataFrame(
        [  # firm, county, 2-digit, 4-digit     cell   core4          county  related
            (1, 1, 26, 2641),  #                  A      A              A       A
            (2, 1, 26, 2619),  #                  A      -              A       A
            (3, 1, 30, 3073),  #                  -      -              A       A
            (4, 1, 38, 3841),  #                  B      unclear        A       B
            (5, 1, 13, 1310),  #                  -      -              A       -
            (6, 1, 26, None),  #                  A      unclear        A       A
            (7, 2, 39, 3982),  #                  -      -              S       S
            (
                8,
                2,
                50,
                5000,
            ),  #                  -      -              -       -  (not manufacturing)
            (
                9,
                3,
                26,
                2641,
            ),  #                  -      -              -       -  (no cluster)
        ],
        columns=["firm_id", "county_code", "industry_code", "industry_code4"],
    ).assign(year=2024)
    firms["industry_code4"] = firms["industry_code4"].astype("Int64")
    clusters = pd.DataFrame(
        {
            "cluster_id": ["A", "B", "S"], "county_code": [1, 1, 2], "industry_code": pd.array([26, 38, None], dtype="Int64"),
            "batch": [2023, 2024, 2022], "announced": pd.to_datetime(["2023-10-18", "2024-09-20", "2023-01-11"]),
            "industry_cic4": pd.array(["2641", None, None], dtype="string"), "related_cic2": pd.array(["30", None, "39"], dtype="string"),
        }
    )  # fmt: skip
    return firms, clusters


EXPECTED = {
    "cell": ["A", "A", None, "B", None, "A", None, None, None],
    "core4": ["A", None, None, None, None, None, None, None, None],
    "county": ["A", "A", "A", "A", "A", "A", "S", None, None],
    "related": ["A", "A", "A", "B", None, "A", "S", None, None],
}


@pytest.mark.parametrize("definition", list(DEFINITIONS))
def test_each_definition_finds_the_known_members(definition):
    """membership() gives exactly the members written beside the toy panel's firms; under
    county the earlier cluster (A, 2023) wins over B (2024) in county 1; core4 marks as unclear
    the firms it cannot place (B has no 4-digit mapping; firm 6 has no 4-digit code)."""
    firms, clusters = _toy()
    got = membership(firms, clusters, definition)
    assert [None if pd.isna(x) else x for x in got["cluster_id"]] == EXPECTED[
        definition
    ]
    assert got["unclear"].tolist() == (
        [False, False, False, True, False, True, False, False, False]
        if definition == "core4"
        else [False] * 9
    )


def test_assign_clusters_follows_the_definition_and_core4_needs_codes():
    """assign_clusters sets cluster, batch and cohort by the definition (A announced 2023-10-18
    -> cohort 2024; B 2024-09-20 -> 2025; S 2023-01-11 -> 2023); core4 without the firms' 4-digit
    codes stops with an error naming the column; an unknown definition is refused."""
    from analysis.panel import assign_clusters
    from analysis.schema import PanelError

    firms, clusters = _toy()
    out = assign_clusters(
        firms, clusters, late_month=7, last_year=2025, definition="county"
    )
    assert out["cohort"].tolist() == [2024] * 6 + [2023, 0, 0]
    out = assign_clusters(
        firms, clusters, late_month=7, last_year=2025, definition="related"
    )
    assert out["cohort"].tolist() == [2024, 2024, 2024, 2025, 0, 2024, 2023, 0, 0]
    assert out["batch"].tolist()[3] == 2024
    out = assign_clusters(
        firms, clusters, late_month=7, last_year=2025, definition="core4"
    )
    assert out["treatment_unclear"].tolist() == [
        False,
        False,
        False,
        True,
        False,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(PanelError, match="industry_code4"):
        assign_clusters(
            firms.drop(columns="industry_code4"),
            clusters,
            late_month=7,
            last_year=2025,
            definition="core4",
        )
    with pytest.raises(ValueError, match="treatment definition"):
        membership(firms, clusters, "county_x")


def test_default_definition_reproduces_the_world_panel(small_world):
    """The cell definition applied to the synthetic world's own cluster list gives back the
    world's panel exactly (same cluster, batch, cohort, columns and dtypes), so the default
    panel is unchanged; the built default panel equals the world's plus provincial_cluster."""
    from analysis.config import load_params
    from analysis.panel import add_outcomes, assign_clusters, build_panel

    w = small_world
    re = assign_clusters(
        w.panel,
        w.clusters,
        late_month=w.params["certification"]["late_month"],
        last_year=w.params["years"][1],
    )
    pd.testing.assert_frame_equal(re, w.panel)
    panel, _ = build_panel(load_params("small"))
    assert not panel["provincial_cluster"].any()
    pd.testing.assert_frame_equal(
        panel.drop(columns="provincial_cluster"), add_outcomes(w.panel)
    )


def test_other_definitions_on_the_world_panel(small_world):
    """county treats every manufacturing firm of a certified county from its first cohort, a
    superset of the cell members (each member keeps its cohort or gets an earlier one);
    related without related codes is cell."""
    from analysis.panel import assign_clusters

    w = small_world
    kw = {
        "late_month": w.params["certification"]["late_month"],
        "last_year": w.params["years"][1],
    }
    cell = assign_clusters(w.panel, w.clusters, **kw)
    county = assign_clusters(w.panel, w.clusters, definition="county", **kw)
    members = cell["cluster_id"].notna()
    assert (
        county.loc[members, "cluster_id"].notna().all()
        and county["cluster_id"].notna().sum() > members.sum()
    )
    first = (
        w.clusters.assign(c=w.clusters["cohort"].where(w.clusters["cohort"] > 0, 10**4))
        .groupby("county_code")["c"]
        .min()
    )
    want = w.panel["county_code"].map(first).fillna(0).astype(int)
    treated = county["cohort"] > 0
    assert (county.loc[treated, "cohort"] == want[treated]).all()
    assert (
        county.loc[members & (cell["cohort"] > 0), "cohort"]
        <= cell.loc[members & (cell["cohort"] > 0), "cohort"]
    ).all()
    pd.testing.assert_frame_equal(
        assign_clusters(w.panel, w.clusters, definition="related", **kw), cell
    )


# ----------------------------------------------------------------------------------------
# never-treated controls on the real-data path, provincial clusters, the report sentence
# ----------------------------------------------------------------------------------------
def test_control_sample_drops_or_flags_unvouched_firms():
    """Incomplete list: non-members in provinces without a complete count for every batch that
    treats within the data are dropped (drop) or flagged (warn); members are always kept; a
    complete list keeps everyone; batches first treating after the last data year do not count."""
    firms = pd.DataFrame(
        {
            "firm_id": [1, 2, 3, 4],
            "year": 2024,
            "county_code": [360703, 360703, 360102, 110108],
            "cluster_id": pd.array(["A", None, None, None], dtype="string"),
        }
    )
    cl = pd.DataFrame(
        {
            "cluster_id": ["A"],
            "county_code": [360703],
            "province": ["江西省"],
            "batch": [2023],
        }
    )
    cov = pd.DataFrame(
        {
            "batch": [2022, 2023, 2024],
            "province": ["江西省"] * 3,
            "n_certified": [0, 1, 0],
        }
    )
    kept, counties = control_sample(
        firms, cl, complete=False, coverage=cov, policy="drop"
    )
    assert (
        kept["firm_id"].tolist() == [1, 2, 3] and not kept["control_unverified"].any()
    )
    assert counties.set_index("county_code")["n_dropped"].to_dict() == {
        360703: 0,
        360102: 0,
        110108: 1,
    }
    kept, _ = control_sample(firms, cl, complete=False, coverage=cov, policy="warn")
    assert kept["control_unverified"].tolist() == [False, False, False, True]
    kept, _ = control_sample(firms, cl, complete=True, coverage=None)
    assert len(kept) == 4 and not kept["control_unverified"].any()
    # data ending 2023: only the 2022 and 2023 batches treat within them (2024 list -> cohort 2025)
    kept, _ = control_sample(
        firms.assign(year=2023),
        cl,
        complete=False,
        coverage=cov.iloc[:2],
        policy="drop",
    )
    assert kept["firm_id"].tolist() == [1, 2, 3]
    # a listed county's other firms are controls only if the province is covered
    kept, _ = control_sample(
        firms, cl, complete=False, coverage=cov.iloc[:1], policy="drop"
    )
    assert kept["firm_id"].tolist() == [1]


def test_real_data_path_with_the_committed_lists(tmp_path, small_world):
    """Raw firm data read with the committed national list (default data.raw_clusters, list
    format) while it is incomplete: the default drops firms outside the list in provinces not
    known complete, warn keeps them flagged, and provincial_cluster marks firms of provincial
    cells. The world's counties are real GB/T 2260 codes, so the committed lists apply."""
    from analysis.config import load_params
    from analysis.panel import build_panel

    firms = small_world.panel.drop(columns=["cluster_id", "batch", "cohort"])
    path = tmp_path / "firms.parquet"
    firms.to_parquet(path)
    params = load_params("small")
    params["data"].update(source="raw", raw_firms=str(path))
    drop, _ = build_panel(params)
    national = for_assignment(read_cluster_list(EXTERNAL / "clusters_national.csv"))
    cov = pd.read_csv(EXTERNAL / "clusters_coverage.csv")
    _, counties = control_sample(
        firms.assign(cluster_id=pd.array([None] * len(firms), dtype="string")),
        national,
        complete=False,
        coverage=cov,
    )
    ok = set(counties.loc[counties["controls_ok"], "county_code"])
    assert (drop["cluster_id"].notna() | drop["county_code"].isin(ok)).all()
    assert len(drop) < len(firms)
    params["data"]["clusters_incomplete_controls"] = "warn"
    warn, _ = build_panel(params)
    assert len(warn) == len(firms) and warn["control_unverified"].sum() == len(
        firms
    ) - len(drop)
    prov = as_assignment(pd.read_csv(EXTERNAL / "clusters_provincial.csv", dtype=str))
    assert (warn["provincial_cluster"] == provincial_flag(warn, prov)).all()
    params["data"].update(drop_provincial_clusters=True)
    fewer, _ = build_panel(params)
    assert len(fewer) == len(warn) - int(
        (warn["provincial_cluster"] & warn["cluster_id"].isna()).sum()
    )


def test_provincial_flag_marks_the_whole_firm():
    """A firm once in a provincial cell is flagged in every year (firm-level flag)."""
    firms = pd.DataFrame(
        {
            "firm_id": [1, 1, 2],
            "county_code": [1, 2, 1],
            "industry_code": [30, 30, 26],
            "year": [2020, 2021, 2020],
        }
    )
    prov = pd.DataFrame(
        {
            "cluster_id": ["P"],
            "county_code": [1],
            "industry_code": [30],
            "announced": pd.to_datetime(["2022-07-01"]),
        }
    )
    assert provincial_flag(firms, prov).tolist() == [True, True, False]


def test_treatment_statement_names_definition_and_controls():
    """The report sentence names the definition and how controls were chosen."""
    for d in DEFINITIONS:
        assert f"`{d}`" in treatment_statement({"treatment": d, "source": "synthetic"})
    raw = {
        "treatment": "cell",
        "source": "raw",
        "clusters_complete": False,
        "clusters_incomplete_controls": "drop",
        "drop_provincial_clusters": True,
    }
    text = treatment_statement(raw)
    assert "dropped" in text and "provincially" in text
    assert "control_unverified" in treatment_statement(
        {**raw, "clusters_incomplete_controls": "warn"}
    )
    with pytest.raises(ValueError):
        treatment_statement({"treatment": "nope"})
