"""The effects study: every estimator on every outcome of a family, pre-trends, heterogeneity, truth.

``notebooks/04_effects.ipynb`` runs once per outcome family (``config/effects_<family>.yaml``)
and calls :func:`estimate_family`, which returns a :class:`FamilyEffects` of tidy frames: the
headline ATT of each outcome by estimator, event studies, ATT by cohort and by calendar year,
pre-trend tests, HonestDiD sensitivity, heterogeneity with tests of equal effects, and Poisson
pseudo-maximum-likelihood estimates for counts. On the synthetic world each frame is put next to
the truth by :mod:`analysis.truth`. The summary page reads the saved frames, so every number in
every table comes from one place. The reports' steps are functions here too (:func:`family_inputs`,
:func:`headline_note`, :func:`event_figures`, :func:`family_heterogeneity`, :func:`load_summary`...),
so the notebooks only call and show. The main estimator is the parameter ``did.main``.

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

import gc
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.config import CONFIG_DIR, INTERIM, ParameterError, processed_dir
from analysis.did.data import as_panel
from analysis.did.small_sample import INFERENCE_NOTE
from analysis.inference import TestResult
from analysis.io import progress as progress_bar
from analysis.io import write_parquet
from analysis.results import EstimationResult, check_tidy
from analysis.tables import wide_table
from analysis.truth import attach_truth, attach_truth_overall, count_truth, heterogeneity_truth, proportional_truth, truth_by_group

__all__ = [
    "ESTIMATOR_LABELS",
    "INFERENCE_NOTE",
    "pretrend_sentence",
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
    "HETEROGENEITY",
    "heterogeneity_groups",
    "FamilyInputs",
    "family_inputs",
    "sample_note",
    "estimate",
    "clusters_note",
    "headline_note",
    "event_figures",
    "cohort_year_tables",
    "pretrend_table",
    "pretrend_note",
    "honest_note",
    "family_heterogeneity",
    "count_table",
    "save_results",
    "Summary",
    "load_summary",
    "summary_figure",
    "summary_note",
    "bias_by_outcome",
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
    small_sample: bool = True,
) -> dict[str, EstimationResult]:
    """Run one estimator; return its overall ATT (``"simple"``) and event study (``"event"``).

    Stacked DiD uses the window ``[window[0], 0]``: it keeps only sub-experiments with a complete
    window, and with the data ending in the last cohort's first treated year a longer window
    would drop all but the first cohort. Its overall ATT is then the effect at impact.

    For the Callaway-Sant'Anna estimators also ``"group"`` (by cohort) and ``"calendar"``
    (by year), and the ``"att_gt"`` object itself. Every result's tidy ``estimator`` column
    carries ``name``.

    With ``small_sample`` (the default) every row gets CR2 standard errors and a t interval with
    Bell-McCaffrey degrees of freedom (a ``df`` column), and the event study carries what
    :func:`pretrend_test` needs for its wild cluster bootstrap; see
    :mod:`analysis.did.small_sample` for why (:data:`INFERENCE_NOTE` is the sentence the
    reports print). With ``n_boot > 0`` the Callaway-Sant'Anna event study's band is uniform:
    the sup-t critical value of the wild cluster bootstrap-t over its rows (CR2 in every draw).
    """
    with warnings.catch_warnings():
        # pyfixest warns about singleton fixed effects it drops; the estimators note the count in meta
        warnings.filterwarnings("ignore", message=".*singleton fixed effect.*")
        out = _run_estimator(name, data, outcome, unit=unit, time=time, cohort=cohort, cluster=cluster, window=window,
                             alpha=alpha, n_boot=0 if small_sample else n_boot, seed=seed)
        if small_sample:
            out = _small_sample(name, data, outcome, out, unit=unit, time=time, cohort=cohort, cluster=cluster, window=window,
                                alpha=alpha, n_boot=n_boot, seed=seed)
        return out


def _small_sample(name, data, outcome, out, *, unit, time, cohort, cluster, window, alpha, n_boot, seed) -> dict[str, EstimationResult]:
    """Replace the inference of ``out``'s results by CR2 / Bell-McCaffrey (see :func:`run_estimator`)."""
    from analysis.did import small_sample as sm

    lo, hi = window
    args = (data, outcome, unit, time, cohort)
    blocks: dict[str, list] = {}
    if name in ("cs_dr", "cs_notyet"):
        cols = {"outcome": outcome, "unit": unit, "time": time, "cohort": cohort, "cluster": cluster}
        design = sm.cs_design(out["att_gt"], data, **cols)
        for key in ("simple", "event", "group", "calendar"):
            blocks[key] = [sm.cs_small_sample(out[key], out["att_gt"], data, design=design, **cols)]
    elif name == "sunab":  # one regression for both aggregations (so for imputation and stacked)
        design = sm.sunab_design(*args, cluster=cluster)
        blocks = {"simple": [sm.sunab_small_sample(*args, aggregate="att", cluster=cluster, design=design)],
                  "event": [sm.sunab_small_sample(*args, cluster=cluster, design=design)]}
    elif name == "imputation":
        design = sm.imputation_design(*args, cluster=cluster)
        blocks = {"simple": sm.imputation_small_sample(*args, aggregate="simple", cluster=cluster, design=design),
                  "event": sm.imputation_small_sample(*args, horizons=list(range(hi + 1)), pretrends=-lo - 1, cluster=cluster, design=design)}
    elif name == "stacked":
        kw = {"kappa_pre": -lo, "kappa_post": 0, "cluster": cluster}
        design = sm.stacked_design(*args, **kw)
        blocks = {"simple": [sm.stacked_small_sample(*args, aggregate="average", design=design, **kw)],
                  "event": [sm.stacked_small_sample(*args, design=design, **kw)]}
    elif name == "twfe":
        blocks = {"simple": [sm.twfe_small_sample(*args, dynamic=False, cluster=cluster)],
                  "event": [sm.twfe_small_sample(*args, dynamic=True, cluster=cluster)]}
    for key, bl in blocks.items():
        out[key] = sm.apply_small_sample(out[key], bl, alpha=alpha)
    es = out["event"]
    if n_boot > 0 and name in ("cs_dr", "cs_notyet"):
        terms = es.table["term"].tolist()
        boot = es.small_sample[0].wild_bootstrap(terms, n_boot=n_boot, seed=seed, alpha=alpha, progress=False)
        crit = max(boot.sup_crit, float(np.nanmax(stats.t.ppf(1 - alpha / 2, es.table["df"]))))
        es.table["conf_low"] = es.table["estimate"] - crit * es.table["std_error"]
        es.table["conf_high"] = es.table["estimate"] + crit * es.table["std_error"]
        es.meta["band"] = f"uniform (sup-t of the wild cluster bootstrap-t, CR2, {n_boot} draws) over the event rows, critical value {crit:.3f}"
    return out


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
        out["event"] = imputation(data, outcome, unit, time, cohort, aggregate="event", horizons=list(range(hi + 1)), pretrends=-lo - 1, **common)
    elif name == "stacked":
        from analysis.did.stacked import post_average, stacked

        # WFH keep only sub-experiments with a complete event window; the last cohort is treated in
        # the last data year, so a window beyond event time 0 would drop every later cohort.
        kw = dict(kappa_pre=-lo, kappa_post=0, **common)
        es = stacked(data, outcome, unit, time, cohort, aggregate="event", **kw)
        out["simple"], out["event"] = post_average(es, alpha=alpha), es  # one regression, as aggregate="simple" runs it
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
def pretrend_test(es: EstimationResult, *, method: str = "auto", n_boot: int = 999, seed: int = 0) -> TestResult:
    """Joint test that all pre-period event-time coefficients are zero (see :func:`analysis.did.pretrend.pretrend_test`).

    The reports use the default: on results of :func:`run_estimator` (which carry CR2 small-sample
    inference) the wild cluster bootstrap of the CR2 Wald statistic over the leads of the report
    window. Its chi-squared version (``method="chi2"``) holds only when every lead's variance is
    estimated from many clusters; with a dozen certified cells a cohort it rejected true parallel
    trends in 17 to 22 % of simulated worlds (5 leads, R = 200 per outcome) and 55 % (all 12
    leads), the bootstrap in 6.5 % and 3 to 11 % (``tests/test_pretrend_size.py``; the table in
    :mod:`analysis.did.pretrend`).
    """
    from analysis.did.pretrend import pretrend_test as _pretrend_test

    return _pretrend_test(es, method=method, n_boot=n_boot, seed=seed)


def pretrend_sentence(test: Mapping[str, Any], label: str, estimator: str = "Callaway-Sant'Anna") -> str:
    """The report's sentence on a pre-trend test (a row of :attr:`FamilyEffects.pretrends`).

    Examples
    --------
    >>> text = pretrend_sentence({"df": 5, "p_value": 0.31, "method": "wild_bootstrap", "n_boot": 999}, "log value added")
    >>> text.endswith("parallel pre-trends are not rejected at 5 %.")
    True
    """
    p, k = float(test["p_value"]), int(test["df"])
    verdict = "rejected" if p < 0.05 else "not rejected"
    if test.get("method") == "wild_bootstrap":
        how = (f"a wild cluster bootstrap ({int(test.get('n_boot') or 0)} draws) of the CR2 Wald statistic, used because with few "
               "certified clusters per cohort the chi-squared approximation rejects true parallel trends far too often")
    elif test.get("method") == "htz":
        how = "the HTZ small-sample F test with CR2 (Pustejovsky and Tipton 2018)"
    else:
        how = "chi-squared (valid only when every lead rests on many clusters)"
    return (f"For {label} ({estimator}), the joint test that the {k} pre-certification coefficients of the event window are zero "
            f"gives p = {p:.3f} ({how}): parallel pre-trends are {verdict} at 5 %.")


def equality_test(estimates: Sequence[float], std_errors: Sequence[float], df: Sequence[float] | None = None) -> TestResult:
    """Test of equal effects across groups estimated on disjoint samples.

    ``W = sum_g (b_g - b_bar)^2 / se_g^2`` with the precision-weighted mean ``b_bar``. Without
    ``df``: chi-squared with (groups - 1) degrees of freedom, which needs every group's
    standard error to rest on many clusters. With ``df`` (each group's degrees of freedom, e.g.
    Bell-McCaffrey's from :func:`run_estimator`): Welch's (1951) heteroscedastic F test,
    ``W / (k - 1) / (1 + 2 (k - 2) lam / (k^2 - 1))`` against ``F(k - 1, (k^2 - 1) / (3 lam))``
    with ``lam = sum_g (1 - w_g / sum w)^2 / df_g``, which allows for standard errors estimated
    from few clusters. Treats the groups' estimates as independent: exact when the groups fall in
    different clusters (regions), approximate when a cluster holds firms of several groups (SME
    and large firms of one cell).

    Examples
    --------
    >>> round(equality_test([0.1, 0.1], [0.02, 0.03]).p_value, 3)
    1.0
    >>> equality_test([0.1, 0.3], [0.05, 0.05], df=[8, 8]).method
    'welch'
    """
    b, se = np.asarray(estimates, float), np.asarray(std_errors, float)
    d = np.full(b.shape, np.inf) if df is None else np.asarray(df, float)
    ok = np.isfinite(b) & np.isfinite(se) & (se > 0) & ~np.isnan(d)
    b, w, d = b[ok], 1 / se[ok] ** 2, d[ok]
    null = "equal effects in all groups"
    k = b.size
    if k < 2:
        return TestResult(stat=float("nan"), df=0, p_value=float("nan"), null=null, distribution="none", method="none")
    bbar = np.sum(w * b) / np.sum(w)
    stat = float(np.sum(w * (b - bbar) ** 2))
    if df is None:
        return TestResult(stat=stat, df=k - 1, p_value=float(stats.chi2.sf(stat, k - 1)), null=null, distribution=f"chi2({k - 1})", method="chi2")
    lam = float(np.sum((1 - w / w.sum()) ** 2 / d))
    F = stat / (k - 1) / (1 + 2 * (k - 2) * lam / (k**2 - 1))
    df2 = (k**2 - 1) / (3 * lam) if lam > 0 else np.inf
    return TestResult(stat=float(F), df=k - 1, df_denom=float(df2), p_value=float(stats.f.sf(F, k - 1, df2)), null=null,
                      distribution=f"F({k - 1}, {df2:.1f})", method="welch")


# ---------------------------------------------------------------------------------------------
# heterogeneity and counts
# ---------------------------------------------------------------------------------------------
def heterogeneity(
    data: pd.DataFrame,
    outcome: str,
    groups: Mapping[str, pd.Series],
    *,
    estimator: str,
    **kwargs: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Overall ATT within subgroups (treated and controls of the same group), and tests of equality.

    Parameters
    ----------
    data : pandas.DataFrame
        The panel.
    outcome : str
        Outcome column.
    groups : mapping
        ``{dimension: Series of group labels aligned with data}``, e.g. baseline SME status.
    estimator : str
        Estimator name (see :func:`run_estimator`); the study's is ``did.main``.

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
            gc.collect()
            part.append(res.assign(dimension=dim, group=str(g)))
        if not part:
            continue
        frame = pd.concat(part, ignore_index=True)
        rows.append(frame)
        test = equality_test(frame["estimate"], frame["std_error"], frame.get("df"))
        tests.append({"dimension": dim, "groups": len(frame), **test.to_dict()})
    tidy = check_tidy(pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame()
    return tidy, pd.DataFrame(tests)


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
    """Poisson pseudo-maximum likelihood for a count outcome: the two estimators of :mod:`analysis.did.poisson`.

    Two rows: ``ppml_twfe`` (:func:`~analysis.did.poisson.ppml`, one coefficient on
    ``1[t >= cohort]``) and ``etwfe_poisson`` (:func:`~analysis.did.poisson.etwfe_poisson`,
    Wooldridge's 2023 extended TWFE Poisson averaged over treated cells). Estimates are log
    ratios, ``log E[Y(1)] / E[Y(0)]``; ``percent`` is ``100 (exp(estimate) - 1)``. Counts with
    many zeros need this rather than log(1 + y) (whose ATT depends on the units of y; Chen and
    Roth 2024).
    """
    from analysis.did.poisson import etwfe_poisson, ppml

    kw = dict(cluster=cluster, alpha=alpha)
    rows = [ppml(data, outcome, unit, time, cohort, **kw).tidy()]
    gc.collect()
    rows.append(etwfe_poisson(data, outcome, unit, time, cohort, **kw).tidy())
    gc.collect()
    out = check_tidy(pd.concat(rows, ignore_index=True))
    out["percent"] = 100 * np.expm1(out["estimate"])
    return out


# ---------------------------------------------------------------------------------------------
# the family
# ---------------------------------------------------------------------------------------------
@dataclass
class FamilyEffects:
    """All estimates of one outcome family, as tidy frames (see :func:`estimate_family`).

    ``results`` holds each fit's :class:`~analysis.results.EstimationResult` objects by
    ``(outcome, estimator)``, released of their small-sample blocks after the pre-trend test
    (memory at census scale); call :func:`run_estimator` again for other joint tests.
    """

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


def _did_columns(panel: pd.DataFrame, did: Mapping[str, Any], outcome: str) -> list[str]:
    """The columns the estimators read: firm, year, cohort, cluster and the outcome."""
    return [c for c in dict.fromkeys(["firm_id", "year", "cohort", did["cluster"], outcome]) if c in panel.columns]


def _did_frame(panel: pd.DataFrame, did: Mapping[str, Any], outcome: str) -> pd.DataFrame:
    """The rows with ``outcome`` observed, only the columns of :func:`_did_columns`: a copy of five
    columns, not of the whole panel (at 5 million firm-years 0.2 GB instead of 2.5 GB)."""
    return panel.loc[panel[outcome].notna().to_numpy(), _did_columns(panel, did, outcome)]


def _released(fit: Mapping[str, Any]) -> dict[str, EstimationResult]:
    """The results of one :func:`run_estimator` call without what only its joint tests need.

    Drops the ``att_gt`` object (influence functions, units x cells) and each result's
    small-sample blocks (per-cluster matrices, clusters x parameters^2), once the pre-trend test
    has used them: kept for 6 estimators x 6 outcomes they took 13 GB at 4.9 million firm-years.
    Tables, covariances and metadata stay.
    """
    out = {}
    for key, res in fit.items():
        if key != "att_gt" and isinstance(res, EstimationResult):
            if getattr(res, "small_sample", None):
                res.small_sample = None
                res.meta["small_sample_released"] = True  # pretrend_test then refuses, rather than fall back to chi2
            out[key] = res
    return out


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
    panel : pandas.DataFrame
        The panel (with TFP columns for the productivity family).
    spec : mapping
        The family, from :func:`load_family`.
    did : mapping
        The ``did`` section of the parameter set (``cluster``, ``alpha``, ``n_boot``,
        ``estimators``, ``main``, ``window``); only the main estimator gets bootstrap draws.
    seed : int, default 0
        For the multiplier bootstrap of the main estimator.
    progress : bool, default True
        Show a progress bar over outcome x estimator fits.
    """
    outcomes = [o["column"] for o in spec["outcomes"]]
    _check_columns(panel, [*outcomes, "firm_id", "year", "cohort", did["cluster"]], f"effects family '{spec['family']}'")
    window = tuple(did["window"])
    fits = [(o, e) for o in outcomes for e in did["estimators"]]
    results: dict[tuple[str, str], dict[str, EstimationResult]] = {}
    pre: list[dict[str, Any]] = []
    bar = progress_bar(fits, desc=f"{spec['family']}: estimators x outcomes", progress=progress)
    current, data = None, None  # one validated container per outcome (its columns only), shared by the estimators
    for outcome, est in bar:
        bar.set_postfix_str(f"{est} on {outcome}")
        if outcome != current:
            data = None  # the previous outcome's container goes before the next is built
            data = as_panel(_did_frame(panel, did, outcome), unit="firm_id", time="year", cohort="cohort", cluster=did["cluster"])
            current = outcome
        n_boot = did["n_boot"] if est == did["main"] else 0
        r = run_estimator(est, data, outcome, cluster=did["cluster"], window=window, alpha=did["alpha"], n_boot=n_boot, seed=seed)
        test = pretrend_test(r["event"], seed=seed)
        pre.append({"outcome": outcome, "estimator": est, **test.to_dict()})
        results[(outcome, est)] = _released(r)
        del r
        gc.collect()  # the fits leave reference cycles holding data-sized arrays; at 5 million rows ~1 GB a fit

    def stack(kind: str) -> pd.DataFrame:
        frames = [r[kind].tidy() for r in results.values() if kind in r]
        return check_tidy(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()

    clusters = []
    for (outcome, est), r in results.items():
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
    data = _did_frame(data, did, outcome)
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


# ---------------------------------------------------------------------------------------------
# the report of one family (notebooks/04_effects.ipynb) and the summary (05_summary.ipynb)
# ---------------------------------------------------------------------------------------------
#: how each name in ``did.heterogeneity`` splits the sample: (dimension label, labels of a panel)
HETEROGENEITY: dict[str, tuple[str, Any]] = {
    "sme": ("size", lambda panel: _baseline(panel, "sme").map({True: "SME", False: "large"})),
}


def _baseline(panel: pd.DataFrame, column: str) -> pd.Series:
    from analysis.panel import baseline

    return baseline(panel, column)


def heterogeneity_groups(panel: pd.DataFrame, dimensions: Sequence[str]) -> dict[str, pd.Series]:
    """The subgroups of the heterogeneity analysis, from the parameter set's ``did.heterogeneity``.

    ``sme`` splits by SME status at baseline (the year before certification, or the first year;
    dimension ``size``, groups ``SME`` / ``large``); any other name is a panel column whose
    values are the groups (``ownership``, ``region``...).

    Parameters
    ----------
    panel : pandas.DataFrame
        The panel.
    dimensions : sequence of str
        Names from ``did.heterogeneity``.

    Returns
    -------
    dict
        ``{dimension: labels aligned with panel}``.

    Raises
    ------
    KeyError
        Naming a dimension that is neither a rule of :data:`HETEROGENEITY` nor a panel column.
    """
    from analysis.availability import is_known_column

    groups: dict[str, pd.Series] = {}
    for name in dimensions:
        if name not in panel.columns and is_known_column(name):
            continue  # partial data: a dimension the panel lacks is left out (a misspelt name still fails)
        if name in HETEROGENEITY:
            label, make = HETEROGENEITY[name]
            groups[label] = make(panel)
        elif name in panel.columns:
            groups[name] = panel[name]
        else:
            raise KeyError(f"did.heterogeneity names {name!r}, which is neither {sorted(HETEROGENEITY)} nor a panel column")
    return groups


@dataclass
class FamilyInputs:
    """What the report of one outcome family reads: parameters, specification, panel, the world's truth.

    Built by :func:`family_inputs`; the properties are the pieces the report uses over and over.
    """

    config: str
    family: str
    params: dict[str, Any]
    spec: dict[str, Any]
    panel: pd.DataFrame
    world: dict[str, pd.DataFrame]

    @property
    def did(self) -> dict[str, Any]:
        """The ``did`` section of the parameter set."""
        return self.params["did"]

    @property
    def main(self) -> str:
        """The family's main outcome."""
        return self.spec["main"]

    @property
    def main_estimator(self) -> str:
        """The study's main estimator (``did.main``)."""
        return self.did["main"]

    @property
    def outcomes(self) -> list[str]:
        """The family's outcome columns (not the counts)."""
        return [o["column"] for o in self.spec["outcomes"]]

    @property
    def labels(self) -> dict[str, str]:
        """Readable labels of the outcome and count columns."""
        return {o["column"]: o["label"] for o in [*self.spec["outcomes"], *self.spec["counts"]]}

    @property
    def to_truth(self) -> dict[str, str | None]:
        """Each outcome column's name in the world's truth table (``None`` if it has none)."""
        return {o["column"]: o["truth"] for o in [*self.spec["outcomes"], *self.spec["counts"]]}

    @property
    def truth(self) -> pd.DataFrame | None:
        """The world's truth table (``None`` on real data)."""
        return self.world.get("truth")

    @property
    def potential(self) -> pd.DataFrame | None:
        """The world's potential outcomes (``None`` on real data)."""
        return self.world.get("potential")


def family_inputs(config: str, family: str, *, every_column: bool = False, extra_columns: Sequence[str] = ()) -> FamilyInputs:
    """Load what the report of ``family`` needs: the parameter set, the family, the panel
    (restricted to the family's sample) and the world's truth tables (empty on real data).

    Only the columns the effects report reads are loaded (memory at census scale,
    :func:`family_columns`), and ``extra_columns`` (those of the panel; the robustness report's
    geography, matching covariates and batches: :func:`analysis.robustness.family_inputs`), or every
    column with ``every_column``. They come from the panel with TFP when one of them is a TFP column
    (:func:`analysis.config.reads_tfp`), else from the built panel, so that the family's pages need
    not wait for ``03_productivity`` (``tools/families.py`` tells make which families those are).
    """
    from analysis.config import load_params, reads_tfp
    from analysis.panel import load_panel, load_world_tables
    from analysis.productivity import load_tfp_panel

    params = load_params(config)
    spec = load_family(family)
    columns = family_columns(spec, params["did"], extra_columns)
    if every_column or reads_tfp(columns):
        panel = load_tfp_panel(config, params, columns=None if every_column else columns)
    else:
        panel = load_panel(config, columns=columns)
    if spec["sample"] and spec["sample"] in panel.columns:  # absent: require_family_inputs stops the report
        panel = panel[panel[spec["sample"]].astype(bool)].reset_index(drop=True)
    return FamilyInputs(config=config, family=family, params=params, spec=spec, panel=panel, world=load_world_tables(config))


def family_columns(spec: Mapping[str, Any], did: Mapping[str, Any], extra_columns: Sequence[str] = ()) -> list[str]:
    """The panel columns a family's effects report reads: keys, timing, the cluster, the family's
    outcomes and counts, its sample, the heterogeneity splits (and ``extra_columns``).

    >>> from analysis.config import load_params
    >>> family_columns(load_family("emissions"), load_params("default")["did"])[:5]
    ['firm_id', 'year', 'cohort', 'cell_id', 'log_so2_intensity']
    """
    columns = ["firm_id", "year", "cohort", did["cluster"], *[o["column"] for o in [*spec["outcomes"], *spec["counts"]]],
               *([spec["sample"]] if spec["sample"] else []), *did["heterogeneity"], *extra_columns]
    return list(dict.fromkeys(columns))


def require_family_inputs(inp: FamilyInputs) -> None:
    """Stop the family's report with one paragraph (:func:`analysis.availability.require_inputs`)
    when the panel has none of its outcomes, or lacks the column that defines its sample.

    Raises
    ------
    analysis.availability.InputsAbsent
        The page is then published ending at that paragraph, and the summary lists it as skipped.
    """
    from analysis.availability import require_inputs

    page, title = f"effects_{inp.family}", inp.spec["title"].lower()
    require_inputs(inp.panel, [o["column"] for o in inp.spec["outcomes"]], any_of=True, config=inp.config, page=page,
                   what=f"estimates the effects of certification on {title}")
    if inp.spec["sample"]:
        require_inputs(inp.panel, [inp.spec["sample"]], config=inp.config, page=page,
                       what=f"estimates the effects on {title} among firms with `{inp.spec['sample']}`")


def sample_note(inp: FamilyInputs) -> str:
    """The report's opening sentence: the question, the sample, the clustering."""
    panel, spec = inp.panel, inp.spec
    n_firms = panel["firm_id"].nunique()
    n_treated = panel.loc[panel["cohort"] > 0, "firm_id"].nunique()
    return (
        f"**{spec['question']}** Sample: {len(panel):,} firm-years of {n_firms:,} firms"
        + (f" (only firms with `{spec['sample']}`)" if spec["sample"] else "")
        + f", of which {n_treated:,} firms belong to clusters certified within the data. "
        f"Standard errors are clustered by `{inp.did['cluster']}` (the county x industry cell, where certification is assigned)."
    )


def estimate(inp: FamilyInputs, *, progress: bool = True) -> FamilyEffects:
    """:func:`estimate_family` on the inputs of a family report."""
    return estimate_family(inp.panel, inp.spec, inp.did, seed=inp.params["seed"], progress=progress)


def clusters_note(fx: FamilyEffects, inp: FamilyInputs) -> str:
    """How many clusters (cells) the estimators used, and how many of them are certified."""
    clusters = fx.n_clusters.pivot(index="estimator", columns="outcome", values="n_clusters")
    certified = inp.panel.loc[inp.panel["cohort"] > 0, inp.did["cluster"]].nunique()
    return f"Clusters used: {int(clusters.min().min()):,} to {int(clusters.max().max()):,} cells (of which {certified} certified)."


def headline_note(simple: pd.DataFrame, inp: FamilyInputs) -> str:
    """The headline sentence: the main estimator's ATT on the main outcome, the truth, TWFE's estimate."""
    main, labels = inp.main, inp.labels
    m = simple[(simple["outcome"] == main) & (simple["estimator"] == inp.main_estimator)].iloc[0]
    twfe = simple[(simple["outcome"] == main) & (simple["estimator"] == "twfe")]
    text = (f"Certification changed **{labels[main]}** by **{m['estimate']:.3f}** on average "
            f"(95 % CI {m['conf_low']:.3f} to {m['conf_high']:.3f}; {ESTIMATOR_LABELS.get(inp.main_estimator, inp.main_estimator)})")
    if pd.notna(m["truth"]):
        text += f"; the true effect in the synthetic world is {m['truth']:.3f}, {'inside' if m['covered'] else 'outside'} the interval"
    if len(twfe):
        text += f". Two-way fixed effects gives {twfe['estimate'].iloc[0]:.3f}"
    return text + "."


def event_figures(event: pd.DataFrame, inp: FamilyInputs) -> dict[str, Any]:
    """One event-study figure per outcome (all estimators, the true path in black), named for saving:
    ``{"effects_<family>_event_<outcome>": figure}``."""
    from analysis.plots import event_study_plot

    figures = {}
    for col in inp.outcomes:
        part = event[event["outcome"] == col].assign(estimator=lambda d: d["estimator"].map(ESTIMATOR_LABELS))
        tr = _truth_path(inp, col)
        figures[f"effects_{inp.family}_event_{col}"] = event_study_plot(part, truth=tr, title=inp.labels[col], ylabel=inp.labels[col])
    return figures


def _truth_path(inp: FamilyInputs, column: str) -> pd.DataFrame | None:
    """The true event-time path of an outcome column within the event window (``None`` on real data)."""
    from analysis.truth import event_truth

    return event_truth(inp.truth, inp.to_truth.get(column), inp.did["window"])


def cohort_year_tables(fx: FamilyEffects, inp: FamilyInputs) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The main estimator's ATT by cohort and by calendar year, with the truth.

    Only the Callaway-Sant'Anna estimators (``cs_dr``, ``cs_notyet``) have these aggregations;
    with another main estimator the tables are empty.

    Returns
    -------
    (group, calendar, by_cohort, by_year)
        The tidy frames with truth columns, and the two report tables (estimate, standard
        error, truth by outcome, rounded to 4 decimals).
    """
    est = inp.main_estimator
    group = attach_truth(fx.group[fx.group["estimator"] == est], inp.truth, inp.to_truth, "group")
    calendar = attach_truth(fx.calendar[fx.calendar["estimator"] == est], inp.truth, inp.to_truth, "calendar")
    by_cohort = group.pivot_table(index="cohort", columns="outcome", values=["estimate", "std_error", "truth"]).round(4)
    by_year = calendar.pivot_table(index="time", columns="outcome", values=["estimate", "std_error", "truth"]).round(4)
    return group, calendar, by_cohort, by_year


def pretrend_table(fx: FamilyEffects) -> pd.DataFrame:
    """p-values of the joint pre-trend tests: estimators (labelled) in rows, outcomes in columns."""
    pre = fx.pretrends.assign(estimator=lambda d: d["estimator"].map(ESTIMATOR_LABELS))
    return pre.pivot(index="estimator", columns="outcome", values="p_value")


def pretrend_note(fx: FamilyEffects, inp: FamilyInputs) -> str:
    """The main estimator's joint pre-trend test on the main outcome, in words, with the inference note."""
    main_pre = fx.pretrends[(fx.pretrends["outcome"] == inp.main) & (fx.pretrends["estimator"] == inp.main_estimator)].iloc[0]
    label = ESTIMATOR_LABELS.get(inp.main_estimator, inp.main_estimator)
    return pretrend_sentence(main_pre, inp.labels[inp.main], estimator=label) + " " + INFERENCE_NOTE


def honest_note(sens: pd.DataFrame, label: str) -> str:
    """The HonestDiD breakdown value (:func:`breakdown_value`) in words."""
    breakdown = breakdown_value(sens)
    if pd.isna(breakdown):
        return "Already at the smallest Mbar the robust confidence set contains zero."
    sign = "positive" if sens["estimate"].dropna().iloc[0] > 0 else "negative"
    return (f"The first post-period effect on {label} stays significantly {sign} for every Mbar up to **{breakdown:g}** "
            "(post-treatment violations of parallel trends up to that many times the largest pre-treatment one).")


def family_heterogeneity(inp: FamilyInputs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Heterogeneity of the main outcome's ATT over the groups of ``did.heterogeneity``, with the truth.

    Returns
    -------
    (tidy, tests)
        See :func:`heterogeneity`; ``tidy`` has a ``truth`` column on the synthetic world.
    """
    did, main = inp.did, inp.main
    groups = heterogeneity_groups(inp.panel, did["heterogeneity"])
    het, tests = heterogeneity(inp.panel[_did_columns(inp.panel, did, main)].dropna(subset=[main]), main, groups,
                               estimator=inp.main_estimator,
                               cluster=did["cluster"], window=tuple(did["window"]), alpha=did["alpha"])
    return heterogeneity_truth(het, inp.potential, inp.panel, groups, inp.to_truth[main]), tests


def count_table(inp: FamilyInputs) -> pd.DataFrame:
    """Poisson estimates (:func:`count_effects`) of the family's count outcomes, with the true log
    ratios on the synthetic world; empty without count outcomes."""
    if not inp.spec["counts"]:
        return pd.DataFrame()
    did = inp.did
    counts = pd.concat([count_effects(inp.panel[_did_columns(inp.panel, did, c["column"])], c["column"], cluster=did["cluster"],
                                      alpha=did["alpha"]) for c in inp.spec["counts"]], ignore_index=True)
    return count_truth(counts, inp.potential, inp.to_truth)


def save_results(fx: FamilyEffects, inp: FamilyInputs, **shown: pd.DataFrame) -> Path:
    """Save what the summary page reads: the family's tidy frames, as shown in its report.

    ``shown`` replaces frames of ``fx`` by their shown versions (with truth columns: ``simple``,
    ``event``, ``group``, ``calendar``) and adds the others (``honestdid``, ``heterogeneity``,
    ``heterogeneity_tests``, ``counts``). Written by :func:`save_family`.
    """
    return save_family({**fx.frames(), **shown}, inp.config, inp.family)


@dataclass
class Summary:
    """Every family's saved results, for the summary page (:func:`load_summary`)."""

    params: dict[str, Any]
    specs: dict[str, dict[str, Any]]
    saved: dict[str, dict[str, pd.DataFrame]]

    @property
    def families(self) -> list[str]:
        """The outcome families, sorted."""
        return list(self.specs)

    @property
    def labels(self) -> dict[str, str]:
        """Readable labels of every family's outcomes."""
        return {o["column"]: o["label"] for s in self.specs.values() for o in s["outcomes"]}

    @property
    def simple(self) -> pd.DataFrame:
        """All families' overall ATTs (with truth), one frame with a ``family`` column."""
        return pd.concat([self.saved[f]["simple"].assign(family=f) for f in self.families], ignore_index=True)

    @property
    def main_estimator(self) -> str:
        """The study's main estimator (``did.main``)."""
        return self.params["did"]["main"]


def load_summary(config: str) -> Summary:
    """Read the parameter set, every family of ``config/effects_*.yaml`` that ran (not skipped for
    lack of inputs, :mod:`analysis.availability`) and their saved results."""
    from analysis.availability import skipped_reports
    from analysis.config import load_params

    params = load_params(config)
    skipped = set(skipped_reports(config)["page"])  # families whose report lacked its inputs
    families = [f for f in sorted(p.stem.removeprefix("effects_") for p in CONFIG_DIR.glob("effects_*.yaml")) if f"effects_{f}" not in skipped]
    specs = {f: load_family(f) for f in families}
    return Summary(params=params, specs=specs, saved={f: load_saved(config, f) for f in families})


def summary_figure(summary: Summary):
    """The headline figure: each family's main outcome, every estimator with its 95 % CI, the truth."""
    import matplotlib.pyplot as plt

    from analysis.plots import estimates_plot

    simple = summary.simple
    fig, axes = plt.subplots(len(summary.families), 1, figsize=(9, 3.2 * len(summary.families)), squeeze=False)
    for ax, f in zip(axes.flat, summary.families):
        main = summary.specs[f]["main"]
        part = simple[simple["outcome"] == main].assign(estimator=lambda d: d["estimator"].map(ESTIMATOR_LABELS))
        tr = part["truth"].dropna()
        estimates_plot(part, ax=ax, truth=float(tr.median()) if len(tr) else None, title=f"{summary.specs[f]['title']}: {summary.labels[main]}")
    fig.tight_layout()
    return fig


def summary_note(summary: Summary) -> str:
    """The main estimate of every family in a list (with the truth on the synthetic world)."""
    simple, est = summary.simple, summary.main_estimator
    lines = []
    for f in summary.families:
        main = summary.specs[f]["main"]
        r = simple[(simple["outcome"] == main) & (simple["estimator"] == est)].iloc[0]
        lines.append(f"- **{summary.specs[f]['title']}** ({summary.labels[main]}): {r['estimate']:.3f} (95 % CI {r['conf_low']:.3f} to {r['conf_high']:.3f})"
                     + (f", truth {r['truth']:.3f}" if pd.notna(r["truth"]) else ""))
    return f"Main estimates ({ESTIMATOR_LABELS.get(est, est)}):\n" + "\n".join(lines)


def bias_by_outcome(simple: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Bias against the truth: outcomes (labelled) in rows, estimators (labelled) in columns."""
    by_outcome = simple.dropna(subset=["truth"]).pivot_table(index="outcome", columns="estimator", values="bias")
    by_outcome.index = [labels.get(o, o) for o in by_outcome.index]
    by_outcome.columns = [ESTIMATOR_LABELS.get(c, c) for c in by_outcome.columns]
    return by_outcome
