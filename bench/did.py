"""Benchmark: Callaway-Sant'Anna ATT(g,t) -- ours against diff-diff, moderndid and csdid.

Same simulated data for every library (balanced firm panel, 13 years, three cohorts plus
never-treated, no covariates), doubly robust, analytic standard errors. Every measurement runs in
its own fresh subprocess: the library is imported and warmed up on a small panel (so numba JIT
compilation and lazy imports are not timed), the data are loaded, then one call is timed.
Reported: median wall time over the repeats, peak resident memory of the process (``ru_maxrss``,
which includes the interpreter, the imports and the data) and that peak minus the resident memory
just before the timed call (what the estimation itself adds). The ATT(g,t) of every library are
compared with ours as a check that all solve the same problem.

Tasks: ``attgt`` = all ATT(g,t) with standard errors; ``event`` = the same plus the event-study
aggregation.

Usage::

    python bench/did.py                       # 20,000 and 200,000 firms, 3 repeats, print
    python bench/did.py --write               # ... and write the DiD section of bench/README.md
    python bench/did.py --sizes 2000 --repeats 1 --tools ours diff-diff   # quick look

Not a test: timings depend on the machine; run it when the machine is quiet (``uptime``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import current_rss_gb, machine, package_versions, peak_rss_gb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = ("ours", "diff-diff", "moderndid", "csdid")
TASKS = ("attgt", "event")
YEARS = np.arange(2010, 2023)  # 13 years
COHORTS = (0, 2015, 2017, 2019)
COHORT_P = (0.55, 0.15, 0.15, 0.15)


def simulate(n_firms: int, seed: int = 0) -> pd.DataFrame:
    """Balanced panel: firm and year effects, dynamic effects that differ by cohort, noise."""
    rng = np.random.default_rng(seed)
    cohort = rng.choice(COHORTS, size=n_firms, p=COHORT_P)
    n_years = YEARS.size
    firm = np.repeat(np.arange(n_firms), n_years)
    year = np.tile(YEARS, n_firms)
    g = np.repeat(cohort, n_years)
    e = year - g
    effect = np.where((g > 0) & (e >= 0), 0.05 * (1 + e) * np.where(g == 2015, 2.0, 1.0), 0.0)
    y = np.repeat(rng.normal(size=n_firms) + 0.3 * (cohort > 0), n_years) + 0.02 * (year - YEARS[0]) + effect + rng.normal(scale=0.5, size=firm.size)
    return pd.DataFrame({"firm": firm, "year": year, "cohort": g, "y": y})


# -- one measurement (runs in a child process) ------------------------------------------------


def _run_ours(df: pd.DataFrame, task: str) -> np.ndarray:
    from analysis.did import att_gt

    res = att_gt(df, outcome="y", unit="firm", time="year", cohort="cohort", method="dr")
    if task == "event":
        res.aggregate("event")
    return res.tidy()["estimate"].to_numpy()


def _run_diff_diff(df: pd.DataFrame, task: str) -> np.ndarray:
    from diff_diff import CallawaySantAnna

    fit = CallawaySantAnna(estimation_method="dr").fit(df, outcome="y", unit="firm", time="year", first_treat="cohort")
    if task == "event":
        fit.aggregate("event_study")
    cells = sorted(fit.group_time_effects)
    return np.array([fit.group_time_effects[c]["effect"] for c in cells])


def _run_moderndid(df: pd.DataFrame, task: str) -> np.ndarray:
    import moderndid

    mp = moderndid.att_gt(data=df, yname="y", tname="year", idname="firm", gname="cohort", est_method="dr", boot=False, cband=False)
    if task == "event":
        moderndid.aggte(mp, type="dynamic")
    return np.asarray(mp.att_gt)


def _run_csdid(df: pd.DataFrame, task: str) -> np.ndarray:
    from csdid.att_gt import ATTgt

    out = ATTgt(yname="y", tname="year", idname="firm", gname="cohort", data=df, control_group="nevertreated").fit(est_method="dr", bstrap=False)
    if task == "event":
        out.aggte(typec="dynamic", bstrap=False)
    return np.asarray(out.results["att"])


RUNNERS = {"ours": _run_ours, "diff-diff": _run_diff_diff, "moderndid": _run_moderndid, "csdid": _run_csdid}


def child(tool: str, task: str, path: str) -> None:
    """Warm up on a small panel, load the data, time one call; print one JSON line."""
    import warnings

    warnings.simplefilter("ignore")
    runner = RUNNERS[tool]
    runner(simulate(300, seed=99), task)
    df = pd.read_parquet(path)
    base = current_rss_gb()
    start = time.perf_counter()
    att = runner(df, task)
    seconds = time.perf_counter() - start
    peak = peak_rss_gb()
    print(json.dumps({"seconds": seconds, "peak_gb": peak, "added_gb": peak - base, "att": np.sort(np.asarray(att, dtype=float)).tolist()}))


# -- driver ---------------------------------------------------------------------------------


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS", "POLARS_MAX_THREADS")


def measure(tool: str, task: str, path: Path, single_thread: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if single_thread:
        env.update(dict.fromkeys(THREAD_VARS, "1"))
    proc = subprocess.run([sys.executable, __file__, "--child", tool, task, str(path)], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(sizes: list[int], tools: list[str], tasks: list[str], repeats: int, single_thread: bool = False) -> pd.DataFrame:
    """Measure every (size, task, tool); repeats are interleaved (round robin over tools) so that
    a burst of load on a shared machine hits all libraries alike."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"panel_{n}.parquet"
            simulate(n).to_parquet(path)
            runs: dict[tuple[str, str], list[dict]] = {(task, tool): [] for task in tasks for tool in tools}
            for _ in range(repeats):
                for task in tasks:
                    for tool in tools:
                        runs[task, tool].append(measure(tool, task, path, single_thread))
            for task in tasks:
                ref_att = None
                for tool in tools:
                    ok = [r for r in runs[task, tool] if "error" not in r]
                    if not ok:
                        err = runs[task, tool][0]["error"]
                        rows.append({"firms": n, "task": task, "tool": tool, "error": err})
                        print(f"{n:>8,} {task:6s} {tool:10s} FAILED: {err}", flush=True)
                        continue
                    att = np.array(ok[0]["att"])
                    if tool == "ours":
                        ref_att = att
                    diff = float(np.max(np.abs(att - ref_att))) if ref_att is not None and att.shape == ref_att.shape else float("nan")
                    row = {
                        "firms": n,
                        "rows": n * YEARS.size,
                        "task": task,
                        "tool": tool,
                        "seconds": statistics.median(r["seconds"] for r in ok),
                        "min_seconds": min(r["seconds"] for r in ok),
                        "peak_gb": max(r["peak_gb"] for r in ok),
                        "added_gb": max(r["added_gb"] for r in ok),
                        "max_abs_att_diff": diff,
                    }
                    rows.append(row)
                    print(f"{n:>8,} {task:6s} {tool:10s} {row['seconds']:7.2f} s (min {row['min_seconds']:.2f})  "
                          f"peak {row['peak_gb']:5.2f} GB  (+{row['added_gb']:.2f})  |ATT - ours| {diff:.1e}", flush=True)
    table = pd.DataFrame(rows)
    if "seconds" in table:
        ours = table[table["tool"] == "ours"].set_index(["firms", "task"])["seconds"]
        table["time_vs_ours"] = [r.seconds / ours.get((r.firms, r.task), np.nan) for r in table.itertuples()]
    return table


def _heading(single_thread: bool) -> str:
    mode = "one thread each" if single_thread else "default threads"
    return f"## Callaway-Sant'Anna ATT(g,t): `analysis.did.att_gt` vs diff-diff, moderndid, csdid ({mode})"


def to_markdown(table: pd.DataFrame, sizes: list[int], repeats: int, load: str, single_thread: bool = False) -> str:
    lines = [
        _heading(single_thread),
        "",
        f"Run `python bench/did.py --write` ({dt.date.today().isoformat()}). Machine: {machine()}; load average before the run: {load}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in package_versions(("numpy", "pandas", "scipy", "diff-diff", "moderndid", "csdid")).items()) + ".",
        "",
        "Data: balanced firm panel, 13 years (2010-2022), cohorts 2015/2017/2019 (15% each) and never treated (55%),",
        "no covariates; doubly robust, never-treated controls, varying base period, analytic standard errors",
        "(36 ATT(g,t)). Each cell of the table is a fresh subprocess (library imported and warmed up on a small",
        f"panel first), median and fastest wall time of {repeats} run(s); `peak` is the process's peak resident memory",
        "(interpreter, imports and data included), `added` the peak minus the resident memory just before the",
        "timed call. `attgt` = all ATT(g,t) with SEs; `event` = the same plus the event-study aggregation.",
        "`|ATT - ours|` = largest difference of the sorted ATT(g,t) from ours.",
        "Threads: "
        + ("every library limited to one thread (" + ", ".join(THREAD_VARS) + " = 1)."
           if single_thread else "library defaults (ours caps BLAS at one thread itself).")
        + " Runs are interleaved across libraries.",
        "",
        "| firms | task | library | median time (s) | fastest (s) | median time / ours | peak (GB) | added (GB) | max abs ATT diff |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        if isinstance(getattr(r, "error", None), str):
            lines.append(f"| {r.firms:,} | {r.task} | {r.tool} | failed: {r.error} | | | | | |")
            continue
        lines.append(f"| {r.firms:,} | {r.task} | {r.tool} | {r.seconds:.2f} | {r.min_seconds:.2f} | {r.time_vs_ours:.2f} | "
                     f"{r.peak_gb:.2f} | {r.added_gb:.2f} | {r.max_abs_att_diff:.1e} |")
    if len(sizes) >= 2 and "seconds" in table:
        lo, hi = min(sizes), max(sizes)
        lines += ["", f"Scaling from {lo:,} to {hi:,} firms ({hi / lo:.0f}x the data), ratio of median times:", ""]
        for (tool, task), grp in table.dropna(subset=["seconds"]).groupby(["tool", "task"], sort=False):
            s = grp.set_index("firms")["seconds"]
            if lo in s and hi in s:
                lines.append(f"- {tool} ({task}): {s[hi] / s[lo]:.1f}x")
    return "\n".join(lines) + "\n"


def write_readme(section: str) -> None:
    """Replace (or append) this section (same heading) of bench/README.md."""
    readme = HERE / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n\nSpeed and memory against peer libraries, measured side by side in one run.\n"
    marker = section.splitlines()[0]
    if marker in text:
        start = text.index(marker)
        nxt = text.find("\n## ", start + len(marker))
        text = text[:start] + section + (text[nxt + 1 :] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(readme)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write the section into bench/README.md")
    parser.add_argument("--single-thread", action="store_true", help="limit every library to one thread (robust on a busy machine)")
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "TASK", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average: {load}; {machine()}")
    table = run(args.sizes, args.tools, args.tasks, args.repeats, args.single_thread)
    section = to_markdown(table, args.sizes, args.repeats, load, args.single_thread)
    print()
    print(section)
    if args.write:
        write_readme(section)
        print(f"written to {HERE / 'README.md'}")


if __name__ == "__main__":
    main()
