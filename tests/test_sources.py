"""The front door's parts, one by one: readers, header maps, recodes, linking and cleaning (analysis.sources).

Reference facts come from the tables committed in data/external/ and the official sources they were
built from: the correspondence appendices of GB/T 4754-2011 and GB/T 4754-2017 (cic_pairs.csv, each
2011->2017 pair with the page of the standard) and the Ministry of Civil Affairs' lists of county-level
codes and their changes (county_codes_gbt2260.csv). Each test says which row it relies on.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from analysis.config import EXTERNAL, ParameterError
from analysis.sources.attrition import SourceLog, read_source_log
from analysis.sources.cleaning import apply_rules
from analysis.sources.headers import ASIF_HEADERS, column_map, for_year, parse_years
from analysis.sources.matching import link_firms
from analysis.sources.read import (
    SourceError,
    check_encoding,
    detect_encoding,
    read_columns,
)
from analysis.sources.recode import (
    county_to_vintage,
    deflate,
    industry_to_cic2,
    industry_vintages,
    money_check,
    ownership_from_registration,
    perpetual_inventory,
    to_thousand_yuan,
)

FRAME = pd.DataFrame({"法人代码": ["000000417", "00012345X"], "工业总产值": [1250.5, 3.0], "行业代码": ["0610", "3130"]})
KINDS = {"法人代码": "text", "工业总产值": "number", "行业代码": "text"}


# ---------------------------------------------------------------------------------------------
# reading
@pytest.mark.parametrize("encoding, expected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030")])
def test_csv_encodings_are_detected_and_ids_keep_their_leading_zeros(tmp_path, encoding, expected):
    """UTF-8, UTF-8 with BOM, GBK and GB18030 files read the same; codes stay text ('000000417', '0610')."""
    frame = FRAME.assign(单位名称=["华星电子有限公司", "𠀀鑫源化工有限公司" if encoding == "gb18030" else "鑫源化工有限公司"])
    path = tmp_path / "firms.csv"
    frame.to_csv(path, index=False, encoding=encoding)
    assert detect_encoding(path) == expected
    df, info = read_columns(path, {**KINDS, "单位名称": "text"})
    assert df["法人代码"].tolist() == ["000000417", "00012345X"]
    assert df["行业代码"].tolist() == ["0610", "3130"]
    assert df["工业总产值"].tolist() == [1250.5, 3.0]
    assert df["单位名称"].tolist() == frame["单位名称"].tolist()
    assert info.encoding == expected


def test_a_declared_encoding_is_checked_over_the_whole_file(tmp_path):
    """A GBK file read as UTF-8 names the line, the bytes and the encoding that fits."""
    path = tmp_path / "firms.csv"
    pd.DataFrame({"法人代码": ["000000417"] * 3, "单位名称": ["a", "b", "华星"]}).to_csv(path, index=False, encoding="gbk")
    with pytest.raises(SourceError, match=r"not valid utf-8 at line 1 .*looks like gb18030. Fix: data.encoding: gb18030"):
        check_encoding(path, "utf-8")
    check_encoding(path, "gb18030")


def test_stata_file_with_unicode_names_and_value_labels(tmp_path):
    """Stata: Unicode variable names; numeric ids become digit strings (noted); value labels give categories."""
    pyreadstat = pytest.importorskip("pyreadstat")
    df = pd.DataFrame({"法人代码": [417.0, 418.0], "所有制": [1.0, 3.0], "工业总产值": [10.0, 20.0]})
    path = tmp_path / "asif.dta"
    pyreadstat.write_dta(df, str(path), variable_value_labels={"所有制": {1.0: "SOE", 3.0: "foreign"}})
    out, info = read_columns(path, {"法人代码": "text", "所有制": "label", "工业总产值": "number"})
    assert out["法人代码"].tolist() == ["417", "418"]
    assert out["所有制"].tolist() == ["SOE", "foreign"]
    assert any("leading zeros" in n for n in info.notes)


def test_parquet_and_excel(tmp_path):
    """Parquet and Excel (openpyxl): text ids stay text; Excel numbers read as codes become digit strings."""
    pq = tmp_path / "firms.parquet"
    FRAME.to_parquet(pq)
    out, _ = read_columns(pq, KINDS)
    assert out["法人代码"].tolist() == ["000000417", "00012345X"]
    xl = tmp_path / "firms.xlsx"
    FRAME.assign(年份=[2004, 2005]).to_excel(xl, index=False)
    out, _ = read_columns(xl, {**KINDS, "年份": "number"})
    assert out["法人代码"].tolist() == ["000000417", "00012345X"] and out["年份"].tolist() == [2004, 2005]


def test_a_cell_that_is_not_a_number_is_named(tmp_path):
    """A text cell in a numeric column is an error quoting the column and the offending value."""
    path = tmp_path / "firms.csv"
    pd.DataFrame({"法人代码": ["1", "2", "3"], "工业总产值": ["10", "1,200", "约50"]}).to_csv(path, index=False)
    with pytest.raises(SourceError, match=r"(?s)column .工业总产值. should hold numbers, but 1 cell\(s\) do not.*约50"):
        read_columns(path, {"法人代码": "text", "工业总产值": "number"})


# ---------------------------------------------------------------------------------------------
# headers
def test_column_map_prefers_the_first_known_header_and_reads_units():
    """Two employment headers: the preferred one is used and the other listed; (千元) is a unit."""
    cmap = column_map(["法人代码", "年末从业人员合计", "全部从业人员年平均人数", "工业总产值（当年价格）（元）"])
    assert cmap.fields["labor"] == "全部从业人员年平均人数"
    assert cmap.fields["output"] == "工业总产值（当年价格）（元）" and cmap.units == {"output": "yuan"}
    assert any("年末从业人员合计" in n for n in cmap.notes)


def test_user_maps_win_and_apply_by_year():
    """data.rename for every file, data.rename_by_year for a range (narrowest wins)."""
    by_year = {"2008-2013": {"gyzcz": "output"}, 2010: {"gyzcz2": "output"}}
    assert parse_years("2014-") == (2014, 9999)
    assert for_year(by_year, 2010) == [{"gyzcz": "output"}, {"gyzcz2": "output"}]
    cmap = column_map(["id", "gyzcz", "工业总产值"], year=2009, rename={"id": "firm_id"}, rename_by_year=by_year)
    assert cmap.fields["output"] == "gyzcz" and cmap.fields["firm_id"] == "id"
    with pytest.raises(ParameterError, match="send both"):
        column_map(["a", "b"], rename={"a": "firm_id", "b": "firm_id"})


def test_data_readme_lists_the_default_headers():
    """data/README.md lists every default header of analysis.sources.headers.ASIF_HEADERS."""
    text = (EXTERNAL.parent / "README.md").read_text(encoding="utf-8")
    missing = [(f, h) for f, hs in ASIF_HEADERS.items() for h in hs if h not in text]
    assert not missing, missing


# ---------------------------------------------------------------------------------------------
# industry
def test_concordance_file_equals_its_builder():
    """cic_concordance.csv is the output of data/external/cic_build.py on the committed cic_pairs.csv."""
    spec = importlib.util.spec_from_file_location("cic_build", EXTERNAL / "cic_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.build(mod.read_pairs())
    committed = pd.read_csv(EXTERNAL / "cic_concordance.csv", dtype=str, keep_default_na=False)
    assert committed.to_dict("records") == rows


def test_industry_codes_follow_the_official_correspondence():
    """GB/T 4754-2017 appendix p. 113: 2011 class 3130 (黑色金属铸造) became 2017 class 3391, in division 33;
    GB/T 4754-2011 appendix: 2002 class 3721 (汽车整车制造) became 2011 3610/3630 (division 36, automobiles);
    2002 class 4041 (电子计算机整机) became 2011 3911 (division 39)."""
    pairs = pd.read_csv(EXTERNAL / "cic_pairs.csv", dtype=str)
    assert ((pairs["from_code"] == "3130") & (pairs["to_code"] == "3391") & pairs["where"].str.contains("page 113")).any()
    codes = pd.Series(["3130", "3130", "3721", "4041", "C2614", "261", "26", "37"])
    vint = pd.Series([2011, 2017, 2002, 2002, 2011, 2011, 2017, 2002])
    rec = industry_to_cic2(codes, vint)
    assert rec.codes.tolist() == [33, 31, 36, 39, 26, 26, 26, 37]
    assert rec.codes4.tolist()[:2] == [3391, 3130] and rec.codes4.iloc[5:].isna().all()  # the 2017 class (for data.treatment: core4); none for 2- and 3-digit codes
    assert rec.table.set_index(["code", "vintage"]).loc[("37", 2002), "alternatives"] == "33;36;81"  # 2002 division 37 split: automobiles to 36


def test_unlisted_industry_codes_are_listed_not_dropped_silently():
    """Industry codes outside the CIC concordance become missing and are listed with their rows and years."""
    rec = industry_to_cic2(pd.Series(["3130", "9999", "261401", "9999", None]), 2011, years=pd.Series([2012, 2012, 2013, 2014, 2014]))
    assert rec.codes.isna().tolist() == [False, True, True, True, True]
    got = rec.unlisted.set_index("code")
    assert got.loc["9999", "rows"] == 2 and got.loc["9999", "years"] == "2012-2014" and got.loc["261401", "rows"] == 1


def test_industry_vintage_by_year():
    """The GB/T 4754 vintage of each year: automatic (2002 / 2011 / 2017 by year), by user ranges, and an error for a vintage that does not exist."""
    years = pd.Series([2005, 2012, 2017, 2018, 2001])
    assert industry_vintages(years, "auto").tolist() == [2002, 2011, 2011, 2017, 0]
    assert industry_vintages(years, {"2000-2011": 2002, "2012-": 2017}).tolist() == [2002, 2017, 2017, 2017, 2002]
    with pytest.raises(ParameterError, match="not one of the GB/T 4754 vintages"):
        industry_vintages(years, 1994)


# ---------------------------------------------------------------------------------------------
# ownership
def test_ownership_from_registration_types():
    """BVZ (2012) grouping: 110/141/143/151 state; other 1xx domestic (120/142 collective); 2xx HMT; 3xx foreign."""
    reg = pd.Series(["110", "141", "143", "151", "120", "159", "173", "230", "310", "国有企业", "私营有限责任公司", "999", None])
    rec = ownership_from_registration(reg)
    assert rec.ownership.tolist()[:11] == ["SOE"] * 4 + ["private"] * 3 + ["foreign"] * 2 + ["SOE", "private"]
    assert rec.detail.tolist()[4:9] == ["collective", "private", "private", "hmt", "foreign"]
    assert rec.ownership.iloc[11:].isna().all()


def test_ownership_refined_by_the_controlling_shareholder():
    """Hsieh and Song (2015): state control (控股情况 1) makes an SOE; a registered SOE controlled privately is private;
    other firms keep their registration's group (a private firm with a foreign controller stays private)."""
    rec = ownership_from_registration(pd.Series(["159", "110", "173"]), pd.Series(["1", "3", "5"]))
    assert rec.ownership.tolist() == ["SOE", "private", "private"]


# ---------------------------------------------------------------------------------------------
# county
def test_county_codes_follow_their_successors_to_one_vintage():
    """MCA code changes (county_codes_gbt2260.csv): 320584 吴江市 -> 320509 吴江区 (2012); 110103 崇文区 ->
    110101 东城区 (2010); 120107 塘沽区 -> 120116 滨海新区 (2009). Codes in use stay; a target vintage before the
    change keeps the old code."""
    codes = pd.Series(["320584", "320509", "110103", "120107", "320583"])
    years = pd.Series([2010, 2013, 2005, 2008, 2010])
    rec = county_to_vintage(codes, years, vintage=2023)
    assert rec.codes.tolist() == ["320509", "320509", "110101", "120116", "320583"]
    assert set(rec.changes["code"]) == {"320584", "110103", "120107"}
    assert county_to_vintage(pd.Series(["320584"]), pd.Series([2010]), vintage=2011).codes.tolist() == ["320584"]


def test_split_and_unknown_county_codes_are_listed():
    """130103 桥东区 (石家庄) was split between 130102 and 130104 in 2014: first successor, or dropped; 999999 is unknown;
    a 12-digit code (with township digits) is cut to six."""
    codes = pd.Series(["130103", "999999", "320584001000"])
    years = pd.Series([2010, 2010, 2010])
    rec = county_to_vintage(codes, years)
    assert rec.codes.tolist()[0] == "130102" and pd.isna(rec.codes.iloc[1]) and rec.codes.iloc[2] == "320509"
    assert rec.unknown["code"].tolist() == ["999999"]
    assert any("split" in n for n in rec.notes) and any("12 digits" in n for n in rec.notes)
    assert county_to_vintage(codes, years, split="drop").codes.isna().tolist() == [True, True, False]


# ---------------------------------------------------------------------------------------------
# money
def test_money_units_and_their_check():
    """Unit conversion to thousand yuan, and the size check that flags a column declared in the wrong unit."""
    assert to_thousand_yuan(pd.Series([123456.0]), "yuan").tolist() == [123.456]
    assert to_thousand_yuan(pd.Series([1.5]), "ten_thousand").tolist() == [15.0]
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"labor": rng.integers(20, 500, 200).astype(float)})
    df["output"] = df["labor"] * rng.lognormal(np.log(500), 0.5, 200)  # about 500 thousand yuan per worker
    assert money_check(df, "output", "thousand") is None
    assert "looks like yuan" in money_check(df.assign(output=df["output"] * 1000), "output", "thousand")
    assert "too small" in money_check(df.assign(output=df["output"] / 1000), "output", "yuan")


def test_deflation_by_industry_with_the_all_industry_index_as_fallback():
    """Deflation by the industry's price index, the all-industry index where an industry has none, and rows without an index counted."""
    idx = pd.DataFrame({"year": [2010, 2011, 2010, 2011], "industry_code": [None, None, 26, 26], "output": [100.0, 110.0, 100.0, 125.0]})
    df = pd.DataFrame({"year": [2011, 2011, 2012], "industry_code": [26, 13, 26], "output": [250.0, 220.0, 100.0]})
    out, tab = deflate(df, idx, base_year=2010)
    assert out["output"].iloc[:2].round(9).tolist() == [200.0, 200.0] and pd.isna(out["output"].iloc[2])
    assert tab.loc[0, "rows_without_index"] == 1


def test_perpetual_inventory_against_the_recursion():
    """K_t = (1 - d) K_{t-1} + (B_t - B_{t-1}) / P_t (BVZ 2012), with a gap's investment spread over its years;
    the backcast of the first stock at growth g equals the recursion run from the founding year."""
    d = pd.DataFrame({"firm_id": ["a"] * 3 + ["b"] * 2, "year": [2001, 2002, 2004, 2001, 2002], "fixed_assets_original": [100.0, 130.0, 150.0, 50.0, 40.0],
                      "founding_year": [1999, 1999, 1999, 2001, 2001]})
    prices = pd.Series({2001: 1.0, 2002: 1.1, 2003: 1.2, 2004: 1.3})
    k = perpetual_inventory(d, prices=prices, depreciation=0.1)
    ka2 = 0.9 * 100 + 30 / 1.1
    ka4 = 0.9**2 * ka2 + 0.9 * 10 / 1.2 + 10 / 1.3
    np.testing.assert_allclose(k.tolist(), [100.0, ka2, ka4, 50.0, 0.9 * 50 - 10 / 1.1])
    g = 0.2
    kb = perpetual_inventory(d, prices=prices, depreciation=0.1, initial_growth=g)
    b99 = 100 / 1.2**2
    k99 = b99 / 1.0  # years before the index take its first value
    k00 = 0.9 * k99 + b99 * g / 1.0
    k01 = 0.9 * k00 + b99 * 1.2 * g / 1.0
    assert kb.iloc[0] == pytest.approx(k01)
    assert kb.iloc[3] == pytest.approx(50.0)  # founded in its first year: nothing to backcast


# ---------------------------------------------------------------------------------------------
# linking and cleaning
def test_bvz_linking_follows_a_code_change_by_name_and_keeps_keys_unique():
    """Step 1 links on the code, step 2 on the standardised name; a name two firms share in a year links neither;
    a firm missing one year is linked across the gap."""
    df = pd.DataFrame(
        {
            "year": [2010, 2011, 2012, 2010, 2011, 2011, 2012, 2010, 2012],
            "firm_id": ["A1", "A1", "A2", "B1", "B2", "C1", "C2", "D1", "D1"],
            "firm_name": ["华星电子有限公司", "华星电子有限公司", "华星电子有限责任公司", "同名厂", "同名厂", "同名厂", "别的厂", "孤星厂", "孤星厂"],
        }
    )
    res = link_firms(df)
    assert res.ids.tolist()[:3] == ["A1"] * 3
    assert res.ids.iloc[4] != res.ids.iloc[3]  # 同名厂: in 2011 two firms share the name, so B1 -> B2 is not linked
    assert res.ids.iloc[7] == res.ids.iloc[8] == "D1"
    steps = res.matches.set_index(["year", "firm_id"])["step"]
    assert steps[(2011, "A1")] == "name" and (2010, "A1") not in steps.index  # links on an unchanged code are only counted
    assert res.summary.groupby("step")["links"].sum()["id"] == 2  # A1 2010-2011 and D1 2010-2012 (across the gap)


def test_cleaning_rules_drop_what_they_say_and_are_listed_when_off():
    """Each cleaning rule (employment floor, nonpositive inputs, accounting identities, below scale) drops exactly its rows and logs them."""
    df = pd.DataFrame({"year": [2010] * 5, "labor": [5.0, 20.0, 30.0, 40.0, 50.0], "output": [10.0, -1.0, 30.0, 40.0, 50.0],
                       "capital": [1.0, 1.0, 1.0, 1.0, 1.0], "total_assets": [10.0, 10.0, 10.0, 0.5, 10.0], "current_assets": [1.0] * 5,
                       "sales": [9000.0, 9000.0, 9000.0, 9000.0, 1000.0]})
    log = SourceLog()
    out = apply_rules(df, {"min_employment": 8, "nonpositive_inputs": True, "accounting": True, "below_scale": True}, log)
    assert out.index.tolist() == [2]
    assert log.attrition().set_index("rule")["dropped"].to_dict() == {"min_employment": 1, "nonpositive_inputs": 1, "accounting": 1, "below_scale": 1}
    log = SourceLog()
    apply_rules(df, {}, log)
    assert log.attrition()["why"].str.startswith("off").all() and len(log.attrition()) == 4
    with pytest.raises(ParameterError, match="unknown rule"):
        apply_rules(df, {"min_workers": 8}, SourceLog())


def test_source_log_round_trip(tmp_path):
    """The attrition log (steps, notices, recode tables) is written and read back unchanged."""
    log = SourceLog()
    log.step("read", "files", 0, 10, "1 file")
    log.notice("county", "x", rows=3)
    log.table("links", pd.DataFrame({"a": ["000417"]}))
    log.write(tmp_path)
    back = read_source_log(tmp_path)
    assert back.attrition().equals(log.attrition()) and back.warnings[0]["rows"] == 3 and back.tables["links"]["a"].tolist() == ["000417"]
