"""Monte Carlo validation: every estimator's bias, RMSE, coverage and pre-test size over many worlds.

One synthetic world shows that the estimators recover one truth; this module shows their
sampling behaviour. For each *design* of ``config/validation.yaml`` (a world, a sample rule and
the outcomes to estimate) and each replication ``r = 0, ..., R - 1`` it simulates a world
(:func:`analysis.simulate.simulate_world`), builds the panel (:func:`analysis.panel.add_outcomes`),
estimates TFP where an outcome needs it (:func:`analysis.tfp.estimate_production`), runs every
estimator of ``did.estimators`` through :func:`analysis.effects.run_estimator` (exactly what the
effect reports run) and compares each estimate with the world's known truth. :func:`summarize`
turns the stored replications into tables: bias, RMSE, coverage of the 95 % confidence intervals
(pointwise, and uniform sup-t bands over the post-treatment event times), rejection rates of the
pre-trend test (size where parallel trends hold, power where they do not), mean runtime, each with
its Monte Carlo standard error. Whether parallel trends hold in a design is measured, not assumed:
:func:`run_parallel_trends` computes the true gap of the untreated outcome between to-be-certified
and never-treated firms by event time (:func:`untreated_trend_gap`) over the design's worlds, and
:func:`summarize` labels a pre-test's rejection rate its size only where that gap is zero. The
truth a replication is compared with is that world's ATT (its sample ATT); coverage of the
population ATT (the mean truth over the worlds) is reported next to it, since some estimators'
standard errors target the latter (:func:`inference_target_note`).

The engine is Dask distributed. :func:`open_client` starts a ``LocalCluster`` sized to the
machine by default; ``engine.cluster: slurm`` or ``pbs`` starts a ``dask_jobqueue`` cluster
instead, and a scheduler address (``tcp://host:8786``) connects to a running one. Everything else
is the same code path.

Guarantees
----------
- **Reproducible whatever the number of workers or the completion order.** Replication ``r``
  draws from ``numpy.random.SeedSequence(seed).spawn(R)[r]`` (the same child for any ``R > r``),
  and every design uses the same replication seeds (common random numbers: design differences
  are not blurred by different draws). Each task runs single-threaded BLAS.
- **Written as soon as it finishes.** One parquet file per replication and design,
  ``<store>/<design>/rep_<r>.parquet``, written atomically (:func:`analysis.io.write_parquet`).
- **Restartable.** A run that is stopped (or killed) and started again computes only the
  replications without a file; a larger ``R`` later adds replications to the same store.
- **Nothing dropped silently.** An estimator that raises is a row with ``status = "error"``,
  its message and the replication's seed; a replication whose task itself fails (e.g. its worker
  is killed repeatedly) is stored the same way.

:func:`map_draws` maps any function over seeds on the same engine (or in a plain local loop), for
randomization inference or bootstrap loops with many draws.

Examples
--------
>>> spec = load_validation()
>>> sorted(spec["designs"])[:3]
['anticipation', 'balanced', 'clean']
>>> [s.spawn_key for s in replication_seeds(1, 3)]
[(0,), (1,), (2,)]
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.config import CONFIG_DIR, ROOT, ParameterError
from analysis.engine import ENGINE_KEYS, WORKER_ENV, map_draws, open_client  # noqa: F401 - the engine, re-exported here
from analysis.inference import blas_threads
from analysis.io import progress_options, write_parquet, write_text

__all__ = [
    "RESULT_COLUMNS",
    "RunReport",
    "MECHANISM_DESIGNS",
    "acceptance",
    "bias_by_mechanism",
    "CERTIFICATION_RULES",
    "inference_target_note",
    "parallel_trends_note",
    "parallel_trends_replication",
    "parallel_trends_table",
    "run_parallel_trends",
    "stored_parallel_trends",
    "summarize_parallel_trends",
    "untreated_trend_gap",
    "completed",
    "coverage_table",
    "design_world",
    "load_results",
    "imputation_note",
    "load_validation",
    "imputation_decomposition",
    "main",
    "map_draws",
    "open_client",
    "plot_bias",
    "plot_coverage",
    "plot_event_bias",
    "plot_pretrend",
    "pretrend",
    "replicate",
    "replication_seeds",
    "results_for_report",
    "run_imputation_decomposition",
    "run_validation",
    "settings_against_study",
    "stored_decomposition",
    "stored_run",
    "summarize",
    "summarize_decomposition",
    "uniform_band",
]

#: columns of every stored replication frame (one row per estimate, pre-test or error)
RESULT_COLUMNS: tuple[str, ...] = (
    "design", "replication", "outcome", "estimator", "kind", "event_time",
    "estimate", "std_error", "conf_low", "conf_high", "band_low", "band_high", "truth",
    "stat", "df", "p_value", "n_obs", "runtime_s", "status", "error", "seed", "world_seed",
    "treated_cells", "never_treated_share",
)
KINDS = ("simple", "event", "pretrend", "replication")
SPEC_KEYS = {"seed", "replications", "tiny", "store", "outcomes", "did", "world", "tfp", "engine", "designs"}
DESIGN_KEYS = {"label", "role", "outcomes", "world", "never_treated_keep", "estimators", "max_replications"}


# ---------------------------------------------------------------------------------------------
# the design grid
# ---------------------------------------------------------------------------------------------
def load_validation(name: str | Path = "validation", *, config_dir: Path | None = None) -> dict[str, Any]:
    """Read and check the Monte Carlo specification ``config/<name>.yaml``.

    Every design's world is resolved (``world`` of the file, then the design's ``world``, over
    :data:`analysis.simulate.DEFAULTS`), so a misspelt parameter stops here, before any work.

    Raises
    ------
    ParameterError
        Naming the file and the key: a missing file, an unknown key, an outcome without a truth,
        an unknown estimator or role.
    """
    import yaml

    from analysis.effects import ESTIMATOR_LABELS

    folder = Path(config_dir) if config_dir is not None else CONFIG_DIR
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else folder / f"{name}.yaml"
    if not path.is_file():
        raise ParameterError(f"Monte Carlo specification {path} not found")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ParameterError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(SPEC_KEYS)}")
    for key in ("seed", "outcomes", "did", "designs"):
        if key not in spec:
            raise ParameterError(f"{path}: key '{key}' is missing")
    spec.setdefault("replications", 100)
    spec.setdefault("tiny", {"replications": 2, "designs": [next(iter(spec["designs"]))]})
    spec.setdefault("store", "data/montecarlo/validation")
    spec.setdefault("world", {})
    spec.setdefault("tfp", {})
    spec["engine"] = {"cluster": "local", "n_workers": None, "threads_per_worker": 1, "memory_limit": "auto",
                      "dashboard_address": ":0", "jobqueue": {}, "jobs": 1, **(spec.get("engine") or {})}
    bad = set(spec["engine"]) - ENGINE_KEYS
    if bad:
        raise ParameterError(f"{path}: unknown engine key(s) {sorted(bad)}; known: {sorted(ENGINE_KEYS)}")
    did = spec["did"]
    for est in did["estimators"]:
        if est not in ESTIMATOR_LABELS:
            raise ParameterError(f"{path}: did.estimators: unknown estimator {est!r}; known: {list(ESTIMATOR_LABELS)}")
    designs = {}
    for dname, d in spec["designs"].items():
        d = dict(d or {})
        bad = set(d) - DESIGN_KEYS
        if bad:
            raise ParameterError(f"{path}: design '{dname}': unknown key(s) {sorted(bad)}; known: {sorted(DESIGN_KEYS)}")
        d.setdefault("label", dname)
        d.setdefault("role", "size")
        if d["role"] not in ("size", "power"):
            raise ParameterError(f"{path}: design '{dname}': role must be 'size' (parallel trends hold) or 'power', not {d['role']!r}")
        d.setdefault("outcomes", list(spec["outcomes"])[:1])
        for o in d["outcomes"]:
            if o not in spec["outcomes"]:
                raise ParameterError(f"{path}: design '{dname}': outcome {o!r} is not in 'outcomes' ({list(spec['outcomes'])})")
        d.setdefault("estimators", list(did["estimators"]))
        for est in d["estimators"]:
            if est not in ESTIMATOR_LABELS:
                raise ParameterError(f"{path}: design '{dname}': unknown estimator {est!r}")
        d.setdefault("never_treated_keep", 1.0)
        d.setdefault("max_replications", None)
        try:
            d["world_params"] = design_world(spec, d)
        except ParameterError as exc:
            raise ParameterError(f"{path}: design '{dname}': {exc}") from None
        designs[dname] = d
    spec["designs"] = designs
    spec["name"] = path.stem
    return spec


def design_world(spec: Mapping[str, Any], design: Mapping[str, Any]) -> dict[str, Any]:
    """The full world parameters of a design: the spec's ``world``, then the design's, over the defaults."""
    from analysis.simulate import world_params

    merged = _merge_free(spec.get("world") or {}, design.get("world") or {})
    return world_params({"world": merged})


def _merge_free(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        out[k] = _merge_free(out[k], v) if isinstance(out.get(k), Mapping) and isinstance(v, Mapping) else copy.deepcopy(v)
    return out


def replication_seeds(seed: int, n: int) -> list[np.random.SeedSequence]:
    """``numpy.random.SeedSequence(seed).spawn(n)``: replication ``r``'s stream, the same for every ``n > r``."""
    return np.random.SeedSequence(seed).spawn(n)


def _design_replications(spec: Mapping[str, Any], design: str, replications: int) -> int:
    cap = spec["designs"][design].get("max_replications")
    return replications if cap is None else min(replications, int(cap))


# ---------------------------------------------------------------------------------------------
# one replication
# ---------------------------------------------------------------------------------------------
def pretrend(event: Any) -> dict[str, float]:
    """The pre-trend test the reports print, on one event study: ``{"stat", "df", "p_value"}``.

    The single place where the Monte Carlo calls the pre-test (now
    :func:`analysis.effects.pretrend_test`: on results of ``run_estimator`` the wild cluster
    bootstrap of the CR2 Wald statistic of the pre-period coefficients); swap it here when the
    reports' test changes, and the size and power tables follow.
    """
    from analysis.effects import pretrend_test

    return pretrend_test(event).to_dict()


def uniform_band(
    estimate: np.ndarray, vcov: np.ndarray, *, alpha: float = 0.05, rng: np.random.Generator, draws: int = 20_000
) -> tuple[np.ndarray, np.ndarray, float]:
    """A sup-t uniform band from an estimate's covariance (Montiel Olea and Plagborg-Moller 2019).

    The critical value is the ``1 - alpha`` quantile of ``max_j |Z_j|`` with ``Z ~ N(0, R)`` and
    ``R`` the correlation matrix of ``vcov``, drawn ``draws`` times from ``rng``; the band covers
    all coefficients at once with probability ``1 - alpha`` when the estimates are normal with
    that covariance.

    Examples
    --------
    >>> lo, hi, c = uniform_band(np.zeros(2), np.eye(2), rng=np.random.default_rng(0), draws=200_000)
    >>> round(c, 1)  # two independent coefficients: the Sidak value, Phi^-1((1 + sqrt(0.95)) / 2) = 2.236
    2.2
    """
    est = np.asarray(estimate, float)
    V = np.asarray(vcov, float)
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    if est.size == 0 or not np.all(np.isfinite(V)) or np.any(se <= 0):
        nan = np.full(est.shape, np.nan)
        return nan, nan, float("nan")
    R = V / np.outer(se, se)
    w, Q = np.linalg.eigh((R + R.T) / 2)
    L = Q * np.sqrt(np.clip(w, 0, None))
    z = rng.standard_normal((draws, est.size)) @ L.T
    crit = float(np.quantile(np.abs(z).max(axis=1), 1 - alpha))
    return est - crit * se, est + crit * se, crit


def _panel_for(design: Mapping[str, Any], outcomes: Sequence[str], world: Any, rng: np.random.Generator, tfp: Mapping[str, Any], notes: dict) -> pd.DataFrame:
    """The analysis panel of one replication: outcomes added, the design's sample, TFP if needed."""
    from analysis.panel import add_outcomes

    panel = add_outcomes(world.panel)
    keep = float(design.get("never_treated_keep", 1.0))
    if keep < 1.0:
        never = panel.loc[panel["cohort"] == 0, "cell_id"].unique()
        never.sort()
        drop = never[rng.random(never.size) >= keep]
        panel = panel[~panel["cell_id"].isin(drop)].reset_index(drop=True)
    if "tfp_true" in outcomes:
        latent = world.latent[["firm_id", "year", "omega"]].rename(columns={"omega": "tfp_true"})
        panel = panel.merge(latent, on=["firm_id", "year"], how="left", validate="one_to_one")
    if "tfp_acf" in outcomes:
        t0 = time.perf_counter()
        panel["tfp_acf"] = _tfp(panel, tfp)
        notes["tfp_runtime_s"] = time.perf_counter() - t0
    return panel


def _tfp(panel: pd.DataFrame, tfp: Mapping[str, Any]) -> pd.Series:
    """Log TFP by the study's production function (value added, ACF unless ``tfp.method`` says)."""
    from analysis.tfp import estimate_production

    d = panel.copy()
    g = d["cohort"].fillna(0)
    d["certified"] = ((g > 0) & (d["year"] >= g)).astype(float)
    need = ["log_value_added", "log_labor", "log_capital", "log_materials"]
    d = d.dropna(subset=need)
    fit = estimate_production(
        d, output="log_value_added", free=["log_labor"], state=["log_capital"], proxy="log_materials",
        method=tfp.get("method", "acf"), time_effects=tfp.get("time_effects", True),
        group_effects=tfp.get("group_effects", "industry_code"), markov_controls=tfp.get("markov_controls", ["certified"]) or None,
        se="none", n_boot=1, progress=False,
    )
    return fit.tfp.reindex(panel.index)


def _estimate_rows(
    name: str, res: Mapping[str, Any], truth: pd.DataFrame, column: str, truth_name: str, *, alpha: float, rng: np.random.Generator
) -> list[dict]:
    """Rows of one estimator's results: the overall ATT, the post event times, the pre-test."""
    from analysis.effects import attach_truth, attach_truth_overall

    mapping = {column: truth_name}
    rows: list[dict] = []
    simple = attach_truth_overall(res["simple"].tidy(), truth, mapping)
    s = simple.iloc[0]
    rows.append({"kind": "simple", "event_time": np.nan, **{k: s[k] for k in ("estimate", "std_error", "conf_low", "conf_high", "truth", "p_value", "n_obs")}})
    ev = res["event"]
    t = attach_truth(ev.tidy(), truth, mapping, "event")
    post = t[t["event_time"] >= 0].sort_values("event_time")
    lo = hi = np.full(len(post), np.nan)
    if ev.vcov is not None and len(post):
        V = ev.vcov.loc[post["term"], post["term"]].to_numpy()
        lo, hi, _ = uniform_band(post["estimate"].to_numpy(), V, alpha=alpha, rng=rng)
    for (_, r), bl, bh in zip(post.iterrows(), lo, hi):
        rows.append({"kind": "event", "event_time": float(r["event_time"]), "band_low": bl, "band_high": bh,
                     **{k: r[k] for k in ("estimate", "std_error", "conf_low", "conf_high", "truth", "p_value", "n_obs")}})
    test = pretrend(ev)
    rows.append({"kind": "pretrend", "event_time": np.nan, "stat": test["stat"], "df": test["df"], "p_value": test["p_value"]})
    return rows


def replicate(spec: Mapping[str, Any], design: str, replication: int, seed: np.random.SeedSequence | None = None) -> pd.DataFrame:
    """One replication of one design: simulate, build the panel, estimate, compare with the truth.

    Parameters
    ----------
    spec : mapping
        The specification from :func:`load_validation`.
    design : str
        A design name of ``spec["designs"]``.
    replication : int
        The replication index ``r``; its seed is ``replication_seeds(spec["seed"], r + 1)[r]``
        unless ``seed`` is given.

    Returns
    -------
    pandas.DataFrame
        :data:`RESULT_COLUMNS`; ``kind`` is ``simple`` (the overall ATT), ``event`` (one row per
        post-treatment event time, with the sup-t band), ``pretrend`` (the pre-test), or
        ``replication`` (a failure before any estimator ran). Never raises: a failure is a row
        with ``status = "error"`` and the traceback's last line in ``error``.

    Examples
    --------
    >>> spec = load_validation()
    >>> spec["designs"]["clean"]["world_params"]["n_firms"] = 1500
    >>> out = replicate(spec, "clean", 0)
    >>> sorted(out["kind"].unique()), bool((out["status"] == "ok").all())
    (['event', 'pretrend', 'replication', 'simple'], True)
    """
    from analysis.effects import run_estimator
    from analysis.simulate import simulate_world

    seed = seed if seed is not None else replication_seeds(int(spec["seed"]), replication + 1)[replication]
    d = spec["designs"][design]
    ss_world, ss_sample, ss_band = seed.spawn(3)
    world_seed = int(ss_world.generate_state(1, np.uint64)[0] >> np.uint64(1))
    base = {"design": design, "replication": int(replication), "seed": f"SeedSequence({spec['seed']}).spawn(R)[{replication}]", "world_seed": world_seed}
    rows: list[dict] = []
    did = spec["did"]
    with blas_threads(1):  # one BLAS thread per replication: the engine runs replications in parallel
        t0 = time.perf_counter()
        try:
            world = simulate_world({"world": d["world_params"]}, seed=world_seed)
            notes: dict = {}
            panel = _panel_for(d, d["outcomes"], world, np.random.default_rng(ss_sample), spec.get("tfp") or {}, notes)
        except Exception as exc:  # noqa: BLE001 - recorded, not dropped
            return _frame([{**base, "kind": "replication", "status": "error", "error": _error_text(exc), "runtime_s": time.perf_counter() - t0}])
        rows.append({**base, "kind": "replication", "status": "ok", "runtime_s": time.perf_counter() - t0, "estimator": "world", "n_obs": len(panel),
                     "treated_cells": panel.loc[panel["cohort"] > 0, "cell_id"].nunique(), "never_treated_share": float((panel["cohort"] == 0).mean())})
        band_rng = np.random.default_rng(ss_band)
        for column in d["outcomes"]:
            data = panel.dropna(subset=[column])
            for est in d["estimators"]:
                t1 = time.perf_counter()
                try:
                    res = run_estimator(est, data, column, cluster=did["cluster"], window=tuple(did["window"]), alpha=did["alpha"], n_boot=0)
                    part = _estimate_rows(est, res, world.truth, column, spec["outcomes"][column], alpha=did["alpha"], rng=band_rng)
                    status, error = "ok", None
                except Exception as exc:  # noqa: BLE001 - recorded with its seed
                    part, status, error = [{"kind": "simple", "event_time": np.nan}], "error", _error_text(exc)
                runtime = time.perf_counter() - t1
                for r in part:
                    rows.append({**base, "outcome": column, "estimator": est, "status": status, "error": error, "runtime_s": runtime, **r})
    return _frame(rows)


def imputation_decomposition(spec: Mapping[str, Any], design: str, replication: int) -> pd.DataFrame:
    """Where the imputation estimator's error in one replication comes from (log TFP as the world draws it).

    The estimator is linear in the outcome and its model of Y(0) is fitted on untreated rows
    only, so with ``y = Y(0) + effect`` on treated rows its estimate splits exactly into

    - ``estimand``: its estimate on ``effect`` alone (zero on untreated rows), i.e. the mean true
      effect over the treated firm-years it can impute (firms with an untreated year; firms that
      enter a certified cell after certification are not among them), and
    - ``y0_error``: its estimate on the untreated potential outcome ``Y(0)`` everywhere, whose truth
      is 0: the error of the model ``Y(0) = firm effect + year effect`` (the imputation itself).

    So ``estimate - truth = (estimand - truth) + y0_error``, with ``truth`` the world's ATT over all
    certified firm-years, as in :func:`replicate` (same seed, world and sample).

    Returns
    -------
    pandas.DataFrame
        One row per aggregate (``overall`` and the post event times of ``did.window``):
        ``design``, ``replication``, ``aggregate``, ``event_time``, ``estimate``, ``truth``,
        ``estimand``, ``y0_error``, ``n_treated`` (firm-years imputed), ``n_truth`` (certified
        firm-years the truth averages).

    Examples
    --------
    >>> spec = load_validation()
    >>> spec["designs"]["clean"]["world_params"]["n_firms"] = 1500
    >>> out = imputation_decomposition(spec, "clean", 0)
    >>> bool(np.allclose(out["estimate"], out["estimand"] + out["y0_error"]))
    True
    """
    from analysis.did.imputation import imputation
    from analysis.simulate import simulate_world

    d = spec["designs"][design]
    seed = replication_seeds(int(spec["seed"]), replication + 1)[replication]
    ss_world, ss_sample, _ = seed.spawn(3)
    world_seed = int(ss_world.generate_state(1, np.uint64)[0] >> np.uint64(1))
    did = spec["did"]
    with blas_threads(1):
        world = simulate_world({"world": d["world_params"]}, seed=world_seed)
        panel = _panel_for(d, ["tfp_true"], world, np.random.default_rng(ss_sample), {}, {})
        pot = world.potential[["firm_id", "year", "tfp_1", "tfp_0"]]
        panel = panel.merge(pot, on=["firm_id", "year"], how="left", validate="one_to_one")
        g = panel["cohort"].fillna(0)
        post = (g > 0) & (panel["year"] >= g)
        panel["_effect"] = np.where(post, (panel["tfp_1"] - panel["tfp_0"]).fillna(0.0), 0.0)
        panel["_y0"] = panel["tfp_true"] - panel["_effect"]
        panel = panel.dropna(subset=["tfp_true"])
        hi = int(did["window"][1])
        kw = {"cluster": did["cluster"], "alpha": did["alpha"]}
        fits = {}
        for col in ("tfp_true", "_effect", "_y0"):
            fits[col] = {
                "simple": imputation(panel, col, "firm_id", "year", "cohort", aggregate="simple", **kw),
                "event": imputation(panel, col, "firm_id", "year", "cohort", horizons=list(range(hi + 1)), **kw),
            }
    tr = world.truth[world.truth["outcome"] == "tfp"]
    rows = []
    for agg in ("simple", "event"):
        res = fits["tfp_true"][agg]
        est, counts = res.tidy(), list(res.meta["n_treated"].values())
        for k in range(len(est)):
            e = est["event_time"].iloc[k] if agg == "event" else np.nan
            t = tr[tr["aggregation"] == "simple"] if agg == "simple" else tr[(tr["aggregation"] == "event") & (tr["event_time"] == e)]
            rows.append({
                "design": design, "replication": int(replication), "aggregate": "overall" if agg == "simple" else f"e = {int(e)}",
                "event_time": e, "estimate": float(est["estimate"].iloc[k]), "truth": float(t["att"].iloc[0]) if len(t) else np.nan,
                "estimand": float(fits["_effect"][agg].tidy()["estimate"].iloc[k]), "y0_error": float(fits["_y0"][agg].tidy()["estimate"].iloc[k]),
                "n_treated": int(counts[k]),
                "n_truth": int(t["n_obs"].iloc[0]) if len(t) else -1,
            })
    return pd.DataFrame(rows)


def _decomposition_task(item: tuple[str, int], spec: Mapping[str, Any]) -> pd.DataFrame:
    return imputation_decomposition(spec, item[0], item[1])


def run_imputation_decomposition(
    spec: Mapping[str, Any], *, replications: int, designs: Sequence[str] | None = None, store: str | Path | None = None,
    engine: Mapping[str, Any] | str | None = None, client: Any = None, n_workers: int | None = None, progress: bool | None = None,
) -> Path:
    """:func:`imputation_decomposition` for replications ``0 .. replications - 1`` of ``designs``; one parquet in the store.

    ``designs`` defaults to those of :data:`MECHANISM_DESIGNS` in the specification. The draws run
    through :func:`map_draws` on the engine (``engine``, ``client``; default ``spec["engine"]``)
    and are written to ``<store>/imputation_decomposition.parquet`` (atomically, replacing an
    older file), which the validation report reads.
    """
    names = list(designs) if designs else [d for d in MECHANISM_DESIGNS if d in spec["designs"]]
    unknown = [d for d in names if d not in spec["designs"]]
    if unknown:
        raise ParameterError(f"unknown design(s) {unknown}; the specification has {list(spec['designs'])}")
    items = [(d, r) for r in range(int(replications)) for d in names]
    if client is None and engine is None:
        engine = {**spec["engine"], "n_workers": n_workers or spec["engine"].get("n_workers")}
    frames = map_draws(_decomposition_task, items, dict(spec), client=client, engine=engine, n_workers=n_workers,
                       batch_size=1, progress=progress, desc="imputation decomposition")
    path = _resolve_store(store if store is not None else spec["store"]) / "imputation_decomposition.parquet"
    return write_parquet(pd.concat(frames, ignore_index=True), path)


def summarize_decomposition(frame: pd.DataFrame | None) -> pd.DataFrame:
    """Means over replications of :func:`imputation_decomposition`, with Monte Carlo standard errors.

    ``None`` or an empty frame (nothing stored) gives an empty table with the same columns.

    Per design and aggregate: ``R``, ``truth``, ``bias`` (estimate - truth), ``composition``
    (estimand - truth: which certified firm-years the estimator averages), ``y0_error`` (the error
    of the model of Y(0)), each with ``*_mcse`` (s.d. / sqrt(R)), and ``imputed_share`` (firm-years
    imputed / certified firm-years).

    Examples
    --------
    >>> f = pd.DataFrame({"design": "d", "replication": [0, 1], "aggregate": "overall", "event_time": np.nan,
    ...                   "estimate": [0.12, 0.10], "truth": 0.1, "estimand": [0.09, 0.09], "y0_error": [0.03, 0.01],
    ...                   "n_treated": 8, "n_truth": 10})
    >>> summarize_decomposition(f)[["R", "bias", "composition", "y0_error", "imputed_share"]].round(3).values.tolist()
    [[2.0, 0.01, -0.01, 0.02, 0.8]]
    """
    cols = ["design", "aggregate", "R", "truth", "bias", "bias_mcse", "composition", "composition_mcse", "y0_error", "y0_error_mcse",
            "imputed_share"]
    if frame is None or frame.empty:
        return pd.DataFrame(columns=cols)
    f = frame.assign(bias=frame["estimate"] - frame["truth"], composition=frame["estimand"] - frame["truth"],
                     imputed_share=frame["n_treated"] / frame["n_truth"])
    g = f.groupby(["design", "aggregate"], sort=False)
    out = g.agg(R=("bias", "size"), truth=("truth", "mean"), bias=("bias", "mean"), bias_mcse=("bias", "sem"),
                composition=("composition", "mean"), composition_mcse=("composition", "sem"),
                y0_error=("y0_error", "mean"), y0_error_mcse=("y0_error", "sem"), imputed_share=("imputed_share", "mean")).reset_index()
    return out[cols]


# ---------------------------------------------------------------------------------------------
# does parallel trends hold in a design? measured on the untreated potential outcome
# ---------------------------------------------------------------------------------------------
def untreated_trend_gap(
    panel: pd.DataFrame, potential: pd.DataFrame, *, outcome: str = "tfp_true", truth_outcome: str = "tfp",
    window: tuple[int, int] = (-4, 2), unit: str = "firm_id", time: str = "year", cohort: str = "cohort",
) -> pd.DataFrame:
    """The true departure from parallel trends of the untreated outcome Y(0), by event time.

    For cohort ``g`` and event time ``e`` the gap is the 2x2 difference in differences of Y(0)
    between year ``g + e`` and the base year ``g - 1``, cohort-``g`` firms against never-treated
    firms (``cohort == 0``), over the firms observed in both years::

        gap(g, e) = mean[Y0(g+e) - Y0(g-1) | G = g] - mean[Y0(g+e) - Y0(g-1) | G = 0]

    Y(0) is the observed outcome minus the true effect on certified firm-years
    (``<truth_outcome>_1 - <truth_outcome>_0`` of ``potential``), and the observed outcome
    elsewhere. Parallel trends (against the never-treated, with the base year ``g - 1``) hold in
    the pre-treatment years if ``gap(g, e)`` is zero in expectation for ``e < -1`` (what a
    pre-trend test tests, and what imputation's untreated model also needs), and in the
    post-treatment years if it is zero for ``e >= 0`` (what Callaway-Sant'Anna needs; there it is
    CS's error on Y(0)). ``gap(g, -1) = 0`` by construction.

    Parameters
    ----------
    panel : pandas.DataFrame
        ``unit, time, cohort`` and ``outcome`` (the observed outcome, treatment effect included).
    potential : pandas.DataFrame
        ``unit, time, <truth_outcome>_0, <truth_outcome>_1`` of certified firm-years
        (``World.potential``).

    Returns
    -------
    pandas.DataFrame
        One row per cohort and event time of ``window`` whose two years are in the data
        (``cohort`` the cohort's year) and per event time over all cohorts (``cohort`` 0: the
        cohorts' gaps weighted by their firms, as the cohort-share weights of an event study):
        ``cohort, event_time, gap, n_treated, n_control``.

    Examples
    --------
    Two firms of cohort 2020 whose Y(0) rises by 0.1 a year until 2019 and is flat after, two
    never-treated firms on a flat path: the gap is -0.2 at e = -3 (2017 against 2019), 0 after.

    >>> yrs = [2017, 2018, 2019, 2020]
    >>> y0 = {1: [0.0, 0.1, 0.2, 0.2], 2: [1.0, 1.1, 1.2, 1.2], 3: [0.5] * 4, 4: [0.7] * 4}
    >>> panel = pd.DataFrame([{"firm_id": f, "year": t, "cohort": 2020 if f < 3 else 0, "tfp_true": v + (0.05 if f < 3 and t >= 2020 else 0)}
    ...                       for f, vs in y0.items() for t, v in zip(yrs, vs)])
    >>> pot = pd.DataFrame({"firm_id": [1, 2], "year": 2020, "tfp_0": [0.2, 1.2], "tfp_1": [0.25, 1.25]})
    >>> gap = untreated_trend_gap(panel, pot, window=(-3, 0))
    >>> gap.loc[gap["cohort"] == 0, ["event_time", "gap"]].round(3).values.tolist()
    [[-3.0, -0.2], [-2.0, -0.1], [-1.0, 0.0], [0.0, 0.0]]
    """
    a0, a1 = f"{truth_outcome}_0", f"{truth_outcome}_1"
    for name, frame, cols in (("panel", panel, [unit, time, cohort, outcome]), ("potential", potential, [unit, time, a0, a1])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"untreated_trend_gap: {name} lacks column(s) {missing}")
    d = panel[[unit, time, cohort, outcome]].merge(potential[[unit, time, a0, a1]], on=[unit, time], how="left", validate="one_to_one")
    g = d[cohort].fillna(0).to_numpy()
    effect = np.where((g > 0) & (d[time].to_numpy() >= g), (d[a1] - d[a0]).to_numpy(), 0.0)
    d["_y0"] = d[outcome].to_numpy() - np.nan_to_num(effect)
    d = d.dropna(subset=["_y0"])
    wide = d.pivot(index=unit, columns=time, values="_y0")
    ucoh = d.groupby(unit)[cohort].first().fillna(0).reindex(wide.index).to_numpy()
    years = set(wide.columns)
    never = ucoh == 0
    rows = []
    for c in sorted(int(x) for x in np.unique(ucoh) if x > 0):
        base = c - 1
        if base not in years:
            continue
        treated = ucoh == c
        for e in range(int(window[0]), int(window[1]) + 1):
            t = c + e
            if t not in years:
                continue
            diff = (wide[t] - wide[base]).to_numpy()
            ok = np.isfinite(diff)
            nt, nc = int((ok & treated).sum()), int((ok & never).sum())
            if nt == 0 or nc == 0:
                continue
            rows.append({"cohort": c, "event_time": float(e), "gap": float(diff[ok & treated].mean() - diff[ok & never].mean()),
                         "n_treated": nt, "n_control": nc})
    out = pd.DataFrame(rows, columns=["cohort", "event_time", "gap", "n_treated", "n_control"])
    if out.empty:
        return out
    pooled = out.groupby("event_time", sort=True).apply(
        lambda x: pd.Series({"gap": float(np.average(x["gap"], weights=x["n_treated"])), "n_treated": int(x["n_treated"].sum()),
                             "n_control": int(x["n_control"].max())}), include_groups=False).reset_index()
    pooled.insert(0, "cohort", 0)
    out = pd.concat([out, pooled], ignore_index=True)
    out["cohort"] = out["cohort"].astype(np.int64)
    out[["n_treated", "n_control"]] = out[["n_treated", "n_control"]].astype(np.int64)
    return out


def parallel_trends_replication(spec: Mapping[str, Any], design: str, replication: int) -> pd.DataFrame:
    """:func:`untreated_trend_gap` of log TFP in replication ``replication`` of ``design`` (its world and sample).

    The same seed, world and sample as :func:`replicate`, the window of ``did.window``; columns
    ``design, replication`` added. Needs only the simulator (about a second a world).
    """
    from analysis.simulate import simulate_world

    d = spec["designs"][design]
    seed = replication_seeds(int(spec["seed"]), replication + 1)[replication]
    ss_world, ss_sample, _ = seed.spawn(3)
    world_seed = int(ss_world.generate_state(1, np.uint64)[0] >> np.uint64(1))
    with blas_threads(1):
        world = simulate_world({"world": d["world_params"]}, seed=world_seed)
        panel = _panel_for(d, ["tfp_true"], world, np.random.default_rng(ss_sample), {}, {})
        gap = untreated_trend_gap(panel, world.potential, window=tuple(spec["did"]["window"]))
    gap.insert(0, "replication", int(replication))
    gap.insert(0, "design", design)
    return gap


#: the default world's certification rules switched off one at a time (world overrides over the
#: ``clean`` design): which rule makes certified cells' untreated TFP depart from the never-treated
#: path before certification (:func:`run_parallel_trends` with ``rules=True``)
CERTIFICATION_RULES: dict[str, tuple[str, dict[str, Any]]] = {
    "clean": ("every rule of the default world (top 40 % by output, SME share >= 0.7, growth cut, ranked on output)", {}),
    "clean~no_growth_cut": ("without the growth cut (min_growth_quantile 0)", {"min_growth_quantile": 0.0}),
    "clean~no_level_rules": ("without the output-level rules (eligible_share 1, weight_level 0)", {"eligible_share": 1.0, "weight_level": 0.0}),
    "clean~no_sme_rule": ("without the SME-share rule (min_sme_share 0)", {"min_sme_share": 0.0}),
    "clean~growth_cut_only": ("the growth cut alone (random among the rest)", {"eligible_share": 1.0, "weight_level": 0.0, "min_sme_share": 0.0}),
    "clean~level_rank_only": ("the ranking on output level alone", {"eligible_share": 1.0, "min_growth_quantile": 0.0, "min_sme_share": 0.0}),
    "clean~no_rule": ("no rule: at random among cells of 8+ firms (as random_certification)",
                      {"eligible_share": 1.0, "weight_level": 0.0, "min_growth_quantile": 0.0, "min_sme_share": 0.0}),
}


def _rule_designs(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The :data:`CERTIFICATION_RULES` variants of the ``clean`` design, as designs of ``spec``."""
    base = spec["designs"]["clean"]
    out = {}
    for name, (label, cert) in CERTIFICATION_RULES.items():
        if name == "clean":
            continue
        d = copy.deepcopy(dict(base))
        d["world"] = _merge_free(base.get("world") or {}, {"certification": cert})
        d["label"] = f"Default world {label}"
        d["world_params"] = design_world(spec, d)
        out[name] = d
    return out


def _untreated_key(design: Mapping[str, Any]) -> str:
    """Designs with the same key have the same untreated worlds and samples (they differ only in effects)."""
    w = {k: v for k, v in design["world_params"].items() if k != "effects"}
    return json.dumps([w, float(design.get("never_treated_keep", 1.0))], sort_keys=True, default=str)


def _parallel_trends_task(item: tuple[str, int], spec: Mapping[str, Any]) -> pd.DataFrame:
    return parallel_trends_replication(spec, item[0], item[1])


def run_parallel_trends(
    spec: Mapping[str, Any], *, replications: int, designs: Sequence[str] | None = None, rules: bool = False,
    store: str | Path | None = None, engine: Mapping[str, Any] | str | None = None, client: Any = None,
    n_workers: int | None = None, progress: bool | None = None,
) -> Path:
    """:func:`parallel_trends_replication` for replications ``0 .. replications - 1`` of ``designs``.

    ``designs`` defaults to every design of the specification; ``rules`` adds the
    :data:`CERTIFICATION_RULES` variants of ``clean`` (which certification rule creates the gap).
    Designs that differ only in their effects share their untreated worlds, so each such group is
    simulated once and its rows are copied to every member. Written to
    ``<store>/parallel_trends.parquet`` (atomically); rows of designs not run now are kept, those
    run now are replaced. Runs in this process unless ``engine`` or ``client`` is given
    (:func:`map_draws`).
    """
    names = list(designs) if designs else list(spec["designs"])
    unknown = [d for d in names if d not in spec["designs"]]
    if unknown:
        raise ParameterError(f"unknown design(s) {unknown}; the specification has {list(spec['designs'])}")
    spec = dict(spec)
    if rules:
        spec["designs"] = {**spec["designs"], **_rule_designs(spec)}
        names += [d for d in CERTIFICATION_RULES if d not in names]
    groups: dict[str, list[str]] = {}
    for d in names:
        groups.setdefault(_untreated_key(spec["designs"][d]), []).append(d)
    leaders = {members[0]: members for members in groups.values()}
    items = [(d, r) for r in range(int(replications)) for d in leaders]
    frames = map_draws(_parallel_trends_task, items, spec, client=client, engine=engine, n_workers=n_workers,
                       batch_size=4, progress=progress, desc="parallel trends")
    out = []
    for f in frames:
        for member in leaders[f["design"].iloc[0]] if len(f) else []:
            out.append(f.assign(design=member))
    path = _resolve_store(store if store is not None else spec["store"]) / "parallel_trends.parquet"
    cols = ["design", "replication", "cohort", "event_time", "gap", "n_treated", "n_control"]
    new = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)  # no comparison firms anywhere: nothing to measure
    if path.is_file():
        old = pd.read_parquet(path)
        new = pd.concat([old[~old["design"].isin(names)], new], ignore_index=True) if len(new) else old[~old["design"].isin(names)]
    return write_parquet(new.reset_index(drop=True), path)


def stored_parallel_trends(spec: Mapping[str, Any], store: str | Path | None = None) -> pd.DataFrame | None:
    """The stored :func:`run_parallel_trends` results of the store, or ``None``."""
    path = _resolve_store(store if store is not None else spec["store"]) / "parallel_trends.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def summarize_parallel_trends(frame: pd.DataFrame | None, *, threshold: float = 3.0) -> dict[str, pd.DataFrame]:
    """Whether parallel trends hold in each design, from :func:`run_parallel_trends` (pooled cohorts).

    Returns
    -------
    dict
        ``gaps``: per design and event time, ``R`` (worlds), ``gap`` (mean over worlds of the
        pooled :func:`untreated_trend_gap`), ``gap_mcse`` (s.d. / sqrt(R)) and ``t`` (their ratio);
        ``designs``: per design ``R``, ``pre_gap`` (the pre-treatment event time, ``e < -1``, with
        the largest ``|t|``: its gap and ``t``), ``pre_holds`` (every pre-treatment ``|t|`` below
        ``threshold``: the pre-treatment parallel trends are not rejected by the worlds),
        ``post_gap`` / ``post_t`` (the same over ``e >= 0``: Callaway-Sant'Anna's assumption) and
        ``post_holds``. Empty frames when nothing is stored.

    Examples
    --------
    >>> f = pd.DataFrame({"design": "d", "replication": [0, 1, 0, 1], "cohort": 0, "event_time": [-2.0, -2.0, 0.0, 0.0],
    ...                   "gap": [0.03, 0.04, 0.001, -0.001], "n_treated": 10, "n_control": 20})
    >>> s = summarize_parallel_trends(f)
    >>> s["gaps"][["event_time", "gap", "t"]].round(3).values.tolist()
    [[-2.0, 0.035, 7.0], [0.0, 0.0, 0.0]]
    >>> s["designs"][["pre_gap", "pre_holds", "post_holds"]].round(3).values.tolist()
    [[0.035, False, True]]
    """
    gcols = ["design", "event_time", "R", "gap", "gap_mcse", "t"]
    dcols = ["design", "R", "pre_event_time", "pre_gap", "pre_gap_mcse", "pre_t", "pre_holds", "post_event_time", "post_gap", "post_gap_mcse",
             "post_t", "post_holds"]
    if frame is None or frame.empty:
        return {"gaps": pd.DataFrame(columns=gcols), "designs": pd.DataFrame(columns=dcols)}
    f = frame[frame["cohort"] == 0]
    g = f.groupby(["design", "event_time"], sort=False)["gap"]
    gaps = g.agg(R="size", gap="mean", gap_mcse="sem").reset_index()
    gaps["t"] = gaps["gap"] / gaps["gap_mcse"].where(gaps["gap_mcse"] > 0)
    gaps.loc[(gaps["gap"] == 0) & (gaps["gap_mcse"] == 0), "t"] = 0.0  # the base year: zero by construction
    gaps = gaps.sort_values(["design", "event_time"], kind="stable").reset_index(drop=True)
    rows = []
    for d, x in gaps.groupby("design", sort=False):
        row: dict[str, Any] = {"design": d, "R": int(x["R"].max())}
        for part, sel in (("pre", x["event_time"] < -1), ("post", x["event_time"] >= 0)):
            y = x[sel]
            if y.empty or y["t"].isna().all():
                row.update({f"{part}_event_time": np.nan, f"{part}_gap": np.nan, f"{part}_gap_mcse": np.nan, f"{part}_t": np.nan, f"{part}_holds": pd.NA})
                continue
            k = y["t"].abs().idxmax()
            row.update({f"{part}_event_time": float(y.loc[k, "event_time"]), f"{part}_gap": float(y.loc[k, "gap"]),
                        f"{part}_gap_mcse": float(y.loc[k, "gap_mcse"]), f"{part}_t": float(y.loc[k, "t"]),
                        f"{part}_holds": bool((y["t"].abs() < threshold).all())})
        rows.append(row)
    return {"gaps": gaps[gcols], "designs": pd.DataFrame(rows, columns=dcols)}


def _error_text(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _frame(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows).reindex(columns=list(RESULT_COLUMNS))
    for c in ("design", "outcome", "estimator", "kind", "status", "error", "seed"):
        out[c] = out[c].astype("string")
    for c in ("event_time", "estimate", "std_error", "conf_low", "conf_high", "band_low", "band_high", "truth", "stat", "df", "p_value", "n_obs", "runtime_s",
              "treated_cells", "never_treated_share"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    out["replication"] = out["replication"].astype(np.int64)
    out["world_seed"] = pd.array(out["world_seed"], dtype="Int64")
    return out


def _failed_task_frame(design: str, replication: int, spec: Mapping[str, Any], exc: BaseException) -> pd.DataFrame:
    """The record of a replication whose task failed on the cluster (e.g. its worker died repeatedly)."""
    return _frame([{"design": design, "replication": replication, "kind": "replication", "status": "error",
                    "error": f"task failed on the cluster: {type(exc).__name__}: {exc}",
                    "seed": f"SeedSequence({spec['seed']}).spawn(R)[{replication}]"}])


@dataclass
class RunReport:
    """What :func:`run_validation` did."""

    store: Path
    computed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def __repr__(self) -> str:
        lines = [(f"Monte Carlo store {self.store}: {sum(self.computed.values())} replication(s) computed, "
                 f"{sum(self.skipped.values())} already stored, {sum(self.failed.values())} with an error, {self.seconds:.0f} s")]
        for d in self.computed:
            lines.append(f"  {d}: computed {self.computed[d]}, stored before {self.skipped.get(d, 0)}, errors {self.failed.get(d, 0)}")
        return "\n".join(lines)


def _rep_path(store: Path, design: str, replication: int) -> Path:
    return Path(store) / design / f"rep_{replication:05d}.parquet"


def completed(store: str | Path, design: str) -> set[int]:
    """Replication indices of ``design`` with a stored result file (whatever their status)."""
    folder = Path(store) / design
    if not folder.is_dir():
        return set()
    return {int(p.stem.split("_")[1]) for p in folder.glob("rep_*.parquet")}


def _has_error(frame: pd.DataFrame) -> bool:
    return bool((frame["status"] == "error").any())


def _resolve_store(store: str | Path) -> Path:
    p = Path(store)
    return p if p.is_absolute() else ROOT / p


def run_validation(
    spec: Mapping[str, Any],
    *,
    replications: int | None = None,
    designs: Sequence[str] | None = None,
    store: str | Path | None = None,
    engine: Mapping[str, Any] | str | None = None,
    client: Any = None,
    n_workers: int | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
    on_write: Callable[[Path], None] | None = None,
) -> RunReport:
    """Run the missing replications of the designs on a Dask cluster; write each as it finishes.

    Parameters
    ----------
    spec : mapping
        From :func:`load_validation`.
    replications : int, optional
        R (default ``spec["replications"]``); a design's ``max_replications`` caps it.
    designs : sequence of str, optional
        Design names (default: all, in the file's order).
    store : str or pathlib.Path, optional
        Folder of the results (default ``spec["store"]``, relative to the project root).
    engine, n_workers : mapping or str, optional; int, optional
        The cluster (see :func:`open_client`; default ``spec["engine"]``). Ignored with ``client``.
    client : object, optional
        An open ``distributed.Client`` to use instead.
    retry_failed : bool, default False
        Recompute replications whose stored file records an error (default: keep them; they are
        deterministic, so a rerun would fail the same way).
    progress : bool, optional
        Progress bar over replications (tqdm over the futures as they complete).
    on_write : callable, optional
        Called with each path written (tests use it to count writes).

    Returns
    -------
    RunReport
        Computed, skipped and failed replications per design.
    """
    from distributed import as_completed

    t0 = time.perf_counter()
    R = int(replications if replications is not None else spec["replications"])
    names = list(designs) if designs else list(spec["designs"])
    unknown = [d for d in names if d not in spec["designs"]]
    if unknown:
        raise ParameterError(f"unknown design(s) {unknown}; the specification has {list(spec['designs'])}")
    store = _resolve_store(store if store is not None else spec["store"])
    report = RunReport(store=store)
    todo: list[tuple[str, int]] = []
    for d in names:
        for stale in (store / d).glob(".rep_*.tmp.parquet") if (store / d).is_dir() else []:
            stale.unlink()  # the temporary file of a write that a killed run left half done
        n = _design_replications(spec, d, R)
        done = completed(store, d)
        if retry_failed:
            done = {r for r in done if not _has_error(pd.read_parquet(_rep_path(store, d, r), columns=["status"]))}
        report.skipped[d] = len([r for r in done if r < n])
        report.computed[d] = 0
        report.failed[d] = 0
        todo += [(d, r) for r in range(n) if r not in done]
    todo.sort(key=lambda x: (x[1], names.index(x[0])))  # replication-major: a partial run covers every design
    _write_manifest(store, spec, names, R, status="running")
    if todo:
        seeds = replication_seeds(int(spec["seed"]), max(r for _, r in todo) + 1)
        ctx = contextlib.nullcontext(client) if client is not None else open_client(engine if engine is not None else spec["engine"], n_workers=n_workers)
        with ctx as cl:
            spec_f = cl.scatter(dict(spec), broadcast=True, hash=False)
            futures = {}
            for k, (d, r) in enumerate(todo):
                fut = cl.submit(replicate, spec_f, d, r, seeds[r], key=f"mc-{spec['name']}-{d}-{r}-{os.getpid()}-{k}", priority=-k, pure=False)
                futures[fut] = (d, r)
            bar = tqdm(total=len(futures), desc="Monte Carlo replications", unit="rep", **progress_options(progress))
            for fut in as_completed(futures):
                d, r = futures.pop(fut)
                if fut.status == "cancelled":  # the run is being shut down: not a result, leave it to the next run
                    continue
                try:
                    frame = fut.result()
                except Exception as exc:  # noqa: BLE001 - the task itself failed (e.g. its worker died repeatedly): record it
                    if fut.status == "cancelled" or type(exc).__name__ in ("CancelledError", "FutureCancelledError"):
                        continue
                    frame = _failed_task_frame(d, r, spec, exc)
                path = write_parquet(frame, _rep_path(store, d, r))
                if on_write is not None:
                    on_write(path)
                report.computed[d] += 1
                report.failed[d] += int(_has_error(frame))
                bar.update(1)
                bar.set_postfix_str(f"{d} r={r}")
                del fut
            bar.close()
    report.seconds = time.perf_counter() - t0
    _write_manifest(store, spec, names, R, status="complete", report=report)
    return report


def _commit() -> str:
    """The code's git commit (with ``+changes`` if the tree is dirty), for the manifest."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True,
                               timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty else "")


def _write_manifest(store: Path, spec: Mapping[str, Any], designs: Sequence[str], R: int, *, status: str, report: RunReport | None = None) -> None:
    """``<store>/run.json``: what the last run asked for and how it ended (read by the report)."""
    path = Path(store) / "run.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    entry = {
        "status": status,
        "replications": R,
        "designs": list(designs),
        "seed": int(spec["seed"]),
        "time": _dt.datetime.now().isoformat(timespec="seconds"),
        "commit": _commit(),
        "stored": {d: len(completed(store, d)) for d in spec["designs"]},
    }
    if report is not None:
        entry.update(computed=report.computed, errors=report.failed, seconds=round(report.seconds, 1))
    old.update(last=entry)
    if status == "complete":
        old.setdefault("runs", []).append(entry)
    write_text(json.dumps(old, indent=1) + "\n", path)


# ---------------------------------------------------------------------------------------------
# reading and summarizing
# ---------------------------------------------------------------------------------------------
def load_results(store: str | Path, *, designs: Sequence[str] | None = None, replications: int | None = None) -> pd.DataFrame:
    """All stored replication frames of ``store`` (optionally only the first ``replications``)."""
    store = _resolve_store(store)
    frames = []
    for folder in sorted(p for p in store.iterdir() if p.is_dir()) if store.is_dir() else []:
        if designs is not None and folder.name not in designs:
            continue
        for path in sorted(folder.glob("rep_*.parquet")):
            if replications is not None and int(path.stem.split("_")[1]) >= replications:
                continue
            frames.append(pd.read_parquet(path))
    if not frames:
        return _frame([]).iloc[0:0]
    return pd.concat(frames, ignore_index=True)


def stored_run(spec: Mapping[str, Any], store: str | Path | None = None) -> dict[str, Any] | None:
    """The manifest of the last run in the store (``run.json``), or ``None`` if nothing is stored."""
    path = _resolve_store(store if store is not None else spec["store"]) / "run.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def results_for_report(spec: Mapping[str, Any], *, tiny_store: str | Path, progress: bool | None = None, engine: Any = None) -> tuple[pd.DataFrame, str]:
    """The results the validation report shows, and a sentence saying which they are.

    The last full run's stored results (``make validation``) if the store has any; otherwise a
    tiny run (``spec["tiny"]``: a few replications of a few designs) into ``tiny_store``, whose
    numbers only show that the machinery works.
    """
    manifest = stored_run(spec)
    if manifest is not None:
        res = load_results(spec["store"])
        if len(res):
            last = manifest.get("last", {})
            counts = ", ".join(f"{d}: {n}" for d, n in sorted(res.groupby("design")["replication"].nunique().items()))
            return res, (f"Stored results of the last full run (`make validation`, store `{spec['store']}`, last run "
                         f"{last.get('time', '?')}, status {last.get('status', '?')}); replications per design: {counts}.")
    tiny = spec["tiny"]
    report = run_validation(spec, replications=int(tiny["replications"]), designs=tiny["designs"], store=tiny_store,
                            engine=engine if engine is not None else {**spec["engine"], "n_workers": tiny.get("n_workers", 1)}, progress=progress)
    res = load_results(tiny_store, designs=tiny["designs"], replications=int(tiny["replications"]))
    return res, (f"No full run is stored (run `make validation R=200`): this page shows a **tiny run** of "
                 f"{tiny['replications']} replication(s) of design(s) {', '.join(tiny['designs'])} ({sum(report.computed.values())} computed now), "
                 "which shows the machinery works; its numbers are not Monte Carlo estimates.")


def _mcse_share(p: pd.Series, n: pd.Series) -> pd.Series:
    return np.sqrt(p * (1 - p) / n.where(n > 0))


def summarize(results: pd.DataFrame, spec: Mapping[str, Any] | None = None, parallel_trends: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Per design, outcome and estimator: bias, RMSE, coverage, pre-test rejection, runtime, with MC standard errors.

    The truth of a replication is the world's own ATT: the mean true effect over the certified
    firm-years drawn in that world (the *sample* ATT). Its spread over worlds (``truth_sd``) is
    the variation of the effect's average over which firms, cells and cohorts a world certifies;
    an estimator whose standard error also accounts for that variation (Callaway-Sant'Anna's
    aggregation, which includes the estimation of the cohort weights; TWFE, whose residuals carry
    the effect heterogeneity it does not model) targets the *population* ATT, approximated here
    by the mean truth over the design's replications, and ``coverage_pop`` / ``se_ratio_pop``
    measure it against that.

    Parameters
    ----------
    results : pandas.DataFrame
        Stored replications (:func:`load_results`).
    spec : mapping, optional
        The specification (:func:`load_validation`): alpha, the designs' roles, what they list.
    parallel_trends : pandas.DataFrame, optional
        :func:`stored_parallel_trends`: the measured untreated pre-trend gap of each design. With
        it the pre-test's rejection rate is labelled ``size`` only in designs where the pre-treatment
        parallel trends are measured to hold, ``power`` where they are measured to fail; without
        a measurement the specification's role is kept with ``" (assumed)"``.

    Returns
    -------
    dict of pandas.DataFrame

    - ``simple``: the overall ATT: ``n`` (replications that estimated it), ``errors``,
      ``truth`` (mean true ATT), ``truth_sd`` (its s.d. over worlds), ``bias`` (mean of
      estimate - truth) and ``bias_mcse``, ``rmse`` and ``rmse_mcse`` (delta method), ``sd`` (of
      estimate - truth), ``mean_se`` and ``se_ratio`` (``mean_se / sd``, 1 when standard errors
      are right for the sample ATT), ``coverage`` (share of 95 % intervals containing the
      world's truth) and ``coverage_mcse`` = sqrt(p (1 - p) / n), ``sd_estimate`` (s.d. of the
      estimates), ``se_ratio_pop`` (``mean_se / sd_estimate``), ``coverage_pop`` (share of
      intervals containing the mean truth over the replications) and ``coverage_pop_mcse``,
      ``runtime_s`` (mean seconds of the estimator, both aggregations);
    - ``event``: the same by post-treatment event time;
    - ``bands``: ``pointwise`` (mean over post event times of pointwise coverage) and
      ``uniform`` (share of replications whose sup-t band covers every post event time), with
      MC standard errors;
    - ``pretrend``: ``rejection`` (share of replications whose pre-test rejects at ``alpha``),
      ``rejection_mcse``, ``mean_df``, ``pre_trends`` (``"hold"``, ``"fail"`` or ``"not
      measured"``) and ``role`` (``size`` where they hold, ``power`` where they fail);
    - ``parallel_trends`` and ``parallel_gaps``: :func:`summarize_parallel_trends` ``designs`` and
      ``gaps`` (empty without a measurement);
    - ``errors``: one row per recorded error with its seed.
    """
    alpha = float(spec["did"]["alpha"]) if spec else 0.05
    roles = {d: v.get("role", "size") for d, v in (spec or {}).get("designs", {}).items()}
    keys = ["design", "outcome", "estimator"]
    r = results.copy()
    if spec:  # report what the specification asks for: stored rows of outcomes or estimators a design no longer lists are left out
        want = {(d, o, e) for d, v in spec["designs"].items() for o in v["outcomes"] for e in v["estimators"]}
        fit = r["kind"] != "replication"
        listed = pd.Series([(d, o, e) in want for d, o, e in zip(r["design"], r["outcome"], r["estimator"])], index=r.index)
        r = r[~fit | listed]
    ok = r[r["status"] == "ok"]

    def metrics(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        d = df.assign(err=df["estimate"] - df["truth"], cov=((df["conf_low"] <= df["truth"]) & (df["truth"] <= df["conf_high"])).astype(float))
        d = d.dropna(subset=["err"])
        pop = d.groupby(by, sort=False)["truth"].transform("mean")  # the population ATT: mean truth over the worlds
        d = d.assign(cov_pop=((d["conf_low"] <= pop) & (pop <= d["conf_high"])).astype(float))
        g = d.groupby(by, sort=False)
        out = g.agg(n=("err", "size"), truth=("truth", "mean"), truth_sd=("truth", "std"), bias=("err", "mean"), sd=("err", "std"),
                    mse=("err", lambda e: float(np.mean(e**2))),
                    mse_sd=("err", lambda e: float(np.std(e**2, ddof=1)) if len(e) > 1 else np.nan), mean_se=("std_error", "mean"),
                    coverage=("cov", "mean"), sd_estimate=("estimate", "std"), coverage_pop=("cov_pop", "mean")).reset_index()
        out["bias_mcse"] = out["sd"] / np.sqrt(out["n"])
        out["rmse"] = np.sqrt(out["mse"])
        out["rmse_mcse"] = out["mse_sd"] / np.sqrt(out["n"]) / (2 * out["rmse"])
        out["se_ratio"] = out["mean_se"] / out["sd"]
        out["coverage_mcse"] = _mcse_share(out["coverage"], out["n"])
        out["se_ratio_pop"] = out["mean_se"] / out["sd_estimate"]
        out["coverage_pop_mcse"] = _mcse_share(out["coverage_pop"], out["n"])
        return out.drop(columns=["mse", "mse_sd"])

    simple = metrics(ok[ok["kind"] == "simple"], keys)
    fits = r[r["kind"] == "simple"]
    errs = fits.assign(e=(fits["status"] == "error").astype(int)).groupby(keys, sort=False)["e"].sum().rename("errors").reset_index()
    rt = fits.groupby(keys, sort=False)["runtime_s"].mean().rename("runtime_s").reset_index()
    simple = errs.merge(simple, on=keys, how="left").merge(rt, on=keys, how="left")
    simple["n"] = simple["n"].fillna(0).astype(int)
    cols = ["design", "outcome", "estimator", "n", "errors", "truth", "truth_sd", "bias", "bias_mcse", "rmse", "rmse_mcse", "sd", "mean_se", "se_ratio",
            "coverage", "coverage_mcse", "sd_estimate", "se_ratio_pop", "coverage_pop", "coverage_pop_mcse", "runtime_s"]
    simple = simple[cols]
    ev = ok[ok["kind"] == "event"]
    event = metrics(ev, [*keys, "event_time"])
    evc = ev.assign(pw=((ev["conf_low"] <= ev["truth"]) & (ev["truth"] <= ev["conf_high"])).astype(float),
                    un=((ev["band_low"] <= ev["truth"]) & (ev["truth"] <= ev["band_high"])).astype(float).where(ev["band_low"].notna()))
    per_rep = evc.dropna(subset=["truth"]).groupby([*keys, "replication"], sort=False).agg(pw=("pw", "mean"), un=("un", "min"), k=("pw", "size")).reset_index()
    bands = per_rep.groupby(keys, sort=False).agg(n=("pw", "size"), event_times=("k", "max"), pointwise=("pw", "mean"), uniform=("un", "mean")).reset_index()
    bands["uniform_mcse"] = _mcse_share(bands["uniform"], bands["n"])
    bands["pointwise_mcse"] = per_rep.groupby(keys, sort=False)["pw"].std().to_numpy() / np.sqrt(bands["n"])
    pt = ok[(ok["kind"] == "pretrend")].dropna(subset=["p_value"])
    pre = pt.assign(rej=(pt["p_value"] < alpha).astype(float)).groupby(keys, sort=False)
    pre = pre.agg(n=("rej", "size"), rejection=("rej", "mean"), mean_df=("df", "mean")).reset_index()
    pre["rejection_mcse"] = _mcse_share(pre["rejection"], pre["n"])
    pt_all = summarize_parallel_trends(parallel_trends)
    pts = pt_all["designs"]
    holds = dict(zip(pts["design"], pts["pre_holds"]))
    measured = pre["design"].map(lambda d: "not measured" if pd.isna(holds.get(d, pd.NA)) else ("hold" if holds[d] else "fail"))
    pre["pre_trends"] = measured
    pre["role"] = [("size" if m == "hold" else "power") if m != "not measured" else f"{roles.get(d, 'size')} (assumed)"
                   for d, m in zip(pre["design"], measured)]
    errors = r[r["status"] == "error"].drop_duplicates(["design", "replication", "outcome", "estimator"])
    errors = errors[["design", "replication", "outcome", "estimator", "error", "seed", "world_seed"]]
    return {"simple": simple, "event": event, "bands": bands, "pretrend": pre, "parallel_trends": pts, "parallel_gaps": pt_all["gaps"],
            "errors": errors.reset_index(drop=True)}


def coverage_table(summary: Mapping[str, pd.DataFrame], *, design: str | None = None, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One readable table: per design, outcome and estimator the headline numbers (MC s.e. in parentheses)."""
    from analysis.effects import ESTIMATOR_LABELS

    labels = labels or ESTIMATOR_LABELS
    s = summary["simple"]
    b = summary["bands"][["design", "outcome", "estimator", "pointwise", "uniform", "uniform_mcse"]]
    p = summary["pretrend"][["design", "outcome", "estimator", "rejection", "rejection_mcse", "role"]]
    t = s.merge(b, on=["design", "outcome", "estimator"], how="left").merge(p, on=["design", "outcome", "estimator"], how="left")
    if design is not None:
        t = t[t["design"] == design]
    f3 = lambda v: "" if pd.isna(v) else f"{v:.3f}"
    out = pd.DataFrame({
        "design": t["design"],
        "outcome": t["outcome"],
        "estimator": t["estimator"].map(lambda e: labels.get(e, e)),
        "R": t["n"],
        "bias (MC s.e.)": [f"{f3(a)} ({f3(m)})" for a, m in zip(t["bias"], t["bias_mcse"])],
        "RMSE": t["rmse"].map(f3),
        "s.e. / s.d.": t["se_ratio"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
        "coverage 95 % CI (MC s.e.)": [f"{f3(a)} ({f3(m)})" for a, m in zip(t["coverage"], t["coverage_mcse"])],
        "coverage of the population ATT": t["coverage_pop"].map(f3),
        "event-time coverage, pointwise": t["pointwise"].map(f3),
        "uniform band coverage (MC s.e.)": [f"{f3(a)} ({f3(m)})" for a, m in zip(t["uniform"], t["uniform_mcse"])],
        "pre-test rejection at 5 % (MC s.e.)": [f"{f3(a)} ({f3(m)}) {r}" if pd.notna(a) else ""
                                                 for a, m, r in zip(t["rejection"], t["rejection_mcse"], t["role"])],
        "errors": t["errors"],
        "seconds": t["runtime_s"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
    })
    return out.reset_index(drop=True)


def acceptance(summary: Mapping[str, pd.DataFrame], *, design: str = "clean", estimators: Sequence[str] = ("cs_dr", "sunab", "imputation"),
               band: tuple[float, float] = (0.93, 0.97)) -> pd.DataFrame:
    """The issue's acceptance check: coverage of the overall ATT's 95 % CI within ``band`` in ``design``.

    One row per outcome and estimator with ``R``, ``coverage``, its MC s.e. and ``within`` (bool).
    """
    s = summary["simple"]
    t = s[(s["design"] == design) & s["estimator"].isin(estimators)][["outcome", "estimator", "n", "coverage", "coverage_mcse"]].copy()
    t["within"] = t["coverage"].between(*band)
    return t.rename(columns={"n": "R"}).reset_index(drop=True)


#: the designs that separate the two features of the default world that imputation's model of Y(0)
#: does not fit: certification by MIIT's rule (on cells' output in the year before the
#: announcement) or at random, and firm entry and exit (exit on low productivity) or almost none
MECHANISM_DESIGNS: dict[str, tuple[str, str]] = {
    "clean": ("by rule (output level and growth)", "entry and exit"),
    "balanced": ("by rule (output level and growth)", "no exit, 1 % entry"),
    "random_certification": ("at random", "entry and exit"),
    "random_no_turnover": ("at random", "no exit, 1 % entry"),
}


def bias_by_mechanism(summary: Mapping[str, pd.DataFrame], *, estimators: Sequence[str] = ("imputation", "cs_dr"),
                      outcome: str = "tfp_true", designs: Mapping[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """Bias by event time (and of the overall ATT) in the designs of :data:`MECHANISM_DESIGNS`.

    One row per design and estimator (designs without stored results are left out), with the
    certification rule, the panel's turnover and, per column ``e = 0, 1, ...`` and ``overall``,
    ``"bias (MC s.e.)"``; ``R`` is the number of replications. This is the table the validation
    report uses to say where imputation's bias on the clean design comes from.

    Examples
    --------
    >>> rows = pd.DataFrame({"design": "clean", "replication": [0, 1], "outcome": "tfp_true", "estimator": "imputation",
    ...                      "kind": "simple", "estimate": [0.11, 0.13], "truth": 0.1, "std_error": 0.01, "conf_low": 0.0,
    ...                      "conf_high": 1.0, "status": "ok", "runtime_s": 1.0}).reindex(columns=list(RESULT_COLUMNS))
    >>> bias_by_mechanism(summarize(rows))[["design", "R", "overall"]].values.tolist()
    [['clean', 2, '0.0200 (0.0100)']]
    """
    designs = dict(designs or MECHANISM_DESIGNS)
    s, ev = summary["simple"], summary["event"]
    f4 = lambda b, m: "" if pd.isna(b) else f"{b:.4f} ({m:.4f})"  # noqa: E731
    rows = []
    for d, (rule, turnover) in designs.items():
        for est in estimators:
            sim = s[(s["design"] == d) & (s["outcome"] == outcome) & (s["estimator"] == est) & (s["n"] > 0)]
            if sim.empty:
                continue
            row = {"design": d, "certification": rule, "panel": turnover, "estimator": _label(est), "R": int(sim["n"].iloc[0])}
            e = ev[(ev["design"] == d) & (ev["outcome"] == outcome) & (ev["estimator"] == est)].sort_values("event_time")
            for r in e.itertuples():
                row[f"e = {int(r.event_time)}"] = f4(r.bias, r.bias_mcse)
            row["overall"] = f4(sim["bias"].iloc[0], sim["bias_mcse"].iloc[0])
            rows.append(row)
    return pd.DataFrame(rows)


def stored_decomposition(spec: Mapping[str, Any], store: str | Path | None = None) -> pd.DataFrame | None:
    """The stored :func:`run_imputation_decomposition` results of the store, or ``None``."""
    path = _resolve_store(store if store is not None else spec["store"]) / "imputation_decomposition.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def imputation_note(summary: Mapping[str, pd.DataFrame], decomposition: pd.DataFrame | None = None, *, design: str = "clean",
                    outcome: str = "tfp_true", band: tuple[float, float] = (0.93, 0.97)) -> str:
    """The validation report's paragraph on imputation in ``design``, with the numbers of ``summary``.

    Says whether its coverage is within ``band``, whether the shortfall is bias or standard
    errors, why the default world biases it (and not Callaway-Sant'Anna), what the designs of
    :data:`MECHANISM_DESIGNS` show, and, with ``decomposition`` (:func:`stored_decomposition`), how
    much of the overall ATT's bias is composition and how much the model of Y(0). Empty string if
    the summary has no imputation results for ``design``.
    """
    s, ev = summary["simple"], summary["event"]
    row = s[(s["design"] == design) & (s["outcome"] == outcome) & (s["estimator"] == "imputation") & (s["n"] > 0)]
    if row.empty:
        return ""
    r = row.iloc[0]
    e = ev[(ev["design"] == design) & (ev["outcome"] == outcome) & (ev["estimator"] == "imputation")].sort_values("event_time")
    f = lambda v, m: f"{v:+.4f} ({m:.4f})" if m >= 5e-5 else f"{v:+.4f} (MC s.e. below 0.0001)"  # noqa: E731
    within = band[0] <= r["coverage"] <= band[1]

    def cover(bias: float) -> float:
        from scipy import stats

        h = 1.96 * r["mean_se"]
        return float(stats.norm.cdf((h - bias) / r["sd"]) - stats.norm.cdf((-h - bias) / r["sd"]))

    by_e = ", ".join(f"{f(x.bias, x.bias_mcse)} at e = {int(x.event_time)}" for x in e.itertuples())
    text = [
        f"**Imputation on the `{design}` design.** Its 95 % intervals cover the true ATT in {r['coverage']:.3f} "
        f"(MC s.e. {r['coverage_mcse']:.3f}) of {int(r['n'])} worlds, {'within' if within else 'outside'} the band "
        f"[{band[0]:.2f}, {band[1]:.2f}]. Its bias (MC s.e.) is {f(r['bias'], r['bias_mcse'])} overall, {by_e}; "
        f"its mean standard error is {r['se_ratio']:.2f} times the spread of its estimates. A normal approximation "
        f"(estimates normal with that bias and spread, intervals of +/- 1.96 mean standard errors) puts coverage at "
        f"{cover(r['bias']):.3f} with the bias and at {cover(0.0):.3f} without it: "
        f"{'most of the shortfall is the bias' if cover(0.0) - cover(r['bias']) > 0.95 - cover(0.0) else 'the standard errors matter as much as the bias'}. "
        "The arithmetic is not the cause: on these worlds its estimates equal diff-diff's `ImputationDiD` to 1e-10 "
        "(`tests/test_imputation.py`).",
        "The bias is a property of the design. Imputation fits Y(0) = firm effect + year effect on every untreated firm-year "
        "(the never-treated firms' years after certification included) and extrapolates it to each treated firm-year, so it "
        "needs parallel trends in every year and untreated firm-years that are not selected on the shocks to TFP; "
        "Callaway-Sant'Anna needs parallel trends only from the year before certification to each later year, for the same "
        "firms on both sides. The default world breaks imputation's assumption twice: (1) MIIT's rule certifies cells on "
        "their output in the last full year before the announcement (the largest, not the slowest-growing), and log TFP has "
        "a persistent shock (AR(1), rho = 0.7), so certified cells' TFP is not on the never-treated path in every year before "
        "certification (measured in the parallel-trends section); (2) firms exit when their TFP is low and enter with fresh "
        "draws, so untreated firm-years are a "
        "selected sample that changes from year to year.",
    ]
    pre = summary["pretrend"]
    here = pre[(pre["design"] == design) & (pre["outcome"] == outcome)]
    rnd = pre[(pre["design"] == "random_certification") & (pre["outcome"] == outcome)]
    if len(here):
        rng_ = lambda t: f"{t['rejection'].min():.2f} to {t['rejection'].max():.2f}"  # noqa: E731
        text.append(
            f"The selection shows before certification: the reports' pre-trend test rejects at 5 % in {rng_(here)} of the "
            f"`{design}` worlds, depending on the estimator"
            + (f", against {rng_(rnd)} with certification at random (`random_certification`, R = {int(rnd['n'].max())})" if len(rnd) else "")
            + ". Callaway-Sant'Anna's post-treatment comparisons start from the year before certification and stay close to "
            "the truth; imputation's firm effects average all pre-treatment years, which that selection has moved."
        )
    mech = []
    for d, (rule, turnover) in MECHANISM_DESIGNS.items():
        if d == design:
            continue
        m = ev[(ev["design"] == d) & (ev["outcome"] == outcome) & (ev["estimator"] == "imputation")].sort_values("event_time")
        if len(m):
            mech.append(f"certification {rule}, {turnover} (`{d}`, R = {int(m['n'].iloc[0])}): "
                        + ", ".join(f"{f(x.bias, x.bias_mcse)} at e = {int(x.event_time)}" for x in m.itertuples()))
    if mech:
        text.append("Bias by event time where one or both features are switched off: " + "; ".join(mech) + ".")
    if decomposition is not None:
        dsum = summarize_decomposition(decomposition)
        o = dsum[(dsum["design"] == design) & (dsum["aggregate"] == "overall")]
        if len(o):
            o = o.iloc[0]
            text.append(
                f"Over {int(o['R'])} of these worlds the error splits exactly (`analysis.montecarlo.imputation_decomposition`): "
                f"imputation averages {o['imputed_share']:.0%} of the certified firm-years (firms that enter a certified cell "
                "after certification have no untreated year), which moves the overall ATT by "
                f"{f(o['composition'], o['composition_mcse'])} against the truth over all of them, and its model of Y(0) errs by "
                f"{f(o['y0_error'], o['y0_error_mcse'])} (its estimate on the untreated potential outcome, whose truth is 0)."
            )
        parts = []
        for d, (rule, turnover) in MECHANISM_DESIGNS.items():
            m = dsum[(dsum["design"] == d) & (dsum["aggregate"] != "overall")]
            if len(m):
                parts.append(f"certification {rule}, {turnover} (`{d}`, R = {int(m['R'].iloc[0])}): "
                             + ", ".join(f"{f(x.y0_error, x.y0_error_mcse)} at {x.aggregate}" for x in m.itertuples()))
        if parts:
            text.append("The error of the model of Y(0) by event time, design by design: " + "; ".join(parts) + ".")
    return "\n\n".join(text)


def parallel_trends_table(summary: Mapping[str, pd.DataFrame], spec: Mapping[str, Any] | None = None, *, outcome: str = "tfp_true") -> pd.DataFrame:
    """Per design: does parallel trends hold, measured on the untreated outcome, and what the pre-test rejects.

    One row per design with a measurement (``summary["parallel_gaps"]``, from
    :func:`stored_parallel_trends` passed to :func:`summarize`): ``R`` (worlds measured), the mean
    true gap of Y(0) at each event time ``e = ...`` (:func:`untreated_trend_gap`, cohorts pooled,
    base year ``e = -1``; MC s.e. in parentheses), ``pre-treatment`` and ``post-treatment``
    (``holds`` when every mean gap is within 3 MC s.e. of zero, else ``fails``), and the range over
    the estimators of the pre-test's rejection rate at 5 % with the label it gets (``size`` only
    where the pre-treatment gap holds). Designs of ``spec`` first, in its order, then the
    :data:`CERTIFICATION_RULES` variants.

    Examples
    --------
    >>> gaps = pd.DataFrame({"design": "d", "replication": [0, 1, 0, 1], "cohort": 0, "event_time": [-2.0, -2.0, -1.0, -1.0],
    ...                      "gap": [0.03, 0.04, 0.0, 0.0], "n_treated": 10, "n_control": 20})
    >>> rows = pd.DataFrame({"design": "d", "replication": [0, 1], "outcome": "tfp_true", "estimator": "cs_dr", "kind": "pretrend",
    ...                      "p_value": [0.01, 0.2], "df": 3.0, "status": "ok"}).reindex(columns=list(RESULT_COLUMNS))
    >>> t = parallel_trends_table(summarize(rows, parallel_trends=gaps))
    >>> t[["design", "e = -2", "pre-treatment", "pre-test rejects at 5 %"]].values.tolist()
    [['d', '+0.0350 (0.0050)', 'fails', '0.50 (power)']]
    """
    gaps, verdict = summary.get("parallel_gaps"), summary.get("parallel_trends")
    if gaps is None or gaps.empty:
        return pd.DataFrame()
    pre = summary["pretrend"]
    pre = pre[pre["outcome"] == outcome]
    order = list((spec or {}).get("designs", {})) + [d for d in CERTIFICATION_RULES if d != "clean"]
    names = sorted(set(gaps["design"]), key=lambda d: (order.index(d) if d in order else len(order), d))
    rows = []
    for d in names:
        g = gaps[gaps["design"] == d].sort_values("event_time")
        v = verdict[verdict["design"] == d].iloc[0]
        row: dict[str, Any] = {"design": d, "R": int(g["R"].max())}
        for x in g.itertuples():
            row[f"e = {int(x.event_time)}"] = f"{x.gap:+.4f} ({x.gap_mcse:.4f})"
        for part in ("pre", "post"):
            h = v[f"{part}_holds"]
            row[f"{part}-treatment"] = "" if pd.isna(h) else ("holds" if h else "fails")
        p = pre[pre["design"] == d]
        row["pre-test rejects at 5 %"] = "" if p.empty else (
            (f"{p['rejection'].min():.2f}" if p["rejection"].min() == p["rejection"].max() else f"{p['rejection'].min():.2f} to {p['rejection'].max():.2f}")
            + f" ({p['role'].iloc[0]})")
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def _verdict(value: Any) -> bool | None:
    return None if value is None or pd.isna(value) else bool(value)


def parallel_trends_note(summary: Mapping[str, pd.DataFrame], *, design: str = "clean", outcome: str = "tfp_true") -> str:
    """The report's paragraph on whether parallel trends hold in ``design`` and which certification rule breaks them.

    Uses the measured gaps of :func:`summarize` (``parallel_gaps``; empty string without them), the
    :data:`CERTIFICATION_RULES` variants and the ``balanced`` design (no exit) when they were measured.
    """
    gaps, verdict = summary.get("parallel_gaps"), summary.get("parallel_trends")
    if gaps is None or gaps.empty or design not in set(gaps["design"]):
        return ""
    f = lambda x: f"{x.gap:+.4f} ({x.gap_mcse:.4f})"  # noqa: E731
    g = gaps[gaps["design"] == design].sort_values("event_time")
    v = verdict[verdict["design"] == design].iloc[0]
    pre_ok, post_ok = _verdict(v["pre_holds"]), _verdict(v["post_holds"])
    pre_g, post_g = g[g["event_time"] < -1], g[g["event_time"] >= 0]
    pre = summary["pretrend"]
    here = pre[(pre["design"] == design) & (pre["outcome"] == outcome)]
    earliest = pre_g.iloc[0] if len(pre_g) else None
    text = [
        f"**Parallel trends in the `{design}` design, measured.** Over {int(g['R'].max())} of its worlds the true untreated log TFP "
        "(the world's TFP without the effect) of the firms of to-be-certified cells, relative to the year before certification and "
        "against the never-treated firms, averages "
        + ", ".join(f"{f(x)} at e = {int(x.event_time)}" for x in pre_g.itertuples())
        + " before certification and " + ", ".join(f"{f(x)} at e = {int(x.event_time)}" for x in post_g.itertuples())
        + " after (MC s.e. in parentheses; `analysis.montecarlo.untreated_trend_gap`). "
    ]
    if pre_ok is False and earliest is not None:
        text[0] += ("So parallel trends **fail before certification**: the certified cells' untreated TFP "
                    + ("rises faster" if earliest["gap"] < 0 else "falls faster")
                    + f" than the never-treated firms' in the years before certification (by {abs(earliest['gap']):.4f} from e = "
                    f"{int(earliest['event_time'])} to e = -1). ")
    elif pre_ok:
        text[0] += "So parallel trends hold before certification (every pre-treatment gap within 3 MC s.e. of zero). "
    if post_ok is True:
        text[0] += ("After certification the gaps are within 3 MC s.e. of zero: the comparisons Callaway-Sant'Anna makes (from the "
                    "year before certification to each later year) are close to parallel.")
    elif post_ok is False:
        text[0] += "After certification the gaps are not zero either: the post-treatment comparisons are not parallel."
    if len(here) and pre_ok is False:
        text.append(
            f"The pre-trend test's rejection rate in this design ({here['rejection'].min():.2f} to {here['rejection'].max():.2f} at 5 %, "
            "depending on the estimator) is therefore its **power against this selection, not its size**; the tables label it so. "
            "Its size is measured where the pre-treatment gap is zero (the designs labelled *size*).")
    rules = [d for d in CERTIFICATION_RULES if d != "clean" and d in set(gaps["design"])]
    if design == "clean" and rules and earliest is not None:
        e0 = earliest["event_time"]
        at = {d: gaps[(gaps["design"] == d) & (gaps["event_time"] == e0)] for d in ["clean", *rules, "balanced"]}
        at = {d: x.iloc[0] for d, x in at.items() if len(x)}
        parts = [f"{CERTIFICATION_RULES[d][0]}: {f(at[d])}" for d in ["clean", *rules] if d in at]
        text.append(
            f"Which rule creates it: the gap at e = {int(e0)} in the same worlds with the certification rules of `analysis.simulate` "
            "switched off or kept alone (`analysis.montecarlo.CERTIFICATION_RULES`): " + "; ".join(parts) + ". "
            "The rules select cells on their output in the reference year (the last full year before the announcement) and on its "
            "growth over the three years before, so also on the transitory, persistent part of their firms' TFP (AR(1), rho = 0.7): "
            "the selected cells' TFP has risen into the selection, and reverts only slowly after it (the small negative gaps after "
            "certification)."
            + (f" Entry and exit are not the cause: without exit and with 1 % entry (`balanced`) the gap is {f(at['balanced'])}." if "balanced" in at else ""))
    return "\n\n".join(text)


def inference_target_note(summary: Mapping[str, pd.DataFrame], *, design: str = "dynamic", outcome: str = "tfp_true") -> str:
    """The report's paragraph on what the coverage of the overall ATT is measured against in ``design``.

    The truth of a world is its sample ATT; estimators whose standard errors target the population
    ATT (they include the variation of the cohort weights, or of the effects left in the residuals)
    over-cover it when effects differ strongly across cohorts. Says, with the numbers of
    ``summary["simple"]``, which estimators these are in ``design``. Empty string without the design.
    """
    s = summary["simple"]
    s = s[(s["design"] == design) & (s["outcome"] == outcome) & (s["n"] > 1)]
    if s.empty:
        return ""
    r0 = s.iloc[0]
    lines = []
    for x in s.itertuples():
        lines.append(f"{_label(x.estimator)}: s.e. / s.d. {x.se_ratio:.2f} against the world's truth, coverage {x.coverage:.3f}; "
                     f"s.e. / s.d. of the estimates {x.se_ratio_pop:.2f}, coverage of the population ATT {x.coverage_pop:.3f}")
    wide = s[s["se_ratio"] > 1.5]
    text = (
        f"**What coverage is measured against (`{design}`, R = {int(r0['n'])}).** The truth of each world is its own ATT: the mean true "
        "effect over the certified firm-years that world drew (the sample ATT). With effects that differ strongly across cohorts "
        f"it moves from world to world with the cohorts' sizes: its s.d. over these worlds is {r0['truth_sd']:.4f}, against a mean of "
        f"{r0['truth']:.4f}. Coverage in the tables is of the sample ATT; the column *coverage of the population ATT* counts the "
        "intervals that contain the mean truth over the design's worlds instead. " + "; ".join(lines) + "."
    )
    if len(wide):
        text += (
            " The standard errors of " + ", ".join(_label(e) for e in wide["estimator"]) + " are about twice the spread of their "
            "errors against the sample ATT but close to the spread of their estimates: they target the population ATT. "
            "Callaway-Sant'Anna's overall ATT weights the ATT(g,t) by estimated cohort shares and its influence function includes the "
            "estimation of those weights (R `did::aggte`'s extra term 'due to estimating the weights'; Callaway's `pte` package offers "
            "an aggregation without it, 'where the only randomness is coming from the outcomes (not from the group assignment)'); "
            "TWFE's cluster-robust variance includes the cohort and event-time heterogeneity its single coefficient leaves in the "
            "residuals. Neither is a bug, and both are conservative for the sample ATT; the event-time estimates, whose weights vary "
            "less (one cohort at the last event time), are much closer. Sun-Abraham's and imputation's standard errors condition on "
            "the realised cohort weights and target the sample ATT."
        )
    return text


def settings_against_study(spec: Mapping[str, Any], params: Mapping[str, Any]) -> pd.DataFrame:
    """The validation's DiD settings next to the parameter set's ``did`` section (what the reports run)."""
    rows = []
    for key in ("estimators", "cluster", "alpha", "window"):
        a, b = spec["did"].get(key), params.get("did", {}).get(key)
        rows.append({"setting": f"did.{key}", "validation": str(a), "study": str(b), "same": a == b})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def _label(e: str) -> str:
    from analysis.effects import ESTIMATOR_LABELS

    return ESTIMATOR_LABELS.get(e, e)


def plot_coverage(summary: Mapping[str, pd.DataFrame], *, outcome: str | None = None, ax=None, nominal: float = 0.95, band: tuple[float, float] = (0.93, 0.97)):
    """Coverage of the overall ATT's 95 % interval by design and estimator, with +/- 1.96 MC s.e."""
    import matplotlib.pyplot as plt

    s = summary["simple"].dropna(subset=["coverage"])
    if outcome is not None:
        s = s[s["outcome"] == outcome]
    designs = list(dict.fromkeys(s["design"] + " / " + s["outcome"]))
    ests = list(dict.fromkeys(s["estimator"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(designs) + 1.5))
    ax.axvspan(*band, color="0.9", zorder=0)
    ax.axvline(nominal, color="0.4", lw=0.8)
    for k, e in enumerate(ests):
        d = s[s["estimator"] == e]
        y = np.array([designs.index(a) for a in d["design"] + " / " + d["outcome"]]) + (k - (len(ests) - 1) / 2) * 0.12
        ax.errorbar(d["coverage"], y, xerr=1.96 * d["coverage_mcse"], fmt="o", ms=4, capsize=2, label=_label(e))
    ax.set_yticks(range(len(designs)), designs)
    ax.invert_yaxis()
    ax.set_xlabel("coverage of the 95 % CI of the overall ATT (+/- 1.96 MC s.e.)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.12 - 1.2 / max(len(designs), 1)), ncol=3, frameon=False)
    return ax


def plot_bias(summary: Mapping[str, pd.DataFrame], *, outcome: str | None = None, ax=None):
    """Bias of the overall ATT by design and estimator, with +/- 1.96 MC s.e."""
    import matplotlib.pyplot as plt

    s = summary["simple"].dropna(subset=["bias"])
    if outcome is not None:
        s = s[s["outcome"] == outcome]
    designs = list(dict.fromkeys(s["design"] + " / " + s["outcome"]))
    ests = list(dict.fromkeys(s["estimator"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(designs) + 1.5))
    ax.axvline(0, color="0.4", lw=0.8)
    for k, e in enumerate(ests):
        d = s[s["estimator"] == e]
        y = np.array([designs.index(a) for a in d["design"] + " / " + d["outcome"]]) + (k - (len(ests) - 1) / 2) * 0.12
        ax.errorbar(d["bias"], y, xerr=1.96 * d["bias_mcse"], fmt="o", ms=4, capsize=2, label=_label(e))
    ax.set_yticks(range(len(designs)), designs)
    ax.invert_yaxis()
    ax.set_xlabel("bias of the overall ATT, estimate - truth (+/- 1.96 MC s.e.)")
    return ax


def plot_event_bias(summary: Mapping[str, pd.DataFrame], design: str, outcome: str, *, ax=None):
    """Bias and coverage by event time in one design (left: bias with MC bands; right: coverage)."""
    import matplotlib.pyplot as plt

    ev = summary["event"]
    ev = ev[(ev["design"] == design) & (ev["outcome"] == outcome)]
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for e, d in ev.groupby("estimator", sort=False):
        ax[0].errorbar(d["event_time"], d["bias"], yerr=1.96 * d["bias_mcse"], marker="o", ms=3, capsize=2, label=_label(e))
        ax[1].errorbar(d["event_time"], d["coverage"], yerr=1.96 * d["coverage_mcse"], marker="o", ms=3, capsize=2, label=_label(e))
    ax[0].axhline(0, color="0.4", lw=0.8)
    ax[1].axhspan(0.93, 0.97, color="0.9", zorder=0)
    ax[0].set(xlabel="event time", ylabel="bias", title=f"{design}: bias by event time")
    ax[1].set(xlabel="event time", ylabel="coverage of pointwise 95 % CI", title=f"{design}: coverage by event time")
    ax[0].legend(fontsize=7, frameon=False)
    return ax


def plot_pretrend(summary: Mapping[str, pd.DataFrame], *, ax=None, alpha: float = 0.05):
    """Rejection rate of the pre-trend test at ``alpha`` by design and estimator (size or power)."""
    import matplotlib.pyplot as plt

    p = summary["pretrend"]
    rows = list(dict.fromkeys(p["design"] + " / " + p["outcome"] + " (" + p["role"] + ")"))
    ests = list(dict.fromkeys(p["estimator"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    ax.axvline(alpha, color="0.4", lw=0.8)
    for k, e in enumerate(ests):
        d = p[p["estimator"] == e]
        y = np.array([rows.index(a) for a in d["design"] + " / " + d["outcome"] + " (" + d["role"] + ")"]) + (k - (len(ests) - 1) / 2) * 0.12
        ax.errorbar(d["rejection"], y, xerr=1.96 * d["rejection_mcse"], fmt="o", ms=4, capsize=2, label=_label(e))
    ax.set_yticks(range(len(rows)), rows)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"rejection rate of the pre-trend test at {alpha:.0%} (+/- 1.96 MC s.e.)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.12 - 1.2 / max(len(rows), 1)), ncol=3, frameon=False)
    return ax


# ---------------------------------------------------------------------------------------------
# command line: make validation R=200
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.montecarlo -R 200 [--designs clean,dynamic] [--cluster slurm] [--workers 2]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m analysis.montecarlo", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="validation", help="specification in config/ (default: validation)")
    parser.add_argument("-R", "--replications", type=int, default=None, help="replications per design (default: the file's)")
    parser.add_argument("--designs", default="", help="comma-separated design names (default: all)")
    parser.add_argument("--store", default=None, help="results folder (default: the file's store)")
    parser.add_argument("--cluster", default=None, help="local | slurm | pbs | tcp://host:port (default: the file's engine)")
    parser.add_argument("--workers", type=int, default=None, help="local workers, or SLURM/PBS jobs")
    parser.add_argument("--retry-failed", action="store_true", help="recompute replications stored with an error")
    parser.add_argument("--decompose-imputation", action="store_true",
                        help="instead: split imputation's error into composition and Y(0)-model parts over R replications "
                             "of the designs (default: the mechanism designs); writes <store>/imputation_decomposition.parquet")
    parser.add_argument("--parallel-trends", action="store_true",
                        help="instead: measure each design's true untreated pre-trend gap over R worlds (default 100; only the "
                             "simulator runs) and which certification rule creates it; writes <store>/parallel_trends.parquet")
    args = parser.parse_args(argv)
    try:
        spec = load_validation(args.spec)
        engine = dict(spec["engine"])
        if args.cluster:
            engine["cluster"] = args.cluster
        if args.parallel_trends:
            path = run_parallel_trends(spec, replications=args.replications or 100, designs=[d for d in args.designs.split(",") if d] or None,
                                       rules=not args.designs, store=args.store, engine=engine, n_workers=args.workers)
            print(f"wrote {path}")
            return 0
        if args.decompose_imputation:
            path = run_imputation_decomposition(spec, replications=args.replications or 100, designs=[d for d in args.designs.split(",") if d] or None,
                                                store=args.store, engine=engine, n_workers=args.workers)
            print(f"wrote {path}")
            return 0
        report = run_validation(spec, replications=args.replications, designs=[d for d in args.designs.split(",") if d] or None,
                                store=args.store, engine=engine, n_workers=args.workers, retry_failed=args.retry_failed)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---------------------------------------------------------------------------------------------
# what notebooks/07_validation.ipynb shows
# ---------------------------------------------------------------------------------------------
def report_inputs(config: str, spec_name: str) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame, str, dict[str, pd.DataFrame]]:
    """Everything the validation report reads: the parameter set, the specification, the results and their summary.

    Parameters
    ----------
    config : str
        The parameter set (``config/<config>.yaml``).
    spec_name : str
        The Monte Carlo specification (:func:`load_validation`).

    Returns
    -------
    (params, spec, results, source, summary)
        ``source`` says which results were used (:func:`results_for_report`), ``summary`` is
        :func:`summarize` of them.
    """
    from analysis.config import load_params, processed_dir

    params = load_params(config)
    spec = load_validation(spec_name)
    results, source = results_for_report(spec, tiny_store=processed_dir(config) / "validation_tiny")
    return params, spec, results, source, summarize(results, spec, stored_parallel_trends(spec))


def event_bias_figure(summary: Mapping[str, pd.DataFrame], design: str, outcome: str):
    """:func:`plot_event_bias` on a new figure, or ``None`` if the summary lacks that design."""
    import matplotlib.pyplot as plt

    if design not in set(summary["event"]["design"]):
        return None
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    plot_event_bias(summary, design, outcome, ax=ax)
    fig.tight_layout()
    return fig


def pretrend_figure(summary: Mapping[str, pd.DataFrame]):
    """:func:`plot_pretrend` on a new figure sized to the number of (design, outcome) rows."""
    import matplotlib.pyplot as plt

    pre = summary["pretrend"]
    fig, ax = plt.subplots(figsize=(9, 0.42 * pre[["design", "outcome"]].drop_duplicates().shape[0] + 2))
    plot_pretrend(summary, ax=ax)
    fig.tight_layout()
    return fig
