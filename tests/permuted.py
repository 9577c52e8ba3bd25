"""Null worlds for size and coverage: one synthetic world, cohorts permuted across its cells.

Parallel trends hold by construction when certification is re-assigned at random: every firm
keeps its untreated potential outcome ``Y(0)`` (the world's ``potential`` table for members of
certified cells, the observed outcome for the others), and the cohorts are drawn anew for
every replication by the design's own rule (``analysis.simulate``: ``per_batch`` cells a
batch, at most ``max_per_province`` a province, among cells large enough to be candidates).
Every true effect is then zero, so a test of zero leads has its nominal size and an interval
covers zero with its nominal probability if and only if the inference is right. One world
(about 4 s) serves hundreds of replications (each one a relabelling).

``NULL_WORLD`` is the world of the size study: 6,000 firms in the first year (13,500 over the
panel), 150 counties, 12 certified cells a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.panel import add_outcomes
from analysis.simulate import simulate_world

NULL_WORLD = {"world": {"n_firms": 6000, "n_counties": 150, "certification": {"per_batch": 12}}}
OUTCOMES = ("log_value_added", "log_so2_intensity", "log1p_patents")
COHORTS = (2023, 2024, 2025)


@dataclass
class NullWorld:
    """A panel with every firm at ``Y(0)`` and the cells that may be certified."""

    panel: pd.DataFrame
    candidates: pd.DataFrame  # index cell_id, columns n_firms, province


def null_world(params: dict | None = None, *, seed: int = 1, min_firms: int = 8) -> NullWorld:
    """Simulate ``params`` (default :data:`NULL_WORLD`) and put every firm-year at its untreated outcome.

    Candidate cells have at least ``min_firms`` firms over the panel (the world's own
    certification rule asks for 8 in the reference year).
    """
    world = simulate_world(params or NULL_WORLD, seed=seed)
    panel = add_outcomes(world.panel)
    pot = world.potential.set_index(["firm_id", "year"])
    idx = pd.MultiIndex.from_frame(panel[["firm_id", "year"]])
    member = idx.isin(pot.index)
    for col in OUTCOMES:
        y0 = pot[f"{col}_0"].reindex(idx[member]).to_numpy()
        values = panel[col].to_numpy(copy=True)
        values[member] = np.where(np.isnan(values[member]), np.nan, y0)
        panel[col] = values
    panel["cohort"] = 0
    cells = panel.groupby("cell_id").agg(n_firms=("firm_id", "nunique"), province=("province", "first"))
    return NullWorld(panel=panel, candidates=cells[cells["n_firms"] >= min_firms])


def permute_cohorts(world: NullWorld, rng: np.random.Generator, *, per_batch: int = 12, max_per_province: int = 8,
                    cohorts: tuple[int, ...] = COHORTS) -> pd.DataFrame:
    """The panel with cohorts drawn by the design's rule: ``per_batch`` candidate cells a cohort,
    at most ``max_per_province`` of them in one province, in random order."""
    order = world.candidates.index.to_numpy()[rng.permutation(len(world.candidates))]
    province = world.candidates["province"].reindex(order).to_numpy()
    taken: dict[int, int] = {}
    for g in cohorts:
        count: dict[str, int] = {}
        picked = 0
        for cell, prov in zip(order, province):
            if cell in taken or count.get(prov, 0) >= max_per_province:
                continue
            taken[cell] = g
            count[prov] = count.get(prov, 0) + 1
            picked += 1
            if picked == per_batch:
                break
    out = world.panel.copy()
    out["cohort"] = out["cell_id"].map(taken).fillna(0).astype(np.int64)
    return out


def null_study(world: NullWorld, estimators: tuple[str, ...], outcomes: tuple[str, ...], *, replications: int, seed: int = 0,
               window: tuple[int, int] = (-5, 2), n_boot: int = 399, cluster: str = "cell_id", progress: bool = False) -> pd.DataFrame:
    """Run the reports' estimators on ``replications`` permutations; one row per (replication, outcome, estimator, test or row).

    Columns: ``rep, outcome, estimator, kind`` (``"pretest"`` or ``"row"``), ``term``,
    ``event_time``, ``p_value`` (pre-tests: the reports' wild bootstrap; ``p_chi2``: the
    chi-squared test of the uncorrected covariance), ``covered`` (rows: the interval contains
    the true effect, zero), ``df``.
    """
    import warnings

    from tqdm.auto import tqdm

    from analysis.effects import pretrend_test, run_estimator

    rng = np.random.default_rng(seed)
    rows = []
    for rep in tqdm(range(replications), desc="permuted worlds", disable=not progress):
        panel = permute_cohorts(world, rng)
        for outcome in outcomes:
            data = panel.dropna(subset=[outcome])
            for est in estimators:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    es = run_estimator(est, data, outcome, cluster=cluster, window=window)["event"]
                    plain = run_estimator(est, data, outcome, cluster=cluster, window=window, small_sample=False)["event"]
                test = pretrend_test(es, n_boot=n_boot, seed=rep)
                chi2 = pretrend_test(plain, method="chi2")
                rows.append({"rep": rep, "outcome": outcome, "estimator": est, "kind": "pretest", "term": "", "event_time": np.nan,
                             "p_value": test.p_value, "p_chi2": chi2.p_value, "df": test.df, "covered": np.nan})
                t = es.tidy()
                cov = ((t["conf_low"] <= 0) & (t["conf_high"] >= 0)).astype(float)
                cov0 = ((plain.table["conf_low"] <= 0) & (plain.table["conf_high"] >= 0)).astype(float).to_numpy()
                for k in range(len(t)):
                    rows.append({"rep": rep, "outcome": outcome, "estimator": est, "kind": "row", "term": t["term"].iloc[k],
                                 "event_time": t["event_time"].iloc[k], "p_value": t["p_value"].iloc[k], "p_chi2": np.nan,
                                 "df": t["df"].iloc[k], "covered": cov.iloc[k], "covered_plain": cov0[k]})
    return pd.DataFrame(rows)


def pretrend_power(delta: float, seeds: range, *, outcome: str = "log_value_added", n_boot: int = 399,
                   params: dict | None = None) -> pd.DataFrame:
    """The reports' pre-test (Callaway-Sant'Anna, never-treated controls, report window) on worlds
    of the ``pretrend`` scenario: certified cells' TFP trends up by ``delta`` a year (``delta = 0``:
    the world's own selection of cells, no violation). One row per seed with the p-values of the
    reports' test and of the uncorrected chi-squared test."""
    import warnings

    from analysis.effects import pretrend_test, run_estimator

    base = params or NULL_WORLD
    rows = []
    for seed in seeds:
        world = {**base["world"], "scenario": {"pretrend": float(delta)}}
        panel = add_outcomes(simulate_world({"world": world}, seed=seed).panel).dropna(subset=[outcome])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            es = run_estimator("cs_dr", panel, outcome, cluster="cell_id")["event"]
            plain = run_estimator("cs_dr", panel, outcome, cluster="cell_id", small_sample=False)["event"]
        rows.append({"delta": delta, "seed": seed, "p_value": pretrend_test(es, n_boot=n_boot, seed=seed).p_value,
                     "p_chi2": pretrend_test(plain, method="chi2").p_value})
    return pd.DataFrame(rows)


def equality_study(world: NullWorld, *, replications: int, dimension: str = "region", outcome: str = "log_value_added",
                   seed: int = 0, cluster: str = "cell_id") -> pd.DataFrame:
    """The reports' test of equal effects across groups (``analysis.effects.heterogeneity``, main
    estimator, cs_dr) on permuted worlds, where every group's effect is zero. One row per replication with
    the p-values of Welch's test (the reports') and of the chi-squared test."""
    import warnings

    from analysis.effects import equality_test, heterogeneity

    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(replications):
        panel = permute_cohorts(world, rng).dropna(subset=[outcome]).reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tidy, tests = heterogeneity(panel, outcome, {dimension: panel[dimension]}, estimator="cs_dr", cluster=cluster)
        chi2 = equality_test(tidy["estimate"], tidy["std_error"])
        rows.append({"rep": rep, "groups": len(tidy), "p_value": float(tests["p_value"].iloc[0]), "p_chi2": chi2.p_value,
                     "method": tests["method"].iloc[0]})
    return pd.DataFrame(rows)


def band_study(world: NullWorld, *, replications: int, outcome: str = "log_value_added", n_boot: int = 499, seed: int = 0,
               window: tuple[int, int] = (-5, 2), cluster: str = "cell_id") -> pd.DataFrame:
    """The main estimator's uniform event-study band (Callaway-Sant'Anna with ``n_boot`` draws, as the
    reports draw it) on permuted worlds: one row per replication, ``covered`` if the band contains
    zero at every event time of the window."""
    import warnings

    from analysis.effects import run_estimator

    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(replications):
        panel = permute_cohorts(world, rng).dropna(subset=[outcome])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = run_estimator("cs_dr", panel, outcome, cluster=cluster, window=window, n_boot=n_boot, seed=rep)["event"].tidy()
        rows.append({"rep": rep, "covered": bool(((t["conf_low"] <= 0) & (t["conf_high"] >= 0)).all()),
                     "pointwise": float(((t["conf_low"] <= 0) & (t["conf_high"] >= 0)).mean())})
    return pd.DataFrame(rows)
