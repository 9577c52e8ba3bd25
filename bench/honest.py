"""Benchmark: our ``honest_did`` against moderndid's port of R HonestDiD, same inputs, side by side.

The task is the one ``analysis.effects.honest_sensitivity`` runs in every effect report of
``make all``: on the default synthetic world (config/default.yaml), the Callaway-Sant'Anna event
study with a universal base period, clustered by cell, event times -5..2 (4 pre- and 3
post-periods besides the reference -1), then relative-magnitude sets (Delta^RM, C-LF, 1,000 grid
points, the R defaults) for the first post-period effect at Mbar = 0.5, 1, 1.5, 2
(``did.honest_mbar`` without 0). The outcome is log value added (the report's main outcome, TFP,
needs the production-function step first; the inputs have the same shape and the cost of the sets
does not depend on the outcome). A second task runs smoothness sets (Delta^SD, FLCI) at
M = 0, 0.01, 0.02, 0.03 on the same inputs.

The event study is estimated once; each library then runs in its own subprocess (imported and
warmed up on a small problem first), repeated ``--repeat`` times, interleaved. Reported: median
and fastest wall time, the ratio to ours, peak memory (``VmHWM``), and the largest difference of
the bounds from ours.

Run: ``PYTHONPATH=src python bench/honest.py`` (about 3-4 minutes: moderndid needs ~12 s per
Mbar); ``--write`` replaces the section of bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
from _common import machine, package_versions, peak_rss_gb

LIBS = ("ours", "moderndid")
TASKS = {
    "relative_magnitude": [0.5, 1.0, 1.5, 2.0],
    "smoothness": [0.0, 0.01, 0.02, 0.03],
}
HERE = Path(__file__).resolve().parent


def inputs(path: Path) -> dict:
    """The default world's event study, as honest_sensitivity estimates it."""
    from analysis.config import load_params
    from analysis.did.event_study import event_study
    from analysis.did.honest import event_study_inputs
    from analysis.panel import build_panel

    params = load_params("default")
    panel, _ = build_panel(params)
    did = params["did"]
    lo, hi = did["window"]
    es = event_study(panel.dropna(subset=["log_value_added"]), "log_value_added", "firm_id", "year", "cohort",
                     estimator="cs", cluster=did["cluster"], base_period="universal", min_e=lo, max_e=hi)
    e, b, V, n_pre = event_study_inputs(es)
    out = {"event_times": e.tolist(), "beta": b.tolist(), "sigma": V.tolist(), "n_pre": n_pre,
           "rows": len(panel), "firms": int(panel["firm_id"].nunique())}
    path.write_text(json.dumps(out))
    return out


def _run(lib: str, task: str, beta: np.ndarray, sigma: np.ndarray, n_pre: int, Ms: list[float]):
    n_post = beta.size - n_pre
    l_vec = np.eye(n_post)[0]
    if lib == "ours":
        from analysis.did.honest import honest_did

        res = honest_did(beta, sigma=sigma, n_pre=n_pre, restriction=task, M=Ms).tidy().iloc[1:]
        return res["conf_low"].to_numpy(), res["conf_high"].to_numpy()
    from moderndid.didhonest import (
        create_sensitivity_results_rm,
        create_sensitivity_results_sm,
    )

    kw = dict(betahat=beta, sigma=sigma, num_pre_periods=n_pre, num_post_periods=n_post, l_vec=l_vec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "relative_magnitude":
            out = create_sensitivity_results_rm(m_bar_vec=Ms, **kw)
        else:
            out = create_sensitivity_results_sm(m_vec=Ms, **kw)
    return np.asarray(out["lb"], dtype=float), np.asarray(out["ub"], dtype=float)


def child(lib: str, task: str, data_path: str) -> None:
    d = json.loads(Path(data_path).read_text())
    beta, sigma, n_pre = np.array(d["beta"]), np.array(d["sigma"]), int(d["n_pre"])
    _run(lib, task, beta, sigma, n_pre, [TASKS[task][0]])  # imports and first-call costs
    t0 = time.perf_counter()
    lb, ub = _run(lib, task, beta, sigma, n_pre, TASKS[task])
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "peak_gb": peak_rss_gb(), "lb": lb.tolist(), "ub": ub.tolist()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="replace the HonestDiD section of bench/README.md")
    ap.add_argument("--child", nargs=3, metavar=("LIB", "TASK", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "inputs.json"
        t0 = time.perf_counter()
        d = inputs(data_path)
        print(f"default world: {d['firms']:,} firms, {d['rows']:,} rows; event study in {time.perf_counter() - t0:.0f} s; "
              f"event times {d['event_times']}", file=sys.stderr)
        env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src"))
        runs: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.repeat):
            for task in TASKS:
                for lib in LIBS:
                    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", lib, task, str(data_path)],
                                         capture_output=True, text=True, env=env, check=True)
                    got = json.loads(out.stdout.strip().splitlines()[-1])
                    runs.setdefault((task, lib), []).append(got)
                    print(f"{task} {lib}: {got['seconds']:.3f} s", file=sys.stderr)
    lines = [
        "## HonestDiD sensitivity: `analysis.did.honest_did` vs moderndid (`bench/honest.py`)",
        "",
        f"Run `PYTHONPATH=src python bench/honest.py --repeat {args.repeat} --write` ({date.today().isoformat()}). "
        f"Machine: {machine()}; load average before the run: {', '.join(f'{x:.2f}' for x in load)}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in package_versions(("numpy", "scipy", "moderndid")).items()) + ".",
        "",
        f"Inputs: the default world ({d['firms']:,} firms, {d['rows']:,} firm-years), Callaway-Sant'Anna event study of log",
        "value added with a universal base period, clustered by cell, event times -5..2 (4 pre- and 3 post-periods), as",
        "`effects.honest_sensitivity` estimates it. Tasks: relative magnitudes (Delta^RM, C-LF, 1,000 grid points, first",
        "post-period effect) at Mbar = 0.5, 1, 1.5, 2, the sets every effect report computes; smoothness (Delta^SD, FLCI)",
        "at M = 0, 0.01, 0.02, 0.03. Each cell is a fresh subprocess (library imported and warmed up first); wall time of",
        f"all four values, median and fastest of {args.repeat}; `peak` is the process's peak resident memory.",
        "`max abs diff` = largest difference of the bounds from ours (both follow R's algorithm; ours reproduces the R",
        "package's published results, tests/test_honest.py).",
        "",
        "| task | library | median time (s) | fastest (s) | median time / ours | peak (GB) | max abs diff of bounds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for task in TASKS:
        ours = runs[(task, "ours")]
        t_ours = statistics.median(r["seconds"] for r in ours)
        for lib in LIBS:
            rs = runs[(task, lib)]
            med = statistics.median(r["seconds"] for r in rs)
            diff = max(abs(a - b) for key in ("lb", "ub") for a, b in zip(rs[0][key], ours[0][key]))
            lines.append(f"| {task} | {lib} | {med:.3f} | {min(r['seconds'] for r in rs):.3f} | {med / t_ours:.1f} | "
                         f"{max(r['peak_gb'] for r in rs):.2f} | {diff:.1e} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        readme = HERE / "README.md"
        text = readme.read_text()
        head = lines[0]
        if head in text:
            start = text.index(head)
            nxt = text.find("\n## ", start + len(head))
            text = text[:start] + table + "\n" + (text[nxt:] if nxt != -1 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + table + "\n"
        readme.write_text(text)


if __name__ == "__main__":
    main()
