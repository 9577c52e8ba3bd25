"""Benchmark: the slow parts of the robustness reports, against the naive way and the peer package.

On the default synthetic world (``config/default.yaml``: about 47,000 firms, 334,000 firm-years; outcome
log value added per worker; the randomization design of ``analysis.robustness.assignment_design``), each
measurement in its own subprocess (peak memory is that process's ``VmHWM``, ``bench/_common.py``):

* randomization inference, Callaway-Sant'Anna: ``analysis.did.randomization`` (statistics precomputed per
  cell, all draws as matrix products) against a naive loop that relabels the panel and re-runs
  ``att_gt(...).aggregate("simple")`` per draw; draws per second, and the largest difference between the
  two on the same draws;
* randomization inference, TWFE: the same against re-running ``analysis.did.twfe`` (pyfixest) per draw;
* wild cluster bootstrap (TWFE, clusters = the 2,276 cells): ``analysis.did.wild`` against the
  ``wildboottest`` package's ``WildboottestCL`` (same design matrix, firm effects partialled out), with the
  package's own weights given to ours so the t statistics can be compared draw by draw.

Run: ``PYTHONPATH=src python bench/robustness.py`` (``--naive 20`` draws of the naive loops, ``--boot 999``
bootstrap draws for the comparison with the package). Prints markdown tables with ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from _common import machine, package_versions, peak_rss_gb

OUTCOME = "log_labor_productivity"
TASKS = ("ri_cs_fast", "ri_cs_naive", "ri_twfe_fast", "ri_twfe_naive", "wild_ours", "wild_package")


def _design(panel: pd.DataFrame):
    from analysis.config import load_params
    from analysis.robustness import assignment_design, settings

    return assignment_design(panel, settings(load_params("default")))


def _relabel(panel: pd.DataFrame, design, assignment: np.ndarray) -> pd.DataFrame:
    cohort = pd.Series(design.cohort_of(assignment), index=design.cells)
    return panel.assign(cohort=panel["cell_id"].map(cohort).fillna(0).astype(int))


def worker(task: str, path: str, n: int) -> dict:
    warnings.filterwarnings("ignore")
    panel = pd.read_parquet(path)
    design = _design(panel)
    draws = design.draw(n, seed=7)
    out: dict = {"task": task, "draws": n}
    if task in ("ri_cs_fast", "ri_twfe_fast"):
        from analysis.did.randomization import CSStatistic, TWFEStatistic

        S = CSStatistic if task == "ri_cs_fast" else TWFEStatistic
        t0 = time.perf_counter()
        stat = S.prepare(panel, OUTCOME, unit="firm_id", time="year", cell="cell_id", pool=design.cells, cohorts=design.cohorts[1:])
        t1 = time.perf_counter()
        values = stat(design.cohort_of(draws))
        t2 = time.perf_counter()
        out.update(prepare_s=t1 - t0, draws_s=t2 - t1, wall_s=t2 - t0, values=values[:5].tolist())
    elif task in ("ri_cs_naive", "ri_twfe_naive"):
        from analysis.did import att_gt, twfe

        if task == "ri_twfe_naive":
            import pyfixest  # noqa: F401  imported before the clock
        t0 = time.perf_counter()
        values = []
        for k in range(n):
            d = _relabel(panel, design, draws[k])
            if task == "ri_cs_naive":
                values.append(float(att_gt(d, OUTCOME, "firm_id", "year", "cohort").aggregate("simple").coef()["ATT"]))
            else:
                values.append(float(twfe(d, OUTCOME, "firm_id", "year", "cohort").coef()["ATT"]))
        wall = time.perf_counter() - t0
        out.update(prepare_s=0.0, draws_s=wall, wall_s=wall, values=values[:5])
    elif task in ("wild_ours", "wild_package"):
        from analysis.did.wild import twfe_design, wild_cluster_bootstrap

        d = twfe_design(panel, OUTCOME, "firm_id", "year", "cohort", keep=["cell_id"])
        cl = d.frame["cell_id"].to_numpy()
        from wildboottest.weights import draw_weights

        G = len(np.unique(cl))
        v, _ = draw_weights(t="rademacher", full_enumeration=False, N_G_bootcluster=G, boot_iter=n, rng=np.random.default_rng(3))
        t0 = time.perf_counter()
        if task == "wild_ours":
            r = wild_cluster_bootstrap(d.X, d.y, cl, param=0, v=v)
            tb, p = r.t_boot, r.p_value
        else:
            from wildboottest.wildboottest import WildboottestCL

            R = np.zeros(d.X.shape[1])
            R[0] = 1.0
            wb = WildboottestCL(X=d.X, Y=d.y, cluster=cl, R=R, B=n, seed=3, parallel=False)
            wb.get_scores(bootstrap_type="11", impose_null=True)
            wb.get_weights(weights_type="rademacher")
            wb.v = v
            wb.get_numer()
            wb.get_denom()
            wb.get_tboot()
            wb.get_vcov()
            wb.get_tstat()
            wb.get_pvalue()
            tb, p = wb.t_boot, wb.pvalue
        wall = time.perf_counter() - t0
        out.update(prepare_s=0.0, draws_s=wall, wall_s=wall, values=np.asarray(tb)[:50].tolist(), p_value=float(p), clusters=int(G))
    out["peak_gb"] = peak_rss_gb()
    return out


def run(task: str, path: str, n: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", task, "--data", path, "--n", str(n)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if res.returncode != 0:
        return {"task": task, "error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ri", type=int, default=999, help="draws of the fast randomization inference")
    ap.add_argument("--naive", type=int, default=20, help="draws of the naive loops")
    ap.add_argument("--boot", type=int, default=999, help="bootstrap draws of the wild bootstrap comparison")
    ap.add_argument("--worker", choices=TASKS)
    ap.add_argument("--data")
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.n)))
        return
    from analysis.config import load_params
    from analysis.panel import add_outcomes
    from analysis.simulate import simulate_world

    load = os.getloadavg()
    print(f"# Robustness benchmark, {date.today()}\n\n{machine()}; load average before the run {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}; "
          f"{package_versions(('numpy', 'pandas', 'pyfixest', 'wildboottest'))}\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "panel.parquet")
        panel = add_outcomes(simulate_world(load_params("default")).panel)
        panel.to_parquet(path)
        print(f"Data: default world, {len(panel):,} firm-years, {panel['firm_id'].nunique():,} firms, {panel['cell_id'].nunique():,} cells.\n")
        draws = {"ri_cs_fast": args.ri, "ri_twfe_fast": args.ri, "ri_cs_naive": args.naive, "ri_twfe_naive": args.naive}
        res = {t: run(t, path, draws.get(t, args.boot)) for t in TASKS}
    print("| task | method | draws | setup (s) | draws (s) | draws per second | speed-up (fast / naive) | peak memory (GB) "
          "| max abs diff (first draws) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for stat in ("cs", "twfe"):
        fast, naive = res[f"ri_{stat}_fast"], res[f"ri_{stat}_naive"]
        for name, r in (("vectorised (analysis.did.randomization)", fast), (f"naive loop ({'att_gt' if stat == 'cs' else 'twfe'} per draw)", naive)):
            if "error" in r:
                print(f"| RI {stat} | {name} | failed: {r['error']} | | | | | | |")
                continue
            rate = r["draws"] / r["draws_s"] if r["draws_s"] > 0 else float("inf")
            speed = diff = ""
            if r is fast and "error" not in naive:
                speed = f"{(fast['draws'] / fast['wall_s']) / (naive['draws'] / naive['wall_s']):,.0f}"
                k = min(len(fast["values"]), len(naive["values"]))
                diff = f"{max(abs(a - b) for a, b in zip(fast['values'][:k], naive['values'][:k])):.1e}"
            print(f"| RI {stat} | {name} | {r['draws']} | {r['prepare_s']:.2f} | {r['draws_s']:.2f} | {rate:,.1f} | {speed} | {r['peak_gb']:.2f} | {diff} |")
    ours, pkg = res["wild_ours"], res["wild_package"]
    print("\n| wild cluster bootstrap (TWFE, WCR11, Rademacher) | clusters | draws | wall time (s) | peak memory (GB) "
          "| time ratio (package / ours) | p-value | max abs t* diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in (("ours (analysis.did.wild)", ours), ("wildboottest.WildboottestCL", pkg)):
        if "error" in r:
            print(f"| {name} | failed: {r['error']} | | | | | | |")
            continue
        ratio = diff = ""
        if r is pkg and "error" not in ours:
            ratio = f"{pkg['wall_s'] / ours['wall_s']:,.0f}"
            diff = f"{max(abs(a - b) for a, b in zip(ours['values'], pkg['values'])):.1e}"
        print(f"| {name} | {r['clusters']:,} | {r['draws']} | {r['wall_s']:.2f} | {r['peak_gb']:.2f} | {ratio} | {r['p_value']:.4f} | {diff} |")


if __name__ == "__main__":
    main()
