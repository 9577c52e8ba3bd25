"""Speed and memory of the TFP estimators (a benchmark, not a test).

Two measurements, each in its own subprocess (peak RSS = that process's ``VmHWM``):

1. ACF point estimate (default settings: 16-start root search on a 200,000-row firm
   subsample, polish on all rows) on 300,000 firms x 13 years = 3.9 M rows.
   Target: under 60 s and under 4 GB.
2. A 200-draw firm bootstrap of ACF (every stage re-run) on 30,000 firms x 10 years =
   300,000 rows of the ACF design. Target: under 5 minutes.
3. The same bootstrap on the study's default synthetic world (``analysis.simulate``,
   ``config/default.yaml``: ~334,000 firm-years) with the study's specification: year
   effects, industry x year effects (``group_effects``), lagged certification in the law of
   motion. Target: under 5 minutes.

Data: the ACF (2015) Monte Carlo design, DGP1 (both the true and the spurious root exist), from
``tests/acf_dgp.py``; for the 3.9 M-row panel the burn-in is shortened to 30 periods and the
investment series to 60 terms (speed of the *simulation* only; the panel's ergodic properties
are unchanged to ~1e-3). Data are written to ``bench/results/`` (git-ignored) first, so the
timed processes only read a parquet file.

Peers: none. The only PyPI packages that mention production functions
(pymarkup-estimator 0.2.1, pymkp 0.1.0) are the same Compustat markup pipeline with hard-coded
columns; their ACF block is commented out. So figures are absolute.

Usage::

    python bench/tfp.py            # full sizes (needs ~4 GB free, ~5-8 minutes)
    python bench/tfp.py --quick    # 1/10 of the sizes, 20 draws
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _common import peak_rss_gb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def _simulate(n_firms: int, n_years: int, dgp: int, path: Path, *, seed: int, chunk: int = 30_000) -> None:
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(ROOT / "tests"))
    from acf_dgp import simulate_acf

    parts = []
    for c, start in enumerate(range(0, n_firms, chunk)):
        n = min(chunk, n_firms - start)
        d = simulate_acf(dgp, n, n_years, seed=seed + c, burn_in=30, horizon=60)
        d["firm"] = d["firm"] + start
        parts.append(d[["firm", "year", "y", "l", "k", "m"]])
    df = pd.concat(parts, ignore_index=True)
    df["firm"] = df["firm"].astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path)


def _world(path: Path) -> None:
    """The default synthetic world's panel with logs and the certification indicator."""
    from analysis.config import load_params
    from analysis.panel import add_outcomes
    from analysis.simulate import simulate_world

    panel = add_outcomes(simulate_world(load_params("default")).panel)
    cohort = panel["cohort"].fillna(0)
    panel["certified"] = ((cohort > 0) & (panel["year"] >= cohort)).astype(float)
    cols = ["firm_id", "year", "industry_code", "certified", "log_value_added", "log_labor", "log_capital", "log_materials"]
    path.parent.mkdir(parents=True, exist_ok=True)
    panel[cols].to_parquet(path)


def _child(task: str, path: str, draws: int) -> None:
    """Runs in the measured subprocess; prints one JSON line."""
    import warnings

    import pandas as pd

    from analysis.tfp import estimate_production

    df = pd.read_parquet(path)
    rss_loaded = peak_rss_gb()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "acf":
            fit = estimate_production(df, "y", "l", "k", "m", unit="firm", time="year", method="acf", se="none")
        elif task == "world":
            fit = estimate_production(df, "log_value_added", "log_labor", "log_capital", "log_materials",
                                      unit="firm_id", time="year", method="acf", time_effects=True,
                                      group_effects="industry_code", markov_controls=["certified"],
                                      se="bootstrap", n_boot=draws, seed=1, progress=False)
        else:
            fit = estimate_production(df, "y", "l", "k", "m", unit="firm", time="year", method="acf",
                                      se="bootstrap", n_boot=draws, seed=1, progress=False)
    seconds = time.perf_counter() - t0
    out = {
        "task": task,
        "rows": len(df),
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "rss_after_load_gb": round(rss_loaded, 3),
        "estimate": [round(float(v), 4) for v in fit.coef()],
        "std_error": [round(float(v), 4) for v in fit.se()],
        "n_roots": int(fit.roots["is_root"].sum()) if fit.roots is not None else None,
        "failed_draws": fit.meta.get("failed_draws"),
    }
    print(json.dumps(out))


def _measure(task: str, path: Path, draws: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, __file__, "--child", task, "--data", str(path), "--draws", str(draws)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _versions() -> str:
    import numpy
    import pandas
    import scipy

    try:
        import threadpoolctl

        tpc = threadpoolctl.__version__
    except ImportError:
        tpc = "not installed"
    return (f"Python {platform.python_version()}, numpy {numpy.__version__}, scipy {scipy.__version__}, "
            f"pandas {pandas.__version__}, threadpoolctl {tpc}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1/10 of the sizes and 20 draws")
    ap.add_argument("--child", choices=["acf", "boot", "world"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.data, args.draws)
        return
    scale = 10 if args.quick else 1
    draws = 20 if args.quick else args.draws
    big = (300_000 // scale, 13)
    small = (30_000 // scale, 10)
    p_big = RESULTS / f"tfp_acf_{big[0]}x{big[1]}.parquet"
    p_small = RESULTS / f"tfp_acf_{small[0]}x{small[1]}.parquet"
    for (n, t), p, seed in ((big, p_big, 100), (small, p_small, 900)):
        if not p.exists():
            t0 = time.perf_counter()
            _simulate(n, t, 1, p, seed=seed)
            print(f"simulated {n:,} firms x {t} years in {time.perf_counter() - t0:.1f} s -> {p.name}", flush=True)
    p_world = RESULTS / "tfp_world_default.parquet"
    if not p_world.exists():
        t0 = time.perf_counter()
        sys.path.insert(0, str(ROOT / "src"))
        _world(p_world)
        print(f"simulated the default world in {time.perf_counter() - t0:.1f} s -> {p_world.name}", flush=True)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(_versions())
    r1 = _measure("acf", p_big, draws)
    r2 = _measure("boot", p_small, draws)
    r3 = _measure("world", p_world, draws)
    rows = [
        ("ACF point estimate", f"{big[0]:,} firms x {big[1]} years ({r1['rows']:,} rows)", r1, "60 s, 4 GB"),
        (f"ACF firm bootstrap, {draws} draws", f"{small[0]:,} firms x {small[1]} years ({r2['rows']:,} rows)", r2,
         "300 s"),
        (f"ACF firm bootstrap, {draws} draws, study spec", f"default synthetic world ({r3['rows']:,} rows)", r3, "300 s"),
    ]
    print("\n| task | data | time (s) | peak RSS (GB) | RSS after loading data (GB) | target |")
    print("|---|---|---|---|---|---|")
    for name, data, r, target in rows:
        print(f"| {name} | {data} | {r['seconds']} | {r['peak_rss_gb']} | {r['rss_after_load_gb']} | {target} |")
    print(f"\nACF on the 3.9M panel: b = {r1['estimate']} (truth 0.6, 0.4), exact roots found: {r1['n_roots']}")
    print(f"bootstrap: b = {r2['estimate']}, SE = {r2['std_error']}, failed draws: {r2['failed_draws']}")
    print(f"default world: b = {r3['estimate']} (truth 0.6, 0.4), SE = {r3['std_error']}, "
          f"failed draws: {r3['failed_draws']}")
    print(f"date {date.today().isoformat()}")


if __name__ == "__main__":
    main()
