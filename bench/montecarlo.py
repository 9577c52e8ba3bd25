"""Monte Carlo engine: replications per minute on 1 and 2 local Dask workers, memory per worker, core-hours.

    python bench/montecarlo.py [--reps 4] [--design clean] [--study-scale] [--write]

Measures, in one run on this machine:

- a plain loop in this process (no Dask): the baseline;
- ``analysis.montecarlo.run_validation`` on a ``LocalCluster`` of 1 and of 2 workers (``--reps``
  replications per worker, after one warm-up replication per worker so that import and JIT time is
  reported apart), replications per minute and the scaling efficiency ``rate(2) / (2 rate(1))``;
- each worker's peak resident memory (``VmHWM``, ``bench/_common.py``) after its replications;
- with ``--study-scale``, one replication at the study's default world size (20,000 firms in 2012,
  14 years) in this process;
- the projected core-hours of a paper-scale study: 1,000 replications of every design of
  ``config/validation.yaml``, from the measured core-seconds per replication.

``--write`` replaces the section of ``bench/README.md`` with the printed one.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import cloudpickle

sys.path.insert(0, str(Path(__file__).parent))
import _common
from _common import machine, package_versions, peak_rss_gb

from analysis import montecarlo as mc

cloudpickle.register_pickle_by_value(_common)
SECTION = "## Monte Carlo engine (`bench/montecarlo.py`)"


def worker_peak() -> float:
    return peak_rss_gb()


def timed_dask(spec: dict, design: str, workers: int, reps: int) -> dict:
    """Warm one replication per worker, then time ``reps * workers`` replications through run_validation."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with mc.open_client("local", n_workers=workers, quiet=True) as client:
            started = time.perf_counter() - t0
            warm = [client.submit(mc.replicate, spec, design, 10_000 + k, pure=False, workers=[w]) for k, w in enumerate(client.scheduler_info()["workers"])]
            client.gather(warm)
            t1 = time.perf_counter()
            report = mc.run_validation(spec, replications=reps * workers, designs=[design], store=tmp, client=client, progress=False)
            wall = time.perf_counter() - t1
            peaks = sorted(client.run(worker_peak).values())
        assert report.computed[design] == reps * workers and report.failed[design] == 0
    n = reps * workers
    return {"what": f"Dask LocalCluster, {workers} worker(s)", "workers": workers, "reps": n, "wall": wall, "per_min": 60 * n / wall,
            "core_s": workers * wall / n, "startup": started, "peak": max(peaks), "peaks": peaks}


def timed_loop(spec: dict, design: str, reps: int) -> dict:
    mc.replicate(spec, design, 10_000)  # warm-up (imports, JIT)
    t0 = time.perf_counter()
    for r in range(reps):
        mc.replicate(spec, design, r)
    wall = time.perf_counter() - t0
    return {"what": "plain loop in one process (no Dask)", "workers": 1, "reps": reps, "wall": wall, "per_min": 60 * reps / wall,
            "core_s": wall / reps, "startup": 0.0, "peak": peak_rss_gb(), "peaks": [peak_rss_gb()]}


def study_scale(spec: dict, design: str) -> dict:
    from analysis.simulate import world_params

    big = {**spec, "designs": {design: {**spec["designs"][design], "world_params": world_params(None)}}}
    mc.replicate(spec, design, 10_000)
    t0 = time.perf_counter()
    out = mc.replicate(big, design, 0)
    return {"seconds": time.perf_counter() - t0, "rows": int(out.loc[out["kind"] == "replication", "n_obs"].iloc[0]),
            "treated": int(out.loc[out["kind"] == "replication", "treated_cells"].iloc[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=4, help="timed replications per worker (default 4)")
    ap.add_argument("--design", default="clean")
    ap.add_argument("--study-scale", action="store_true", help="also time one replication at the default world size")
    ap.add_argument("--write", action="store_true", help="replace the section in bench/README.md")
    args = ap.parse_args()
    spec = mc.load_validation()
    load0 = os.getloadavg()
    rows = [timed_loop(spec, args.design, args.reps), timed_dask(spec, args.design, 1, args.reps), timed_dask(spec, args.design, 2, args.reps)]
    big = study_scale(spec, args.design) if args.study_scale else None
    load1 = os.getloadavg()
    one, two = rows[1], rows[2]
    eff = two["per_min"] / (2 * one["per_min"])
    n_designs = len(spec["designs"])
    core_h = 1000 * n_designs * one["core_s"] / 3600
    v = package_versions(("numpy", "pandas", "dask", "distributed", "dask-jobqueue", "pyfixest"))
    lines = [
        SECTION, "",
        (f"Run `python bench/montecarlo.py{' --study-scale' if args.study_scale else ''} --reps {args.reps} --write` ({time.strftime('%Y-%m-%d')}). Machine: {machine()}; "
        f"load average before the run {', '.join(f'{x:.2f}' for x in load0)}, after {', '.join(f'{x:.2f}' for x in load1)}."),
        "Versions: " + ", ".join(f"{k} {x}" for k, x in v.items()) + ".", "",
        (f"Design `{args.design}` of `config/validation.yaml` (validation world: 5,000 firms in 2016, about 55,000 firm-years, "
        f"{', '.join(spec['designs'][args.design]['outcomes'])}; all six estimators, pre-tests, sup-t bands). Each worker ran one "
        "warm-up replication first (imports, numba JIT: not in the timed part); the Dask rows include writing each replication's parquet."), "",
        "| engine | timed replications | wall (s) | replications / min | core-seconds / replication | cluster start (s) | peak memory per worker (GB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['what']} | {r['reps']} | {r['wall']:.1f} | {r['per_min']:.1f} | {r['core_s']:.2f} | {r['startup']:.1f} | {', '.join(f'{p:.2f}' for p in r['peaks'])} |")
    lines += [
        "",
        (f"- Scaling efficiency from 1 to 2 workers: {eff:.2f} (rate with 2 workers / twice the rate with 1); "
        f"Dask with 1 worker / plain loop: {one['per_min'] / rows[0]['per_min']:.2f} of its rate."),
        (f"- Paper-scale projection: 1,000 replications x {n_designs} designs at the 1-worker cost of this design "
        f"({one['core_s']:.2f} core-s) = **{core_h:,.0f} core-hours** ({core_h / 8:,.1f} h on 8 cores, "
        f"{core_h / 64:,.1f} h on 64); designs with fewer outcomes are cheaper, `tfp_acf` (ACF before the DiD) about twice as expensive."),
    ]
    if big:
        bh = 1000 * n_designs * big["seconds"] / 3600
        lines.append(f"- At the study's default world size ({big['rows']:,} firm-years, {big['treated']} certified cells) one replication took "
                     f"{big['seconds']:.1f} s in one process: 1,000 x {n_designs} designs = **{bh:,.0f} core-hours**, a cluster job (README, \"Running on SLURM\").")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        path = Path(__file__).parent / "README.md"
        old = path.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.DOTALL)
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n", old) if SECTION in old else old.rstrip("\n") + "\n\n" + text
        path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
