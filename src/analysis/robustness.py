"""Robustness of the effects of certification: every check a referee asks for, on one outcome family.

``notebooks/06_robustness.ipynb`` runs once per outcome family (``config/effects_<family>.yaml``,
as the effects report) and calls :func:`run_robustness`, which returns a :class:`Robustness` of
tidy frames and results, all on the family's main outcome unless said otherwise:

inference
    wild cluster bootstrap p-values and confidence sets for the TWFE and imputation estimates
    (:func:`wild_bootstrap_table`); standard errors clustered at the cell, county, prefecture and
    province (:func:`clustering_table`); randomization inference reassigning certification as the
    design does (:func:`randomization_tests`).
design choices
    control groups, dropping the 2025 batch, the announcement-month rule, anticipation
    (:func:`design_choices`); placebo certification two or three years early (:func:`placebo_in_time`);
    spillovers to non-members of certified counties and to the same industry elsewhere in the
    prefecture (:func:`spillovers`); PSM-DID as the Chinese literature reports it, and entropy
    balancing and inverse probability weighting (:func:`matching_estimates`).
diagnostics
    Goodman-Bacon decomposition and de Chaisemartin-D'Haultfoeuille weights of TWFE
    (:func:`twfe_diagnostics`); HonestDiD for every outcome of the family with breakdown values, and
    the power of the pre-trend test against a linear violation (:func:`honest_family`).
specification curve
    every combination of estimator, comparison group, timing rule, sample and clustering level
    (:func:`specification_curve`).

:func:`summary_table` puts one row per check: what it tests, its result, and whether it changes the
conclusion. The conclusion is the sign and the significance at ``alpha`` of the main estimate
(Callaway-Sant'Anna, never-treated controls); a check changes it when its estimate has the other
sign or the other significance (for placebo estimates: when they are significant; for a significant
spillover estimate: when the main estimate without the exposed firms as controls changes; for
HonestDiD: when the breakdown value is below 1; for the specification curve: when more than 10 % of
the specifications differ).

Pre-trend and anticipation tests go through one adapter, :func:`pretrend_test`, which calls
:func:`analysis.did.pretrend.pretrend_test` as the effects reports do (the wild cluster bootstrap of the CR2 Wald statistic, the
correct-size test of the effects reports).

Examples
--------
>>> s = settings({"did": {"cluster": "cell_id", "alpha": 0.05, "window": [-5, 2]}, "robustness": {}, "seed": 1})
>>> s["alpha"], s["clusters"]["prefecture"]
(0.05, 'prefecture')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.io import progress_options
from analysis.results import EstimationResult, check_tidy, tidy_frame

__all__ = [
    "CHECKS",
    "DEFAULTS",
    "DESIGN_COLUMNS",
    "SPEC_COLUMNS",
    "add_geography",
    "announcement_dates",
    "assignment_design",
    "bacon_plot",
    "bacon_table",
    "balance_table",
    "breakdown_table",
    "bullet_notes",
    "clustering_table",
    "clustering_wide",
    "cohorts_for_late_month",
    "copy_spec",
    "dcdh_table",
    "design_choices",
    "design_table",
    "entropy_balance",
    "event_study_cs",
    "exposure_groups",
    "family_announcements",
    "fit_variant",
    "honest_family",
    "honest_figures",
    "honest_plot",
    "honest_sets",
    "honest_table",
    "main_estimates",
    "family_inputs",
    "kernel_match_weights",
    "panel_columns",
    "PANEL_COLUMNS",
    "matching_estimates",
    "matching_table",
    "opening_note",
    "placebo_in_time",
    "placebo_table",
    "pretrend_test",
    "pscore_plot",
    "randomization_tests",
    "require_family_inputs",
    "ri_figure",
    "ri_note",
    "ri_table",
    "Robustness",
    "run_family",
    "run_robustness",
    "save_robustness",
    "settings",
    "spec_curve_plot",
    "spec_figure",
    "spec_note",
    "spec_table",
    "specification_curve",
    "spillover_table",
    "spillovers",
    "summary_styler",
    "summary_table",
    "timings_table",
    "twfe_diagnostics",
    "twfe_figure",
    "variant",
    "wild_bootstrap_table",
    "wild_table",
]

#: settings of the ``robustness`` parameter section (config/default.yaml has the same keys)
DEFAULTS: dict[str, Any] = {
    "clusters": {"cell": "cell_id", "county": "county_code", "prefecture": "prefecture", "province": "province"},
    "wild_bootstrap": {"draws": 9999, "weights": ["rademacher", "webb"]},
    "ri": {"draws": 999, "within": "province", "min_cell_firms": 8, "eligible_share": 0.25, "max_per_province": 8, "engine": None},
    "late_months": [1, 10, 12],
    "anticipation": [1, 2],
    "placebo_shifts": [2, 3],
    "psm": {"covariates": ["log_output", "log_labor", "log_capital", "age"], "include_outcome": True, "caliper": 0.05, "bandwidth": 0.06},
    "honest": {"mbar": [0.5, 1, 1.5, 2], "m_se": [0.25, 0.5, 1, 2], "outcomes": "all", "extend_to": 8},
    "spec_curve": {
        "estimators": ["cs_dr", "cs_notyet", "imputation", "twfe"],
        "comparisons": ["all", "last_batch", "no_spillover"],
        "samples": ["all", "drop_last_batch"],
        "late_months": [1, 12],
        "clusters": ["cell", "county", "prefecture", "province"],
    },
}

#: the checks of the summary table, in order: (key, name, what it tests)
CHECKS: list[tuple[str, str, str]] = [
    ("wild", "Wild cluster bootstrap", "inference with few treated clusters: restricted wild bootstrap p-values and confidence sets (TWFE, imputation)"),
    ("clusters", "Clustering level", "standard errors clustered at the cell, county, prefecture and province"),
    ("ri", "Randomization inference", "how unusual the estimate is when certification is reassigned as the design assigns it (exact under the sharp null)"),
    ("control", "Control group", "never-treated, not-yet-treated and last-batch-only comparisons"),
    ("drop_last", "Dropping the last batch", "the last batch (certified after the data end) removed from the controls"),
    ("timing", "First-treated-year rule", "announcement-month cut-off for the first treated year varied"),
    ("anticipation", "Anticipation", "effects allowed to start one or two years before certification"),
    ("placebo", "Placebo in time", "certification pretended two or three years early, pre-treatment years only"),
    ("spill_county", "Spillovers: same county", "non-member firms of certified counties against firms far from any certified cluster"),
    ("spill_prefecture", "Spillovers: same industry, same prefecture", "same-industry firms in other counties of the prefecture against far firms"),
    ("no_exposed", "Without exposed controls", "the main estimate with only far firms (and later cohorts) as controls"),
    ("psm", "PSM-DID", "nearest-neighbour and kernel matching on pre-certification covariates, then DiD"),
    ("reweighting", "Entropy balancing and IPW", "reweighted controls (exact balance of baseline means) and inverse probability weighting"),
    ("bacon", "Goodman-Bacon decomposition", "the weight TWFE puts on comparisons with already-treated firms as controls"),
    ("dcdh", "Negative TWFE weights", "de Chaisemartin-D'Haultfoeuille weights of the treated observations in the TWFE estimate"),
    ("honest_rm", "HonestDiD: relative magnitudes", "post-treatment violations of parallel trends up to Mbar times the largest pre-treatment one"),
    ("honest_sd", "HonestDiD: smoothness", "differential trends whose slope changes by at most M a year"),
    ("power", "Power of the pre-trend test", "the linear pre-trend the pre-test detects half the time (Roth 2022) and the bias it implies"),
    ("spec", "Specification curve", "every combination of estimator, comparison group, timing rule, sample and clustering"),
]


def thinning_notes(s: Mapping[str, Any]) -> list[str]:
    """Sentences for the report when the parameter set runs fewer draws or outcomes than the defaults."""
    notes = []
    if int(s["wild_bootstrap"]["draws"]) < DEFAULTS["wild_bootstrap"]["draws"]:
        notes.append(f"wild bootstrap thinned to {int(s['wild_bootstrap']['draws'])} draws (default {DEFAULTS['wild_bootstrap']['draws']})")
    if int(s["ri"]["draws"]) < DEFAULTS["ri"]["draws"]:
        notes.append(f"randomization inference thinned to {int(s['ri']['draws'])} draws (default {DEFAULTS['ri']['draws']}): p-values are coarser")
    if s["honest"]["outcomes"] != "all":
        notes.append("HonestDiD relative magnitudes only for the main outcome (robustness.honest.outcomes: main); smoothness for every outcome")
    names = {"estimators": "estimators", "comparisons": "comparison groups", "samples": "samples",
             "late_months": "announcement-month cut-offs", "clusters": "clustering levels"}
    for dim, default in DEFAULTS["spec_curve"].items():
        left_out = [str(v) for v in default if v not in s["spec_curve"][dim]]
        if left_out:
            notes.append(f"specification curve without the {names.get(dim, dim)} {', '.join(left_out)} "
                         f"(robustness.spec_curve.{dim}; the default includes them)")
    return notes


def settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The robustness settings: ``params["robustness"]`` over :data:`DEFAULTS`, with ``alpha``, ``cluster``,
    ``window``, ``seed`` of the ``did`` section and the parameter set."""
    from analysis.config import deep_merge

    s = deep_merge(DEFAULTS, params.get("robustness") or {}, path="robustness")
    did = params["did"]
    s.update(alpha=float(did["alpha"]), cluster=did["cluster"], window=tuple(did["window"]), seed=int(params.get("seed", 0)),
             honest_mbar_main=list(did.get("honest_mbar", [])))
    from analysis.engine import check_engine

    check_engine(s["ri"]["engine"], "robustness.ri.engine")
    unknown = [k for k in s["spec_curve"]["clusters"] if k not in s["clusters"]]
    if unknown:
        from analysis.config import ParameterError

        raise ParameterError(f"robustness.spec_curve.clusters names level(s) {unknown} not in robustness.clusters {list(s['clusters'])}")
    return s


# ---------------------------------------------------------------------------------------------
# geography, timing and exposure
# ---------------------------------------------------------------------------------------------
def add_geography(panel: pd.DataFrame) -> pd.DataFrame:
    """Add ``prefecture`` (first 4 digits of the 6-digit county code) and ``province_code`` (first 2)."""
    if "county_code" not in panel:
        raise KeyError("the panel has no 'county_code' column (6-digit county code)")
    code = pd.to_numeric(panel["county_code"], errors="coerce")
    if code.isna().any():
        raise ValueError(f"county_code is missing or not numeric in {int(code.isna().sum())} row(s)")
    return panel.assign(prefecture=(code // 100).astype(np.int64), province_code=(code // 10_000).astype(np.int64))


def announcement_dates(config: str, params: Mapping[str, Any]) -> pd.Series:
    """Announcement date of each certified cluster (``cluster_id`` -> Timestamp).

    From the synthetic world's cluster table, or the user's cluster list (``data.raw_clusters``).
    """
    from analysis.config import ROOT
    from analysis.io import read_table
    from analysis.panel import load_world_tables

    if params["data"]["source"] == "synthetic":
        clusters = load_world_tables(config).get("clusters")
        if clusters is None:
            raise FileNotFoundError(f"the synthetic world's clusters.parquet of parameter set '{config}' is missing; run `make data CONFIG={config}`")
    else:
        path = Path(params["data"]["raw_clusters"])
        clusters = read_table(path if path.is_absolute() else ROOT / path)
    missing = [c for c in ("cluster_id", "announced") if c not in clusters]
    if missing:
        raise KeyError(f"the cluster list lacks column(s) {missing}")
    return pd.Series(pd.to_datetime(clusters["announced"]).to_numpy(), index=clusters["cluster_id"].astype(str).to_numpy())


def cohorts_for_late_month(panel: pd.DataFrame, announcements: pd.Series, late_month: int, *, last_year: int | None = None) -> pd.Series:
    """Each row's first treated year under another announcement-month cut-off (0 if after the data).

    A cluster announced in or after month ``late_month`` is first treated the next year
    (:func:`analysis.domain.cohort_from_date`); firms outside certified clusters get 0.
    """
    from analysis.domain import cohort_from_date

    last = int(panel["year"].max()) if last_year is None else last_year
    ids = panel["cluster_id"].astype("string")
    known = set(announcements.index)
    unknown = sorted(set(ids.dropna().unique()) - known)
    if unknown:
        raise KeyError(f"{len(unknown)} cluster(s) of the panel have no announcement date, e.g. {unknown[:5]}")
    by_id = {k: cohort_from_date(v, late_month) for k, v in announcements.items()}
    g = ids.map(by_id).astype("Float64").fillna(0).astype(np.int64)
    return g.where(g <= last, 0).rename("cohort")


def exposure_groups(panel: pd.DataFrame, cohort: str = "cohort") -> pd.DataFrame:
    """Who could be reached by certification besides members, for the spillover checks.

    Returns ``group`` and ``spill_cohort`` per row: ``member`` (a certified cell, cohort > 0);
    ``county`` (non-member in a county with a certified cell; spill cohort = the county's first
    cohort); ``prefecture`` (non-member, not in a certified county, same industry as a certified
    cell of its prefecture; spill cohort = those cells' first cohort); ``far`` (non-member in a
    prefecture without any certified cell); ``other`` (the rest: other industries elsewhere in a
    prefecture with certified cells). "Certified" means first treated within the data.
    """
    p = panel if "prefecture" in panel else add_geography(panel)
    g = p[cohort].fillna(0).astype(np.int64)
    cert = g > 0
    c_first = p.loc[cert].groupby("county_code")[cohort].min()
    pi_first = p.loc[cert].groupby(["prefecture", "industry_code"])[cohort].min()
    pref_any = set(p.loc[cert, "prefecture"].unique())
    county_g = p["county_code"].map(c_first)
    key = p["prefecture"].to_numpy(dtype=np.int64) * 1000 + p["industry_code"].to_numpy(dtype=np.int64)
    pi_key = pd.Series(pi_first.to_numpy(), index=pi_first.index.get_level_values(0).to_numpy(dtype=np.int64) * 1000
                       + pi_first.index.get_level_values(1).to_numpy(dtype=np.int64))
    pi_g = pd.Series(pd.Series(key).map(pi_key).to_numpy(), index=p.index)
    group = np.select(
        [cert, county_g.notna(), pi_g.notna(), ~p["prefecture"].isin(pref_any)],
        ["member", "county", "prefecture", "far"],
        default="other",
    )
    spill = np.where(group == "county", county_g.fillna(0), np.where(group == "prefecture", pi_g.fillna(0), 0)).astype(np.int64)
    return pd.DataFrame({"group": group, "spill_cohort": spill}, index=p.index)


def _last_batch(panel: pd.DataFrame) -> Any:
    b = panel["batch"].dropna()
    if b.empty:
        raise ValueError("the panel has no certified batch")
    return b.max()


def variant(
    panel: pd.DataFrame,
    *,
    comparison: str = "all",
    sample: str = "all",
    late_month: int | None = None,
    announcements: pd.Series | None = None,
) -> pd.DataFrame:
    """The panel of one specification: timing rule, comparison group and sample.

    comparison
        ``"all"`` every firm; ``"last_batch"`` only firms of certified clusters (the last batch,
        certified after the data, is then the control group); ``"no_spillover"`` without the
        non-members of certified counties and the same-industry firms of their prefectures.
    sample
        ``"all"`` or ``"drop_last_batch"`` (firms of the last batch removed).
    late_month
        Announcement-month cut-off for the first treated year (``None``: the panel's cohort).
    """
    p = panel
    if late_month is not None:
        if announcements is None:
            raise ValueError("late_month needs the announcement dates (announcements=)")
        p = p.assign(cohort=cohorts_for_late_month(p, announcements, late_month))
    if comparison == "last_batch":
        p = p[p["batch"].notna()]
    elif comparison == "no_spillover":
        grp = exposure_groups(p)["group"]
        p = p[~grp.isin(["county", "prefecture"]).to_numpy()]
    elif comparison != "all":
        raise ValueError(f"comparison must be 'all', 'last_batch' or 'no_spillover', got {comparison!r}")
    if sample == "drop_last_batch":
        p = p[p["batch"].astype("Float64").fillna(-1) != float(_last_batch(panel))]
    elif sample != "all":
        raise ValueError(f"sample must be 'all' or 'drop_last_batch', got {sample!r}")
    return p


# ---------------------------------------------------------------------------------------------
# one specification, every clustering level
# ---------------------------------------------------------------------------------------------
def _cluster_map(data: pd.DataFrame, unit: str, column: str) -> pd.Series:
    return data.groupby(unit)[column].first()


def fit_variant(
    data: pd.DataFrame,
    outcome: str,
    estimator: str,
    clusters: Mapping[str, str],
    *,
    alpha: float = 0.05,
    anticipation: int = 0,
    weights: str | None = None,
    covariates: Sequence[str] | None = None,
    method: str = "dr",
    max_e: float = np.inf,
) -> pd.DataFrame:
    """One estimator on one panel, with standard errors at every clustering level, in one fit.

    Callaway-Sant'Anna (``cs_dr``: never-treated controls, ``cs_notyet``): one :func:`att_gt`, its
    simple ATT's influence function re-clustered at each level (normal inference, as ``att_gt``).
    ``imputation`` and ``twfe``: the estimator written as one regression coefficient
    (:mod:`analysis.did.wild`), BJS (2024) / CRV1 standard errors at each level (normal / t(G - 1),
    as :func:`analysis.did.imputation` and :func:`analysis.did.twfe`). Returns tidy rows with
    ``cluster`` (the level's name) and ``n_clusters``.
    """
    from analysis.did.att_gt import att_gt
    from analysis.did.wild import imputation_design, twfe_design
    from analysis.inference import vcov_from_if

    d = data.dropna(subset=[outcome])
    cols = list(dict.fromkeys(clusters.values()))
    rows = []
    if estimator in ("cs_dr", "cs_notyet"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*could not be estimated.*")
            res = att_gt(d, outcome, "firm_id", "year", "cohort", control="never" if estimator == "cs_dr" else "notyet",
                         method=method, anticipation=anticipation, weights=weights, covariates=list(covariates or []) or None)
            agg = res.aggregate("simple", max_e=max_e)
        est = float(agg.table["estimate"].iloc[0])
        psi = agg.influence[:, :1]
        for name, col in clusters.items():
            cl = _cluster_map(d, "firm_id", col).reindex(agg.units).to_numpy()
            se = float(np.sqrt(vcov_from_if(psi, cl)[0, 0]))
            rows.append(tidy_frame([est], [se], term="ATT", outcome=outcome, estimator=estimator, n_obs=int(agg.table["n_obs"].iloc[0]),
                                   alpha=alpha, cluster=name, n_clusters=int(pd.Series(cl).nunique())))
    elif estimator in ("imputation", "twfe"):
        if anticipation or weights or covariates:
            raise ValueError(f"{estimator} here takes no anticipation, weights or covariates")
        make = imputation_design if estimator == "imputation" else twfe_design
        design = make(d, outcome, "firm_id", "year", "cohort", keep=cols)
        est = design.coefficient()
        for name, col in clusters.items():
            cl = design.frame[col].to_numpy()
            G = int(pd.Series(cl).nunique())
            se = design.std_error(cl)
            rows.append(tidy_frame([est], [se], term="ATT", outcome=outcome, estimator=estimator, n_obs=int(design.y.size), alpha=alpha,
                                   df=None if estimator == "imputation" else G - 1, cluster=name, n_clusters=G))
    else:
        raise ValueError(f"estimator must be cs_dr, cs_notyet, imputation or twfe, got {estimator!r}")
    return check_tidy(pd.concat(rows, ignore_index=True))


def _main_cluster(s: Mapping[str, Any]) -> dict[str, str]:
    name = next((k for k, v in s["clusters"].items() if v == s["cluster"]), s["cluster"])
    return {name: s["cluster"]}


def main_estimates(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any]) -> pd.DataFrame:
    """The headline ATT by the four estimators (clustered as the effects report)."""
    frames = [fit_variant(panel, outcome, e, _main_cluster(s), alpha=s["alpha"]) for e in ("cs_dr", "cs_notyet", "imputation", "twfe")]
    return check_tidy(pd.concat(frames, ignore_index=True))


# ---------------------------------------------------------------------------------------------
# inference
# ---------------------------------------------------------------------------------------------
def wild_bootstrap_table(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any]) -> pd.DataFrame:
    """Restricted wild cluster bootstrap (WCR) p-values and confidence sets for the TWFE and imputation ATTs.

    One row per estimator and weight type (clusters: the main level), next to the analytic row of
    the same estimator (``weights`` = ``analytic``).
    """
    from analysis.did.wild import wild_bootstrap_did

    wb = s["wild_bootstrap"]
    rows = []
    for k, est in enumerate(("twfe", "imputation")):
        analytic = fit_variant(panel, outcome, est, _main_cluster(s), alpha=s["alpha"]).assign(weights="analytic", draws=0)
        boot = wild_bootstrap_did(panel.dropna(subset=[outcome]), outcome, estimator=est, cluster=s["cluster"], weights=wb["weights"],
                                  B=int(wb["draws"]), seed=s["seed"] + 10 * k, alpha=s["alpha"])
        rows += [analytic, boot.drop(columns=["notes"])]
    return check_tidy(pd.concat(rows, ignore_index=True))


def clustering_table(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any]) -> pd.DataFrame:
    """The main estimators with standard errors at every clustering level (one fit each)."""
    frames = [fit_variant(panel, outcome, e, s["clusters"], alpha=s["alpha"]) for e in ("cs_dr", "imputation", "twfe")]
    return check_tidy(pd.concat(frames, ignore_index=True))


def assignment_design(panel: pd.DataFrame, s: Mapping[str, Any]):
    """The eligible cells and strata of randomization inference.

    Eligible: every cell certified in some batch, and every cell with at least
    ``ri.min_cell_firms`` firms in the year before the first cohort whose output that year is in
    the top ``ri.eligible_share`` of such cells (the size criterion of MIIT's notices, as the
    synthetic world applies it). Strata: provinces.
    """
    from analysis.did.randomization import AssignmentDesign

    ri = s["ri"]
    g = panel["cohort"].fillna(0)
    first = int(g[g > 0].min())
    ref = panel[panel["year"] == first - 1]
    cells = ref.groupby("cell_id").agg(n=("firm_id", "nunique"), output=("output", "sum"))
    big = cells[cells["n"] >= ri["min_cell_firms"]]
    big = big[big["output"] >= big["output"].quantile(1 - ri["eligible_share"])]
    info = panel.groupby("cell_id").agg(province=("province", "first"), batch=("batch", "first"))
    pool = info[info.index.isin(big.index) | info["batch"].notna()]
    cohorts = panel.dropna(subset=["batch"]).groupby("batch")["cohort"].agg(lambda c: sorted(set(c)))
    bad = cohorts[cohorts.map(len) > 1]
    if len(bad):
        raise ValueError(f"batch(es) {list(bad.index)} have firms with different cohorts; randomization inference needs one cohort per batch")
    return AssignmentDesign.from_cells(pool.index.to_numpy(), pool["province"].to_numpy(), pool["batch"].to_numpy(dtype=float),
                                       cohorts={b: int(c[0]) for b, c in cohorts.items()}, within=ri["within"],
                                       max_per_stratum=ri["max_per_province"])


def randomization_tests(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any], *, progress: bool | None = True, mapper=None) -> dict[str, Any]:
    """Randomization inference for the Callaway-Sant'Anna and TWFE estimates (``{"cs": RIResult, "twfe": RIResult}``).

    The draws run where ``ri.engine`` of the settings says (:func:`analysis.engine.draws_mapper`:
    ``None`` here in a loop, ``"local"`` on all cores, ``"slurm"``, ``"pbs"``, a scheduler address),
    one cluster for both statistics, unless ``mapper`` is given (the contract of
    :func:`analysis.engine.map_draws`); the draws are the same on every engine.

    Examples
    --------
    >>> from analysis.config import load_params
    >>> params = load_params("small")
    >>> params["robustness"]["ri"]["engine"] = "local"        # config: robustness: {ri: {engine: local}}
    >>> ri = randomization_tests(panel, "tfp_acf", settings(params))  # doctest: +SKIP
    """
    from analysis.did.randomization import randomization_inference
    from analysis.engine import draws_mapper

    design = assignment_design(panel, s)
    d = panel.dropna(subset=[outcome])
    engine = s["ri"].get("engine") if mapper is None else None
    with draws_mapper(engine, key="robustness.ri.engine") as engine_mapper:
        return {stat: randomization_inference(d, outcome, design, statistic=stat, n_draws=int(s["ri"]["draws"]), seed=s["seed"] + 1 + k,
                                              progress=progress, mapper=mapper or engine_mapper)
                for k, stat in enumerate(("cs", "twfe"))}


# ---------------------------------------------------------------------------------------------
# design choices, placebo, spillovers
# ---------------------------------------------------------------------------------------------
def _labelled(frame: pd.DataFrame, **labels: Any) -> pd.DataFrame:
    return frame.assign(**labels)


def design_choices(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any], announcements: pd.Series | None = None) -> pd.DataFrame:
    """Callaway-Sant'Anna ATT under other design choices (``check`` and ``variant`` columns).

    Control group (never, not yet, last batch only); the last batch dropped; the
    announcement-month cut-off (``late_months``; needs ``announcements``); anticipation of one and
    two years.
    """
    cl = _main_cluster(s)
    a = s["alpha"]
    rows = [
        _labelled(fit_variant(panel, outcome, "cs_dr", cl, alpha=a), check="control", variant="never treated (main)"),
        _labelled(fit_variant(panel, outcome, "cs_notyet", cl, alpha=a), check="control", variant="not yet treated"),
    ]
    try:
        rows.append(_labelled(fit_variant(variant(panel, comparison="last_batch"), outcome, "cs_dr", cl, alpha=a), check="control", variant="last batch only"))
    except ValueError as exc:
        warnings.warn(f"last-batch-only comparison not estimable: {exc}", RuntimeWarning, stacklevel=2)
    rows.append(_labelled(fit_variant(variant(panel, sample="drop_last_batch"), outcome, "cs_dr", cl, alpha=a), check="drop_last",
                          variant=f"batch {_last_batch(panel)} dropped"))
    if announcements is not None:
        for lm in s["late_months"]:
            v = variant(panel, late_month=int(lm), announcements=announcements)
            rows.append(_labelled(fit_variant(v, outcome, "cs_dr", cl, alpha=a), check="timing", variant=f"cut-off month {int(lm)}"))
    for ant in s["anticipation"]:
        rows.append(_labelled(fit_variant(panel, outcome, "cs_dr", cl, alpha=a, anticipation=int(ant)), check="anticipation",
                              variant=f"{int(ant)} year{'s' if int(ant) > 1 else ''}"))
    return check_tidy(pd.concat(rows, ignore_index=True))


def placebo_in_time(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any]) -> pd.DataFrame:
    """Pretend every cohort was certified ``shift`` years earlier, using only its pre-treatment years.

    Treated firms keep only the years before their true first treated year; their placebo cohort
    is ``cohort - shift``; the ATT averages the placebo post-periods that are real pre-periods
    (event times 0 .. shift - 1), against never-treated firms. An estimate away from zero is a
    pre-trend (or anticipation).
    """
    rows = []
    g = panel["cohort"].fillna(0)
    keep = (g == 0) | (panel["year"] < g)
    for shift in s["placebo_shifts"]:
        d = panel[keep.to_numpy()].assign(cohort=np.where(g[keep] > 0, g[keep] - int(shift), 0))
        res = fit_variant(d, outcome, "cs_dr", _main_cluster(s), alpha=s["alpha"], max_e=int(shift) - 1)
        rows.append(res.assign(check="placebo", variant=f"{int(shift)} years earlier", shift=int(shift)))
    return check_tidy(pd.concat(rows, ignore_index=True))


def spillovers(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any]) -> pd.DataFrame:
    """Spillover estimates: each exposed group as its own treated group against far firms.

    ``county``: non-members in certified counties (first treated with their county's first cohort);
    ``prefecture``: same-industry non-members in other counties of the prefecture; each against
    ``far`` firms (prefectures without a certified cell) by Callaway-Sant'Anna. ``no_exposed``: the
    main estimate without the exposed groups among the controls. An exposed group that cannot be
    estimated (e.g. too few exposed firms observed around their first treated year) is left out
    with a warning and named in the frame's ``attrs["skipped"]`` (group -> reason).
    """
    grp = exposure_groups(panel)
    cl = _main_cluster(s)
    rows = []
    skipped: dict[str, str] = {}
    labels = {"county": "non-members in certified counties", "prefecture": "same industry, other counties of the prefecture"}
    for name in ("county", "prefecture"):
        sel = grp["group"].isin([name, "far"]).to_numpy()
        d = panel[sel].assign(cohort=grp.loc[sel, "spill_cohort"].to_numpy())
        n_exposed = int(d.loc[d["cohort"] > 0, "firm_id"].nunique())
        if n_exposed == 0:
            skipped[f"spill_{name}"] = "no exposed firm"
            continue
        try:
            fit = fit_variant(d, outcome, "cs_dr", cl, alpha=s["alpha"])
        except ValueError as exc:
            skipped[f"spill_{name}"] = f"not estimable on {n_exposed:,} exposed firms: {exc}"
            warnings.warn(f"spillovers ({labels[name]}): {skipped[f'spill_{name}']}", RuntimeWarning, stacklevel=2)
            continue
        rows.append(fit.assign(check=f"spill_{name}", variant=labels[name], n_exposed_firms=n_exposed))
    d = panel[~grp["group"].isin(["county", "prefecture", "other"]).to_numpy()]
    rows.append(fit_variant(d, outcome, "cs_dr", cl, alpha=s["alpha"]).assign(check="no_exposed", variant="members against far firms only",
                                                                              n_exposed_firms=0))
    out = check_tidy(pd.concat(rows, ignore_index=True))
    out.attrs["skipped"] = skipped
    return out


# ---------------------------------------------------------------------------------------------
# matching and reweighting
# ---------------------------------------------------------------------------------------------
def entropy_balance(X_control: np.ndarray, target: np.ndarray, *, max_iter: int = 200, tol: float = 1e-10) -> np.ndarray:
    """Entropy-balancing weights (Hainmueller 2012): control weights closest to uniform (in entropy) whose
    weighted means equal ``target`` exactly. Newton's method on the convex dual; weights sum to one.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 2))
    >>> w = entropy_balance(X, np.array([0.3, -0.2]))
    >>> np.round(w @ X, 6).tolist()
    [0.3, -0.2]
    """
    Xc = np.asarray(X_control, dtype=float) - np.asarray(target, dtype=float)[None, :]
    scale = Xc.std(axis=0)
    scale[scale == 0] = 1.0
    Z = Xc / scale
    lam = np.zeros(Z.shape[1])
    for _ in range(max_iter):
        a = Z @ lam
        w = np.exp(a - a.max())
        w /= w.sum()
        grad = w @ Z
        if np.max(np.abs(grad)) < tol:
            return w
        H = (Z * w[:, None]).T @ Z - np.outer(grad, grad)
        step = np.linalg.solve(H + 1e-12 * np.eye(H.shape[0]), grad)
        t = 1.0
        f0 = np.log(np.exp(a - a.max()).sum()) + a.max()
        while t > 1e-8:
            a_new = Z @ (lam - t * step)
            if np.log(np.exp(a_new - a_new.max()).sum()) + a_new.max() <= f0 - 1e-4 * t * grad @ step:
                break
            t /= 2
        lam = lam - t * step
    raise RuntimeError("entropy balancing did not converge: the target means may lie outside the controls' support")


def kernel_match_weights(treated: np.ndarray, controls: np.ndarray, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """Epanechnikov kernel matching on a score: each control's total weight and which treated units have a match.

    Treated unit ``i`` spreads weight one over the controls within ``bandwidth`` of its score in
    proportion to ``K(u) = 0.75 (1 - u^2)``, ``u = (p_j - p_i) / h`` (Stata ``psmatch2``'s kernel
    option); a treated unit without a control inside the bandwidth gets no match. Because ``K`` is
    a quadratic in ``p_j``, every window's sums come from prefix sums of ``1, p, p^2`` over the
    sorted scores: ``O(n log n)`` instead of one pass over the controls per treated unit (at census
    size, 15 thousand treated firms whose windows each hold most of 200 thousand controls).

    Returns
    -------
    (weights, matched)
        ``weights``: per control (the input order), the sum over treated units of their kernel
        weights on it; ``matched``: per treated unit, whether it has a control inside the bandwidth.

    Examples
    --------
    >>> w, ok = kernel_match_weights(np.array([0.5, 0.9]), np.array([0.45, 0.5, 0.55, 0.1]), 0.1)
    >>> np.round(w, 4).tolist(), ok.tolist()
    ([0.3, 0.4, 0.3, 0.0], [True, False])
    """
    pt, pc, h = np.asarray(treated, dtype=float), np.asarray(controls, dtype=float), float(bandwidth)
    c0 = float(np.mean(pc)) if pc.size else 0.0            # centred scores: the expanded squares cancel less
    pt, pc = pt - c0, pc - c0
    order = np.argsort(pc, kind="stable")
    pcs = pc[order]

    def window_sums(points: np.ndarray, sorted_values: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, ...]:
        # sum over sorted_values v in [x - h, x + h) of weight * (1, v, v^2), for every x in points
        wv = np.ones(sorted_values.size) if weights is None else weights
        prefix = [np.concatenate([[0.0], np.cumsum(wv * sorted_values**k)]) for k in range(3)]
        lo, hi = np.searchsorted(sorted_values, points - h), np.searchsorted(sorted_values, points + h)
        return tuple(pk[hi] - pk[lo] for pk in prefix)

    def kernel_sum(x: np.ndarray, s0: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        # sum of weight * 0.75 * (1 - (v - x)^2 / h^2) over the window
        return 0.75 * (s0 - (s2 - 2 * x * s1 + x * x * s0) / (h * h))

    n0, n1, n2 = window_sums(pt, pcs, None)
    total = kernel_sum(pt, n0, n1, n2)                      # each treated unit's kernel mass on the controls
    matched = (n0 > 0) & (total > 1e-12 * np.maximum(n0, 1.0))
    inv = np.where(matched, 1.0 / np.where(matched, total, 1.0), 0.0)
    t_order = np.argsort(pt, kind="stable")
    pts = pt[t_order]
    # control j gets sum over treated i within the bandwidth of K((p_j - p_i) / h) / total_i; the window of a
    # control is (p_j - h, p_j + h] on the treated scores, the same pairs as above (K = 0 on the edges)
    m0, m1, m2 = window_sums(pcs, pts, inv[t_order])
    w_sorted = np.clip(kernel_sum(pcs, m0, m1, m2), 0.0, None)
    weights = np.empty(pc.size)
    weights[order] = w_sorted
    return weights, matched


def _baseline(panel: pd.DataFrame, outcome: str, covariates: Sequence[str], include_outcome: bool) -> tuple[pd.DataFrame, list[str], int]:
    g = panel["cohort"].fillna(0)
    year = int(g[g > 0].min()) - 1
    cols = list(dict.fromkeys([*covariates, *([outcome] if include_outcome else [])]))
    missing = [c for c in cols if c not in panel]
    if missing:
        raise KeyError(f"matching covariate(s) {missing} are not in the panel")
    base = panel[panel["year"] == year].set_index("firm_id")[cols].dropna()
    return base, cols, year


def _std_bias(xt: np.ndarray, xc: np.ndarray, wc: np.ndarray | None, denom: np.ndarray) -> np.ndarray:
    mc = xc.mean(axis=0) if wc is None else (wc[:, None] * xc).sum(axis=0) / wc.sum()
    return 100 * (xt.mean(axis=0) - mc) / denom, mc


def matching_estimates(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any]) -> dict[str, Any]:
    """PSM-DID (nearest neighbour, kernel), entropy balancing and IPW, with the balance table.

    Sample: firms observed in the year before the first cohort (the baseline year), treated = in a
    certified cell, controls = never treated; covariates at baseline (``psm.covariates`` and, with
    ``psm.include_outcome``, the outcome). The propensity score is a logit on the standardised
    covariates. Nearest neighbour: 1:1 with replacement within ``psm.caliper`` of the score;
    kernel: Epanechnikov with bandwidth ``psm.bandwidth`` (Stata ``psmatch2``'s default 0.06).
    Then, as the Chinese literature does, two-way fixed effects DiD on the matched firms with the
    matching weights; and Callaway-Sant'Anna with the same weights. Entropy balancing reweights the
    controls to the treated baseline means exactly; IPW and DR are Callaway-Sant'Anna with the
    baseline covariates.

    Returns ``{"estimates": tidy, "balance": table, "pscore": per-firm frame, "notes": [...]}``.
    """
    import statsmodels.api as sm

    from analysis.did.att_gt import att_gt
    from analysis.did.twfe import twfe

    psm = s["psm"]
    base, cols, year = _baseline(panel, outcome, psm["covariates"], bool(psm["include_outcome"]))
    cohort = panel.groupby("firm_id")["cohort"].first().reindex(base.index).fillna(0)
    treat = (cohort > 0).to_numpy()
    X = base.to_numpy(dtype=float)
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0
    Z = sm.add_constant((X - mu) / sd)
    logit = sm.Logit(treat.astype(float), Z).fit(disp=0, maxiter=200)
    ps = np.asarray(logit.predict(Z))
    pt, pc = ps[treat], ps[~treat]
    ids_t, ids_c = base.index.to_numpy()[treat], base.index.to_numpy()[~treat]
    # nearest neighbour, with replacement, within the caliper
    order = np.argsort(pc)
    pcs = pc[order]
    pos = np.clip(np.searchsorted(pcs, pt), 1, pcs.size - 1)
    left, right = pcs[pos - 1], pcs[pos]
    nn = np.where(np.abs(pt - left) <= np.abs(right - pt), pos - 1, pos)
    dist = np.abs(pcs[nn] - pt)
    matched = dist <= psm["caliper"]
    w_nn_c = np.bincount(order[nn[matched]], minlength=pc.size).astype(float)
    # Epanechnikov kernel
    h = float(psm["bandwidth"])
    w_k_c, k_ok = kernel_match_weights(pt, pc, h)
    # entropy balancing on the same covariates
    w_eb_c = entropy_balance(X[~treat], X[treat].mean(axis=0)) * treat.sum()
    # balance table
    xt, xc = X[treat], X[~treat]
    denom = np.sqrt((xt.var(axis=0, ddof=1) + xc.var(axis=0, ddof=1)) / 2)
    denom[denom == 0] = 1.0
    b0, m0 = _std_bias(xt, xc, None, denom)
    b_nn, m_nn = _std_bias(xt[matched], xc, w_nn_c, denom)
    b_k, m_k = _std_bias(xt[k_ok], xc, w_k_c, denom)
    b_eb, m_eb = _std_bias(xt, xc, w_eb_c, denom)
    balance = pd.DataFrame({
        "covariate": cols, "treated mean": xt.mean(axis=0), "control mean (all)": m0, "std. bias % (all)": b0,
        "control mean (NN)": m_nn, "std. bias % (NN)": b_nn, "control mean (kernel)": m_k, "std. bias % (kernel)": b_k,
        "control mean (entropy)": m_eb, "std. bias % (entropy)": b_eb,
    })
    # DiD on the weighted firm samples
    firm_w = {
        "psm_nn": pd.concat([pd.Series(1.0, index=ids_t[matched]), pd.Series(w_nn_c, index=ids_c)]),
        "psm_kernel": pd.concat([pd.Series(1.0, index=ids_t[k_ok]), pd.Series(w_k_c, index=ids_c)]),
        "entropy": pd.concat([pd.Series(1.0, index=ids_t), pd.Series(w_eb_c, index=ids_c)]),
    }
    d_all = panel.dropna(subset=[outcome])
    rows = []
    a = s["alpha"]
    labels = {"psm_nn": "PSM-DID, nearest neighbour", "psm_kernel": "PSM-DID, kernel", "entropy": "entropy balancing"}
    for key, w in firm_w.items():
        w = w[w > 0]
        d = d_all[d_all["firm_id"].isin(w.index)]
        d = d.assign(_w=d["firm_id"].map(w).to_numpy())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*singleton fixed effect.*")
            tw = twfe(d, outcome, "firm_id", "year", "cohort", cluster=s["cluster"], weights="_w", alpha=a).tidy()
        rows.append(tw.assign(estimator=f"{key}_twfe", check="psm" if key != "entropy" else "reweighting", variant=f"{labels[key]}, TWFE"))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*could not be estimated.*")
            cs = att_gt(d, outcome, "firm_id", "year", "cohort", weights="_w", cluster=s["cluster"], alpha=a).aggregate("simple").tidy()
        rows.append(cs.assign(estimator=f"{key}_cs", check="psm" if key != "entropy" else "reweighting", variant=f"{labels[key]}, Callaway-Sant'Anna"))
    # IPW and DR with baseline covariates (time-invariant per firm)
    d_cov = d_all[d_all["firm_id"].isin(base.index)].join(base.add_prefix("_base_"), on="firm_id")
    covs = [f"_base_{c}" for c in cols]
    for method in ("ipw", "dr"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*could not be estimated.*")
            cs = att_gt(d_cov, outcome, "firm_id", "year", "cohort", covariates=covs, method=method, cluster=s["cluster"], alpha=a).aggregate("simple").tidy()
        rows.append(cs.assign(estimator=f"cs_{method}_covariates", check="reweighting",
                              variant=f"Callaway-Sant'Anna {method.upper()} with baseline covariates"))
    est = check_tidy(pd.concat(rows, ignore_index=True))
    pscore = pd.DataFrame({"firm_id": base.index.to_numpy(), "treated": treat, "pscore": ps,
                           "nn_weight": np.where(treat, np.isin(base.index.to_numpy(), ids_t[matched]).astype(float), 0.0),
                           "kernel_weight": 0.0, "entropy_weight": 0.0})
    pscore.loc[~treat, "nn_weight"] = w_nn_c
    pscore.loc[~treat, "kernel_weight"] = w_k_c
    pscore.loc[treat, "kernel_weight"] = k_ok.astype(float)
    pscore.loc[~treat, "entropy_weight"] = w_eb_c
    pscore.loc[treat, "entropy_weight"] = 1.0
    notes = [
        (f"baseline year {year}: {int(treat.sum()):,} certified and {int((~treat).sum()):,} never-treated firms observed then "
         "(firms entering later are not in these estimates)"),
        (f"nearest neighbour: {int(matched.sum()):,} of {int(treat.sum()):,} treated firms matched within the caliper {psm['caliper']}; "
         f"{int((w_nn_c > 0).sum()):,} distinct controls"),
        f"kernel: {int(k_ok.sum()):,} treated firms with a control within the bandwidth {h}",
    ]
    return {"estimates": est, "balance": balance, "pscore": pscore, "notes": notes}


# ---------------------------------------------------------------------------------------------
# TWFE diagnostics
# ---------------------------------------------------------------------------------------------
def twfe_diagnostics(panel: pd.DataFrame, outcome: str) -> dict[str, Any]:
    """Goodman-Bacon decomposition (on the balanced sub-panel) and dCDH weights (all firm-years)."""
    from analysis.did.bacon import bacon_decomp
    from analysis.did.dcdh import twfe_weights

    d = panel.dropna(subset=[outcome])
    n_years = d["year"].nunique()
    full = d.groupby("firm_id")["year"].transform("size") == n_years
    bal = d[full.to_numpy()]
    bd = bacon_decomp(bal, outcome, "firm_id", "year", "cohort")
    tw = twfe_weights(d, outcome, "firm_id", "year", "cohort")
    note = (f"Goodman-Bacon on the balanced sub-panel: {bal['firm_id'].nunique():,} of {d['firm_id'].nunique():,} firms observed in all "
            f"{n_years} years (the decomposition needs a balanced panel)")
    return {"bacon": bd, "weights": tw, "notes": [note]}


# ---------------------------------------------------------------------------------------------
# pre-trends, HonestDiD, power
# ---------------------------------------------------------------------------------------------
def pretrend_test(es: EstimationResult, event_times: Sequence[int] | None = None, *, n_boot: int = 999, seed: int = 0) -> dict[str, Any]:
    """The joint pre-trend test of an event study (optionally only its leads from ``min(event_times)`` on).

    The adapter through which every pre-trend and anticipation test here goes: it calls
    :func:`analysis.did.pretrend.pretrend_test`, the test of the effects reports
    (:func:`analysis.effects.pretrend_test`), with its default method. On an event study
    with small-sample inference (:func:`event_study_cs`) that is the wild cluster bootstrap of the
    CR2 Wald statistic, whose size holds with a dozen certified cells a cohort (the chi-squared
    Wald test rejected true parallel trends in 17 to 22 % of such worlds; :mod:`analysis.did.pretrend`).
    ``event_times=[-1]`` tests the lead -1 alone (the anticipation test).

    Parameters
    ----------
    es : analysis.results.EstimationResult
        An event study with ``event_time`` rows (and, for the bootstrap, small-sample blocks).
    event_times : sequence of int, optional
        Test only the leads at or after the earliest of these event times.
    n_boot : int
        Bootstrap draws.
    seed : int
        Seed of the bootstrap signs.

    Returns
    -------
    dict
        ``stat``, ``df``, ``p_value`` and ``method`` of the test.
    """
    from analysis.did.pretrend import pretrend_test as _test

    lo = None if event_times is None else int(min(event_times))
    r = _test(es, n_boot=n_boot, seed=seed, min_event_time=lo)
    return {"stat": float(r.stat), "df": int(r.df), "p_value": float(r.p_value), "method": r.method}


def event_study_cs(panel: pd.DataFrame, outcome: str, s: Mapping[str, Any], *, base_period: str = "varying") -> EstimationResult:
    """Callaway-Sant'Anna event study of the window (never-treated controls, main clusters).

    ``base_period="varying"``: the effects report's event study (:func:`analysis.effects.run_estimator`:
    every lead an estimate, CR2 small-sample inference attached for the pre-trend and anticipation
    tests). ``"universal"``: normalised to event time -1 (HonestDiD, power), as
    :func:`analysis.effects.honest_sensitivity`.

    Parameters
    ----------
    panel : pandas.DataFrame
        The panel (``firm_id``, ``year``, ``cohort``, the outcome and the cluster column).
    outcome : str
        Outcome column.
    s : dict
        Settings (:func:`settings`): ``window``, ``cluster``, ``alpha``, ``seed``.
    base_period : {"varying", "universal"}
        Base period of the event study.

    Returns
    -------
    analysis.results.EstimationResult
    """
    from analysis.did.event_study import event_study
    from analysis.effects import run_estimator

    lo, hi = s["window"]
    d = panel.dropna(subset=[outcome])
    if base_period == "varying":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*could not be estimated.*")
            return run_estimator("cs_dr", d, outcome, cluster=s["cluster"], window=(lo, hi), alpha=s["alpha"], seed=s["seed"])["event"]
    return event_study(d, outcome, "firm_id", "year", "cohort", estimator="cs", cluster=s["cluster"], base_period=base_period, min_e=lo, max_e=hi)


def _breakdown(sens: pd.DataFrame) -> float:
    from analysis.effects import breakdown_value

    return breakdown_value(sens)


def honest_sets(
    es: EstimationResult,
    restriction: str,
    grid: Sequence[float],
    *,
    alpha: float = 0.05,
    extend_to: float = 0.0,
    cache_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, list[float]]:
    """HonestDiD robust confidence sets on ``grid``, the grid doubled beyond its end while its largest
    value still gives a set that excludes zero (up to ``extend_to``), so that the breakdown value is
    bracketed rather than cut off by the grid.

    Parameters
    ----------
    es : analysis.results.EstimationResult
        Universal-base event study (:func:`event_study_cs`).
    restriction : {"relative_magnitude", "smoothness"}
        HonestDiD's restriction (:func:`analysis.did.honest.honest_did`).
    grid : sequence of float
        The values of M (Mbar) to start with, all positive.
    alpha : float
        1 - level of the sets.
    extend_to : float
        Largest value the grid may be extended to (0: no extension).
    cache_dir : str or pathlib.Path, optional
        HonestDiD's cache folder.

    Returns
    -------
    tuple of (pandas.DataFrame, list of float)
        The tidy sets (an ``original`` row and one per M) and the grid used.
    """
    from analysis.did.honest import honest_did

    grid = sorted(float(m) for m in grid)
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sets = honest_did(es, restriction=restriction, M=grid, alpha=alpha, cache_dir=cache_dir).tidy()
        b = _breakdown(sets)
        if not (np.isfinite(b) and np.isclose(b, grid[-1])) or 2 * grid[-1] > extend_to * (1 + 1e-9):
            return sets, grid
        grid = [*grid, 2 * grid[-1]]


def honest_family(
    panel: pd.DataFrame,
    outcomes: Sequence[str],
    s: Mapping[str, Any],
    *,
    main: str,
    cache_dir: str | Path | None = None,
    progress: bool | None = True,
) -> dict[str, Any]:
    """HonestDiD (relative magnitudes and smoothness) for every outcome, breakdown values, pre-trend power.

    For each outcome: the universal-base Callaway-Sant'Anna event study; relative-magnitude sets
    for ``honest.mbar`` (the main outcome also for ``did.honest_mbar``, shared with the effects
    report's cache); smoothness sets for ``M = m_se x`` the standard error of the first post-period
    coefficient; breakdown values of both; and (Roth 2022) the slope of the linear pre-trend the
    pre-test detects with 50 and 80 % power, with the bias it implies at event time 0. Grids whose
    largest value is still robust are doubled up to ``honest.extend_to`` (:func:`honest_sets`).
    ``honest.outcomes: main`` restricts the relative magnitudes (the slow part) to the main outcome.
    """
    from analysis.did.pretrends import (
        event_study_arrays,
        pretrend_diagnostics,
        slope_for_power,
    )

    hon = s["honest"]
    sens_rows, bd_rows, power_rows, studies = [], [], [], {}
    bar = tqdm(list(outcomes), desc="HonestDiD by outcome", **progress_options(progress))
    for y in bar:
        bar.set_postfix_str(y)
        es = event_study_cs(panel, y, s, base_period="universal")
        studies[y] = es
        e, b, V, ref = event_study_arrays(es)
        post = e > ref
        se0 = float(np.sqrt(V[post][:, post][0, 0]))
        est0 = float(b[post][0])
        row: dict[str, Any] = {"outcome": y, "estimate_e0": est0, "se_e0": se0}
        extend = float(hon.get("extend_to", 0) or 0)
        if hon["outcomes"] == "all" or y == main:
            mbar = sorted({float(m) for m in [*hon["mbar"], *(s["honest_mbar_main"] if y == main else [])] if float(m) > 0})
            rm, mbar = honest_sets(es, "relative_magnitude", mbar, alpha=s["alpha"], extend_to=extend, cache_dir=cache_dir)
            sens_rows.append(rm)
            row["breakdown_mbar"] = _breakdown(rm)
            row["mbar_max"] = max(mbar)
        else:
            row["breakdown_mbar"] = row["mbar_max"] = np.nan
        ms = [float(m) * se0 for m in hon["m_se"]]
        sd, ms = honest_sets(es, "smoothness", ms, alpha=s["alpha"], extend_to=extend * se0, cache_dir=cache_dir)
        sd["M_se"] = sd["M"] / se0
        sens_rows.append(sd)
        bm = _breakdown(sd)
        row["breakdown_m_se"] = bm / se0 if np.isfinite(bm) else np.nan
        row["m_se_max"] = max(ms) / se0
        bd_rows.append(row)
        pre = e < ref
        if pre.sum() >= 1:
            Spre = V[np.ix_(pre, pre)]
            s50 = slope_for_power(Spre, e[pre], reference=ref, power=0.5, alpha=s["alpha"])
            s80 = slope_for_power(Spre, e[pre], reference=ref, power=0.8, alpha=s["alpha"])
            w50 = slope_for_power(Spre, e[pre], reference=ref, power=0.5, alpha=s["alpha"], test="wald")
            sign = np.sign(est0) if est0 != 0 else 1.0
            diag = pretrend_diagnostics(b, V, e, sign * s50 * (e - ref), reference=ref, alpha=s["alpha"])
            power_rows.append({
                "outcome": y, "slope_50": s50, "slope_80": s80, "slope_50_wald": w50,
                "bias_e0_at_slope_50": s50 * (0 - ref), "bias_share_of_estimate": s50 * (0 - ref) / abs(est0) if est0 else np.nan,
                "likelihood_ratio": diag["likelihood_ratio"], "bayes_factor": diag["bayes_factor"],
                "pretrend_p_value": pretrend_test(event_study_cs(panel, y, s))["p_value"],
            })
    return {"sensitivity": pd.concat(sens_rows, ignore_index=True), "breakdown": pd.DataFrame(bd_rows),
            "power": pd.DataFrame(power_rows), "event_studies": studies}


# ---------------------------------------------------------------------------------------------
# specification curve
# ---------------------------------------------------------------------------------------------
def specification_curve(
    panel: pd.DataFrame,
    outcome: str,
    s: Mapping[str, Any],
    announcements: pd.Series | None = None,
    *,
    default_late_month: int | None = None,
    progress: bool | None = True,
) -> pd.DataFrame:
    """Every combination of estimator x comparison group x timing rule x sample x clustering level.

    The dimensions come from ``robustness.spec_curve``; the timing rule is the panel's (labelled
    with ``default_late_month``) and each of ``spec_curve.late_months``. Each (timing, comparison,
    sample) panel is built once and each estimator fitted once on it; the clustering levels reuse
    that fit (:func:`fit_variant`). Combinations that are not estimable (e.g. no control firm left)
    are left out and counted in the frame's ``attrs["skipped"]``. Columns: the tidy ones and
    ``estimator``, ``comparison``, ``timing``, ``sample``, ``cluster``.
    """
    sc = s["spec_curve"]
    timings: list[int | None] = [None, *[int(m) for m in sc["late_months"] if m != default_late_month]]
    if announcements is None:
        timings = [None]
    clusters = {k: s["clusters"][k] for k in sc["clusters"]}
    combos = [(t, c, smp) for t in timings for c in sc["comparisons"] for smp in sc["samples"] if not (c == "last_batch" and smp == "drop_last_batch")]
    keep = ["firm_id", "year", "cohort", "batch", "cluster_id", "cell_id", "county_code", "prefecture", "industry_code", outcome, *clusters.values()]
    panel = panel[list(dict.fromkeys(c for c in keep if c in panel))].dropna(subset=[outcome])
    rows, skipped = [], []
    bar = tqdm(total=len(combos) * len(sc["estimators"]), desc=f"specification curve ({outcome})", **progress_options(progress))
    for t, comp, smp in combos:
        v = variant(panel, comparison=comp, sample=smp, late_month=t, announcements=announcements)
        tlabel = f"month {default_late_month if t is None else t}" if default_late_month is not None or t is not None else "panel"
        for est in sc["estimators"]:
            bar.update(1)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = fit_variant(v, outcome, est, clusters, alpha=s["alpha"])
            except (ValueError, np.linalg.LinAlgError) as exc:
                skipped.append({"estimator": est, "comparison": comp, "timing": tlabel, "sample": smp, "reason": str(exc)[:200]})
                continue
            rows.append(r.assign(comparison=comp, timing=tlabel, sample=smp))
    bar.close()
    out = check_tidy(pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame()
    out.attrs["skipped"] = skipped
    return out


# ---------------------------------------------------------------------------------------------
# the summary table
# ---------------------------------------------------------------------------------------------
def _sig(r: Mapping[str, Any], alpha: float) -> bool:
    return bool(np.isfinite(r["p_value"]) and r["p_value"] < alpha)


def _same(r: Mapping[str, Any], main: Mapping[str, Any], alpha: float) -> bool:
    """Same conclusion as the main estimate: same sign and same significance at alpha."""
    return bool(np.sign(r["estimate"]) == np.sign(main["estimate"]) and _sig(r, alpha) == _sig(main, alpha))


def _fmt(x: float, d: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{d}f}"


def _p(p: float) -> str:
    return "n/a" if p is None or not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _at_least(value: float, largest: float | None) -> str:
    """A breakdown value; at the largest M tried it is only a lower bound, and says so."""
    if largest is not None and np.isfinite(value) and np.isclose(value, largest):
        return f"at least {_fmt(value, 2)} (the largest value tried)"
    return _fmt(value, 2)


def _est(r: Mapping[str, Any]) -> str:
    return f"{_fmt(r['estimate'])} (p {_p(r['p_value'])})"


def summary_table(rb: Robustness) -> pd.DataFrame:
    """One row per check: what it tests, the result, and whether it changes the conclusion (module docstring)."""
    a = rb.settings["alpha"]
    m = rb.main.set_index("estimator").loc["cs_dr"]
    conclusion_sig = _sig(m, a)
    out: list[dict[str, str]] = []

    def add(key: str, result: str, changes: bool | None, note: str = "") -> None:
        name, what = next((n, w) for k, n, w in CHECKS if k == key)
        verdict = "n/a" if changes is None else ("yes" if changes else "no")
        out.append({"check": name, "what it tests": what, "result": result, "changes the conclusion": verdict + (f" ({note})" if note else "")})

    w = rb.wild[rb.wild["weights"] != "analytic"]
    if len(w):
        res = "; ".join(f"{r.estimator} {r.weights}: p {_p(r.p_value)}, CI [{_fmt(r.conf_low)}, {_fmt(r.conf_high)}]" for r in w.itertuples())
        add("wild", res, bool(((w["p_value"] < a) != conclusion_sig).any()))
    c = rb.clusters
    if len(c):
        res = "; ".join(f"{cl}: s.e. {_fmt(g['std_error'].min())}-{_fmt(g['std_error'].max())}" for cl, g in c.groupby("cluster", sort=False))
        add("clusters", res, bool(((c["p_value"] < a) != conclusion_sig).any()))
    if rb.ri:
        res = "; ".join(f"{r.label}: RI p {_p(r.p_value)} ({r.n_draws} draws)" for r in rb.ri.values())
        add("ri", res, bool(any((r.p_value < a) != conclusion_sig for r in rb.ri.values())))
    dc = rb.design
    for key in ("control", "drop_last", "timing", "anticipation"):
        part = dc[dc["check"] == key]
        if key == "control":
            part = part[part["variant"] != "never treated (main)"]
        if len(part):
            res = "; ".join(f"{r['variant']}: {_est(r)}" for _, r in part.iterrows())
            add(key, res, not all(_same(r, m, a) for _, r in part.iterrows()))
    pl = rb.placebo
    if len(pl):
        add("placebo", "; ".join(f"{r['variant']}: {_est(r)}" for _, r in pl.iterrows()), bool((pl["p_value"] < a).any()),
            "a significant placebo is evidence against parallel trends" if (pl["p_value"] < a).any() else "")
    sp = rb.spill
    clean = sp[sp["check"] == "no_exposed"]
    clean_same = _same(clean.iloc[0], m, a) if len(clean) else None
    for key in ("spill_county", "spill_prefecture"):
        part = sp[sp["check"] == key]
        if len(part):
            r = part.iloc[0]
            if not _sig(r, a):
                verdict, note = False, ""
            elif clean_same is None:
                verdict, note = True, "a significant spillover: exposed firms among the never-treated controls may bias the main estimate"
            else:
                verdict = not clean_same
                note = ("significant: exposed firms differ from far firms; without them as controls the main estimate "
                        + ("keeps its sign and significance" if clean_same else "changes"))
            add(key, f"{_est(r)} on {int(r['n_exposed_firms']):,} exposed firms", verdict, note)
        elif key in sp.attrs.get("skipped", {}):
            add(key, f"not estimated: {sp.attrs['skipped'][key]}", None)
    if len(clean):
        add("no_exposed", _est(clean.iloc[0]), not clean_same)
    if rb.matching:
        me = rb.matching["estimates"]
        for key in ("psm", "reweighting"):
            part = me[me["check"] == key]
            if len(part):
                add(key, "; ".join(f"{r['variant']}: {_est(r)}" for _, r in part.iterrows()), not all(_same(r, m, a) for _, r in part.iterrows()))
    if rb.twfe:
        bt = rb.twfe["bacon"].by_type()
        forb = bt.loc[bt["type"] == "Later vs Earlier Treated", "weight"].sum()
        add("bacon", f"{100 * forb:.1f} % of the TWFE weight on already-treated controls; TWFE {_fmt(rb.twfe['bacon'].meta['twfe_estimate'])}",
            None, "TWFE is not the main estimator")
        sw = rb.twfe["weights"].summary()
        add("dcdh", f"{sw['n_negative']:,} of {sw['n_treated']:,} treated firm-years ({100 * sw['share_negative']:.1f} %) weigh negatively, "
                    f"sum {_fmt(sw['sum_negative'], 4)}; sigma_fe {_fmt(sw['sigma_fe'])}", None, "TWFE is not the main estimator")
    if rb.honest:
        bd = rb.honest["breakdown"].set_index("outcome")
        if rb.main_outcome in bd.index:
            r = bd.loc[rb.main_outcome]
            rm = r["breakdown_mbar"]
            if np.isfinite(rm) or r.get("breakdown_mbar") is not None:
                fragile = (not np.isfinite(rm)) or rm < 1
                text = (f"breakdown Mbar {_at_least(rm, r.get('mbar_max'))} (first post-period effect)" if np.isfinite(rm)
                        else "the robust set contains zero already at the smallest Mbar")
                add("honest_rm", text, fragile, "fragile to violations as large as the pre-period ones" if fragile else "")
            sd = r["breakdown_m_se"]
            add("honest_sd", f"breakdown M {_at_least(sd, r.get('m_se_max'))} standard errors of the first post-period effect a year" if np.isfinite(sd)
                else "the robust set contains zero already at the smallest M", None if np.isfinite(sd) else True,
                "no natural threshold for M" if np.isfinite(sd) else "")
        pw = rb.honest["power"].set_index("outcome")
        if rb.main_outcome in pw.index:
            r = pw.loc[rb.main_outcome]
            add("power", f"slope {_fmt(r['slope_50'], 4)} a year detected half the time (80 %: {_fmt(r['slope_80'], 4)}); such a trend "
                         f"alone gives {_fmt(r['bias_e0_at_slope_50'], 4)} at event time 0 ({100 * r['bias_share_of_estimate']:.0f} % of the estimate); "
                         f"the pre-test itself (wild cluster bootstrap of the CR2 Wald statistic): p {_p(r.get('pretrend_p_value', np.nan))}",
                bool(r["bias_share_of_estimate"] >= 1),
                "a trend the pre-test misses half the time could explain the effect" if r["bias_share_of_estimate"] >= 1 else "")
    sc = rb.spec
    if len(sc):
        same = sc.apply(lambda r: _same(r, m, a), axis=1)
        add("spec", f"{len(sc)} specifications: estimates {_fmt(sc['estimate'].min())} to {_fmt(sc['estimate'].max())} "
                    f"(median {_fmt(sc['estimate'].median())}); "
                    f"{100 * same.mean():.0f} % with the main estimate's sign and significance", bool(same.mean() < 0.9))
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------
# everything for one family
# ---------------------------------------------------------------------------------------------
@dataclass
class Robustness:
    """Every robustness result of one outcome family (see :func:`run_robustness`)."""

    family: str
    main_outcome: str
    settings: dict[str, Any]
    main: pd.DataFrame
    wild: pd.DataFrame
    clusters: pd.DataFrame
    ri: dict[str, Any]
    design: pd.DataFrame
    placebo: pd.DataFrame
    spill: pd.DataFrame
    matching: dict[str, Any]
    twfe: dict[str, Any]
    honest: dict[str, Any]
    spec: pd.DataFrame
    truth: float = float("nan")
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """The opening table (:func:`summary_table`)."""
        return summary_table(self)

    def frames(self) -> dict[str, pd.DataFrame]:
        """The tidy frames by name (what :func:`save_robustness` writes)."""
        out = {"main": self.main, "wild": self.wild, "clusters": self.clusters, "design": self.design, "placebo": self.placebo,
               "spillovers": self.spill, "spec_curve": self.spec, "summary": self.summary()}
        if self.ri:
            out["ri"] = pd.concat([r.tidy() for r in self.ri.values()], ignore_index=True)
            out["ri_draws"] = pd.DataFrame({k: r.draws for k, r in self.ri.items()})
        if self.matching:
            out["matching"] = self.matching["estimates"]
            out["balance"] = self.matching["balance"]
        if self.twfe:
            out["bacon"] = self.twfe["bacon"].tidy()
            out["dcdh"] = self.twfe["weights"].table()
        if self.honest:
            out["honest"] = self.honest["sensitivity"]
            out["breakdown"] = self.honest["breakdown"]
            out["power"] = self.honest["power"]
        return out


def run_robustness(
    panel: pd.DataFrame,
    spec: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    announcements: pd.Series | None = None,
    truth: pd.DataFrame | None = None,
    cache_dir: str | Path | None = None,
    progress: bool | None = True,
) -> Robustness:
    """Run every check of the module on one outcome family.

    Parameters
    ----------
    panel : pandas.DataFrame
        The family's panel (its sample already applied), with the geography columns.
    spec : dict
        The family (:func:`analysis.effects.load_family`).
    params : dict
        The parameter set (``did`` and ``robustness`` sections, ``seed``).
    announcements : pandas.Series, optional
        Announcement date per cluster (:func:`announcement_dates`), for the timing rule variants.
    truth : pandas.DataFrame, optional
        The synthetic world's truth table, for the main outcome's true ATT (``None`` on real data).
    cache_dir : str or pathlib.Path, optional
        HonestDiD's cache folder (passed to :func:`analysis.did.honest_did`).
    progress : bool, optional
        tqdm progress bars (the steps, the RI draws, HonestDiD by outcome, the specifications).
    """
    import time

    s = settings(params)
    p = panel if "prefecture" in panel else add_geography(panel)
    main = spec["main"]
    outcomes = [o["column"] for o in spec["outcomes"]]
    missing = [c for c in {*outcomes, "firm_id", "year", "cohort", "batch", "cluster_id", "cell_id", "county_code", "province"} if c not in p]
    if missing:
        raise KeyError(f"robustness of family '{spec['family']}': column(s) {sorted(missing)} are not in the panel")
    d = p.dropna(subset=[main])
    timings: dict[str, float] = {}
    steps = ["main", "wild", "clusters", "ri", "design", "placebo", "spill", "matching", "twfe", "honest", "spec"]
    bar = tqdm(steps, desc=f"robustness of {spec['family']}", **progress_options(progress))
    res: dict[str, Any] = {}
    inner = False if progress is False else progress
    default_lm = int(params["data"]["late_month"]) if params.get("data") else None
    for step in bar:
        bar.set_postfix_str(step)
        t0 = time.perf_counter()
        if step == "main":
            res[step] = main_estimates(d, main, s)
        elif step == "wild":
            res[step] = wild_bootstrap_table(d, main, s)
        elif step == "clusters":
            res[step] = clustering_table(d, main, s)
        elif step == "ri":
            res[step] = randomization_tests(d, main, s, progress=inner)
        elif step == "design":
            res[step] = design_choices(d, main, s, announcements)
        elif step == "placebo":
            res[step] = placebo_in_time(d, main, s)
        elif step == "spill":
            res[step] = spillovers(d, main, s)
        elif step == "matching":
            res[step] = matching_estimates(d, main, s)
        elif step == "twfe":
            res[step] = twfe_diagnostics(d, main)
        elif step == "honest":
            res[step] = honest_family(p, outcomes, s, main=main, cache_dir=cache_dir, progress=inner)
        elif step == "spec":
            res[step] = specification_curve(d, main, s, announcements, default_late_month=default_lm, progress=inner)
        timings[step] = time.perf_counter() - t0
    true_att = float("nan")
    to_truth = {o["column"]: o.get("truth") for o in spec["outcomes"]}
    if truth is not None and to_truth.get(main):
        t = truth[(truth["aggregation"] == "simple") & (truth["outcome"] == to_truth[main])]
        true_att = float(t["att"].iloc[0]) if len(t) else float("nan")
    return Robustness(family=spec["family"], main_outcome=main, settings=s, main=res["main"], wild=res["wild"], clusters=res["clusters"],
                      ri=res["ri"], design=res["design"], placebo=res["placebo"], spill=res["spill"], matching=res["matching"],
                      twfe=res["twfe"], honest=res["honest"], spec=res["spec"], truth=true_att, timings=timings)


def save_robustness(rb: Robustness, config: str) -> Path:
    """Write the tidy frames to ``data/processed/<config>/results/robustness_<family>/``."""
    from analysis.config import processed_dir
    from analysis.io import write_parquet

    folder = processed_dir(config) / "results" / f"robustness_{rb.family}"
    for name, frame in rb.frames().items():
        if isinstance(frame, pd.DataFrame) and not frame.empty:
            f = frame.reset_index(drop=True)
            f.attrs = {}
            write_parquet(f, folder / f"{name}.parquet")
    return folder


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def bacon_plot(bd, ax=None, title: str | None = None):
    """The Goodman-Bacon plot: each 2x2 estimate against its weight, by comparison type, TWFE marked."""
    import matplotlib.pyplot as plt

    from analysis.plots import PALETTE

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    t = bd.table
    for i, (kind, part) in enumerate(t.groupby("type", sort=False)):
        ax.scatter(part["weight"], part["estimate"], s=36, color=PALETTE[i % len(PALETTE)], label=f"{kind} (weight {part['weight'].sum():.2f})")
    ax.axhline(bd.meta["twfe_estimate"], color="black", lw=1, label=f"TWFE {bd.meta['twfe_estimate']:.4f}")
    ax.axhline(0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("weight of the 2x2 comparison")
    ax.set_ylabel("2x2 DiD estimate")
    ax.set_title(title or "Goodman-Bacon decomposition of the TWFE estimate")
    ax.legend(frameon=False, fontsize="small")
    return ax.figure


def honest_plot(sens: pd.DataFrame, outcome: str, *, label: str | None = None):
    """HonestDiD sensitivity: robust confidence sets against Mbar (relative magnitudes) and M (smoothness)."""
    import matplotlib.pyplot as plt

    from analysis.plots import PALETTE

    part = sens[sens["outcome"] == outcome]
    kinds = [k for k in ("relative_magnitude", "smoothness") if (part["restriction"] == k).any()]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 3.8), squeeze=False)
    for ax, kind in zip(axes.flat, kinds):
        p = part[part["restriction"] == kind]
        orig = p[p["M"].isna()].iloc[0]
        rows = p[p["M"].notna()].sort_values("M")
        x = rows["M"].to_numpy() if kind == "relative_magnitude" else rows["M_se"].to_numpy()
        ax.vlines(0, orig["conf_low"], orig["conf_high"], color="grey", lw=4, label="original 95 % CI")
        ax.vlines(x, rows["conf_low"], rows["conf_high"], color=PALETTE[0], lw=4, label="robust 95 % set")
        ax.axhline(0, color="black", lw=0.7)
        ax.set_xlabel("Mbar" if kind == "relative_magnitude" else "M (standard errors of the first post-period effect)")
        ax.set_title("relative magnitudes" if kind == "relative_magnitude" else "smoothness")
        ax.legend(frameon=False, fontsize="small")
    axes.flat[0].set_ylabel(f"effect at event time 0: {label or outcome}")
    fig.suptitle(f"HonestDiD sensitivity: {label or outcome}", fontweight="bold")
    fig.tight_layout()
    return fig


def spec_curve_plot(spec: pd.DataFrame, *, main_estimate: float | None = None, truth: float | None = None, alpha: float = 0.05,
                    dimensions: Sequence[str] = ("estimator", "comparison", "timing", "sample", "cluster")):
    """Specification curve (Simonsohn, Simmons and Nelson 2020): sorted estimates with CIs over a panel of choices."""
    import matplotlib.pyplot as plt

    from analysis.plots import PALETTE

    options = [(dim, opt) for dim in dimensions for opt in dict.fromkeys(spec[dim].astype(str))]
    d = spec.sort_values(["estimate", "std_error"]).reset_index(drop=True)
    x = np.arange(len(d))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 4 + 0.22 * len(options)), sharex=True,
                                      gridspec_kw={"height_ratios": [3, max(1.5, 0.22 * len(options))]})
    sig = (d["p_value"] < alpha).to_numpy()
    top.vlines(x, d["conf_low"], d["conf_high"], colors=[PALETTE[0] if s_ else "lightgrey" for s_ in sig], lw=1)
    top.scatter(x, d["estimate"], s=8, c=[PALETTE[0] if s_ else "grey" for s_ in sig], zorder=3)
    top.axhline(0, color="black", lw=0.7)
    if main_estimate is not None:
        top.axhline(main_estimate, color=PALETTE[1], lw=1, ls="--", label=f"main estimate {main_estimate:.4f}")
    if truth is not None and np.isfinite(truth):
        top.axhline(truth, color="black", lw=1.2, label=f"true effect {truth:.4f}")
    top.set_ylabel("estimate (95 % CI)")
    top.set_title(f"Specification curve: {len(d)} specifications ({int(sig.sum())} significant at {alpha:g}, blue)")
    top.legend(frameon=False, fontsize="small", loc="upper left")
    ylab = []
    for j, (dim, opt) in enumerate(options):
        on = (d[dim].astype(str) == opt).to_numpy()
        bottom.scatter(x[on], np.full(on.sum(), j), s=5, color="black", marker="|")
        ylab.append(f"{dim}: {opt}")
    bottom.set_yticks(range(len(options)), ylab, fontsize="x-small")
    bottom.invert_yaxis()
    bottom.set_xlabel("specifications, sorted by estimate")
    bottom.grid(False)
    fig.tight_layout()
    return fig


def pscore_plot(pscore: pd.DataFrame):
    """Propensity-score densities of certified and control firms, before and after nearest-neighbour matching."""
    import matplotlib.pyplot as plt

    from analysis.plots import PALETTE

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    bins = np.linspace(0, max(0.05, float(pscore["pscore"].quantile(0.995))), 50)
    for ax, (title, wcol) in zip(axes, (("before matching", None), ("after nearest-neighbour matching", "nn_weight"))):
        for i, (lab, tr) in enumerate((("certified", True), ("control", False))):
            part = pscore[pscore["treated"] == tr]
            w = None if wcol is None else part[wcol].to_numpy()
            if w is not None and w.sum() == 0:
                continue
            ax.hist(part["pscore"], bins=bins, weights=w, density=True, histtype="step", lw=1.5, color=PALETTE[i], label=lab)
        ax.set_title(title)
        ax.set_xlabel("propensity score")
        ax.legend(frameon=False, fontsize="small")
    axes[0].set_ylabel("density")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# the report of one family (notebooks/06_robustness.ipynb): inputs, run, tables, figures, notes
# ---------------------------------------------------------------------------------------------
#: the columns besides the outcomes every check reads
DESIGN_COLUMNS = ("firm_id", "year", "cohort", "batch", "cluster_id", "cell_id", "county_code", "industry_code", "province")


def require_family_inputs(inp: Any) -> None:
    """Stop the family's robustness report with one paragraph when the panel lacks what it needs.

    Every check is on the family's main outcome, so the report needs it (with the sample column, as
    :func:`analysis.effects.require_family_inputs`) and the design columns
    (:data:`DESIGN_COLUMNS`); the other outcomes are used where present (HonestDiD for each).

    Parameters
    ----------
    inp : analysis.effects.FamilyInputs
        The family's inputs (:func:`analysis.effects.family_inputs`).

    Raises
    ------
    analysis.availability.InputsAbsent
        The page is then published ending at that paragraph, and the summary lists it as skipped.
    """
    from analysis.availability import require_inputs

    page, title = f"robustness_{inp.family}", inp.spec["title"].lower()
    what = f"checks the robustness of the effect of certification on {title}"
    require_inputs(inp.panel, [inp.main], config=inp.config, page=page, what=f"{what} (every check is on the main outcome)")
    if inp.spec["sample"]:
        require_inputs(inp.panel, [inp.spec["sample"]], config=inp.config, page=page, what=f"{what} among firms with `{inp.spec['sample']}`")
    require_inputs(inp.panel, list(DESIGN_COLUMNS), config=inp.config, page=page, what=f"{what} (the design: cells, batches, geography)")


#: panel columns every robustness page reads besides the family's outcomes and the settings' columns
PANEL_COLUMNS: list[str] = ["firm_id", "year", "cohort", "batch", "cluster_id", "cell_id", "county_code", "province",
                            "industry_code", "output"]


def panel_columns(params: Mapping[str, Any]) -> list[str]:
    """The panel columns the robustness page reads: :data:`PANEL_COLUMNS` (keys, timing, batches,
    geography, the output that makes a cell eligible for randomization inference), the matching
    covariates (``psm.covariates``) and the clustering levels' columns (``prefecture`` is derived
    from ``county_code``, :func:`add_geography`). Loading only these keeps a census-size page at
    the size of the fits rather than of the whole panel.

    >>> from analysis.config import load_params
    >>> cols = panel_columns(load_params("default"))
    >>> "log_capital" in cols and "prefecture" not in cols
    True
    """
    s = settings(params)
    derived = {"prefecture", "province_code"}
    cols = [*PANEL_COLUMNS, *s["psm"]["covariates"], *s["clusters"].values(), s["cluster"]]
    return [c for c in dict.fromkeys(cols) if c not in derived]


def family_inputs(config: str, family: str) -> Any:
    """:func:`analysis.effects.family_inputs` with the columns the robustness page reads
    (:func:`panel_columns`) instead of only the effects report's."""
    from analysis import effects
    from analysis.config import load_params

    return effects.family_inputs(config, family, extra_columns=panel_columns(load_params(config)))


def family_announcements(inp: Any) -> tuple[pd.Series | None, str | None]:
    """Announcement date per cluster for the timing-rule variants, or ``None`` and the reason.

    From the synthetic world's cluster table, or the user's cluster list (``data.raw_clusters``) when
    it has ``cluster_id`` and ``announced`` columns (:func:`announcement_dates`).

    Parameters
    ----------
    inp : analysis.effects.FamilyInputs
        The family's inputs.

    Returns
    -------
    tuple of (pandas.Series or None, str or None)
        The dates, and a sentence for the report when there are none.
    """
    try:
        clusters = inp.world.get("clusters") if inp.params["data"]["source"] == "synthetic" else None
        if clusters is not None:
            dates = pd.Series(pd.to_datetime(clusters["announced"]).to_numpy(), index=clusters["cluster_id"].astype(str).to_numpy())
        else:
            dates = announcement_dates(inp.config, inp.params)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as exc:
        return None, f"no announcement dates ({exc}): the first-treated-year rule is not varied"
    known = set(dates.index)
    ids = set(inp.panel["cluster_id"].dropna().astype(str).unique())
    if not ids <= known:
        return None, f"{len(ids - known)} cluster(s) of the panel have no announcement date: the first-treated-year rule is not varied"
    return dates, None


def run_family(inp: Any, *, progress: bool | None = True, cache_dir: str | Path | None = "default") -> Robustness:
    """Every check on one family (:func:`run_robustness`), its tidy frames saved for later pages.

    The panel gets the geography columns; outcomes of the family the panel lacks (partial data) are
    left out of the per-outcome checks and named in ``notes``; HonestDiD results are cached in
    ``data/interim/cache/honest_did`` (shared with the effects report).

    Parameters
    ----------
    inp : analysis.effects.FamilyInputs
        The family's inputs (:func:`analysis.effects.family_inputs`), checked by :func:`require_family_inputs`.
    progress : bool, optional
        tqdm progress bars.
    cache_dir : str or pathlib.Path, optional
        HonestDiD's cache; ``"default"``: ``data/interim/cache/honest_did``; ``None``: no cache.

    Returns
    -------
    Robustness
    """
    from analysis.availability import usable_columns
    from analysis.config import INTERIM

    spec = copy_spec(inp.spec)
    have = usable_columns(inp.panel, [o["column"] for o in spec["outcomes"]])
    gone = [o["column"] for o in spec["outcomes"] if o["column"] not in have]
    spec["outcomes"] = [o for o in spec["outcomes"] if o["column"] in have]
    dates, no_dates = family_announcements(inp)
    rb = run_robustness(add_geography(inp.panel), spec, inp.params, announcements=dates, truth=inp.truth,
                        cache_dir=INTERIM / "cache" / "honest_did" if cache_dir == "default" else cache_dir, progress=progress)
    if gone:
        rb.notes.append(f"outcome(s) {', '.join(f'`{c}`' for c in gone)} are not in the panel: left out of the per-outcome checks")
    if no_dates:
        rb.notes.append(no_dates)
    save_robustness(rb, inp.config)
    return rb


def copy_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a family specification whose outcome list can be changed without touching the original.

    Parameters
    ----------
    spec : dict
        The family (:func:`analysis.effects.load_family`).

    Returns
    -------
    dict
    """
    return {**spec, "outcomes": [dict(o) for o in spec["outcomes"]]}


def _labels(inp: Any) -> dict[str, str]:
    return {o["column"]: o["label"] for o in inp.spec["outcomes"]}


def _main_row(rb: Robustness) -> pd.Series:
    return rb.main.set_index("estimator").loc["cs_dr"]


def opening_note(rb: Robustness, inp: Any) -> str:
    """The report's opening paragraph: the question, the main estimate (and the truth), what was thinned or left out.

    Parameters
    ----------
    rb : Robustness
        The family's results (:func:`run_family`).
    inp : analysis.effects.FamilyInputs
        The family's inputs.

    Returns
    -------
    str
        Markdown.
    """
    m, s = _main_row(rb), rb.settings
    text = (f"**{inp.spec['question']}** Main outcome: **{_labels(inp)[rb.main_outcome]}**. Main estimate (Callaway-Sant'Anna, "
            f"never-treated controls, clustered by `{s['cluster']}`): **{m['estimate']:.4f}** (95 % CI {m['conf_low']:.4f} to "
            f"{m['conf_high']:.4f}, p = {m['p_value']:.3g})")
    if np.isfinite(rb.truth):
        text += f"; the true effect in the synthetic world is {rb.truth:.4f}"
    text += "."
    notes = [*(f"Parameter set `{inp.config}`: {n}." for n in thinning_notes(s)), *(f"{n[0].upper()}{n[1:]}." for n in rb.notes)]
    return text + "".join(f"\n\n*{n}*" for n in notes)


def summary_styler(summary: pd.DataFrame):
    """The opening table for display: left-aligned, wrapped text, no index.

    Parameters
    ----------
    summary : pandas.DataFrame
        :meth:`Robustness.summary`.

    Returns
    -------
    pandas.io.formats.style.Styler
    """
    return summary.style.hide(axis="index").set_properties(**{"text-align": "left", "white-space": "pre-wrap"})


def wild_table(rb: Robustness) -> pd.DataFrame:
    """Wild cluster bootstrap rows beside the analytic ones, estimators labelled, indexed by estimator and weights.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    from analysis.effects import ESTIMATOR_LABELS

    cols = ["estimator", "weights", "draws", "n_clusters", "estimate", "std_error", "conf_low", "conf_high", "p_value"]
    w = rb.wild.assign(estimator=lambda d: d["estimator"].map(ESTIMATOR_LABELS).fillna(d["estimator"]))
    return w[cols].set_index(["estimator", "weights"])


def clustering_wide(rb: Robustness) -> pd.DataFrame:
    """Standard errors by estimator (rows) and clustering level (columns), with a row of cluster counts.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    from analysis.effects import ESTIMATOR_LABELS

    clus = rb.clusters.assign(estimator=lambda d: d["estimator"].map(ESTIMATOR_LABELS).fillna(d["estimator"]))
    table = clus.pivot_table(index="estimator", columns="cluster", values="std_error", sort=False)
    table.loc["clusters"] = clus.groupby("cluster", sort=False)["n_clusters"].max()
    table.columns.name = "standard error clustered by"
    return table


def _analytic_p(rb: Robustness) -> dict[str, float]:
    main = rb.main.set_index("estimator")
    return {"cs": float(main.loc["cs_dr", "p_value"]), "twfe": float(main.loc["twfe", "p_value"])}


def ri_table(rb: Robustness) -> pd.DataFrame:
    """Randomization inference: the estimate, its RI p-value beside the analytic one, draws, the placebo 95 % range.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
        Indexed by estimator.
    """
    ri = pd.concat([r.tidy() for r in rb.ri.values()], ignore_index=True)
    ri["analytic_p_value"] = [_analytic_p(rb)[k] for k in rb.ri]
    ri["estimator"] = [r.label for r in rb.ri.values()]
    return ri[["estimator", "estimate", "p_value", "analytic_p_value", "draws", "placebo_q025", "placebo_q975"]].set_index("estimator")


def ri_note(rb: Robustness) -> str:
    """The design of the reassignment and the number of draws (said when the parameter set thins them).

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    str
    """
    r = next(iter(rb.ri.values()))
    thin = f" (thinned by the parameter set; the default is {DEFAULTS['ri']['draws']})" if r.n_draws < DEFAULTS["ri"]["draws"] else ""
    return f"{r.design}. Draws: {r.n_draws}{thin}."


def ri_figure(rb: Robustness):
    """The permutation distribution of each RI statistic with the actual estimate and both p-values, side by side.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rb.ri), figsize=(6 * len(rb.ri), 4), squeeze=False)
    analytic = _analytic_p(rb)
    for ax, (k, r) in zip(axes.flat, rb.ri.items()):
        r.plot(ax=ax, analytic_p=analytic[k], title=r.label)
    fig.tight_layout()
    return fig


def _rows(frame: pd.DataFrame, *index: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    cols = [*index, *extra, "estimate", "std_error", "conf_low", "conf_high", "p_value", "n_obs"]
    return frame[[c for c in cols if c in frame]].set_index(list(index))


def design_table(rb: Robustness) -> pd.DataFrame:
    """Design choices (control group, last batch, timing rule, anticipation), indexed by check and variant.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return _rows(rb.design, "check", "variant")


def placebo_table(rb: Robustness) -> pd.DataFrame:
    """Placebo in time (certification pretended two or three years early), indexed by variant.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return _rows(rb.placebo, "variant")


def spillover_table(rb: Robustness) -> pd.DataFrame:
    """Spillover estimates and the main estimate without exposed controls, indexed by check and variant.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return _rows(rb.spill, "check", "variant", extra=["n_exposed_firms"])


def matching_table(rb: Robustness) -> pd.DataFrame:
    """PSM-DID, entropy balancing and IPW / DR estimates beside the main one, indexed by variant.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    main = rb.main[rb.main["estimator"] == "cs_dr"].assign(variant="main: Callaway-Sant'Anna, never-treated controls, no matching")
    return _rows(pd.concat([main, rb.matching["estimates"]], ignore_index=True), "variant")


def balance_table(rb: Robustness) -> pd.DataFrame:
    """The covariate balance table (standardised bias before and after matching and reweighting), by covariate.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return rb.matching["balance"].set_index("covariate")


def bullet_notes(notes: Sequence[str]) -> str:
    """Notes as a Markdown bullet list.

    Parameters
    ----------
    notes : sequence of str
        The sentences.

    Returns
    -------
    str

    Examples
    --------
    >>> print(bullet_notes(["one", "two"]))
    - one
    - two
    """
    return "\n".join(f"- {n}" for n in notes)


def twfe_figure(rb: Robustness):
    """The Goodman-Bacon plot beside the dCDH weights by cohort and year.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    bacon_plot(rb.twfe["bacon"], ax=axes[0])
    rb.twfe["weights"].plot(ax=axes[1], title="dCDH weights of the TWFE estimate, by cohort and year")
    fig.tight_layout()
    return fig


def bacon_table(rb: Robustness) -> pd.DataFrame:
    """The Goodman-Bacon decomposition by comparison type (weight and average 2x2 estimate).

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return rb.twfe["bacon"].by_type().set_index("type")


def dcdh_table(rb: Robustness) -> pd.DataFrame:
    """The dCDH weights of the static TWFE estimate: counts, sums, negative share, sigma_fe.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return rb.twfe["weights"].table().set_index("measure")


def breakdown_table(rb: Robustness, labels: Mapping[str, str]) -> pd.DataFrame:
    """HonestDiD breakdown values and the pre-trend test's power, one row per outcome.

    Parameters
    ----------
    rb : Robustness
        The family's results.
    labels : dict
        Outcome column -> readable label.

    Returns
    -------
    pandas.DataFrame
        Indexed by outcome, with a ``label`` column first.
    """
    bd = rb.honest["breakdown"].merge(rb.honest["power"], on="outcome", how="left")
    bd.insert(0, "label", bd["outcome"].map(labels))
    return bd.set_index("outcome")


def honest_table(rb: Robustness) -> pd.DataFrame:
    """HonestDiD robust confidence sets of every outcome, indexed by outcome, restriction and term.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return rb.honest["sensitivity"].set_index(["outcome", "restriction", "term"])


def honest_figures(rb: Robustness, labels: Mapping[str, str]) -> dict[str, Any]:
    """One HonestDiD sensitivity figure per outcome (:func:`honest_plot`), named ``robustness_<family>_honestdid_<outcome>``.

    Parameters
    ----------
    rb : Robustness
        The family's results.
    labels : dict
        Outcome column -> readable label.

    Returns
    -------
    dict
        Figure name -> matplotlib figure (for :func:`analysis.plots.save_figures`).
    """
    sens = rb.honest["sensitivity"]
    return {f"robustness_{rb.family}_honestdid_{y}": honest_plot(sens, y, label=labels.get(y, y)) for y in dict.fromkeys(sens["outcome"])}


SPEC_COLUMNS = ["estimator", "comparison", "timing", "sample", "cluster", "estimate", "std_error", "conf_low", "conf_high", "p_value", "n_obs"]


def spec_table(rb: Robustness) -> pd.DataFrame:
    """The specification curve's rows: each specification's choices and its estimate.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return rb.spec[SPEC_COLUMNS]


def spec_figure(rb: Robustness):
    """The specification curve of the family (:func:`spec_curve_plot`) with the main estimate and the truth.

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return spec_curve_plot(rb.spec, main_estimate=float(_main_row(rb)["estimate"]), truth=rb.truth, alpha=rb.settings["alpha"])


def spec_note(rb: Robustness) -> str:
    """How many specifications were estimated, and which combinations could not be (with why).

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    str
    """
    skipped = rb.spec.attrs.get("skipped", [])
    text = f"{len(rb.spec)} specifications"
    if skipped:
        text += f"; {len(skipped)} combination(s) not estimable: " + "; ".join(
            f"{x['estimator']} / {x['comparison']} / {x['timing']} / {x['sample']} ({x['reason']})" for x in skipped)
    return text + "."


def timings_table(rb: Robustness) -> pd.DataFrame:
    """Seconds each step took (one row).

    Parameters
    ----------
    rb : Robustness
        The family's results.

    Returns
    -------
    pandas.DataFrame
    """
    return pd.DataFrame({"step": list(rb.timings), "seconds": [round(v, 1) for v in rb.timings.values()]}).set_index("step").T
