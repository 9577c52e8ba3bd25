"""Benchmark: our TWFE event study against pyfixest and linearmodels, same data, side by side.

For each panel size (default 20,000 and 200,000 firms x 13 years, 2013-2025; firms in cells of
about 50, cells certified in 2023, 2024 or 2025 or never, as the study's batches) the panel is
simulated once and written to a temporary parquet file; then every library runs in its own
subprocess (so peak memory is that library's alone): read the data, fit the event study
``y ~ sum_{e != -1} b_e 1[t - g = e] | firm + year`` clustered by cell, report the wall time of
the fit (imports excluded for every library) and the process's peak resident memory (``ru_maxrss``, data included; the memory after
reading the data is shown too). The coefficients of all libraries are compared (max abs
difference) so that the race is for the same numbers.

* ours: ``analysis.did.twfe.twfe(..., dynamic=True, cluster="cell")`` (without covariates and
  weights: the indicator regression of ``analysis.did._fe_ols``, bincounts and sparse products;
  plus input checks and the tidy result);
* pyfixest: ``pf.feols("y ~ i(rel, ref=-1) | firm + year", vcov={"CRV1": "cell"})`` with its
  defaults;
* linearmodels: ``PanelOLS(y, event dummies, entity_effects=True, time_effects=True)
  .fit(cov_type="clustered", clusters=cell)``.

Run:  ``PYTHONPATH=src python bench/did_twfe.py`` (``--firms 20000`` for a quick run,
``--repeat 3`` to take the best of three). Prints a markdown table with ratios (peer / ours).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from _common import machine, package_versions, peak_rss_gb

LIBS = ("ours", "pyfixest", "linearmodels")
YEARS = np.arange(2013, 2026)


def simulate(n_firms: int, seed: int = 0) -> pd.DataFrame:
    """Firms x 13 years; cohorts 2023/2024/2025 assigned to cells of ~50 firms; 55% never treated."""
    rng = np.random.default_rng(seed)
    n_cells = max(n_firms // 50, 10)
    cell = rng.integers(0, n_cells, n_firms)
    cohort_cell = rng.choice([2023, 2024, 2025, 0], size=n_cells, p=[0.15, 0.15, 0.15, 0.55])
    g = np.repeat(cohort_cell[cell], len(YEARS))
    t = np.tile(YEARS, n_firms)
    e = t - g
    tau = np.where((g > 0) & (e >= 0), 0.05 * (1 + e), 0.0)
    y = (np.repeat(rng.normal(size=n_firms), len(YEARS)) + 0.02 * (t - 2013)
         + rng.normal(0, 0.3, n_cells * len(YEARS))[np.repeat(cell, len(YEARS)) * len(YEARS) + (t - 2013)]
         + rng.normal(size=n_firms * len(YEARS)) + tau)
    return pd.DataFrame({
        "firm": np.repeat(np.arange(n_firms), len(YEARS)).astype(np.int64),
        "year": t.astype(np.int64),
        "cohort": g.astype(np.int64),
        "cell": np.repeat(cell, len(YEARS)).astype(np.int64),
        "y": y,
    })


def worker(lib: str, path: str) -> dict:
    """Run one library on the data at ``path``; return timing, memory and coefficients."""
    import warnings

    warnings.filterwarnings("ignore")
    df = pd.read_parquet(path)
    mem_data = peak_rss_gb()
    if lib == "ours":
        import pyfixest  # noqa: F401  imported before the clock, as in the pyfixest run

        from analysis.did.twfe import twfe

        t0 = time.perf_counter()
        res = twfe(df, "y", "firm", "year", "cohort", dynamic=True, cluster="cell")
        wall = time.perf_counter() - t0
        tab = res.tidy()
        coef = dict(zip(tab["event_time"].astype(int).tolist(), tab["estimate"].tolist()))
        se = dict(zip(tab["event_time"].astype(int).tolist(), tab["std_error"].tolist()))
    elif lib == "pyfixest":
        import pyfixest as pf

        t0 = time.perf_counter()
        df["rel"] = np.where(df["cohort"] > 0, df["year"] - df["cohort"], -1)
        fit = pf.feols("y ~ i(rel, ref=-1) | firm + year", data=df, vcov={"CRV1": "cell"})
        c, s = fit.coef(), fit.se()
        wall = time.perf_counter() - t0
        coef = {int(k.split("::")[1]): float(v) for k, v in c.items()}
        se = {int(k.split("::")[1]): float(v) for k, v in s.items()}
    elif lib == "linearmodels":
        from linearmodels.panel import PanelOLS

        t0 = time.perf_counter()
        rel = np.where(df["cohort"] > 0, df["year"] - df["cohort"], -1)
        evs = sorted(set(np.unique(rel)) - {-1})
        X = pd.DataFrame({f"e{e}": (rel == e).astype(np.float64) for e in evs})
        idx = pd.MultiIndex.from_arrays([df["firm"], df["year"]])
        X.index = idx
        fit = PanelOLS(df["y"].set_axis(idx), X, entity_effects=True, time_effects=True).fit(
            cov_type="clustered", clusters=pd.Series(df["cell"].to_numpy(), index=idx))
        wall = time.perf_counter() - t0
        coef = {int(k[1:]): float(v) for k, v in fit.params.items()}
        se = {int(k[1:]): float(v) for k, v in fit.std_errors.items()}
    else:
        raise ValueError(lib)
    return {"lib": lib, "wall_s": wall, "peak_gb": peak_rss_gb(), "data_gb": mem_data, "coef": coef, "se": se}


def run(lib: str, path: str, repeat: int) -> dict:
    best = None
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--worker", lib, "--data", path],
                             capture_output=True, text=True, env=os.environ.copy())
        if out.returncode != 0:
            return {"lib": lib, "error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
        got = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or got["wall_s"] < best["wall_s"]:
            best = got
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--libs", nargs="+", default=list(LIBS), choices=LIBS)
    ap.add_argument("--worker", choices=LIBS)
    ap.add_argument("--data")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data)))
        return
    print(f"# TWFE event study benchmark, {date.today()}\n\n{machine()}; {package_versions(('numpy', 'pandas', 'pyfixest', 'linearmodels'))}\n")
    print("| firms | rows | library | fit wall time (s) | peak memory (GB) | memory after reading data (GB) "
          "| time ratio (peer/ours) | memory ratio (peer/ours) | max abs coef diff vs ours |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.firms:
            path = str(Path(tmp) / f"panel_{n}.parquet")
            simulate(n).to_parquet(path)
            results = {lib: run(lib, path, args.repeat) for lib in args.libs}
            ours = results.get("ours")
            for lib, r in results.items():
                if "error" in r:
                    print(f"| {n:,} | {n * len(YEARS):,} | {lib} | failed: {r['error']} | | | | | |")
                    continue
                tr = mr = diff = ""
                if ours and "error" not in ours:
                    tr = f"{r['wall_s'] / ours['wall_s']:.2f}"
                    mr = f"{r['peak_gb'] / ours['peak_gb']:.2f}"
                    common = set(r["coef"]) & set(ours["coef"])
                    diff = f"{max(abs(r['coef'][k] - ours['coef'][k]) for k in common):.1e}"
                print(f"| {n:,} | {n * len(YEARS):,} | {lib} | {r['wall_s']:.2f} | {r['peak_gb']:.2f} | "
                      f"{r['data_gb']:.2f} | {tr} | {mr} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
