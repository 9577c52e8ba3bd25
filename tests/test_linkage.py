"""Patents and pollution records linked to firms (analysis.sources.names / patents / emissions).

The benchmark is the synthetic world exported as raw records (analysis.example_records): its
firm-year patent counts and emissions are the truth, the records carry name variants, former names,
co-applicants, applicants outside the panel and homonyms, and linking them back must reproduce the
truth exactly for every firm a name can identify, and list the deliberately ambiguous ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.example_records import example_records
from analysis.sources.emissions import link_emissions, read_emission_records, to_tonnes
from analysis.sources.names import (
    LinkageError,
    firm_keys,
    is_organisation,
    link_by_name,
    name_key,
    normalize_name,
)
from analysis.sources.patents import (
    link_patents,
    patent_type_from_number,
    read_applications,
)

PAT = ["patents_invention", "patents_utility", "patents_design"]


@pytest.fixture(scope="module")
def records(small_world):
    """Patent and pollution records generated from the small world, with name twins."""
    return example_records(small_world, seed=7, n_twins=4)


@pytest.fixture(scope="module")
def linked(records, tmp_path_factory):
    """The application records written to CSV and read back, as a user would."""
    path = tmp_path_factory.mktemp("apps") / "applications.csv"
    records.applications.to_csv(path, index=False)
    return link_patents(read_applications(path), records.firms)


def test_normalisation_follows_he_et_al():
    """He et al. (2018) standardisation: full-width to half-width, punctuation and spaces removed,
    brackets unified, legal forms made canonical; the key drops the legal form."""
    variants = pd.Series(["华星电子（集团）有限责任公司", "华星电子(集团)有限公司", " 华星 电子【集团】有限公司。", "华星电子集团有限公司"])
    assert normalize_name(variants).nunique() == 1
    assert normalize_name(variants).iloc[0] == "华星电子集团有限公司"
    assert set(name_key(pd.Series(["ＡＢＣ电子股份有限公司", "abc电子 Co., Ltd.", "ABC电子"]))) == {"ABC电子"}
    # different firms stay different
    assert name_key(pd.Series(["华星电子有限公司", "华新电子有限公司"])).nunique() == 2
    assert is_organisation(pd.Series(["李伟", "某某研究所", "某某厂"])).tolist() == [False, True, True]


def test_type_from_application_number_and_reader_errors(tmp_path):
    """CNIPA numbers carry the type (5th digit since 2003); a missing column or bad date is named."""
    numbers = pd.Series(["CN201810123456.X", "CN201920123456.1", "CN202030123456.2", "CN201880123456.0"])
    assert patent_type_from_number(numbers).tolist() == ["invention", "utility", "design", "invention"]
    with pytest.raises(LinkageError, match="applicants"):
        read_applications(pd.DataFrame({"app_no": ["CN202110000001.1"], "filing_date": ["2021-01-01"]}))
    with pytest.raises(LinkageError, match=r"rows \[1\]"):
        read_applications(pd.DataFrame({"app_no": ["CN202110000001.1", "CN202110000002.1"], "filing_date": ["2021-01-01", "not a date"],
                                        "applicants": ["a", "b"]}))
    p = tmp_path / "a.xlsx"
    pd.DataFrame({"申请号": ["CN202120000002.2"], "申请日": ["2021-05-02"], "申请人": ["甲公司"], "专利类型": ["实用新型"]}).to_excel(p, index=False)
    assert read_applications(p)["patent_type"].tolist() == ["utility"]


def test_patent_counts_reproduce_the_world(records, linked):
    """Whole counting of the linked records equals the world's firm-year counts for every firm
    except the same-county homonyms (name variants, former names, co-applications, outside
    applicants and different-county homonyms included)."""
    truth = records.patents_truth
    amb = list(records.ambiguous_firms)
    got = linked.counts[~linked.counts["firm_id"].isin(amb)].sort_values(["firm_id", "year"]).reset_index(drop=True)
    want = truth[~truth["firm_id"].isin(amb)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["firm_id", "year", *PAT]], want[["firm_id", "year", *PAT]], check_dtype=False)
    m = linked.links["method"].value_counts()
    assert m.get("former", 0) > 0 and m.get("county", 0) > 0, m  # both paths were exercised
    assert records.resolved_homonyms and records.renamed_firms
    n_firms = linked.links[linked.links["firm_id"].notna()].groupby("app_no")["firm_id"].nunique()
    assert (n_firms == 2).sum() > 50  # co-applications of two panel firms count for both


def test_ambiguous_names_are_reported_not_linked(records, linked):
    """Every application of a same-county homonym is listed as ambiguous with exactly its pair
    of candidates, and none is counted for either firm."""
    amb = records.ambiguous_firms
    assert amb, "the export planted no ambiguous pair"
    rep = linked.report.ambiguous
    cands = {frozenset(int(x) for x in c.split(";")) for c in rep["candidates"]}
    assert all(len(c) == 2 and c <= amb for c in cands)
    n_truth = records.patents_truth.loc[records.patents_truth["firm_id"].isin(amb), PAT].to_numpy().sum()
    assert rep["n_applications"].sum() == n_truth
    assert not linked.counts["firm_id"].isin(amb).any()


def test_linkage_report(records, linked):
    """Shares by type and year add up to all records; the unmatched list has the outside
    organisations, not persons; unmatched panel names never occur."""
    r = linked.report
    assert r.shares["n_records"].sum() == len(records.applications)
    assert set(r.shares["patent_type"]) == {"invention", "utility", "design"}
    assert 0.9 < r.share_linked < 1.0
    un = r.unmatched["applicant"]
    assert len(un) and un.str.contains("大学|研究所|贸易").all()
    panel_keys = set(name_key(records.firms["firm_name"]))
    assert not set(r.unmatched["key"]) & panel_keys


def test_fractional_counting(records, linked):
    """Fractional counting gives each linked applicant 1/(number of applicants): the total is
    the sum over applications of linked/applicants, below the whole count where co-applied."""
    frac = link_patents(read_applications(records.applications), records.firms, counting="fractional", n_unmatched=0)
    L = frac.links
    ok = L[L["firm_id"].notna()].drop_duplicates(["app_no", "firm_id"])
    expected = (1.0 / ok["n_applicants"]).sum()
    assert frac.counts[PAT].to_numpy().sum() == pytest.approx(expected, rel=1e-12)
    assert frac.counts[PAT].to_numpy().sum() < linked.counts[PAT].to_numpy().sum()


def test_county_breaks_ties_by_code_and_address():
    """A stem two firms share links by the application's county code, or by the firm's county
    name in the address; without either it stays ambiguous."""
    keys = firm_keys(pd.DataFrame({"firm_id": [1, 2], "firm_name": ["甲厂", "甲厂"], "county_code": [1, 2], "county_name": ["东县", "西县"]}))
    rows = pd.DataFrame({"key": ["甲厂"] * 3, "county_code": [2, None, None], "address": [None, "西县某路", "某市"]})
    got = link_by_name(rows, keys)
    assert got["firm_id"].tolist()[:2] == [2, 2]
    assert got["method"].tolist() == ["county", "county", "ambiguous"]


def test_emissions_reproduce_the_world_in_mixed_units(records):
    """Records in kg, tonnes and 万吨 (unit column), linked by firm id or by name within county,
    give the world's tonnes of every reporting firm-year (to rounding of the unit conversion);
    records of same-county homonyms without a firm id are listed as ambiguous."""
    res = link_emissions(read_emission_records(records.emissions), records.firms)
    truth = records.emissions_truth
    amb = records.ambiguous_firms
    got = res.emissions.merge(truth, on=["firm_id", "year"], suffixes=("", "_true"), how="outer", indicator=True)
    clean = ~got["firm_id"].isin(amb)
    assert (got.loc[clean, "_merge"] == "both").all()
    for pol in ("so2", "cod", "co2"):
        np.testing.assert_allclose(got.loc[clean, pol], got.loc[clean, f"{pol}_true"], rtol=1e-12)
    em = records.emissions
    n_amb = int((em["firm_id"].isna().to_numpy() & truth["firm_id"].isin(amb).to_numpy()).sum())  # rows align
    assert res.report.ambiguous["n_records"].sum() == n_amb
    assert set(res.links["method"]) <= {"firm_id", "exact", "ambiguous"}


def test_emissions_set_reports_flag_and_per_file_units(records, small_world):
    """to_panel sets reports_emissions as in the world (non-ambiguous firms); a file in one unit
    without a unit column is read with units= and gives the same tonnes."""
    res = link_emissions(read_emission_records(records.emissions), records.firms)
    panel = small_world.panel[["firm_id", "year", "reports_emissions"]]
    out = res.to_panel(panel.drop(columns="reports_emissions")).merge(panel, on=["firm_id", "year"], suffixes=("", "_world"))
    clean = ~out["firm_id"].isin(records.ambiguous_firms)
    assert (out.loc[clean, "reports_emissions"] == out.loc[clean, "reports_emissions_world"]).all()
    t = records.emissions_truth.head(50)
    kg = pd.DataFrame({"firm_id": t["firm_id"], "year": t["year"], "so2": t["so2"] * 1000})
    np.testing.assert_allclose(read_emission_records(kg, units="kg")["so2"], t["so2"], rtol=1e-12)
    with pytest.raises(LinkageError, match="no unit"):
        read_emission_records(kg)
    with pytest.raises(LinkageError, match=r"unknown unit.*rows \[1\]"):
        to_tonnes(pd.Series([1.0, 2.0]), pd.Series(["kg", "pounds"]))
    with pytest.raises(LinkageError, match="not in the firm file"):
        link_emissions(read_emission_records(kg.assign(firm_id=-1), units="kg"), records.firms)


def test_raw_panel_links_the_records(records, small_world, tmp_path):
    """On the real-data path (data.raw_applications, data.raw_emissions) the panel's patent counts
    and emissions come from the linked records: they equal the world's for every firm a name can
    identify and reports_emissions follows the records. Fractional counting gives shares, which the
    data contract's whole patent counts refuse: the build says so instead of writing them."""
    from analysis.config import load_params
    from analysis.panel import build_panel

    names = records.firms.drop_duplicates("firm_id")[["firm_id", "firm_name", "former_names", "county_name"]]
    firms = small_world.panel.drop(columns=["cluster_id", "batch", "cohort", *PAT, "so2", "cod", "co2", "reports_emissions"]).merge(names, on="firm_id")
    paths = {"firms": tmp_path / "firms.parquet", "apps": tmp_path / "apps.csv", "em": tmp_path / "em.csv"}
    firms.to_parquet(paths["firms"])
    records.applications.to_csv(paths["apps"], index=False)
    records.emissions.to_csv(paths["em"], index=False)
    params = load_params("small")
    params["data"].update(source="raw", raw_firms=str(paths["firms"]), raw_applications=str(paths["apps"]), raw_emissions=str(paths["em"]),
                          clusters_complete=True)
    panel, _ = build_panel(params)
    world = small_world.panel.set_index(["firm_id", "year"])
    got = panel.assign(firm_id=panel["firm_id"].astype(np.int64)).set_index(["firm_id", "year"]).loc[world.index]  # the front door reads ids as text
    clean = ~world.index.get_level_values("firm_id").isin(list(records.ambiguous_firms))
    for col in PAT:
        np.testing.assert_array_equal(got.loc[clean, col].to_numpy(), world.loc[clean, col].fillna(0).to_numpy())
    assert (got.loc[clean, "reports_emissions"].to_numpy() == world.loc[clean, "reports_emissions"].to_numpy()).all()
    surveyed = clean & world["reports_emissions"].to_numpy()
    np.testing.assert_allclose(got.loc[surveyed, "so2"], world.loc[surveyed, "so2"], rtol=1e-12)
    params["data"]["patent_counting"] = "fractional"
    from analysis.config import ParameterError

    with pytest.raises(ParameterError, match="whole counts"):
        build_panel(params)
