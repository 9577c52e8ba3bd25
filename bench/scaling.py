"""How the study's cost grows with the number of firm-years (a benchmark, not a test).

Time and peak memory of every step of the study at about 0.33 M, 1 M, 2.5 M and 5 M
firm-years of the synthetic world (``config/default.yaml`` with more firms and counties; the
5 M world is ``config/asif.yaml``'s), with the growth exponent ``b`` of ``cost ~ rows^b`` fitted
over the sizes. Two kinds of rows:

- **functions**: each step of the study as the reports call it, one fresh subprocess per step
  and size, which reads the size's panel, runs the step, and reports its wall time and its peak
  resident memory (``VmHWM``, ``bench/_common.py``), interpreter, imports and data included,
  and ``added``, the peak minus the resident memory just before the step. Steps: the panel
  (simulate, clusters, outcomes, checks, written to parquet); each production-function method
  as ``analysis.productivity`` runs it (industry x year effects, lagged certification in the law
  of motion), ACF also with its firm bootstrap and by industry; each DiD estimator as
  ``analysis.effects.run_estimator`` runs it (overall ATT and event study; the main one, cs_dr,
  with the 999-draw multiplier bootstrap), HonestDiD, the heterogeneity splits and Poisson PML.
  The DiD steps use the outcome ``log_labor_productivity`` (every firm-year; the cost does not
  depend on which continuous outcome).
- **reference** (``ref_*``): the machine's own primitives (an elementwise pass, a group mean by
  ``bincount``, a stable sort) on arrays as long as each size's panel, so a step's exponent can
  be read against what an algorithm linear in rows measures on this machine between these sizes.
- **reports** (``--reports``): the whole ``make all`` of a parameter set at that size (5M:
  ``config/asif.yaml`` itself, with its 20 bootstrap draws for ACF), run in a scratch copy of the
  project (``bench/results/scaling/root``, so the repository's data, build and reports are not touched), with each report's time and its kernel's peak memory as
  ``tools/run_notebook.py`` records them (``build/<config>/NN.stats.json``).

With ``--profile`` each function step also reports the stack at its sampled memory peak
(``bench/_sampler.py``): where the memory goes.

Usage::

    python bench/scaling.py --sizes 0.33M,1M                   # function steps at two sizes
    python bench/scaling.py --sizes 1M --steps tfp_acf --profile
    python bench/scaling.py --sizes 0.33M,1M,2.5M,5M --reports --write   # the README table
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from _common import MemoryWatch, current_rss_gb, machine, package_versions, peak_rss_gb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "scaling"

#: the synthetic worlds of the table: firms alive in the first year and counties
SIZES: dict[str, dict[str, int]] = {
    "0.33M": {"n_firms": 20_000, "n_counties": 400},
    "1M": {"n_firms": 61_000, "n_counties": 800},
    "2.5M": {"n_firms": 152_000, "n_counties": 1_400},
    "5M": {"n_firms": 300_000, "n_counties": 2_000},
}

TFP_METHODS = ["acf", "lp", "op", "wrdg", "ols", "fe"]
DID = ["cs_dr", "cs_notyet", "sunab", "imputation", "stacked", "twfe"]
#: the machine's own linear primitives on arrays of each size's row count: what "linear" costs here
REFERENCE = ["ref_pass", "ref_group_mean", "ref_sort"]
STEPS = ["panel", *[f"tfp_{m}" for m in TFP_METHODS], "tfp_acf_boot", "tfp_acf_boot_local", "tfp_by_industry",
         *[f"did_{e}" for e in DID], "peer_sunab_pyfixest", "honest", "heterogeneity", "ppml", *REFERENCE]
DID_OUTCOME = "log_labor_productivity"


def size_params(size: str) -> dict:
    """The parameter set of a size: the default set with that world (5M: ``config/asif.yaml``'s
    world; the analysis settings stay the default ones, so every size runs the same study)."""
    from analysis.config import deep_merge, load_params

    world = dict(SIZES[size])
    if size == "5M":
        world = load_params("asif")["world"]
    params = deep_merge(load_params("default"), {"world": world})
    params["config"] = f"scaling_{size}"
    return params


def _folder(size: str) -> Path:
    return RESULTS / size


# ---------------------------------------------------------------------------------------------
# the steps (run in a child process)
# ---------------------------------------------------------------------------------------------
def _load(size: str, columns: list[str] | None = None):
    import pandas as pd

    return pd.read_parquet(_folder(size) / "panel.parquet", columns=columns)


def _step_panel(size: str):
    from analysis.io import write_parquet
    from analysis.panel import build_panel

    params = size_params(size)
    yield "loaded"
    panel, world = build_panel(params)
    write_parquet(panel, _folder(size) / "panel.parquet")
    for name in ("truth", "potential", "latent"):
        write_parquet(getattr(world, name), _folder(size) / f"{name}.parquet")
    yield {"rows": len(panel)}


def _tfp_section(size: str, method: str, n_boot: int) -> dict:
    tfp = dict(size_params(size)["tfp"])
    tfp.update(method=method, robustness=[], n_boot=n_boot)
    return tfp


def _step_tfp(size: str, method: str, boot: bool, engine: str | None = None):
    from analysis import productivity

    params = size_params(size)
    panel = _load(size)
    yield "loaded"
    tfp = _tfp_section(size, method, int(params["tfp"]["n_boot"]) if boot else 0)
    tfp["engine"] = engine  # "local": the bootstrap draws on a Dask LocalCluster of the machine's cores
    out, fits = productivity.estimate_tfp(panel, tfp, seed=params["seed"], progress=False)
    fit = fits[method]
    if isinstance(fit, Exception):
        raise fit
    yield {"rows": len(panel), "n_boot": tfp["n_boot"], "coef": fit.tidy()["estimate"].round(4).tolist()}


def _step_by_industry(size: str):
    from analysis import productivity

    params = size_params(size)
    panel = _load(size)
    yield "loaded"
    table = productivity.estimate_by_group(panel, params["tfp"], "industry_code", seed=params["seed"])
    yield {"rows": len(panel), "groups": len(table)}


def _did_panel(size: str, extra: list[str] = ()):
    from analysis.did.data import as_panel

    cols = ["firm_id", "year", "cohort", "cell_id", DID_OUTCOME, *extra]
    panel = _load(size, cols).dropna(subset=[DID_OUTCOME])
    return panel, as_panel(panel, unit="firm_id", time="year", cohort="cohort", cluster="cell_id")


def _step_did(size: str, est: str):
    from analysis.effects import run_estimator

    did = size_params(size)["did"]
    _, data = _did_panel(size)
    yield "loaded"
    n_boot = did["n_boot"] if est == did["main"] else 0
    res = run_estimator(est, data, DID_OUTCOME, cluster=did["cluster"], window=tuple(did["window"]), alpha=did["alpha"], n_boot=n_boot,
                        seed=0)
    yield {"rows": data.n_rows, "att": round(float(res["simple"].tidy()["estimate"].iloc[0]), 5)}


def _step_sunab_pyfixest(size: str):
    """The peer: sunab's saturated regression as pyfixest runs it (dense cell dummies, demeaned)."""
    import pyfixest as pf

    from analysis.did._common import prepare_panel
    from analysis.inference import blas_threads

    did = size_params(size)["did"]
    _, data = _did_panel(size)
    p = prepare_panel(data, outcome=DID_OUTCOME, unit="firm_id", time="year", cohort="cohort", cluster=did["cluster"])
    f = p.frame
    g, e = f["_g"].to_numpy(), f["_e"].to_numpy()
    f = f.loc[~((g > 0) & (g <= f["_t"].min()))].copy()
    g, e = f["_g"].to_numpy(), f["_e"].to_numpy()
    treated = (g > 0) & (e != -1)
    keys = pd.Series(list(zip(g[treated], e[treated])))
    f["_cell"] = 0
    f.loc[treated, "_cell"] = pd.factorize(keys, sort=True)[0] + 1
    yield "loaded"
    with blas_threads():
        fit = pf.feols("_y ~ i(_cell, ref=0) | _i + _t", data=f, vcov={"CRV1": "_cl"}, copy_data=False, store_data=False, lean=True)
    yield {"rows": int(fit._N), "coefficients": len(fit._coefnames)}


def _step_honest(size: str):
    from analysis.effects import honest_sensitivity

    did = size_params(size)["did"]
    panel, _ = _did_panel(size)
    yield "loaded"
    _, sens = honest_sensitivity(panel, DID_OUTCOME, did, cache_dir=None)
    yield {"rows": len(panel), "sets": len(sens)}


def _step_heterogeneity(size: str):
    from analysis import effects

    did = size_params(size)["did"]
    panel = _load(size, ["firm_id", "year", "cohort", "cell_id", DID_OUTCOME, "sme", "ownership", "region"]).dropna(subset=[DID_OUTCOME])
    yield "loaded"
    groups = effects.heterogeneity_groups(panel, did["heterogeneity"])
    het, tests = effects.heterogeneity(panel, DID_OUTCOME, groups, estimator=did["main"], cluster=did["cluster"],
                                       window=tuple(did["window"]), alpha=did["alpha"])
    yield {"rows": len(panel), "groups": len(het)}


def _step_ppml(size: str):
    from analysis.effects import count_effects

    did = size_params(size)["did"]
    panel = _load(size, ["firm_id", "year", "cohort", "cell_id", "patents_total"])
    yield "loaded"
    out = count_effects(panel, "patents_total", cluster=did["cluster"], alpha=did["alpha"])
    yield {"rows": len(panel), "estimates": out["estimate"].round(4).tolist()}


def _step_reference(size: str, kind: str):
    """A primitive every step is made of, on arrays as long as the size's panel, 100 times (sort: 10).

    ``ref_pass``: one elementwise pass with a freshly allocated result (``x * 2.0``), as numpy code
    allocates. ``ref_group_mean``: the within transformation's primitive, group sums by
    ``bincount`` into one group per 7 rows (about a firm) and the gather back. ``ref_sort``: a
    stable argsort of those group codes. Their exponents are the machine's: algorithms linear in
    rows cost more per row once their arrays leave the caches and need fresh pages.
    """
    import pyarrow.parquet as pq

    n = pq.ParquetFile(_folder(size) / "panel.parquet").metadata.num_rows
    rng = np.random.default_rng(0)
    x = rng.random(n)
    n_groups = max(n // 7, 1)
    codes = rng.integers(0, n_groups, n)
    yield "loaded"
    if kind == "ref_pass":
        for _ in range(100):
            y = x * 2.0
            del y
    elif kind == "ref_group_mean":
        for _ in range(100):
            means = np.bincount(codes, weights=x, minlength=n_groups)
            y = x - means[codes]
            del y
    else:
        for _ in range(10):
            np.argsort(codes, kind="stable")
    yield {"rows": n}


def _step(name: str, size: str):
    if name in REFERENCE:
        return _step_reference(size, name)
    if name == "panel":
        return _step_panel(size)
    if name == "tfp_acf_boot":
        return _step_tfp(size, "acf", True)
    if name == "tfp_acf_boot_local":  # the same draws through analysis.engine on every local core (tfp.engine: local)
        return _step_tfp(size, "acf", True, engine="local")
    if name == "tfp_by_industry":
        return _step_by_industry(size)
    if name.startswith("tfp_"):
        return _step_tfp(size, name.removeprefix("tfp_"), False)
    if name.startswith("did_"):
        return _step_did(size, name.removeprefix("did_"))
    return {"honest": _step_honest, "heterogeneity": _step_heterogeneity, "ppml": _step_ppml,
            "peer_sunab_pyfixest": _step_sunab_pyfixest}[name](size)


def child(name: str, size: str, profile: bool) -> dict:
    """Run one step in this process; its time, peak memory and what it returned."""
    from analysis.inference import blas_threads  # noqa: F401 - imports paid before the clock starts

    steps = _step(name, size)
    next(steps)  # data loaded
    before = current_rss_gb()
    t0 = time.perf_counter()
    if profile:
        sys.path.insert(0, str(HERE))
        from _sampler import MemorySampler

        with MemorySampler() as sampler:
            info = next(steps)
        info.update(sampler.report())
    else:
        info = next(steps)
    seconds = time.perf_counter() - t0
    peak = peak_rss_gb()
    return {"step": name, "size": size, "seconds": round(seconds, 3), "peak_gb": round(peak, 3),
            "before_gb": round(before, 3), "added_gb": round(peak - before, 3), **info}


def run_child(name: str, size: str, profile: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--size", size] + (["--profile"] if profile else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ANALYSIS_ROOT": str(ROOT), "TQDM_DISABLE": "1"}
    load = os.getloadavg()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"step": name, "size": size, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "load": load}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = [round(x, 2) for x in load]
    return out


# ---------------------------------------------------------------------------------------------
# fitted growth
# ---------------------------------------------------------------------------------------------
def growth_exponent(rows: list[float], cost: list[float]) -> float:
    """Least-squares slope of ``log cost`` on ``log rows`` (``cost ~ rows^b``); NaN with < 2 sizes.

    Examples
    --------
    >>> round(growth_exponent([1e6, 2e6, 4e6], [3.0, 6.0, 12.0]), 3)
    1.0
    """
    r, c = np.asarray(rows, float), np.asarray(cost, float)
    ok = (r > 0) & (c > 0) & np.isfinite(c)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(r[ok]), np.log(c[ok]), 1)[0])


def table(results: list[dict], sizes: list[str]) -> str:
    """Markdown: one row per step, time (s) and peak (GB) per size, the fitted exponents."""
    rows_of = {r["size"]: r["rows"] for r in results if r.get("step") == "panel" and "rows" in r}
    head = "| step | " + " | ".join(f"{s} time (s) | {s} peak (GB)" for s in sizes) + " | time exponent | added-memory exponent |"
    sep = "|---|" + "---:|---:|" * len(sizes) + "---:|---:|"
    lines = [head, sep]
    steps = list(dict.fromkeys(r["step"] for r in results))
    for step in steps:
        cells, xs, ts, ms = [], [], [], []
        for s in sizes:
            r = next((r for r in results if r["step"] == step and r["size"] == s), None)
            if r is None or "error" in r:
                cells.append("failed" if r else "")
                cells.append("")
                continue
            cells += [f"{r['seconds']:.2f}" if r["seconds"] < 1 else f"{r['seconds']:.1f}", f"{r['peak_gb']:.2f}"]
            n = r.get("rows") or rows_of.get(s)
            if n:
                xs.append(n)
                ts.append(r["seconds"])
                ms.append(max(r.get("added_gb", r["peak_gb"]), 1e-3))
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {growth_exponent(xs, ts):.2f} | {growth_exponent(xs, ms):.2f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the reports: make all in a scratch copy of the project
# ---------------------------------------------------------------------------------------------
def scratch_root(sizes: list[str]) -> Path:
    """A scratch project: links to the code, notebooks and tools, its own config/, data/, build/, reports/."""
    root = RESULTS / "root"
    root.mkdir(parents=True, exist_ok=True)
    for name in ("src", "notebooks", "tools", "Makefile", "pyproject.toml", "requirements.lock", ".venv"):
        link = root / name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(ROOT / name)
    (root / "data" / "external").parent.mkdir(parents=True, exist_ok=True)
    if not (root / "data" / "external").exists():
        (root / "data" / "external").symlink_to(ROOT / "data" / "external")
    for d in ("interim", "processed"):
        (root / "data" / d).mkdir(parents=True, exist_ok=True)
    cfg = root / "config"
    cfg.mkdir(exist_ok=True)
    for f in (ROOT / "config").glob("*.yaml"):
        shutil.copy2(f, cfg / f.name)
    import yaml

    for s in sizes:  # 5M: the rehearsal parameter set itself (its world and its thinned bootstrap)
        text = (ROOT / "config" / "asif.yaml").read_text() if s == "5M" else yaml.safe_dump({"world": SIZES[s]})
        (cfg / f"scaling_{s}.yaml").write_text(text)
    return root


def run_reports(size: str, root: Path, jobs: int = 1) -> list[dict]:
    """``make all`` of one size in the scratch project, from nothing (the size's built data and
    reports removed first), ``jobs`` notebooks at a time; one row per step from the recorded stats
    and a total row with the machine-wide memory peak (:class:`_common.MemoryWatch`: with
    ``jobs > 1`` several kernels at once)."""
    config = f"scaling_{size}"
    for d in (root / "data" / "interim" / config, root / "data" / "processed" / config, root / "build" / config, root / "reports" / config):
        shutil.rmtree(d, ignore_errors=True)
    load = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    cmd = ["make", "-C", str(root), f"-j{jobs}", "all", f"CONFIG={config}", f"JOBS={jobs}"]
    with MemoryWatch() as watch:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - t0
    n_rows = None
    panel = root / "data" / "processed" / config / "panel.parquet"
    if panel.is_file():
        import pyarrow.parquet as pq

        n_rows = pq.ParquetFile(panel).metadata.num_rows
    rows = []
    for f in sorted((root / "build" / config).glob("*.stats.json")):
        st = json.loads(f.read_text())
        tag = "" if jobs == 1 else f" (-j{jobs})"
        rows.append({"step": f"report {f.name.removesuffix('.stats.json')}{tag}", "size": size, "seconds": st["seconds"],
                     "peak_gb": st["peak_gb"], "load": load, "rows": n_rows, "status": st.get("status")})
    rows.append({"step": "make all (total)" if jobs == 1 else f"make -j{jobs} all (total)", "size": size, "seconds": round(total, 1),
                 "rows": n_rows, "load_after": [round(x, 2) for x in os.getloadavg()], "jobs": jobs,
                 "peak_gb": max([r["peak_gb"] for r in rows], default=float("nan")), "load": load,
                 "machine_peak_gb": round(watch.peak_gb, 2), "machine_added_gb": round(watch.added_gb, 2),
                 **({"error": proc.stderr.strip().splitlines()[-5:]} if proc.returncode else {})})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.33M,1M")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--reports", action="store_true", help="also run make all at each size (scratch project)")
    parser.add_argument("--no-functions", action="store_true", help="only the reports")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks at a time in the reports' make all (make -jN)")
    parser.add_argument("--profile", action="store_true", help="stack at each step's memory peak")
    parser.add_argument("--write", action="store_true", help="write bench/results/scaling.json and scaling.md")
    parser.add_argument("--child")
    parser.add_argument("--size")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.size, args.profile)))
        return 0
    sizes = args.sizes.split(",")
    steps = args.steps.split(",")
    results: list[dict] = []
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    if not args.no_functions:
        for s in sizes:  # each size's panel first: the other steps read it
            if "panel" in steps or not (_folder(s) / "panel.parquet").is_file():
                _folder(s).mkdir(parents=True, exist_ok=True)
                results.append(run_child("panel", s, args.profile))
                print(json.dumps(results[-1]), flush=True)
        for step in [x for x in steps if x != "panel"]:
            for s in sizes:  # one step at every size in a row: the same machine load for the exponent
                results.append(run_child(step, s, args.profile))
                print(json.dumps(results[-1]), flush=True)
    if args.reports:
        root = scratch_root(sizes)
        for s in sizes:
            results += run_reports(s, root, args.jobs)
            print(json.dumps(results[-1]), flush=True)
    if args.write:  # merged with earlier runs: a (step, size) measured again replaces the old row
        RESULTS.mkdir(parents=True, exist_ok=True)
        store = RESULTS.parent / "scaling.json"
        old = json.loads(store.read_text())["results"] if store.is_file() else []
        new_keys = {(r["step"], r["size"]) for r in results}
        results = [r for r in old if (r["step"], r["size"]) not in new_keys] + results
        meta = {"date": str(date.today()), "machine": machine(), "versions": package_versions(("numpy", "pandas", "scipy", "pyfixest"))}
        store.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        sizes = [s for s in SIZES if any(r["size"] == s for r in results)]
    md = table(results, sizes)
    print(md)
    if args.write:
        (RESULTS.parent / "scaling.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
