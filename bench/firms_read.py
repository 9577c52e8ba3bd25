"""Speed and memory of the real-data front door at census scale (a benchmark, not a test).

Reads and assembles an ASIF-scale firm panel, 5 M firm-years in 14 yearly files (2012-2025),
through ``analysis.sources.firms.read_firms``: the files as ``make example-data`` writes them
(GBK CSVs, Chinese headers changing across three vintages, 9-character text ids with leading
zeros, 4-digit CIC codes of GB/T 4754-2011 and -2017, registration types, money in yuan, some
counties under their pre-change codes, 3 % of firms changing their legal-unit code), about 360,000
firms a year over 2,800 real counties. Target: well under a minute beyond reading the files.

Measured, each in its own process:

- ``front door``: ``read_firms`` with everything but the linking (encoding checked, headers
  mapped, money to thousand yuan and checked, ids, county and industry recodes, ownership,
  duplicates, cleaning rules off but listed, derived columns, sorted output); the time spent in
  reading the files (``read_columns``: decoding and parsing) is timed inside the same run, so
  ``beyond reading`` = total - reading;
- ``front door + BVZ linking``: the same with ``link_firms: true``;
- peer ``pandas.read_csv``: what one writes by hand, ``pd.read_csv(path, encoding="gb18030",
  dtype=str for the id and code columns)`` per file and ``pd.concat`` (reading only: no recodes,
  no checks), to compare the reading with.

Measured 2026-12-01 (``python bench/firms_read.py``; AMD EPYC, 2 cores shared with other jobs, load
average 15.2 before the run; 5,009,664 firm-years, 0.90 GB of GBK CSV): the front door 71.3 s, of
which reading 36.9 s (pandas.read_csv alone 48.4 s: ours reads 0.76x its time) and everything beyond
reading 34.4 s; peak 3.55 GB. With the BVZ linking 146.6 s (reading 39.3 s, beyond 107.4 s: the
linking itself about 73 s), peak 4.07 GB. pandas.read_csv peaks at 2.46 GB.

Data are written first by a separate process (``bench/results/firms/``, git-ignored); the timed
processes only read them.

Usage::

    python bench/firms_read.py             # 5 M firm-years
    python bench/firms_read.py --rows 500000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _common import machine, package_versions, peak_rss_gb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
YEARS = (2012, 2025)


def make_data(n_rows: int, folder: Path, seed: int = 1) -> dict:
    """Write ``asif_<year>.csv`` (GBK) and ``clusters.csv`` with about ``n_rows`` firm-years."""
    import numpy as np
    import pandas as pd

    from analysis.example_firms import _MONEY, _REG, VINTAGES, _county_changes, _industry_codes
    from analysis.example_records import firm_names
    from analysis.simulate import _real_county_codes

    rng = np.random.default_rng(seed)
    y0, y1 = YEARS
    n_years = y1 - y0 + 1
    # firms: 60 % alive in the first year, the rest enter later; geometric lives (exit 7 % a year)
    n_firms = int(n_rows / 7.6)
    birth = np.where(rng.random(n_firms) < 0.6, y0, rng.integers(y0 + 1, y1 + 1, n_firms))
    life = rng.geometric(0.07, n_firms)
    last = np.minimum(birth + life - 1, y1)
    counties_all = np.array([c for cs in _real_county_codes().values() for c in cs])
    counties = rng.choice(counties_all, size=min(2800, len(counties_all)), replace=False)
    fid = np.arange(n_firms, dtype=np.int64) + 100_001
    firms = pd.DataFrame({"firm_id": fid, "county_code": rng.choice(counties, n_firms), "industry_code": rng.integers(13, 44, n_firms)})
    names = (firm_names(fid, firms["county_code"].to_numpy(), firms["industry_code"].to_numpy()) + "有限公司").to_numpy(dtype=object)
    ind = _industry_codes(firms)
    own = rng.choice(np.array(["SOE", "private", "foreign"]), n_firms, p=[0.04, 0.84, 0.12])
    reg = np.array([_REG[o][i % len(_REG[o])] for o, i in zip(own, rng.integers(0, 1000, n_firms))], dtype=object)
    founding = birth - rng.integers(0, 30, n_firms) * (birth == y0)
    change = np.where((rng.random(n_firms) < 0.03) & (last > birth), rng.integers(birth + 1, np.maximum(last, birth + 1) + 1), 10_000)
    size = rng.lognormal(0, 1.0, n_firms)
    old = _county_changes(counties, YEARS).set_index("county_code")
    rows = 0
    folder.mkdir(parents=True, exist_ok=True)
    for year in range(y0, y1 + 1):
        alive = np.flatnonzero((birth <= year) & (last >= year))
        m = len(alive)
        labor = np.maximum(8, np.round(150 * size[alive] * rng.lognormal(0, 0.1, m))).astype(np.int64)
        va = labor * rng.lognormal(np.log(130), 0.4, m)
        mat = va * rng.uniform(2, 3.5, m)
        cc = firms["county_code"].to_numpy()[alive]
        until = old["until"].reindex(cc).to_numpy()
        df = pd.DataFrame(
            {
                "firm_id": np.where(change[alive] <= year, np.char.add("M", np.char.zfill(fid[alive].astype(str), 8)), np.char.zfill(fid[alive].astype(str), 9)),
                "firm_name": names[alive],
                "county_code": np.where(np.nan_to_num(until, nan=0) > year, old["old_code"].reindex(cc).to_numpy(), cc.astype(str)),
                "industry_code": (ind["code_2011"] if year <= 2017 else ind["code_2017"]).to_numpy()[alive],
                "registration_type": reg[alive],
                "founding_year": founding[alive],
                "output": va + mat,
                "value_added": va,
                "capital": labor * rng.lognormal(np.log(200), 0.5, m),
                "labor": labor,
                "materials": mat,
                "patents_invention": rng.poisson(0.05, m),
                "patents_utility": rng.poisson(0.08, m),
                "patents_design": rng.poisson(0.03, m),
                "investment": labor * rng.normal(20, 10, m),
                "so2": np.where(rng.random(m) < 0.3, rng.lognormal(2, 1, m), np.nan),
                "cod": np.where(rng.random(m) < 0.3, rng.lognormal(1, 1, m), np.nan),
                "co2": np.where(rng.random(m) < 0.3, rng.lognormal(6, 1, m), np.nan),
            }
        )
        for c in _MONEY:
            df[c] = df[c] * 1000.0
        df["reports_emissions"] = df["so2"].notna().astype(int)
        heads = next(h for (lo, hi), h in VINTAGES.items() if lo <= year <= hi)
        df.rename(columns=heads).to_csv(folder / f"asif_{year}.csv", index=False, encoding="gbk")
        rows += m
    cl = firms.drop_duplicates(["county_code", "industry_code"]).head(400)
    pd.DataFrame({"cluster_id": [f"c{i}" for i in range(len(cl))], "county_code": cl["county_code"].to_numpy(), "industry_code": cl["industry_code"].to_numpy(),
                  "batch": np.repeat([2022, 2023, 2024, 2025], 100)[: len(cl)], "announced": np.repeat(["2023-01-11", "2023-10-18", "2024-09-20", "2025-11-15"], 100)[: len(cl)]}).to_csv(folder / "clusters.csv", index=False)
    return {"rows": rows, "firms": n_firms, "years": n_years, "bytes": sum(p.stat().st_size for p in folder.glob("asif_*.csv"))}


def _data_params(folder: Path, link: bool) -> dict:
    from analysis.config import load_params

    d = load_params("example_raw")["data"]
    d.update(raw_firms=str(folder / "asif_*.csv"), raw_clusters=str(folder / "clusters.csv"), link_firms=link)
    return d


def run_ours(folder: Path, link: bool) -> dict:
    from analysis.config import ROOT as PROJECT
    from analysis.sources import firms as F

    spent = {"read": 0.0}
    inner = F.read_columns

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent["read"] += time.perf_counter() - t

    F.read_columns = timed
    t0 = time.perf_counter()
    df, log = F.read_firms(_data_params(folder, link), root=PROJECT, progress=False)
    total = time.perf_counter() - t0
    return {"task": "front door" + (" + BVZ linking" if link else ""), "rows": len(df), "firms": int(df["firm_id"].nunique()), "total_s": total,
            "read_s": spent["read"], "beyond_read_s": total - spent["read"], "peak_gb": peak_rss_gb()}


def run_pandas(folder: Path) -> dict:
    import pandas as pd

    text = {"法人代码": str, "组织机构代码": str, "行政区划代码": str, "区划代码": str, "行业代码": str, "国民经济行业代码": str, "登记注册类型": str, "企业登记注册类型": str}
    t0 = time.perf_counter()
    frames = [pd.read_csv(p, encoding="gb18030", dtype=text) for p in sorted(folder.glob("asif_*.csv"))]
    df = pd.concat(frames, ignore_index=True)
    total = time.perf_counter() - t0
    return {"task": "pandas.read_csv + concat (reading only)", "rows": len(df), "total_s": total, "read_s": total, "beyond_read_s": 0.0, "peak_gb": peak_rss_gb()}


def _child(what: str, folder: Path, n: int = 0) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{HERE}", "TQDM_DISABLE": "1", "ANALYSIS_ROOT": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", what, "--folder", str(folder), "--rows", str(n)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--child", default=None)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--no-link", action="store_true", help="skip the run with BVZ linking")
    args = ap.parse_args()
    if args.child:
        folder = Path(args.folder)
        if args.child == "make":
            print(json.dumps({**make_data(args.rows, folder), "peak_gb": peak_rss_gb()}))
        elif args.child == "pandas":
            print(json.dumps(run_pandas(folder)))
        else:
            print(json.dumps(run_ours(folder, link=args.child == "ours_link")))
        return
    folder = RESULTS / f"firms_{args.rows}"
    load = os.getloadavg()
    if not (folder / "clusters.csv").is_file():
        t = time.perf_counter()
        made = _child("make", folder, args.rows)
        print(f"wrote {made['rows']:,} firm-years in {made['years']} files ({made['bytes'] / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s")
    results = [_child("ours", folder), _child("pandas", folder)]
    if not args.no_link:
        results.insert(1, _child("ours_link", folder))
    ref = next(r for r in results if r["task"].startswith("pandas"))
    print(f"{date.today()}  {machine()}  load average before: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}")
    print(json.dumps(package_versions(("numpy", "pandas", "pyarrow"))))
    print("| task | firm-years | total (s) | reading (s) | beyond reading (s) | reading / pandas reading | peak (GB) |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['task']} | {r['rows']:,} | {r['total_s']:.1f} | {r['read_s']:.1f} | {r['beyond_read_s']:.1f} | {r['read_s'] / ref['read_s']:.2f} | {r['peak_gb']:.2f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"firms_read_{args.rows}.json").write_text(json.dumps({"date": str(date.today()), "machine": machine(), "load": load, "results": results}, indent=1))


if __name__ == "__main__":
    main()
