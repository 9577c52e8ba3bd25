"""Small-sample inference for the staggered-DiD estimators when treated clusters are few.

Certification is assigned to county x industry cells, a dozen to a hundred a batch, so every
event-time coefficient rests on the few cells of one to three cohorts: the far leads and lags
on a single cohort's cells. Cluster-robust variances from so few clusters are biased down (the
clusters' own leverage), their sampling noise makes ``t`` and Wald statistics heavy tailed, and
a Wald test of many leads compares a statistic whose covariance is estimated from a dozen
clusters with a chi-squared distribution it does not have.

Measured on worlds of 6,000 firms with 12 certified cells a batch and parallel trends true by
construction (cohorts permuted across cells; ``tests/test_pretrend_size.py``), share of the
pointwise 95 % intervals of the report window's rows [-5, 2] that contain the true effect:

==========  ==========================  ==================================
estimator   before (CR0 / CR1, normal   after (CR2, t with Bell-McCaffrey
            or t(G - 1))                df; median df 12 to 16)
==========  ==========================  ==================================
cs_dr       0.916 / 0.908 / 0.930       0.960 / 0.958 / 0.964
cs_notyet   0.906                       0.934
sunab       0.914                       0.946
imputation  0.918 (0.77 at e = 1, 2)    0.950
stacked     0.940                       0.980
twfe        0.907 (0.82 at e = 2)       0.946
==========  ==========================  ==================================

cs_dr: R = 200 worlds each for log value added / SO2 intensity / log(1 + patents); the others:
log value added, R = 40 (the report of issue 16 has the longer runs). Behind the chi-squared
failure: the Callaway-Sant'Anna covariance is the multiplier bootstrap's (the same influence
functions), its correlations of adjacent short-difference leads (about +0.07 on average for log
value added, which is persistent: near zero rather than negative) match the Monte Carlo ones,
and the Wald statistic of the 12 leads has mean 12.1 with the Monte Carlo covariance but 26
with the estimated one. The estimated covariance is noisy (a dozen clusters carry the far
leads), not wrong in structure.

This module rebuilds, for each estimator, the linear form of its estimates (the same
numbers, checked to 1e-8) as :class:`analysis.inference.ClusterScores` and hands them to
:class:`analysis.inference.SmallSample`, which gives

* CR2 standard errors (Bell and McCaffrey 2002) and pointwise intervals from Student's t with
  Bell-McCaffrey degrees of freedom (Imbens and Kolesar 2016), and
* the joint pre-trend test as a wild cluster bootstrap-t of the CR2 Wald statistic (the HTZ
  F test of Pustejovsky and Tipton 2018 is available, but is conservative here: it rejected in
  1 % of null worlds).

==========  ================================================================================
estimator   linear form used
==========  ================================================================================
cs          differences of treated and control mean changes per ATT(g,t) cell (no
            covariates); aggregation weights from R ``did``'s rule, the estimation error of
            the cohort shares added to the covariance unadjusted
twfe        OLS with unit effects partialled out, period dummies and event-time dummies
sunab       the same with cohort x event-time dummies, aggregated with the cohort shares
stacked     weighted OLS of the stacked data (treat and event-time effects as dummies)
imputation  the treated cells' mean imputed effects: CR2 on the treated side (the leverage of
            a cluster in its cohort x event-time cell), the Y(0) fit's contribution added
            unadjusted; leads (BJS Test 1) by OLS on the untreated observations
==========  ================================================================================

Examples
--------
>>> import moderndid
>>> from analysis.did.twfe import twfe
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> es = twfe(mpdta, "lemp", "countyreal", "year", "first.treat", dynamic=True)
>>> ss = twfe_small_sample(mpdta, "lemp", "countyreal", "year", "first.treat", dynamic=True)
>>> bool(np.allclose(ss.estimate, es.tidy()["estimate"]))
True
>>> small = apply_small_sample(es, [ss])
>>> small.tidy()[["event_time", "df"]].round(0).astype(int).values.T.tolist()  # e = 3: the 20 counties of 2004
[[-4, -3, -2, 0, 1, 2, 3], [268, 255, 216, 226, 83, 24, 26]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.did._common import demean_by_group, event_term, prepare_panel
from analysis.domain import NEVER_TREATED
from analysis.inference import (
    ClusterScores,
    SmallSample,
    cluster_codes,
    cluster_sums,
    ols_cluster_scores,
)
from analysis.results import EstimationResult

__all__ = [
    "INFERENCE_NOTE",
    "cs_design",
    "cs_small_sample",
    "twfe_small_sample",
    "sunab_design",
    "sunab_small_sample",
    "stacked_design",
    "stacked_small_sample",
    "imputation_design",
    "imputation_small_sample",
    "apply_small_sample",
]

#: what every report says about its intervals and tests (see the module docstring for why)
INFERENCE_NOTE = (
    "Standard errors are CR2 (Bell-McCaffrey) cluster-robust and intervals use Student's t with "
    "Bell-McCaffrey degrees of freedom, because each coefficient rests on the few certified cells of "
    "one to three cohorts, where the usual cluster-robust errors are too small; the joint pre-trend "
    "test is a wild cluster bootstrap of the CR2 Wald statistic, because with a dozen treated clusters "
    "per cohort the chi-squared approximation rejects true parallel trends far more often than 5 %."
)

_TOL = 1e-8


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _nested(units: np.ndarray, clusters: np.ndarray, unit: str, cluster: str) -> None:
    per = pd.Series(clusters).groupby(units).nunique()
    if (per > 1).any():
        bad = per.index[per.to_numpy() > 1][:5].tolist()
        raise ValueError(
            f"small-sample inference absorbs the unit effects and needs each unit of '{unit}' in one cluster of "
            f"'{cluster}'; units (codes) {bad} are in several"
        )


def _positive(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v, 1.0)


def _design(n: int, *parts: Any) -> np.ndarray:
    """The ``n x p`` regressor matrix of a small-sample design, Fortran-ordered float64, built in one
    allocation: each part is an ``n x k`` array or a ``(values, levels)`` pair meaning the indicator
    columns ``values == level`` (written as ones at their rows, not compared column by column).

    >>> _design(3, (np.array([2, 5, 2]), [2, 5]), np.ones((3, 1)))
    array([[1., 0., 1.],
           [0., 1., 1.],
           [1., 0., 1.]])
    """
    widths = [len(p[1]) if isinstance(p, tuple) else np.shape(p)[1] for p in parts]
    X = np.zeros((n, sum(widths)), order="F")
    j = 0
    for part, k in zip(parts, widths):
        if isinstance(part, tuple):
            values, levels = part
            if k:
                idx = pd.Index(np.asarray(levels)).get_indexer(np.asarray(values))
                rows = np.flatnonzero(idx >= 0)
                X[rows, j + idx[rows]] = 1.0
        else:
            X[:, j:j + k] = part
        j += k
    return X


def _fit(y: np.ndarray, parts: Sequence[Any], unit_codes: np.ndarray | None, cluster: np.ndarray,
         w: np.ndarray | None = None) -> ClusterScores:
    """(W)LS of ``y`` on the regressors ``parts`` (as :func:`_design` takes them) with unit effects
    partialled out; its :class:`ClusterScores`.

    The rows are put in cluster order before the ``n x p`` matrix is built (the cluster codes are
    those of the original order, so the scores' rows are the same clusters), so that each
    cluster's block of the matrix is a slice, not a copy. The coefficients come from the normal
    equations, ``X'WX`` being needed for the covariance anyway (one pass over the matrix instead
    of a QR/SVD of it); a design whose ``X'WX`` is near singular (condition number above 1e9) is
    solved by least squares instead.
    """
    codes, _ = cluster_codes(cluster, len(y))
    perm = np.arange(len(y)) if codes is None else np.argsort(codes, kind="stable")
    codes = perm if codes is None else codes[perm]
    y = np.asarray(y, dtype=float)[perm]
    X = _design(len(y), *[(np.asarray(part[0])[perm], part[1]) if isinstance(part, tuple) else np.asarray(part)[perm] for part in parts])
    w = None if w is None else np.asarray(w, dtype=float)[perm]
    if unit_codes is not None:
        unit_codes = np.asarray(unit_codes)[perm]
        n_u = int(unit_codes.max()) + 1
        y = demean_by_group(y, unit_codes, n_u, w)
        X = demean_by_group(X, unit_codes, n_u, w, inplace=True)
    Xw = X if w is None else X * w[:, None]
    XtWX, XtWy = X.T @ Xw, Xw.T @ y
    del Xw
    ev = np.linalg.eigvalsh(XtWX) if XtWX.size else np.ones(1)
    if ev.min() > 1e-9 * max(ev.max(), 1e-300):
        beta = np.linalg.solve(XtWX, XtWy)
    else:
        sw = np.ones(len(y)) if w is None else np.sqrt(w)
        beta = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
    return ols_cluster_scores(X, y - X @ beta, codes, weights=w, estimate=beta, xtwx=XtWX)


def _period_dummies(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(t, periods[1:])``: the period indicators but the first, as a :func:`_design` part."""
    periods = np.unique(t)
    return (t, periods[1:])


def _selector(n_cols: int, cols: Sequence[int], weights: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    L = np.zeros((len(cols) if weights is None else len(weights), n_cols))
    if weights is None:
        for r, c in enumerate(cols):
            L[r, c] = 1.0
    else:
        for r, row in enumerate(weights):
            L[r, list(cols)] = row
    return L


# ---------------------------------------------------------------------------------------------
# Callaway-Sant'Anna
# ---------------------------------------------------------------------------------------------
def cs_design(att: Any, data: pd.DataFrame, *, outcome: str, unit: str, time: str, cohort: str, cluster: str | None,
              weights: str | None = None) -> tuple[ClusterScores, np.ndarray, int]:
    """The primitive parameters of :func:`cs_small_sample` (every cell's treated and control mean
    change), their cluster codes and the number of units; computed once for all aggregations."""
    from analysis.did._cs_data import plan_cells
    from analysis.did._cs_data import prepare_panel as cs_prepare

    meta = att.meta
    if meta.get("covariates", "none") != "none":
        raise ValueError("small-sample inference for Callaway-Sant'Anna is available without covariates only")
    control = meta["control"]
    panel = cs_prepare(data, outcome=outcome, unit=unit, time=time, cohort=cohort, covariates=[], cluster=cluster,
                       weights=weights, anticipation=meta["anticipation"], control=control,
                       fix_weights="first period" in str(meta.get("weights", "")))
    plan = plan_cells(panel.times, panel.treated_groups, base_period=meta["base_period"], anticipation=meta["anticipation"])
    n = panel.n_units
    dy = panel.y[:, plan.t_idx] - panel.y[:, plan.base_idx]
    obs = np.isfinite(dy)
    dy = np.where(obs, dy, 0.0)
    g = plan.group
    treat = (panel.cohort[:, None] == g[None, :]) & obs
    never = panel.cohort == 0
    if control == "never":
        ctrl = never[:, None] & obs
    else:
        ctrl = (never[:, None] | ((panel.cohort[:, None] > plan.threshold[None, :]) & (panel.cohort[:, None] != g[None, :]))) & obs
    w = panel.weights[:, None]
    cl = panel.cluster if panel.cluster is not None else np.arange(n)
    wt, wc = w * treat, w * ctrl
    Wt, Wc = wt.sum(0), wc.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mt, mc = (wt * dy).sum(0) / Wt, (wc * dy).sum(0) / Wc
    mt, mc = np.nan_to_num(mt), np.nan_to_num(mc)
    cells = att.table
    est_att = cells["estimate"].to_numpy(dtype=float)
    ok = np.isfinite(est_att)
    if not np.allclose((mt - mc)[ok], est_att[ok], atol=_TOL, rtol=_TOL):
        raise RuntimeError("small-sample design of Callaway-Sant'Anna does not reproduce ATT(g,t); please report this")
    S = np.hstack([cluster_sums(wt * (dy - mt), cl) / _positive(Wt), cluster_sums(wc * (dy - mc), cl) / _positive(Wc)])
    Wp = np.concatenate([Wt, Wc])
    gram = np.hstack([cluster_sums(wt, cl), cluster_sums(wc, cl)])
    scores = ClusterScores(scores=S, bread=1 / _positive(Wp), gram=gram, estimate=np.concatenate([mt, mc]))
    return scores, cl, n


def cs_small_sample(agg: Any, att: Any, data: pd.DataFrame, *, outcome: str, unit: str, time: str, cohort: str,
                    cluster: str | None, weights: str | None = None, design: tuple | None = None) -> SmallSample:
    """CR2 inference for an aggregation of :func:`analysis.did.att_gt.att_gt` without covariates.

    Parameters
    ----------
    agg : analysis.did.att_gt.AggregatedResult
        The aggregation (event, simple, group or calendar) whose rows are wanted.
    att : analysis.did.att_gt.ATTgtResult
        The ATT(g,t) it aggregates.
    data : pandas.DataFrame
        The data ``att`` was estimated on, with the same column names.

    Notes
    -----
    Each ATT(g,t) is the difference of two weighted mean changes (cohort ``g`` and its
    controls, units observed in ``t`` and the base period). These ``2 K`` means are the
    primitive parameters; cluster ``c``'s leverage on a mean is its share of the group's
    weight. The aggregation's weights are taken from :func:`analysis.did._cs_aggregate.aggregate_cells`
    (its derivative in each ATT(g,t)), and the estimation error of the cohort shares it adds to
    the influence function enters the covariance unadjusted.
    """
    from analysis.did._cs_aggregate import aggregate_cells

    if design is None:
        design = cs_design(att, data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=cluster, weights=weights)
    scores, cl, n = design
    cells = att.table
    est_att = cells["estimate"].to_numpy(dtype=float)
    ok = np.isfinite(est_att)
    K = est_att.size
    S = scores.scores

    # aggregation weights: the linear part of aggregate_cells' influence function, read off by
    # feeding it unit vectors as the first K units' influence (minus the cohort-share term)
    ctx = att._context
    kw = {k: agg.meta[k] for k in ("balance_e", "min_e", "max_e") if k in agg.meta and agg.meta[k] is not None}
    n_u = ctx.unit_cohort.size
    if n_u < K:
        raise ValueError(f"fewer units ({n_u}) than ATT(g,t) cells ({K})")
    common = dict(att=est_att, cell_group=cells["cohort"].to_numpy(dtype=float), cell_time=cells["time"].to_numpy(dtype=float),
                  unit_cohort=ctx.unit_cohort, unit_weights=ctx.unit_weights, times=ctx.times, **kw)
    probe = np.zeros((n_u, K))
    probe[np.arange(K), np.arange(K)] = 1.0
    full = aggregate_cells(agg.kind, psi=probe, **common)
    share_term = aggregate_cells(agg.kind, psi=np.zeros((n_u, K)), **common).influence[:K]
    A = (full.influence[:K] - share_term).T
    A[:, ~ok] = 0.0
    L = np.hstack([A, -A])
    terms = list(full.term)
    inf = agg.influence
    if inf.shape[1] != len(terms):
        raise RuntimeError("the aggregation's influence function does not match its terms; pass the aggregation as returned by aggregate()")
    finite = np.isfinite(inf).all(axis=0)
    wif = np.zeros((scores.n_clusters, len(terms)))
    wif[:, finite] = cluster_sums(inf[:, finite], cl) / n - (S @ L.T)[:, finite]
    return SmallSample(scores, L, extra=wif, terms=terms)


# ---------------------------------------------------------------------------------------------
# regression estimators
# ---------------------------------------------------------------------------------------------
def twfe_small_sample(data: Any, outcome: str, unit: str, time: str, cohort: str, *, dynamic: bool = False,
                      cluster: str | None = None, reference: int = -1, bins: tuple[int, int] | None = None) -> SmallSample:
    """CR2 inference for :func:`analysis.did.twfe.twfe` (no covariates, no weights)."""
    from analysis.did.twfe import event_codes

    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=cluster)
    f = panel.frame
    i, t, cl = f["_i"].to_numpy(), f["_t"].to_numpy(), f["_cl"].to_numpy()
    _nested(i, cl, unit, panel.cluster)
    if not dynamic:
        g = f["_g"].to_numpy()
        D = ((g != NEVER_TREATED) & (t >= g)).astype(float)[:, None]
        fit = _fit(f["_y"].to_numpy(), [D, _period_dummies(t)], i, cl)
        return SmallSample(fit, _selector(fit.n_params, [0]), terms=["ATT"])
    code, _, _ = event_codes(panel, reference=reference, bins=bins)
    levels = [int(v) for v in np.unique(code) if v != reference]
    fit = _fit(f["_y"].to_numpy(), [(code, levels), _period_dummies(t)], i, cl)
    return SmallSample(fit, _selector(fit.n_params, range(len(levels))), terms=[event_term(e) for e in levels])


def sunab_design(data: Any, outcome: str, unit: str, time: str, cohort: str, *, cluster: str | None = None,
                 control: str = "never", reference: int = -1) -> tuple[ClusterScores, pd.DataFrame]:
    """The regression of :func:`sunab_small_sample` (cohort x event-time and period dummies, unit
    effects partialled out) and its cohort x event-time cells with their sizes; fitted once for all
    aggregations (``design=`` of :func:`sunab_small_sample`)."""
    from analysis.did.sunab import _restrict_sample

    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=cluster)
    f, control_cohort = _restrict_sample(panel, control, [])
    g, e = f["_g"].to_numpy(), f["_e"].to_numpy()
    treated = (g != NEVER_TREATED) & (g != control_cohort) & (e != reference)
    cells = pd.DataFrame({"g": g[treated], "e": e[treated]}).value_counts().sort_index().reset_index(name="n")
    key = np.where(treated, g * 1000 + np.nan_to_num(e), np.nan)
    levels = (cells["g"] * 1000 + cells["e"]).to_numpy()
    i, cl = f["_i"].to_numpy(), f["_cl"].to_numpy()
    _nested(i, cl, unit, panel.cluster)
    fit = _fit(f["_y"].to_numpy(), [(key, levels), _period_dummies(f["_t"].to_numpy())], i, cl)
    return fit, cells


def sunab_small_sample(data: Any, outcome: str, unit: str, time: str, cohort: str, *, aggregate: str = "event",
                       cluster: str | None = None, control: str = "never", reference: int = -1,
                       design: tuple[ClusterScores, pd.DataFrame] | None = None) -> SmallSample:
    """CR2 inference for :func:`analysis.did.sunab.sunab` (no covariates, no weights).

    ``design``: :func:`sunab_design`'s result for the same arguments, to share one fit between
    aggregations (the overall ATT and the event study are combinations of the same coefficients).
    """
    aggregate = {"simple": "att", "group": "cohort"}.get(aggregate, aggregate)
    if design is None:
        design = sunab_design(data, outcome, unit, time, cohort, cluster=cluster, control=control, reference=reference)
    fit, cells = design
    n, ge, ee = cells["n"].to_numpy(float), cells["g"].to_numpy(), cells["e"].to_numpy()
    k = len(cells)
    if aggregate == "att":
        a = np.where(ee >= 0, n, 0.0)
        return SmallSample(fit, _selector(fit.n_params, range(k), [a / a.sum()]), terms=["ATT"])
    if aggregate == "cohort":
        gs = np.sort(np.unique(ge[ee >= 0]))
        rows = [np.where((ge == v) & (ee >= 0), n, 0.0) for v in gs]
        return SmallSample(fit, _selector(fit.n_params, range(k), [r / r.sum() for r in rows]), terms=[f"cohort::{int(v)}" for v in gs])
    evs = np.sort(np.unique(ee))
    rows = [np.where(ee == v, n, 0.0) for v in evs]
    return SmallSample(fit, _selector(fit.n_params, range(k), [r / r.sum() for r in rows]), terms=[event_term(int(v)) for v in evs])


def stacked_design(data: Any, outcome: str, unit: str, time: str, cohort: str, *, kappa_pre: int = 3, kappa_post: int = 2,
                   cluster: str | None = None, control: str = "notyet") -> tuple[ClusterScores, list[int]]:
    """The weighted regression of :func:`stacked_small_sample` on the stacked data and its event
    times; fitted once for the average and the event study (``design=``)."""
    from analysis.did.stacked import stack_data

    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=cluster)
    st, _, _ = stack_data(panel.frame, kappa_pre=kappa_pre, kappa_post=kappa_post, control=control)
    ev, tr = st["_ev"].to_numpy(), st["_treat"].to_numpy()
    evs = [v for v in range(-kappa_pre, kappa_post + 1) if v != -1]
    ev_treated = np.where(tr == 1, ev, np.iinfo(np.int64).min)    # treat x event-time indicators (_treat is 0/1)
    parts = [(ev_treated, evs), tr[:, None].astype(float), (ev, sorted(set(ev.tolist()))[1:]), np.ones((len(st), 1))]
    fit = _fit(st["_y"].to_numpy(), parts, None, st["_cl"].to_numpy(), st["_Q"].to_numpy(dtype=float))
    return fit, evs


def stacked_small_sample(data: Any, outcome: str, unit: str, time: str, cohort: str, *, kappa_pre: int = 3, kappa_post: int = 2,
                         cluster: str | None = None, control: str = "notyet", aggregate: str = "event",
                         design: tuple[ClusterScores, list[int]] | None = None) -> SmallSample:
    """CR2 inference for :func:`analysis.did.stacked.stacked` (WFH weights and effects, no covariates).

    ``design``: :func:`stacked_design`'s result for the same arguments (one fit for both aggregations).
    """
    if design is None:
        design = stacked_design(data, outcome, unit, time, cohort, kappa_pre=kappa_pre, kappa_post=kappa_post, cluster=cluster,
                                control=control)
    fit, evs = design
    if aggregate in ("average", "simple"):
        post = np.array([v >= 0 for v in evs], float)
        return SmallSample(fit, _selector(fit.n_params, range(len(evs)), [post / post.sum()]), terms=["ATT_average"])
    return SmallSample(fit, _selector(fit.n_params, range(len(evs))), terms=[event_term(v) for v in evs])


def imputation_design(data: Any, outcome: str, unit: str, time: str, cohort: str, *, cluster: str | None = None) -> dict[str, Any]:
    """What every aggregation of :func:`imputation_small_sample` shares: the Y(0) fit on the untreated
    observations, the treated observations' imputed effects and their cohort x event-time cells
    (computed once for the overall ATT, the event study and the leads, ``design=``)."""
    from analysis.did.imputation import fit_untreated

    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=cluster)
    f = panel.frame
    N, G = int(f["_i"].max()) + 1, int(f["_cl"].max()) + 1
    g, t, u, cl, y = (f[c].to_numpy() for c in ("_g", "_t", "_i", "_cl", "_y"))
    _nested(u, cl, unit, panel.cluster)
    treated = (g != NEVER_TREATED) & (t >= g)
    r0, r1 = np.flatnonzero(~treated), np.flatnonzero(treated)
    X0 = np.zeros((r0.size, 0))
    fit0, _ = fit_untreated(y[r0], u[r0], t[r0], X0, N)
    keep = (fit0.n0_unit[u[r1]] > 0) & np.isin(t[r1], fit0.periods)
    r1 = r1[keep]
    u1 = u[r1]
    W1 = fit0.design(t[r1], np.zeros((r1.size, 0)))
    tau = y[r1] - (fit0.unit_mean_y[u1] + (W1 - fit0.unit_mean_w[u1]) @ fit0.gamma)
    e1 = (t[r1] - g[r1]).astype(np.int64)
    cell = pd.factorize(pd.MultiIndex.from_arrays([g[r1], e1]))[0]
    n_cell = int(cell.max()) + 1
    # primitive parameters: the treated cells' mean tau (a diagonal design)
    cnt = np.bincount(cell, minlength=n_cell).astype(float)
    tau_cell = np.bincount(cell, weights=tau, minlength=n_cell) / cnt
    eps1 = tau - tau_cell[cell]
    S = cluster_sums(np.eye(n_cell)[cell] * (eps1 / cnt[cell])[:, None], cl[r1])
    gram = cluster_sums(np.eye(n_cell)[cell], cl[r1])
    S_full, gram_full = np.zeros((G, n_cell)), np.zeros((G, n_cell))
    present = np.unique(cl[r1])
    S_full[present], gram_full[present] = S, gram
    scores = ClusterScores(scores=S_full, bread=1 / cnt, gram=gram_full, estimate=tau_cell)
    return {"panel": panel, "N": N, "G": G, "g": g, "t": t, "u": u, "cl": cl, "y": y, "r0": r0, "X0": X0, "fit0": fit0,
            "u1": u1, "e1": e1, "cell": cell, "n_cell": n_cell, "Wdiff": W1 - fit0.unit_mean_w[u1], "scores": scores}


def imputation_small_sample(data: Any, outcome: str, unit: str, time: str, cohort: str, *, aggregate: str = "event",
                            horizons: Sequence[int] | None = None, pretrends: int | str = 0,
                            cluster: str | None = None, design: dict[str, Any] | None = None) -> list[SmallSample]:
    """CR2 inference for :func:`analysis.did.imputation.imputation` (no covariates, no anticipation).

    Returns one :class:`~analysis.inference.SmallSample` for the post-treatment rows and, with
    ``pretrends``, one for the leads. ``design``: :func:`imputation_design`'s result for the same
    arguments (one Y(0) fit for every aggregation).

    Post-treatment rows: the estimate at horizon ``h`` is the mean over treated observations
    of ``tau = y - y0_hat`` with ``y0_hat`` from the unit and period effects fitted on the
    untreated observations. Borusyak, Jaravel and Spiess's variance sums, by cluster, the
    treated observations' ``tau - tau~`` (``tau~`` the mean of their cohort x event-time cell)
    and the untreated observations' contributions through ``y0_hat``. The treated part is the
    residual of a cell mean, whose cluster sums are shrunk by the cluster's share ``h`` of the
    cell; it is divided by ``sqrt(1 - h)`` (CR2; BJS's leave-out variant divides by ``1 - h``)
    and carries the Bell-McCaffrey degrees of freedom, the Y(0) part is added unadjusted.
    Leads: BJS Test 1 (or all leads, ``pretrends="all"``) is OLS on untreated observations and
    gets the regression CR2.
    """
    from analysis.did.imputation import _pretrends

    aggregate = "static" if aggregate == "simple" else aggregate
    d = imputation_design(data, outcome, unit, time, cohort, cluster=cluster) if design is None else design
    fit0, u1, e1, cell, n_cell, Wdiff = d["fit0"], d["u1"], d["e1"], d["cell"], d["n_cell"], d["Wdiff"]
    N, G, r0 = d["N"], d["G"], d["r0"]
    if aggregate == "static":
        labels, members = ["ATT"], [np.ones(u1.size, bool)]
    else:
        hs = np.unique(e1) if horizons is None else np.asarray(sorted({int(h) for h in horizons}))
        labels, members = [event_term(int(h)) for h in hs], [e1 == h for h in hs]
    # the Y(0) fit's contribution to each reported row, added unadjusted
    Lrows, extra = [], np.zeros((G, len(labels)))
    u0, cl0 = d["u"][r0], d["cl"][r0]
    for j, mem in enumerate(members):
        wts = mem / mem.sum()
        Lrows.append(np.bincount(cell, weights=wts, minlength=n_cell))
        W1_unit = np.bincount(u1, weights=wts, minlength=N)
        a = fit0.M_inv @ (Wdiff.T @ wts)
        v0 = -W1_unit[u0] / fit0.n0_unit[u0] - fit0.Wd @ a
        extra[:, j] = np.bincount(cl0, weights=v0 * fit0.resid, minlength=G)
    out = [SmallSample(d["scores"], np.array(Lrows), extra=extra, terms=labels)]
    if pretrends not in (0, None) and aggregate == "event":
        y0, t0, e0 = d["y"][r0], d["t"][r0], d["t"][r0] - d["g"][r0]
        ev, _, _, _, _, _ = _pretrends(pretrends, y0, u0, t0, d["X0"], e0, cl0, N, G, d["panel"].has_never_treated, 0)
        fit = _fit(y0, [(e0, ev), _period_dummies(t0)], u0, cl0)
        out.append(SmallSample(fit, _selector(fit.n_params, range(len(ev))), terms=[event_term(int(v)) for v in ev]))
    return out


# ---------------------------------------------------------------------------------------------
# applying it to a result
# ---------------------------------------------------------------------------------------------
def apply_small_sample(result: EstimationResult, blocks: Sequence[SmallSample], *, alpha: float = 0.05) -> EstimationResult:
    """``result`` with CR2 standard errors, Bell-McCaffrey t intervals and p-values, and a ``df`` column.

    Each block's terms must be rows of ``result`` with the same estimates (checked to 1e-8
    relative; a mismatch means the linear form was rebuilt wrongly and raises). Rows of no
    block keep their inference. ``vcov`` is replaced by the blocks' CR2 covariance (cross-block
    covariances are set to NaN); the blocks are kept in ``result.small_sample`` for joint tests
    (:func:`analysis.did.pretrend.pretrend_test`).
    """
    table = result.table.copy()
    table["df"] = np.nan
    terms = table["term"].tolist()
    vcov = result.vcov.copy() if result.vcov is not None else None
    if vcov is not None:
        covered = [tm for b in blocks for tm in b.terms if tm in terms]
        vcov.loc[covered, :] = np.nan
        vcov.loc[:, covered] = np.nan
    for b in blocks:
        rows = [terms.index(tm) for tm in b.terms if tm in terms]
        idx = [b.terms.index(terms[r]) for r in rows]
        est = table["estimate"].to_numpy(dtype=float)[rows]
        mine = b.estimate[idx]
        scale = max(1.0, float(np.nanmax(np.abs(est))) if len(est) else 1.0)
        if not np.allclose(est, mine, atol=_TOL * scale, rtol=1e-7, equal_nan=True):
            raise RuntimeError(f"small-sample design does not reproduce the estimates of {result.title or 'the result'}: {est} vs {mine}")
        se, df = b.std_error[idx], b.df[idx]
        q = stats.t.ppf(1 - alpha / 2, df)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = 2 * stats.t.sf(np.abs(est / se), df)
        table.loc[rows, "std_error"] = se
        table.loc[rows, "conf_low"] = est - q * se
        table.loc[rows, "conf_high"] = est + q * se
        table.loc[rows, "p_value"] = p
        table.loc[rows, "df"] = df
        if vcov is not None:
            names = [terms[r] for r in rows]
            vcov.loc[names, names] = b.vcov[np.ix_(idx, idx)]
    meta = dict(result.meta)
    meta["inference"] = "CR2 standard errors, t intervals with Bell-McCaffrey degrees of freedom"
    out = type(result)(**{**{k: getattr(result, k) for k in result.__dataclass_fields__}, "table": table, "vcov": vcov, "meta": meta})
    out.small_sample = list(blocks)
    return out
