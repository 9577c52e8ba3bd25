"""The worked example of the real-data path, and the front door's errors, case by case.

The synthetic world is written as the firm files a user brings (analysis.example_firms: yearly GBK
CSVs with Chinese headers that change across years, 9-character legal-unit codes with leading zeros
and a code change for some firms, 4-digit industry codes of GB/T 4754-2011 and -2017, pre-change
county codes, registration types, money in yuan, repeated rows). Read back through the parameter set
config/example_raw.yaml, the panel must be the world's panel: the same firm-years and the same
values (money to the last bit but one: yuan are divided by 1,000), hence the same estimates.

Then one test per kind of bad input the front door must stop on before any notebook runs, each
checking that the message names the file or column, shows examples and says the fix.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest

from analysis.config import ParameterError, load_params
from analysis.effects import run_estimator
from analysis.example_firms import write_example_files
from analysis.panel import add_outcomes, build_panel
from analysis.schema import PanelError
from analysis.simulate import simulate_world
from analysis.sources.attrition import SourceLog
from analysis.sources.read import SourceError

TINY = {"world": {"n_firms": 400, "n_counties": 40, "certification": {"per_batch": 3}}}


def _params(folder, **data) -> dict:
    params = load_params("example_raw")
    params["data"].update(raw_firms=str(folder / "asif_*.csv"), raw_clusters=str(folder / "clusters.csv"), **data)
    return params


def _hashes(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def example(small_world, tmp_path_factory):
    """The small world's example files, and the panel built from them with its log."""
    folder = tmp_path_factory.mktemp("example")
    files = write_example_files(small_world, folder)
    before = _hashes(folder)
    log = SourceLog()
    panel, world = build_panel(_params(folder), log=log)
    return {"folder": folder, "files": files, "panel": panel, "world": world, "log": log, "before": before}


def _expected(world) -> pd.DataFrame:
    ref = add_outcomes(world.panel)
    return ref.assign(firm_id=ref["firm_id"].astype(str).str.zfill(9))


def test_example_files_carry_the_raw_forms(example):
    """The export really is raw: GBK, Chinese headers of three vintages, text codes, yuan, code changes, old county codes."""
    ex, folder = example["files"], example["folder"]
    raw_2012 = pd.read_csv(folder / "asif_2012.csv", encoding="gbk", dtype=str)
    raw_2016 = pd.read_csv(folder / "asif_2016.csv", encoding="gbk", dtype=str)
    raw_2020 = pd.read_csv(folder / "asif_2020.csv", encoding="gbk", dtype=str)
    assert "法人代码" in raw_2012 and "组织机构代码" in raw_2016 and "从业人员期末人数" in raw_2020
    assert raw_2012["法人代码"].str.fullmatch(r"0\d{8}").all()
    assert raw_2012["行业代码"].str.len().eq(4).all() and raw_2020["国民经济行业代码"].str.len().eq(4).all()
    with pytest.raises(UnicodeDecodeError):
        (folder / "asif_2012.csv").read_bytes().decode("utf-8")
    assert len(ex.changed_ids) > 0 and len(ex.county_changes) > 0 and ex.duplicates > 0
    assert (ex.industry_codes["code_2011"].str[:2] != ex.industry_codes["cic2"]).any()  # e.g. 3130 -> 33


def test_example_reproduces_the_synthetic_panel_exactly(example, small_world):
    """Same firm-years, same values: integers, codes, flags and cohorts exactly; money to 1e-15 (yuan / 1,000)."""
    panel, ref = example["panel"], _expected(small_world)
    assert example["world"] is None
    assert len(panel) == len(ref)
    got = panel[ref.columns]
    floats = [c for c in ref.columns if pd.api.types.is_float_dtype(ref[c])]
    pd.testing.assert_frame_equal(got.drop(columns=floats), ref.drop(columns=floats), check_exact=True)
    pd.testing.assert_frame_equal(got[floats], ref[floats], check_exact=False, rtol=1e-14, atol=1e-13)
    share_exact = float((got["output"].to_numpy() == ref["output"].to_numpy()).mean())
    assert share_exact > 0.95  # the rest differ in the last bit
    assert _hashes(example["folder"]) == example["before"], "raw files must not be modified"


def test_example_path_used_every_recode(example):
    """The log shows the code changes linked, counties recoded, rows dropped as exact duplicates."""
    log, ex = example["log"], example["files"]
    att = log.attrition().set_index("rule")
    assert att.loc["exact_duplicates", "dropped"] == ex.duplicates
    links = log.tables["links"]
    across = links[links["firm_id"] != links["next_firm_id"]]
    assert len(across) == len(ex.changed_ids) and set(across["step"]) == {"name"}
    changed = log.tables["county_changes"]
    assert set(ex.county_changes["old_code"]) <= set(changed["code"])
    assert set(log.tables["industry"]["vintage"]) == {2011, 2017}


def test_example_gives_the_same_estimates(example, small_world):
    """Estimators run on the panel from the raw files and on the world's panel give the same numbers."""
    a, b = example["panel"], _expected(small_world)
    for name in ("cs_dr", "sunab", "twfe"):
        ra = run_estimator(name, a, "log_labor_productivity", n_boot=0)["simple"].tidy()
        rb = run_estimator(name, b, "log_labor_productivity", n_boot=0)["simple"].tidy()
        np.testing.assert_allclose(ra[["estimate", "std_error"]].to_numpy(dtype=float), rb[["estimate", "std_error"]].to_numpy(dtype=float), rtol=1e-9, atol=1e-12)
        assert ra["n_obs"].tolist() == rb["n_obs"].tolist()


# ---------------------------------------------------------------------------------------------
# bad input: one test per case
@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """The example raw files (14 yearly ASIF-style CSVs) of a tiny synthetic world, written once per module."""
    world = simulate_world(TINY, seed=5)
    folder = tmp_path_factory.mktemp("tiny")
    write_example_files(world, folder)
    return folder


@pytest.fixture
def files(tiny_files, tmp_path):
    """A fresh copy of the tiny world's example files, to break one thing in."""
    dst = tmp_path / "raw"
    shutil.copytree(tiny_files, dst)
    return dst


def _edit(path, func):
    """Rewrite one raw file with ``func`` applied (it returns the new frame)."""
    df = func(pd.read_csv(path, encoding="gbk", dtype=str))
    df.to_csv(path, index=False, encoding="gbk")


def test_tiny_example_builds(files):
    """The unbroken copy builds (so each failure below is the one thing broken)."""
    panel, _ = build_panel(_params(files))
    assert panel["cohort"].gt(0).any()


def test_wrong_encoding(files):
    """A GB18030 file read as UTF-8 is an error naming the file, the line and the encoding it looks like."""
    with pytest.raises(SourceError, match=r"asif_2012.csv: not valid utf-8 at line 1 .*the file looks like gb18030. Fix: data.encoding: gb18030"):
        build_panel(_params(files, encoding="utf-8"))


def test_rename_key_the_files_lack(files):
    """A data.rename key that no file has is an error listing the files' headers."""
    with pytest.raises(ParameterError, match=r"data.rename names column\(s\) \['工业总产值\(不变价\)'\] that none of the 14 files .*has.*asif_2012.csv has \["):
        build_panel(_params(files, rename={"工业总产值(不变价)": "output"}))


def test_rename_by_year_key_a_file_lacks(files):
    """A data.rename_by_year key absent from a file of those years is an error naming the file."""
    with pytest.raises(ParameterError, match=r"data.rename_by_year\['2018-'\] names column '从业人数' that .*asif_2018.csv does not have"):
        build_panel(_params(files, rename_by_year={"2018-": {"从业人数": "labor"}}))


def test_missing_required_column(files):
    """A yearly file without the firm identifier is an error naming the file and the rename that would fix it."""
    _edit(files / "asif_2013.csv", lambda df: df.rename(columns={"法人代码": "企业编号"}))
    with pytest.raises(SourceError, match=r"asif_2013.csv: missing required column\(s\) \['firm_id'\].*Fix: map them.*data.rename_by_year: \{2013"):
        build_panel(_params(files))


def test_industry_codes_not_2_digit_after_recoding(files):
    """6-digit product codes in the industry column are no CIC class: the run stops, listing them."""
    _edit(files / "asif_2016.csv", lambda df: df.assign(国民经济行业代码=df["国民经济行业代码"] + "01"))
    with pytest.raises(SourceError, match=r"(?s)industry_code: .* firm-years .* have codes that are not 2-, 3- or 4-digit CIC codes.*not 2-digit industries.*01 .*2011.*example rows.*asif_2016.csv.*Fix: give the right vintage"):
        build_panel(_params(files))


def test_ownership_outside_the_contract(files):
    """Registration codes given as the ownership column: the message lists the values and says to map registration_type."""
    for p in files.glob("asif_*.csv"):
        _edit(p, lambda df: df.rename(columns={"登记注册类型": "所有制", "企业登记注册类型": "所有制"}))
    with pytest.raises(SourceError, match=r"(?s)ownership: .* values outside the contract's \['SOE', 'private', 'foreign'\].*example rows.*map it to registration_type"):
        build_panel(_params(files, rename={**load_params("example_raw")["data"]["rename"], "所有制": "ownership"}))


def test_duplicate_firm_years(files):
    """Repeated (firm_id, year) rows stop the build, naming the file and the data.clean.duplicates option."""
    def dup(df):
        return pd.concat([df, df.head(3).assign(工业增加值="1")], ignore_index=True)

    _edit(files / "asif_2014.csv", dup)
    with pytest.raises(SourceError, match=r"(?s)duplicate firm-years: 6 rows share \(firm_id, year\).*asif_2014.csv.*Fix: check the identifier column.*data.clean.duplicates: first"):
        build_panel(_params(files))


def test_money_in_yuan_declared_as_thousand(files):
    """Money read with the wrong unit (yuan declared as thousand yuan) is caught by its size per worker, naming file and column."""
    with pytest.raises(SourceError, match=r"(?s)money columns whose size does not fit.*asif_2012.csv, column '工业总产值\(当年价格\)' \(output\): median .* after reading it as thousand.*looks like yuan.*Fix: declare the unit"):
        build_panel(_params(files, money_unit="thousand"))


def test_money_in_thousand_declared_as_yuan(files):
    """The opposite unit error (a file in thousand yuan among yuan files) is caught the same way."""
    def to_thousand(df):
        for c in ("工业总产值_当年价格", "工业增加值", "固定资产净值", "中间投入合计"):
            df[c] = (df[c].astype(float) / 1000).map(repr)
        return df

    _edit(files / "asif_2016.csv", to_thousand)
    with pytest.raises(SourceError, match=r"(?s)asif_2016.csv, column '工业总产值_当年价格' \(output\): median .* after reading it as yuan.*too small.*money_units"):
        build_panel(_params(files))


def test_county_codes_unknown_to_gbt2260(files):
    """County codes unknown to GB/T 2260 (any vintage) stop the build, listing codes, rows and the data.county.unknown option."""
    def bad(df):
        df.loc[df.index[:4], "区划代码"] = "329999"
        return df

    _edit(files / "asif_2015.csv", bad)
    with pytest.raises(SourceError, match=r"(?s)county_code: 4 firm-years have county codes that GB/T 2260.*329999.*example rows.*asif_2015.csv.*Fix: check the county column.*data.county.unknown: drop"):
        build_panel(_params(files))


def test_no_firm_matched_to_any_certified_cluster(files):
    """A cluster list with 4-digit industry codes matches no firm: the message shows the common codes on each side."""
    cl = pd.read_csv(files / "clusters.csv")
    cl["industry_code"] = cl["industry_code"] * 100 + 11
    cl.to_csv(files / "clusters.csv", index=False)
    with pytest.raises(SourceError, match=r"(?s)no firm matched to any certified cluster.*firms: +most common county codes.*most common industry codes .*clusters: most common county codes.*most common industry codes \d{4}.*Fix: both sides need"):
        build_panel(_params(files))


def test_cohorts_outside_the_data_years(files):
    """Firm data that end before the first cohort, and a cluster first treated before the data begin."""
    for y in range(2022, 2026):
        (files / f"asif_{y}.csv").unlink()
    with pytest.raises(SourceError, match=r"cohorts outside the data years: the data cover 2012-2021, but the certified clusters are first treated in \[2023.*Fix: the firm data must reach"):
        build_panel(_params(files))
    cl = pd.read_csv(files / "clusters.csv")
    cl.loc[0, "announced"] = "2010-03-01"
    cl.to_csv(files / "clusters.csv", index=False)
    with pytest.raises(SourceError, match=r"cohorts outside the data years: 1 certified clusters are first treated in \[2010\], before the first data year 2012.*Fix"):
        build_panel(_params(files))


def test_errors_are_panel_errors_for_the_command_line(files):
    """SourceError is a PanelError, so `python -m analysis.panel` prints it as one line of error, exit code 2."""
    assert issubclass(SourceError, PanelError)


def test_deflation_and_perpetual_inventory_through_the_front_door(files, tmp_path):
    """A price file with output prices 10 % higher in 2013 than 2012 divides 2013 output by 1.1; the BVZ
    capital stock from the original value of fixed assets replaces net fixed assets (kept as net_fixed_assets)."""
    base, _ = build_panel(_params(files))
    idx = pd.DataFrame({"year": range(2012, 2026), "output": [100.0, 110.0] + [100.0] * 12, "investment": [100.0] * 14})
    idx.to_csv(tmp_path / "prices.csv", index=False)

    def original(df):  # fixed assets at original value: 1.5 times the net value, in yuan like the other money columns
        net = next(c for c in ("固定资产净值年平均余额", "固定资产净值") if c in df)
        return df.assign(固定资产原价=(df[net].astype(float) * 1.5).map(repr))

    for p in files.glob("asif_*.csv"):
        _edit(p, original)
    log = SourceLog()
    panel, _ = build_panel(_params(files, deflate=str(tmp_path / "prices.csv"), capital="perpetual_inventory"), log=log)
    key = ["firm_id", "year"]
    m = panel.set_index(key).join(base.set_index(key)[["output", "capital"]].add_suffix("_nominal"))
    y13 = m.index.get_level_values("year") == 2013
    np.testing.assert_allclose(m.loc[y13, "output"], m.loc[y13, "output_nominal"] / 1.1, rtol=1e-12)
    np.testing.assert_allclose(m.loc[~y13, "output"], m.loc[~y13, "output_nominal"], rtol=1e-12)
    np.testing.assert_allclose(m["net_fixed_assets"], m["capital_nominal"], rtol=1e-12)  # investment prices are flat
    first = m.groupby(level="firm_id").head(1)
    np.testing.assert_allclose(first["capital"], 1.5 * first["capital_nominal"], rtol=1e-12)  # first stock: its original value
    assert set(log.attrition()["rule"]) >= {"deflate", "capital"}
    assert log.tables["deflation"].set_index("column").loc["output", "rows_deflated"] == len(panel)
