"""The effects study: every estimator on every outcome of a family, pre-trends, heterogeneity, truth.

``notebooks/04_effects.ipynb`` runs once per outcome family (``config/effects_<family>.yaml``)
and calls :func:`estimate_family`, which returns a :class:`FamilyEffects` of tidy frames: the
headline ATT of each outcome by estimator, event studies, ATT by cohort and by calendar year,
pre-trend tests, HonestDiD sensitivity, heterogeneity with tests of equal effects, and Poisson
pseudo-maximum-likelihood estimates for counts. On the synthetic world each frame can be put
next to the truth with :func:`attach_truth`. The summary page reads the saved frames, so every
number in every table comes from one place.

Estimators (names used in tidy frames and parameter files):

========== ==========================================================================
cs_dr      Callaway and Sant'Anna (2021), doubly robust, never-treated controls (main)
cs_notyet  Callaway and Sant'Anna (2021), doubly robust, not-yet-treated controls
sunab      Sun and Abraham (2021), interaction-weighted, never-treated controls
imputation Borusyak, Jaravel and Spiess (2024), imputation
stacked    stacked DiD with Wing, Freedman and Hollingsworth (2024) weights
twfe       two-way fixed effects (biased under staggered, heterogeneous, dynamic effects)
========== ==========================================================================

Examples
--------
>>> spec = load_family("productivity")
>>> spec["main"], [o["column"] for o in spec["outcomes"]][:2]
('tfp_acf', ['tfp_acf', 'tfp_lp'])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from analysis.config import CONFIG_DIR, INTERIM, ParameterError, processed_dir
from analysis.io import progress_options, write_parquet
from analysis.results import EstimationResult, check_tidy, tidy_frame, wide_table

__all__ = [
    "ESTIMATOR_LABELS",
    "FamilyEffects",
    "load_family",
    "run_estimator",
    "estimate_family",
    "pretrend_test",
    "equality_test",
    "heterogeneity",
    "count_effects",
    "attach_truth",
    "attach_truth_overall",
    "truth_by_group",
    "proportional_truth",
    "honest_sensitivity",
    "breakdown_value",
    "headline_table",
    "summary_table",
    "bias_summary",
    "save_family",
    "load_saved",
]

ESTIMATOR_LABELS: dict[str, str] = {
    "cs_dr": "Callaway-Sant'Anna (DR, never-treated)",
    "cs_notyet": "Callaway-Sant'Anna (DR, not-yet-treated)",
    "sunab": "Sun-Abraham",
    "imputation": "Imputation (BJS)",
    "stacked": "Stacked (WFH weights)",
    "twfe": "TWFE",
}
FAMILY_KEYS = {"family", "title", "question", "sample", "main", "outcomes", "counts"}
OUTCOME_KEYS = {"column", "label", "truth"}


def load_family(name: str, *, config_dir: Path | None = None) -> dict[str, Any]:
    """Read and check ``config/effects_<name>.yaml``, the specification of an outcome family.

    Raises
    ------
    ParameterError
        If the file is missing, has an unknown key, or its ``main`` outcome is not one of its outcomes.
    """
    import yaml

    path = (config_dir or CONFIG_DIR) / f"effects_{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem.removeprefix("effects_") for p in (config_dir or CONFIG_DIR).glob("effects_*.yaml"))
        raise ParameterError(f"{path} not found; outcome families: {have}")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - FAMILY_KEYS
    if unknown:
        raise ParameterError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(FAMILY_KEYS)}")
    spec.setdefault("counts", [])
    spec.setdefault("sample", None)
    for item in [*spec["outcomes"], *spec["counts"]]:
        bad = set(item) - OUTCOME_KEYS
        if bad or "column" not in item:
            raise ParameterError(f"{path}: each outcome needs 'column' and may have 'label', 'truth'; got {item}")
        item.setdefault("label", item["column"])
        item.setdefault("truth", None)
    if spec.get("main") not in [o["column"] for o in spec["outcomes"]]:
        raise ParameterError(f"{path}: main outcome {spec.get('main')!r} is not among its outcomes")
    return spec


def _check_columns(panel: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in panel.columns]
    if missing:
        raise KeyError(f"{what}: column(s) {missing} are not in the panel; it has {sorted(panel.columns)[:40]}...")


# ---------------------------------------------------------------------------------------------
# one estimator
# ---------------------------------------------------------------------------------------------
def run_estimator(
    name: str,
    data: pd.DataFrame,
    outcome: str,
    *,
    unit: str = "firm_id",
    time: str = "year",
    cohort: str = "cohort",
    cluster: str | None = "cell_id",
    window: tuple[int, int] = (-5, 2),
    alpha: float = 0.05,
    n_boot: int = 0,
    seed: int = 0,
) -> dict[str, EstimationResult]:
    """Run one estimator; return its overall ATT (``"simple"``) and event study (``"event"``).

    Stacked DiD uses the window ``[window[0], 0]``: it keeps only sub-experiments with a complete
    window, and with the data ending in the last cohort's first treated year a longer window
    would drop all but the first cohort. Its overall ATT is then the effect at impact.

    For the Callaway-Sant'Anna estimators also ``"group"`` (by cohort) and ``"calendar"``
    (by year), and the ``"att_gt"`` object itself. Every result's tidy ``estimator`` column
    carries ``name``.
    """
    with warnings.catch_warnings():
        # pyfixest warns about singleton fixed effects it drops; the estimators note the count in meta
        warnings.filterwarnings("ignore", message=".*singleton fixed effect.*")
        return _run_estimator(name, data, outcome, unit=unit, time=time, cohort=cohort, cluster=cluster, window=window, alpha=alpha, n_boot=n_boot, seed=seed)


def _run_estimator(name, data, outcome, *, unit, time, cohort, cluster, window, alpha, n_boot, seed) -> dict[str, EstimationResult]:
    common = dict(cluster=cluster, alpha=alpha)
    lo, hi = window
    out: dict[str, EstimationResult] = {}
    if name in ("cs_dr", "cs_notyet"):
        from analysis.did.att_gt import att_gt

        res = att_gt(data, outcome=outcome, unit=unit, time=time, cohort=cohort, control="never" if name == "cs_dr" else "notyet",
                     method="dr", n_boot=n_boot, seed=seed, **common)
        out["att_gt"] = res
        out["simple"] = res.aggregate("simple")
        out["event"] = res.aggregate("event", min_e=lo, max_e=hi)
        out["event"].meta["reference_period"] = None  # varying base: every pre-period is an estimate
        out["group"] = res.aggregate("group")
        out["calendar"] = res.aggregate("calendar")
    elif name == "sunab":
        from analysis.did.sunab import sunab

        out["simple"] = sunab(data, outcome, unit, time, cohort, aggregate="simple", **common)
        out["event"] = sunab(data, outcome, unit, time, cohort, aggregate="event", **common)
    elif name == "imputation":
        from analysis.did.imputation import imputation

        out["simple"] = imputation(data, outcome, unit, time, cohort, aggregate="simple", **common)
        out["event"] = imputation(data, outcome, unit, time, cohort, aggregate="event", horizons=list(range(0, hi + 1)), pretrends=-lo - 1, **common)
    elif name == "stacked":
        from analysis.did.stacked import stacked

        # WFH keep only sub-experiments with a complete event window; the last cohort is treated in
        # the last data year, so a window beyond event time 0 would drop every later cohort.
        kw = dict(kappa_pre=-lo, kappa_post=0, **common)
        out["simple"] = stacked(data, outcome, unit, time, cohort, aggregate="simple", **kw)
        out["event"] = stacked(data, outcome, unit, time, cohort, aggregate="event", **kw)
    elif name == "twfe":
        from analysis.did.twfe import twfe

        out["simple"] = twfe(data, outcome, unit, time, cohort, dynamic=False, **common)
        out["event"] = twfe(data, outcome, unit, time, cohort, dynamic=True, **common)
    else:
        raise ValueError(f"unknown estimator {name!r}; choose from {list(ESTIMATOR_LABELS)}")
    for key, res in out.items():
        if isinstance(res, EstimationResult):
            res.table["estimator"] = name
            if key == "event":
                keep = res.table["event_time"].between(lo, hi)
                res.table = res.table[keep].reset_index(drop=True)
                if res.vcov is not None:
                    terms = res.table["term"].tolist()
                    res.vcov = res.vcov.loc[terms, terms]
    return out


# ---------------------------------------------------------------------------------------------
# tests on results
# ---------------------------------------------------------------------------------------------
def pretrend_test(es: EstimationResult) -> dict[str, float]:
    """Joint Wald test that all pre-period event-time coefficients are zero.

    Uses the event study's covariance matrix (``es.vcov``); the normalised reference period
    (``es.meta["reference_period"]``, -1 unless it says ``None``), if present as a row, is left
    out. Returns ``{"stat", "df", "p_value"}`` (chi-squared).
    """
    t = es.table
    reference = es.meta.get("reference_period", -1)
    pre = t[(t["event_time"] < 0) & (t["event_time"] != reference)] if reference is not None else t[t["event_time"] < 0]
    if pre.empty or es.vcov is None:
        return {"stat": np.nan, "df": 0, "p_value": np.nan}
    b = pre["estimate"].to_numpy()
    V = es.vcov.loc[pre["term"], pre["term"]].to_numpy()
    stat = float(b @ np.linalg.pinv(V) @ b)
    df = int(np.linalg.matrix_rank(V))
    return {"stat": stat, "df": df, "p_value": float(stats.chi2.sf(stat, df))}


def equality_test(estimates: Sequence[float], std_errors: Sequence[float]) -> dict[str, float]:
    """Wald test of equal effects across groups estimated on disjoint samples.

    ``sum_g (b_g - b_bar)^2 / se_g^2`` with the precision-weighted mean ``b_bar``, chi-squared
    with (groups - 1) degrees of freedom. Treats the groups' estimates as independent: exact when
    the groups fall in different clusters (regions), approximate when a cluster holds firms of
    several groups (SME and large firms of one cell).

    Examples
    --------
    >>> round(equality_test([0.1, 0.1], [0.02, 0.03])["p_value"], 3)
    1.0
    """
    b, se = np.asarray(estimates, float), np.asarray(std_errors, float)
    ok = np.isfinite(b) & np.isfinite(se) & (se > 0)
    b, w = b[ok], 1 / se[ok] ** 2
    if b.size < 2:
        return {"stat": np.nan, "df": 0, "p_value": np.nan}
    bbar = np.sum(w * b) / np.sum(w)
    stat = float(np.sum(w * (b - bbar) ** 2))
    return {"stat": stat, "df": b.size - 1, "p_value": float(stats.chi2.sf(stat, b.size - 1))}


# ---------------------------------------------------------------------------------------------
# heterogeneity and counts
# ---------------------------------------------------------------------------------------------
def heterogeneity(
    data: pd.DataFrame,
    outcome: str,
    groups: Mapping[str, pd.Series],
    *,
    estimator: str = "cs_dr",
    **kwargs: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Overall ATT within subgroups (treated and controls of the same group), and tests of equality.

    Parameters
    ----------
    data
        The panel.
    outcome
        Outcome column.
    groups
        ``{dimension: Series of group labels aligned with data}``, e.g. baseline SME status.
    estimator
        Estimator name (see :func:`run_estimator`).

    Returns
    -------
    (tidy, tests)
        Tidy rows with ``dimension`` and ``group`` columns; one test row per dimension.
    """
    rows, tests = [], []
    for dim, labels in groups.items():
        part = []
        for g in sorted(labels.dropna().unique(), key=str):
            sub = data[(labels == g).to_numpy()]
            if sub.loc[sub["cohort"] > 0, "firm_id"].nunique() < 5:
                continue
            res = run_estimator(estimator, sub, outcome, **kwargs)["simple"].tidy()
            part.append(res.assign(dimension=dim, group=str(g)))
        if not part:
            continue
        frame = pd.concat(part, ignore_index=True)
        rows.append(frame)
        test = equality_test(frame["estimate"], frame["std_error"])
        tests.append({"dimension": dim, "groups": len(frame), **test})
    tidy = check_tidy(pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame()
    return tidy, pd.DataFrame(tests)


def _poisson_fit(fml: str, data: pd.DataFrame, cluster: str):
    import pyfixest as pf

    return pf.fepois(fml, data=data, vcov={"CRV1": cluster})


def count_effects(
    data: pd.DataFrame,
    outcome: str,
    *,
    unit: str = "firm_id",
    time: str = "year",
    cohort: str = "cohort",
    cluster: str = "cell_id",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Poisson pseudo-maximum likelihood for a count outcome with unit and time fixed effects.

    Two rows: ``ppml_twfe``, one coefficient on ``1[t >= cohort]``; and ``etwfe_poisson``,
    Wooldridge's (2023) extended TWFE Poisson with one coefficient per treated (cohort, year)
    cell, averaged with weights equal to the cells' treated observations (delta method for the
    standard error). Estimates are log ratios, ``log E[Y(1)] / E[Y(0)]``; ``percent`` is
    ``100 (exp(estimate) - 1)``. Counts with many zeros need this rather than log(1 + y) (whose
    ATT depends on the units of y; Chen and Roth 2024).
    """
    d = data[[unit, time, cohort, outcome, cluster]].dropna(subset=[outcome]).copy()
    g = d[cohort].fillna(0).astype(int)
    d["treated_post"] = ((g > 0) & (d[time] >= g)).astype(float)
    fit = _poisson_fit(f"{outcome} ~ treated_post | {unit} + {time}", d, cluster)
    b, se = float(fit.coef()["treated_post"]), float(fit.se()["treated_post"])
    rows = [tidy_frame([b], [se], term="ATT", outcome=outcome, estimator="ppml_twfe", n_obs=int(fit._N), alpha=alpha)]
    cells = d.loc[d["treated_post"] == 1, [cohort, time]].astype(int).drop_duplicates().sort_values([cohort, time])
    names = []
    for gg, tt in cells.itertuples(index=False):
        name = f"gt_{gg}_{tt}"
        d[name] = ((g == gg) & (d[time] == tt)).astype(float)
        names.append(name)
    fit2 = _poisson_fit(f"{outcome} ~ {' + '.join(names)} | {unit} + {time}", d, cluster)
    coef = fit2.coef().reindex(names)
    V = fit2._vcov
    idx = [list(fit2.coef().index).index(n) for n in names]
    w = np.array([d[n].sum() for n in names])
    w = w / w.sum()
    est = float(w @ coef.to_numpy())
    se2 = float(np.sqrt(w @ V[np.ix_(idx, idx)] @ w))
    rows.append(tidy_frame([est], [se2], term="ATT", outcome=outcome, estimator="etwfe_poisson", n_obs=int(fit2._N), alpha=alpha))
    out = check_tidy(pd.concat(rows, ignore_index=True))
    out["percent"] = 100 * np.expm1(out["estimate"])
    return out


# ---------------------------------------------------------------------------------------------
# the synthetic world's truth
# ---------------------------------------------------------------------------------------------
def attach_truth(tidy: pd.DataFrame, truth: pd.DataFrame | None, mapping: Mapping[str, str | None], aggregation: str) -> pd.DataFrame:
    """Add ``truth``, ``bias`` and ``covered`` (truth inside the confidence interval) columns.

    ``mapping`` maps outcome columns to outcomes of the world's truth table; ``aggregation`` is
    ``simple``, ``event``, ``group`` or ``calendar``. Without a truth table the frame is returned
    with empty columns.
    """
    out = tidy.copy()
    out["truth"] = np.nan
    if truth is not None:
        key = {"simple": [], "event": ["event_time"], "group": ["cohort"], "calendar": ["time"]}[aggregation]
        t = truth[truth["aggregation"] == aggregation]
        for col, name in mapping.items():
            if name is None:
                continue
            tt = t[t["outcome"] == name]
            rows = out["outcome"] == col
            if not key:
                out.loc[rows, "truth"] = float(tt["att"].iloc[0]) if len(tt) else np.nan
            else:
                lookup = tt.set_index(key[0])["att"]
                out.loc[rows, "truth"] = pd.to_numeric(out.loc[rows, key[0]], errors="coerce").map(lookup).astype(float)
    out["bias"] = out["estimate"] - out["truth"]
    out["covered"] = ((out["conf_low"] <= out["truth"]) & (out["truth"] <= out["conf_high"])).astype("boolean")
    out.loc[out["truth"].isna(), "covered"] = pd.NA
    return out


def attach_truth_overall(simple: pd.DataFrame, truth: pd.DataFrame | None, mapping: Mapping[str, str | None]) -> pd.DataFrame:
    """:func:`attach_truth` for overall ATTs, each compared with its own estimand.

    Every estimator targets the average effect over certified firm-years (``simple``), except
    stacked DiD, whose window ends at event time 0 here (see :func:`run_estimator`): its rows are
    compared with the true effect at impact.
    """
    out = attach_truth(simple, truth, mapping, "simple")
    stacked = (out["estimator"] == "stacked").to_numpy()
    if truth is not None and stacked.any():
        impact = attach_truth(simple.assign(event_time=0), truth, mapping, "event")
        out.loc[stacked, ["truth", "bias", "covered"]] = impact.loc[stacked, ["truth", "bias", "covered"]]
    return out


def truth_by_group(potential: pd.DataFrame, labels: pd.DataFrame, outcome: str, dimension: str) -> pd.Series:
    """True ATT (mean Y(1) - Y(0) over post-certification member firm-years) by group label.

    ``labels`` has ``firm_id``, ``year`` and the ``dimension`` column.
    """
    post = potential[potential["event_time"] >= 0]
    d = post.merge(labels[["firm_id", "year", dimension]], on=["firm_id", "year"], how="inner")
    d = d.dropna(subset=[f"{outcome}_1", f"{outcome}_0"])
    return (d[f"{outcome}_1"] - d[f"{outcome}_0"]).groupby(d[dimension].astype(str)).mean()


def proportional_truth(potential: pd.DataFrame, outcome: str) -> float:
    """True effect on a count as a log ratio: the treated-observation-weighted mean over (cohort, year)
    cells of ``log(sum Y(1) / sum Y(0))``, the estimand of the extended TWFE Poisson."""
    post = potential[potential["event_time"] >= 0]
    cell = post.groupby(["cohort", "year"]).agg(y1=(f"{outcome}_1", "sum"), y0=(f"{outcome}_0", "sum"), n=(f"{outcome}_1", "size"))
    cell = cell[(cell["y0"] > 0) & (cell["y1"] > 0)]
    return float(np.average(np.log(cell["y1"] / cell["y0"]), weights=cell["n"]))


# ---------------------------------------------------------------------------------------------
# the family
# ---------------------------------------------------------------------------------------------
@dataclass
class FamilyEffects:
    """All estimates of one outcome family, as tidy frames (see :func:`estimate_family`)."""

    family: str
    simple: pd.DataFrame
    event: pd.DataFrame
    group: pd.DataFrame
    calendar: pd.DataFrame
    pretrends: pd.DataFrame
    n_clusters: pd.DataFrame
    results: dict[tuple[str, str], dict[str, EstimationResult]] = field(default_factory=dict, repr=False)

    def frames(self) -> dict[str, pd.DataFrame]:
        """The tidy frames by name (what :func:`save_family` writes)."""
        return {k: getattr(self, k) for k in ("simple", "event", "group", "calendar", "pretrends", "n_clusters")}


def estimate_family(
    panel: pd.DataFrame,
    spec: Mapping[str, Any],
    did: Mapping[str, Any],
    *,
    seed: int = 0,
    progress: bool = True,
) -> FamilyEffects:
    """Run every estimator of ``did["estimators"]`` on every outcome of the family.

    Parameters
    ----------
    panel
        The panel (with TFP columns for the productivity family).
    spec
        The family, from :func:`load_family`.
    did
        The ``did`` section of the parameter set (``cluster``, ``alpha``, ``n_boot``,
        ``estimators``, ``window``).
    seed
        For the multiplier bootstrap of the main estimator.
    progress
        Show a progress bar over outcome x estimator fits.
    """
    outcomes = [o["column"] for o in spec["outcomes"]]
    _check_columns(panel, [*outcomes, "firm_id", "year", "cohort", did["cluster"]], f"effects family '{spec['family']}'")
    window = tuple(did["window"])
    fits = [(o, e) for o in outcomes for e in did["estimators"]]
    results: dict[tuple[str, str], dict[str, EstimationResult]] = {}
    bar = tqdm(fits, desc=f"{spec['family']}: estimators x outcomes", **progress_options(progress))
    for outcome, est in bar:
        bar.set_postfix_str(f"{est} on {outcome}")
        data = panel.dropna(subset=[outcome])
        n_boot = did["n_boot"] if est == "cs_dr" else 0
        results[(outcome, est)] = run_estimator(est, data, outcome, cluster=did["cluster"], window=window, alpha=did["alpha"], n_boot=n_boot, seed=seed)

    def stack(kind: str) -> pd.DataFrame:
        frames = [r[kind].tidy() for r in results.values() if kind in r]
        return check_tidy(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()

    pre = []
    clusters = []
    for (outcome, est), r in results.items():
        test = pretrend_test(r["event"])
        pre.append({"outcome": outcome, "estimator": est, **test})
        meta = r["simple"].meta
        clusters.append({"outcome": outcome, "estimator": est, "n_clusters": meta.get("n_clusters"), "n_obs": int(r["simple"].table["n_obs"].iloc[0])})
    return FamilyEffects(
        family=spec["family"],
        simple=stack("simple"),
        event=stack("event"),
        group=stack("group"),
        calendar=stack("calendar"),
        pretrends=pd.DataFrame(pre),
        n_clusters=pd.DataFrame(clusters),
        results=results,
    )


def honest_sensitivity(
    data: pd.DataFrame,
    outcome: str,
    did: Mapping[str, Any],
    *,
    restriction: str = "relative_magnitude",
    cache_dir: Path | None = INTERIM / "cache" / "honest_did",
) -> tuple[EstimationResult, pd.DataFrame]:
    """HonestDiD robust confidence sets for the first post-period effect of the main estimator.

    Follows Rambachan and Roth (2023) with Callaway-Sant'Anna: the event study uses a universal
    base period (event time -1), so pre-period coefficients are comparable placebos. ``M`` runs
    over ``did["honest_mbar"]`` (Mbar for relative magnitudes). Results are cached by input hash
    in ``cache_dir`` (``None``: no cache; see :func:`analysis.did.honest.honest_did`).
    """
    from analysis.did.event_study import event_study
    from analysis.did.honest import honest_did

    lo, hi = did["window"]
    es = event_study(data, outcome, "firm_id", "year", "cohort", estimator="cs", cluster=did["cluster"], base_period="universal", min_e=lo, max_e=hi)
    mbar = [m for m in did["honest_mbar"] if m > 0]
    sens = honest_did(es, restriction=restriction, M=mbar, alpha=did["alpha"], cache_dir=cache_dir).tidy()
    return es, sens


def breakdown_value(sens: pd.DataFrame) -> float:
    """The largest M up to which every robust confidence set excludes zero (the "breakdown" value).

    ``sens`` is the tidy frame of :func:`honest_sensitivity` (an ``original`` row with missing
    ``M`` and one row per M). Works for effects of either sign; ``nan`` if even the smallest M's
    set contains zero.

    Examples
    --------
    >>> s = pd.DataFrame({"M": [None, 0.5, 1.0, 2.0], "conf_low": [-0.3, -0.3, -0.35, -0.5], "conf_high": [-0.1, -0.05, -0.01, 0.1]})
    >>> breakdown_value(s)
    1.0
    """
    rows = sens[sens["M"].notna()].sort_values("M")
    excludes = ((rows["conf_low"] > 0) | (rows["conf_high"] < 0)).cummin()
    kept = rows.loc[excludes, "M"]
    return float(kept.max()) if len(kept) else float("nan")


def headline_table(simple: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Paper table of overall ATTs: estimators in rows, outcomes (labelled) in columns."""
    t = simple.copy()
    t["estimator"] = t["estimator"].map(lambda e: ESTIMATOR_LABELS.get(e, e))
    t["outcome"] = t["outcome"].map(lambda o: labels.get(o, o))
    return wide_table(t, rows="estimator", columns="outcome")


def summary_table(simple: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """All families' overall ATTs in one table: outcomes in rows, estimators in columns.

    Built with the same formatting as :func:`headline_table` from the same saved frames, so each
    cell equals the corresponding cell of a family's headline table.
    """
    t = simple.copy()
    t["estimator"] = t["estimator"].map(lambda e: ESTIMATOR_LABELS.get(e, e))
    t["outcome"] = t["outcome"].map(lambda o: labels.get(o, o))
    return wide_table(t, rows="outcome", columns="estimator", show_n=False)


def bias_summary(simple: pd.DataFrame) -> pd.DataFrame:
    """Per estimator, over outcomes with a known truth: mean bias, mean absolute bias, coverage."""
    d = simple.dropna(subset=["truth"])
    if d.empty:
        return pd.DataFrame(columns=["outcomes", "mean bias", "mean |bias|", "coverage of 95 % CI"])
    g = d.groupby("estimator", sort=False)
    out = pd.DataFrame({
        "outcomes": g.size(),
        "mean bias": g["bias"].mean(),
        "mean |bias|": g["bias"].apply(lambda b: b.abs().mean()),
        "coverage of 95 % CI": g["covered"].apply(lambda c: c.astype(float).mean()),
    })
    out.index = [ESTIMATOR_LABELS.get(e, e) for e in out.index]
    return out


def save_family(frames: Mapping[str, pd.DataFrame], config: str, family: str) -> Path:
    """Write a family's tidy frames to ``data/processed/<config>/results/effects_<family>/``."""
    folder = processed_dir(config) / "results" / f"effects_{family}"
    for name, frame in frames.items():
        if isinstance(frame, pd.DataFrame) and not frame.empty:
            write_parquet(frame.reset_index(drop=True), folder / f"{name}.parquet")
    return folder


def load_saved(config: str, family: str) -> dict[str, pd.DataFrame]:
    """Read what :func:`save_family` wrote."""
    folder = processed_dir(config) / "results" / f"effects_{family}"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist; run the effects report of family '{family}' first")
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
