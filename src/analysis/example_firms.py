"""The synthetic world exported as the firm files a user brings: the worked example of the real-data path.

:func:`write_example_files` writes one CSV per year, as the Annual Survey of Industrial Firms
comes, with everything that makes such files hard:

- Chinese headers that change across three vintages (2012-2014, 2015-2017, 2018 on), some the
  defaults know, one the parameter set must map (``data.rename_by_year``), and the patent,
  emission and investment columns the defaults do not know (``data.rename``);
- GBK encoding;
- the legal-unit code as 9-character text with leading zeros (``000100001``), and for some firms
  a new code from a year on (the name stays), which the BVZ linking follows;
- 4-digit industry codes of GB/T 4754-2011 until 2017 and of GB/T 4754-2017 from 2018, drawn so
  that the concordance brings every firm back to its 2-digit industry (some 2011 classes sit in
  another division than their 2017 successor, e.g. 3130 -> 33);
- the old code of a county in the years before a real GB/T 2260 change (a county turned district);
- registration-type codes (登记注册类型) instead of SOE / private / foreign;
- money in yuan; a few rows repeated exactly.

``config/example_raw.yaml`` reads them back (``make example-data`` writes them to
``data/example/``); ``tests/test_example_raw.py`` requires the panel it builds to equal the
world's panel, firm-year for firm-year.

Examples
--------
>>> import tempfile, pathlib
>>> from analysis.simulate import simulate_world
>>> world = simulate_world({"world": {"n_firms": 300, "n_counties": 20, "certification": {"per_batch": 2}}})
>>> ex = write_example_files(world, pathlib.Path(tempfile.mkdtemp()))
>>> sorted(p.name for p in ex.files)[:2], ex.encoding
(['asif_2012.csv', 'asif_2013.csv'], 'gbk')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.config import EXTERNAL
from analysis.example_records import firm_names
from analysis.io import atomic_write
from analysis.simulate import World

__all__ = ["VINTAGES", "ExampleFiles", "main", "write_example_files"]

# field -> header, by header vintage (years)
_COMMON = {"patents_invention": "发明专利申请数", "patents_utility": "实用新型专利申请数", "patents_design": "外观设计专利申请数",
           "reports_emissions": "是否重点调查单位", "so2": "二氧化硫排放量(吨)", "cod": "化学需氧量排放量(吨)", "co2": "二氧化碳排放量(吨)",
           "investment": "本年固定资产投资额"}
VINTAGES: dict[tuple[int, int], dict[str, str]] = {
    (2012, 2014): {"firm_id": "法人代码", "firm_name": "法人单位名称", "county_code": "行政区划代码", "industry_code": "行业代码",
                   "registration_type": "登记注册类型", "founding_year": "开业年份", "output": "工业总产值(当年价格)", "value_added": "工业增加值",
                   "capital": "固定资产净值年平均余额", "labor": "全部从业人员年平均人数", "materials": "工业中间投入合计", **_COMMON},
    (2015, 2017): {"firm_id": "组织机构代码", "firm_name": "单位详细名称", "county_code": "区划代码", "industry_code": "国民经济行业代码",
                   "registration_type": "企业登记注册类型", "founding_year": "开业时间(年)", "output": "工业总产值_当年价格", "value_added": "工业增加值",
                   "capital": "固定资产净值", "labor": "从业人员平均人数", "materials": "中间投入合计", **_COMMON},
    (2018, 9999): {"firm_id": "法人代码", "firm_name": "单位详细名称", "county_code": "行政区划代码", "industry_code": "国民经济行业代码",
                   "registration_type": "登记注册类型", "founding_year": "开业年份", "output": "工业总产值(现价)", "value_added": "工业增加值",
                   "capital": "固定资产净值", "labor": "从业人员期末人数", "materials": "工业中间投入合计", **_COMMON},
}
_MONEY = ("output", "value_added", "capital", "materials", "investment")
_REG = {"SOE": ["110", "141", "143", "151"], "private": ["120", "130", "142", "149", "159", "160", "171", "172", "173", "174", "190"],
        "foreign": ["210", "220", "230", "240", "310", "320", "330", "340"]}


@dataclass
class ExampleFiles:
    """What :func:`write_example_files` wrote and what it changed."""

    files: list[Path]
    clusters: Path
    encoding: str
    changed_ids: pd.DataFrame  #: firm_id (world), year of the change, new code
    county_changes: pd.DataFrame  #: world county code, old code, years written with the old code
    industry_codes: pd.DataFrame  #: firm_id, cic2, code 2011, code 2017
    duplicates: int


def _pick(keys: np.ndarray, options: list[list[str]], salt: int) -> np.ndarray:
    """A deterministic choice per key among its options (a hash of key and salt)."""
    h = (keys.astype(np.int64) * 2654435761 + salt * 40503) % 2**31
    return np.array([opts[int(i) % len(opts)] for i, opts in zip(h, options)], dtype=object)


def _industry_codes(firms: pd.DataFrame) -> pd.DataFrame:
    """A 4-digit class of GB/T 4754-2017 and one of GB/T 4754-2011 per firm, both in the firm's division."""
    conc = pd.read_csv(EXTERNAL / "cic_concordance.csv", dtype=str, keep_default_na=False)
    pairs = pd.read_csv(EXTERNAL / "cic_pairs.csv", dtype=str, keep_default_na=False)
    four = conc[conc["level"] == "4"]
    c17 = four[four["vintage"] == "2017"].groupby("cic2")["code"].apply(list)
    cic2_of_2011 = four[four["vintage"] == "2011"].set_index("code")["cic2"]
    back = pairs[pairs["from_vintage"] == "2011"].groupby("to_code")["from_code"].apply(list)
    ids = firms["firm_id"].to_numpy()
    div = firms["industry_code"].astype(str).str.zfill(2).to_numpy()
    code17 = _pick(ids, [c17[d] for d in div], 1)
    opts11 = []
    for d, c in zip(div, code17):
        o = [x for x in back.get(c, []) if cic2_of_2011.get(x) == d]
        opts11.append(o or [x for x, v in cic2_of_2011.items() if v == d])
    code11 = _pick(ids, opts11, 2)
    return pd.DataFrame({"firm_id": ids, "cic2": div, "code_2011": code11, "code_2017": code17})


def _county_changes(counties: np.ndarray, years: tuple[int, int]) -> pd.DataFrame:
    """World counties that replaced another code within the world's years (one-to-one changes)."""
    t = pd.read_csv(EXTERNAL / "county_codes_gbt2260.csv", dtype=str, keep_default_na=False)
    t = t[(t["status"] != "in_use") & (t["successors"].str.len() == 6) & (t["last_year"] != "")]
    t = t.assign(last=t["last_year"].astype(int), first=t["first_year"].astype(int), new=t["successors"].astype(int))
    t = t[(t["last"] > years[0]) & (t["last"] <= years[1]) & (t["first"] <= years[0]) & t["new"].isin(counties) & (t["county_code"].astype(int) != t["new"])]
    t = t.sort_values(["new", "last"]).drop_duplicates("new", keep="last")
    return pd.DataFrame({"county_code": t["new"].to_numpy(), "old_code": t["county_code"].to_numpy(), "until": t["last"].to_numpy()})


def write_example_files(world: World, folder: Path, *, seed: int = 0, changed_share: float = 0.03, n_duplicates: int = 20) -> ExampleFiles:
    """Write the world's panel as yearly GBK firm files and its cluster list (see the module docstring).

    Parameters
    ----------
    world : World
        A simulated world (:func:`analysis.simulate.simulate_world`).
    folder : Path
        Where to write ``asif_<year>.csv`` and ``clusters.csv`` (created; files replaced atomically).
    seed : int
        Seed of the export's own draws (which firms change code, and when).
    changed_share : float
        Share of firms (among those observed at least twice) whose legal-unit code changes.
    n_duplicates : int
        Rows written twice (exact duplicates, as raw files have them).
    """
    rng = np.random.default_rng(seed)
    panel = world.panel
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    y0, y1 = int(panel["year"].min()), int(panel["year"].max())
    firms = panel.groupby("firm_id", as_index=False).agg(county_code=("county_code", "first"), industry_code=("industry_code", "first"),
                                                          ownership=("ownership", "first"), first=("year", "min"), last=("year", "max"))
    names = firm_names(firms["firm_id"].to_numpy(), firms["county_code"].to_numpy(), firms["industry_code"].to_numpy()) + "有限公司"
    ind = _industry_codes(firms)
    reg = _pick(firms["firm_id"].to_numpy(), [_REG[o] for o in firms["ownership"]], 3)
    # some firms get a new legal-unit code from a year on
    multi = firms.index[firms["last"] > firms["first"]].to_numpy()
    chosen = rng.choice(multi, size=round(changed_share * len(multi)), replace=False) if len(multi) else np.array([], dtype=int)
    change_year = np.full(len(firms), 10_000)
    change_year[chosen] = [rng.integers(firms.at[i, "first"] + 1, firms.at[i, "last"] + 1) for i in chosen]
    new_code = np.array([f"M{i:08d}" for i in range(len(firms))], dtype=object)
    counties = _county_changes(firms["county_code"].unique(), (y0, y1))
    f = firms.assign(firm_name=names.to_numpy(), registration_type=reg, code_2011=ind["code_2011"].to_numpy(), code_2017=ind["code_2017"].to_numpy(),
                     change_year=change_year, new_code=new_code).set_index("firm_id")
    old_county = counties.set_index("county_code")
    files = []
    for year in range(y0, y1 + 1):
        rows = panel[panel["year"] == year]
        fr = f.loc[rows["firm_id"].to_numpy()]
        out = pd.DataFrame(index=rows.index)
        ident = np.char.zfill(rows["firm_id"].to_numpy().astype(str), 9).astype(object)
        out["firm_id"] = np.where(fr["change_year"].to_numpy() <= year, fr["new_code"].to_numpy(), ident)
        out["firm_name"] = fr["firm_name"].to_numpy()
        cc = rows["county_code"].to_numpy()
        until = old_county["until"].reindex(cc).to_numpy()
        out["county_code"] = np.where(np.nan_to_num(until, nan=0) > year, old_county["old_code"].reindex(cc).to_numpy(), cc.astype(str))
        out["industry_code"] = (fr["code_2011"] if year <= 2017 else fr["code_2017"]).to_numpy()
        out["registration_type"] = fr["registration_type"].to_numpy()
        out["founding_year"] = rows["founding_year"].to_numpy()
        for c in ("output", "value_added", "capital", "labor", "materials", "patents_invention", "patents_utility", "patents_design",
                  "investment", "so2", "cod", "co2"):
            out[c] = rows[c].to_numpy() * (1000.0 if c in _MONEY else 1)
        out["labor"] = rows["labor"].to_numpy().astype(np.int64)
        out["reports_emissions"] = rows["reports_emissions"].to_numpy().astype(int)
        if n_duplicates and year == y0 + 1:
            out = pd.concat([out, out.sample(n=min(n_duplicates, len(out)), random_state=seed)]).sort_index(kind="stable")
        heads = next(h for (lo, hi), h in VINTAGES.items() if lo <= year <= hi)
        out = out.rename(columns=heads)
        path = folder / f"asif_{year}.csv"
        with atomic_write(path) as tmp:
            out.to_csv(tmp, index=False, encoding="gbk")
        files.append(path)
    clusters = world.clusters[["cluster_id", "county_code", "industry_code", "batch", "announced"]]
    cpath = folder / "clusters.csv"
    with atomic_write(cpath) as tmp:
        clusters.to_csv(tmp, index=False)
    changed = f.loc[f["change_year"] < 10_000, ["change_year", "new_code"]].reset_index()
    m = panel[["county_code", "year"]].merge(counties, on="county_code")
    used = counties[counties["county_code"].isin(m.loc[m["year"] < m["until"], "county_code"])].reset_index(drop=True)
    return ExampleFiles(files, cpath, "gbk", changed, used, ind, n_duplicates)


def main(argv: list[str] | None = None) -> int:
    """Command line (``make example-data``): write the world of a parameter set as raw firm files."""
    import argparse
    import time

    from analysis.config import ROOT, load_params
    from analysis.io import write_text
    from analysis.simulate import simulate_world

    parser = argparse.ArgumentParser(prog="python -m analysis.example_firms", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="parameter set whose world is written (default: default)")
    parser.add_argument("--out", default="data/example", help="folder (default: data/example)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    folder = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    ex = write_example_files(simulate_world(load_params(args.config)), folder)
    write_text("\n".join(p.name for p in [*ex.files, ex.clusters]) + "\n", folder / ".written")
    print(f"wrote {len(ex.files)} yearly firm files ({ex.encoding}) and clusters.csv to {folder}: {len(ex.changed_ids)} firms change code, "
          f"{len(ex.county_changes)} counties under an older code in early years, {ex.duplicates} rows repeated ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
