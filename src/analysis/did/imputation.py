"""Borusyak, Jaravel and Spiess (2024) imputation estimator, memory-safe.

Step 1: fit ``y_it = a_i + l_t + x_it'c + e_it`` by OLS on the untreated observations only
(never-treated units and not-yet-treated periods, ``t < cohort - anticipation``).
Step 2: impute ``Y_it(0) = a_i + l_t + x_it'c`` for every treated observation and take
``tau_it = y_it - Y_it(0)``.
Step 3: average: by event time (``aggregate="event"``, equal weight on each treated observation
at that event time) or over all treated observations (``aggregate="static"``).

Computation. The unit effects are removed by demeaning within unit on the untreated sample; the
period dummies (T - 1 of them, T is small in firm panels) and the covariates are then a small dense
design, so step 1 is exact and costs O(rows x (T + K)) time and memory: no N x N object is ever
formed (pyfixest's ``did2s`` and dummy-variable imputation grow with the square of the number of
units). 200,000 firms x 13 years run in seconds and well under 2 GB.

Standard errors: the conservative clustered variance of BJS Theorem 3. The estimator is linear,
``tau_hat = sum_it v_it y_it``; for treated observations ``v_it`` is the estimand weight, for
untreated ones ``v_it = -W1_i / n_i0 - (w_it - wbar_i0)' M^{-1} c`` (closed form from the
within-unit projection; ``W1_i`` is unit i's total treated weight, ``n_i0`` its untreated
count, ``M`` the demeaned period-dummy/covariate cross product and ``c`` the weighted sum over
treated observations of their period-dummy/covariate rows net of the unit's untreated mean).
Then ``V = sum_c (sum_{it in c} v_it e~_it)^2`` with ``e~_it`` the step-1 residual for untreated
observations and ``tau_it - tau~_g`` for treated ones, where ``tau~_g`` averages the ``tau_it``
within groups g of treated observations by BJS equation (8),
``tau~_g = sum_c (sum_{g,c} v)(sum_{g,c} v tau) / sum_c (sum_{g,c} v)^2`` (c = cluster).
The groups are cohort x event time, the default ``avgeffectsby(Ei t)`` of Stata's
``did_imputation``. The leave-one-out refinement of BJS Appendix A.9 is not implemented; with
small cohorts the variance may be understated (BJS Section 4.3), check ``meta['n_treated']``.
Inference is normal (no small-sample factor), as in ``did_imputation``.

Where references disagree: the ``didimputation`` R package's README prints lead (pre-trend)
standard errors that are iid ones, from before its ``cluster=`` option existed; ours are
clustered as the post-treatment rows are (as Stata's ``did_imputation`` and the current R
package with ``cluster_var``), so the README's lead SEs are not a reference for them.

Pre-trend coefficients come from BJS Test 1, a separate OLS on the untreated observations of
the outcome on unit and period effects, the covariates and event-time dummies. ``pretrends=k``
is ``did_imputation, pretrends(k)``: dummies for 1..k periods before treatment (rows -k..-1,
relative to farther untreated periods and never-treated units). ``pretrends="all"``: dummies for
every pre-treatment event time except -1, the reference, as in an event-study regression (and as
diff-diff's ``ImputationDiD(pretrends=True)``); this is what :func:`analysis.did.event_study.event_study`
uses. Their covariance block is clustered (CR1, as reghdfe) and their covariance with the
post-treatment rows is computed from the same cluster sums, so ``vcov`` covers all rows.

Reference: on ``mpdta`` (``moderndid.load_mpdta()``) the static ATT is -0.047710 (SE 0.013222),
as reported by Stata's ``did_imputation lemp countyreal year first_treat`` and diff-diff's
``ImputationDiD`` (issue #4).

Examples
--------
>>> import moderndid
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> res = imputation(mpdta, "lemp", "countyreal", "year", "first.treat", aggregate="static")
>>> round(float(res.coef()["ATT"]), 6), round(float(res.se()["ATT"]), 6)
(-0.04771, 0.013222)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.did._common import event_term, event_time_result, prepare_panel, scalar_result
from analysis.domain import NEVER_TREATED
from analysis.inference import wald_test
from analysis.results import EstimationResult

__all__ = ["imputation", "ImputationFit", "fit_untreated"]


def _group_mean(a: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group means of the columns of ``a`` (rows grouped by ``codes``): n_groups x k."""
    cnt = np.bincount(codes, minlength=n_groups).astype(float)
    cnt[cnt == 0] = np.nan
    a2 = a if a.ndim == 2 else a[:, None]
    out = np.column_stack([np.bincount(codes, weights=a2[:, j], minlength=n_groups) for j in range(a2.shape[1])])
    return out / cnt[:, None]


@dataclass
class ImputationFit:
    """Step 1 of the imputation estimator: the model of Y(0) fitted on untreated observations.

    Attributes
    ----------
    gamma
        Coefficients on the period dummies (first untreated period omitted) and the covariates.
    M_inv
        Inverse of the within-unit demeaned cross product of those regressors.
    unit_mean_y, unit_mean_w
        Untreated means of the outcome and of the regressors, per unit (NaN if none).
    n0_unit
        Untreated observations per unit.
    periods
        Periods with untreated observations (the first is the omitted dummy).
    resid
        Step-1 residuals (untreated rows, in the order of ``rows0``).
    Wd
        The demeaned regressors of the untreated rows.
    """

    gamma: np.ndarray
    M_inv: np.ndarray
    unit_mean_y: np.ndarray
    unit_mean_w: np.ndarray
    n0_unit: np.ndarray
    periods: np.ndarray
    resid: np.ndarray
    Wd: np.ndarray

    def design(self, t: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Regressor rows (period dummies without the first untreated period, covariates)."""
        k_d = len(self.periods) - 1
        D = np.empty((len(t), k_d + X.shape[1]), order="F")
        _dummies_into(D[:, :k_d], np.searchsorted(self.periods, t), range(1, k_d + 1))
        D[:, k_d:] = X
        return D


def _dummies_into(out: np.ndarray, codes: np.ndarray, values: Sequence) -> None:
    """Fill column ``j`` of ``out`` (Fortran-ordered) with the dummy ``codes == values[j]``, one
    contiguous pass a column."""
    for j, v in enumerate(values):
        np.equal(codes, v, out=out[:, j])


def fit_untreated(y0: np.ndarray, unit0: np.ndarray, t0: np.ndarray, X0: np.ndarray, n_units: int,
                  extra0: np.ndarray | None = None) -> tuple[ImputationFit, np.ndarray | None]:
    """OLS of ``y0`` on unit effects, period dummies, ``X0`` (and ``extra0``) by within-unit demeaning.

    The regressor matrix is built once, Fortran-ordered, and demeaned column by column in place,
    so peak memory is one (rows x regressors) float array and every column pass reads contiguous
    memory (a row-ordered matrix made each pass stride over all columns: 3x slower at 5 M rows).
    Returns the fit and, when ``extra0`` is given, the coefficients on its columns (the pre-trend
    regression puts lead dummies there).
    """
    periods = np.sort(pd.unique(t0))                   # hashing, not a sort of every row
    pos = np.searchsorted(periods, t0)
    k_d, k_x = len(periods) - 1, X0.shape[1]
    k_e = 0 if extra0 is None else extra0.shape[1]
    p = k_d + k_x + k_e
    Wd = np.empty((len(t0), p), order="F")
    _dummies_into(Wd[:, :k_d], pos, range(1, k_d + 1))  # period dummies
    if k_x:
        Wd[:, k_d:k_d + k_x] = X0
    if k_e:
        Wd[:, k_d + k_x:] = extra0
    n0 = np.bincount(unit0, minlength=n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_n = np.where(n0 > 0, 1.0 / n0, np.nan)
    mean_w = np.empty((n_units, p), order="F")
    for j in range(p):
        col = Wd[:, j]
        mean_w[:, j] = np.bincount(unit0, weights=col, minlength=n_units) * inv_n
        col -= mean_w[:, j][unit0]
    mean_y = np.bincount(unit0, weights=y0, minlength=n_units) * inv_n
    yd = y0 - mean_y[unit0]
    M = Wd.T @ Wd
    scale = np.sqrt(np.clip(np.diag(M), 1e-300, None))
    if p and np.linalg.cond(M / np.outer(scale, scale)) > 1e12:
        raise ValueError(
            "the model of Y(0) is not identified on the untreated observations: the covariates (or "
            "lead dummies) are collinear with the unit and period effects"
        )
    # invert the diagonal-normalised matrix and scale back: the accuracy then does not depend on
    # the covariates' units (a column in yuan next to 0/1 dummies); same result otherwise
    M_inv = np.linalg.inv(M / np.outer(scale, scale)) / np.outer(scale, scale) if p else np.zeros((0, 0))
    coef = M_inv @ (Wd.T @ yd)
    resid = yd - Wd @ coef
    k_main = k_d + k_x
    fit = ImputationFit(
        gamma=coef[:k_main],
        M_inv=M_inv,
        unit_mean_y=mean_y,
        unit_mean_w=mean_w[:, :k_main],
        n0_unit=n0,
        periods=periods,
        resid=resid,
        Wd=Wd,
    )
    return fit, (coef[k_main:] if extra0 is not None else None)


def _group_cluster_key(group: np.ndarray, cl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes of (group, cluster) pairs and the group of each pair."""
    key, uniq = pd.factorize(group.astype(np.int64) * (int(cl.max()) + 1) + cl, sort=False)
    return key, (uniq // (int(cl.max()) + 1)).astype(np.int64)


def _tau_tilde(v: np.ndarray, tau: np.ndarray, group: np.ndarray, key: np.ndarray, group_of_key: np.ndarray,
               plain: np.ndarray) -> np.ndarray:
    """BJS eq. (8) group averages of ``tau`` weighted by cluster sums of ``v``; one value per row.

    ``tau~_g = sum_c (sum_{g,c} v)(sum_{g,c} v tau) / sum_c (sum_{g,c} v)^2``; groups where the
    estimand puts no weight fall back to the plain mean (they do not enter the variance).
    """
    nk = len(group_of_key)
    a = np.bincount(key, weights=v, minlength=nk)
    b = np.bincount(key, weights=v * tau, minlength=nk)
    ng = len(plain)
    num = np.bincount(group_of_key, weights=a * b, minlength=ng)
    den = np.bincount(group_of_key, weights=a * a, minlength=ng)
    with np.errstate(invalid="ignore", divide="ignore"):
        tt = np.where(den > 1e-300, num / den, plain)
    return tt[group]


def imputation(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    *,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    aggregate: str = "event",
    horizons: Sequence[int] | None = None,
    pretrends: int | str = 0,
    anticipation: int = 0,
    alpha: float = 0.05,
) -> EstimationResult:
    """Borusyak-Jaravel-Spiess imputation estimator with conservative clustered standard errors.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel, balanced or not.
    outcome, unit, time, cohort : str
        Column names; ``cohort`` is the first treated period, 0 or missing for never treated.
    covariates : str or sequence of str, optional
        Time-varying controls in the model of Y(0).
    cluster : str, optional
        Column to cluster on (default ``unit``); may be above the unit (e.g. county x industry).
    aggregate : str, default 'event'
        ``"event"``: one row per event time (the horizons). ``"static"`` (or ``"simple"``): one row ``ATT``, the
        average effect over all treated observations.
    horizons : sequence of int, optional
        Event times to report (default: all observed, from ``-anticipation`` on).
    pretrends : int or str, default 0
        ``k``: BJS Test 1 with k leads, reported as rows -k..-1. ``"all"``: every pre-treatment
        event time except -1 (the reference; with no never-treated unit the earliest is pooled
        into the reference too). Only with ``aggregate="event"``. See the module docstring.
    anticipation : int, default 0
        Treat observations from ``anticipation`` periods before the cohort as treated.
    alpha : float, default 0.05
        1 - confidence level.

    Returns
    -------
    EstimationResult
        Rows with ``vcov``; ``meta`` has ``n_clusters``, ``n_treated`` (per row), ``notes``,
        ``n_untreated`` and ``unimputable`` (treated observations dropped because their unit or
        period has no untreated observation).

    Examples
    --------
    >>> import moderndid
    >>> mpdta = moderndid.load_mpdta().to_pandas()
    >>> es = imputation(mpdta, "lemp", "countyreal", "year", "first.treat", pretrends=3)
    >>> es.tidy()["event_time"].tolist()
    [-3, -2, -1, 0, 1, 2, 3]
    """
    aggregate = "static" if aggregate == "simple" else aggregate  # one name across estimators, as att_gt
    if aggregate not in ("event", "static"):
        raise ValueError(f"aggregate must be 'event' or 'static', got {aggregate!r}")
    if anticipation < 0:
        raise ValueError("anticipation must be >= 0")
    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort,
                          covariates=covariates, cluster=cluster, anticipation=anticipation)
    f = panel.frame
    notes: list[str] = []
    N = int(f["_i"].max()) + 1
    G = int(f["_cl"].max()) + 1
    g = f["_g"].to_numpy()
    t = f["_t"].to_numpy()
    treated = (g != NEVER_TREATED) & (t >= g - anticipation)
    if not treated.any():
        raise ValueError(f"no treated observation: '{cohort}' is never reached within '{time}'")
    X = f[panel.xcols].to_numpy(dtype=float) if panel.xcols else np.zeros((len(f), 0))
    unit_all = f["_i"].to_numpy()
    cl_all = f["_cl"].to_numpy()
    y_all = f["_y"].to_numpy()
    r0 = np.nonzero(~treated)[0]
    if r0.size == 0:
        raise ValueError("no untreated observation to fit the model of Y(0) on")

    fit0, _ = fit_untreated(y_all[r0], unit_all[r0], t[r0], X[r0], N)

    # which treated observations can be imputed
    r1 = np.nonzero(treated)[0]
    ok = (fit0.n0_unit[unit_all[r1]] > 0) & np.isin(t[r1], fit0.periods)
    if not ok.all():
        bad = r1[~ok]
        n_unit = int((fit0.n0_unit[unit_all[bad]] == 0).sum())
        notes.append(
            f"{bad.size} treated observation(s) cannot be imputed and are dropped: {n_unit} of units "
            "without untreated periods (treated from their first observed period), "
            f"{bad.size - n_unit} in periods when every unit is treated"
        )
        r1 = r1[ok]
    if r1.size == 0:
        raise ValueError("no treated observation can be imputed (no untreated period for the treated units)")
    u1 = unit_all[r1]
    W1 = fit0.design(t[r1], X[r1])
    y0hat = fit0.unit_mean_y[u1] + (W1 - fit0.unit_mean_w[u1]) @ fit0.gamma
    tau = y_all[r1] - y0hat
    e1 = (t[r1] - g[r1]).astype(np.int64)
    g1 = g[r1].astype(np.int64)
    cell = pd.factorize((g1 - g1.min()) * (int(e1.max() - e1.min()) + 1) + (e1 - e1.min()))[0]
    cl1 = cl_all[r1]
    cl0 = cl_all[r0]
    key, group_of_key = _group_cluster_key(cell, cl1)
    plain = _group_mean(tau, cell, int(cell.max()) + 1)[:, 0]
    u0 = unit_all[r0]
    Wdiff = W1 - fit0.unit_mean_w[u1]

    # estimands: weights on treated observations
    if aggregate == "static":
        labels: list[Any] = ["ATT"]
        members = [np.ones(r1.size, dtype=bool)]
    else:
        avail = np.unique(e1)
        hs = avail if horizons is None else np.asarray(sorted(set(int(h) for h in horizons)), dtype=np.int64)
        missing_h = sorted(set(hs.tolist()) - set(avail.tolist()))
        if missing_h:
            raise ValueError(f"horizon(s) {missing_h} have no imputable treated observation; available: {avail.tolist()}")
        labels = [int(h) for h in hs]
        members = [e1 == h for h in hs]

    psi_post = np.zeros((G, len(labels)))
    est = np.zeros(len(labels))
    n_treat = []
    for j, mem in enumerate(members):
        n_h = int(mem.sum())
        n_treat.append(n_h)
        w = mem / n_h
        est[j] = float(w @ tau)
        W1_unit = np.bincount(u1, weights=w, minlength=N)
        c = Wdiff.T @ w
        a = fit0.M_inv @ c
        v0 = -W1_unit[u0] / fit0.n0_unit[u0] - fit0.Wd @ a
        eps1 = tau - _tau_tilde(w, tau, cell, key, group_of_key, plain)
        psi_post[:, j] = (np.bincount(cl0, weights=v0 * fit0.resid, minlength=G)
                          + np.bincount(cl1, weights=w * eps1, minlength=G))
    meta_extra: dict[str, Any] = dict(
        reference_period=None,
        anticipation=int(anticipation),
        n_untreated=int(r0.size),
        n_treated=dict(zip(labels, n_treat)),
        unimputable=int(treated.sum() - r1.size),
        variance="BJS (2024) Theorem 3 conservative, clustered; tau~ by cohort x event time (eq. 8); no leave-out",
    )
    n_obs = int(r0.size + r1.size)

    if aggregate == "static":
        V = psi_post.T @ psi_post
        return scalar_result(est[0], np.sqrt(V[0, 0]), term="ATT", outcome=outcome, estimator="imputation",
                             n_obs=n_obs, alpha=alpha, df=None, meta=panel.meta(**meta_extra, notes=notes))

    pre_labels: list[int] = []
    del fit0, Wdiff, W1
    if pretrends not in (0, None):
        pre_labels, pre_est, psi_pre, pre_factor, pre_ref, pre_notes = _pretrends(
            pretrends, y_all[r0], u0, t[r0], X[r0], f["_e"].to_numpy()[r0], cl0, N, G, panel.has_never_treated, anticipation
        )
        notes += pre_notes
        psi = np.hstack([psi_pre, psi_post])
        V = psi.T @ psi
        d = np.concatenate([np.full(len(pre_labels), np.sqrt(pre_factor)), np.ones(len(labels))])
        V = V * np.outer(d, d)
        est = np.concatenate([pre_est, est])
        meta_extra["pretrend_test"] = wald_test(pre_est, V[: len(pre_labels), : len(pre_labels)],
                                                null=" = ".join(event_term(v) for v in pre_labels) + " = 0")
        meta_extra["reference_period"] = pre_ref
        if pre_ref is None:
            notes.append(
                "pre-treatment rows are BJS Test 1 lead coefficients from a separate regression on "
                "untreated observations (relative to farther untreated periods and never-treated units)"
            )
        else:
            notes.append(
                "pre-treatment rows come from a separate regression on untreated observations with "
                f"event-time dummies, event time {pre_ref} omitted (BJS Test 1 with all leads)"
            )
    else:
        V = psi_post.T @ psi_post
    return event_time_result(
        [*pre_labels, *labels], est, V, outcome=outcome, estimator="imputation", n_obs=n_obs,
        alpha=alpha, df=None, meta=panel.meta(**meta_extra, notes=notes),
    )


def _pretrends(k: int | str, y0: np.ndarray, u0: np.ndarray, t0: np.ndarray, X0: np.ndarray,
               e0: np.ndarray, cl0: np.ndarray, N: int, G: int, has_never: bool, anticipation: int):
    """Pre-trend coefficients on untreated observations, with per-cluster scores.

    ``k`` int: BJS Test 1 / ``did_imputation, pretrends(k)``: dummies for 1..k periods before the
    (shifted) treatment date. ``k == "all"``: dummies for every pre-treatment event time except
    the one just before treatment, which is the reference (as in an event-study regression).
    """
    notes: list[str] = []
    first_pre = -(anticipation + 1)                   # event time of lead 1
    e_fin = e0[np.isfinite(e0)].astype(np.int64)
    if e_fin.size == 0:
        raise ValueError("no untreated observation of a treated unit: no pre-trend to estimate")
    earliest = int(e_fin.min())
    if k == "all":
        ev = list(range(earliest, first_pre))          # earliest .. first_pre - 1
        if not has_never and ev:
            notes.append(f"no never-treated units: event time {earliest} is pooled with {first_pre} into the pre-trend reference")
            ev = ev[1:]
        reference = first_pre
    elif isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k > 0:
        max_lead = first_pre - earliest + 1
        if k > max_lead:
            raise ValueError(f"pretrends={k} but treated units are observed at most {max_lead} period(s) before treatment")
        if k == max_lead and not has_never:
            raise ValueError(
                f"pretrends={k} covers every untreated period of the treated units and there is no "
                f"never-treated unit: the test is not identified; use at most {max_lead - 1}"
            )
        ev = list(range(first_pre - k + 1, first_pre + 1))
        reference = None
    else:
        raise ValueError(f"pretrends must be a positive integer or 'all', got {k!r}")
    if not ev:
        raise ValueError("not enough pre-treatment periods for pre-trend coefficients")
    L = np.empty((len(e0), len(ev)), order="F")       # lead dummies
    _dummies_into(L, e0, ev)
    fit, coef = fit_untreated(y0, u0, t0, X0, N, extra0=L)
    p = fit.Wd.shape[1]
    K = len(ev)
    rows_inv = fit.M_inv[p - K:, :]                    # lead coefficients' rows of M^{-1}
    lead_scores = fit.Wd @ rows_inv.T                   # n x K, one pass over Wd
    lead_scores *= fit.resid[:, None]
    psi = np.column_stack([np.bincount(cl0, weights=lead_scores[:, j], minlength=G) for j in range(K)])
    del lead_scores
    n = len(y0)
    # CR1 as reghdfe / fixest: unit effects nested in clusters do not count in K
    factor = (G / (G - 1)) * ((n - 1) / max(n - p, 1)) if G > 1 else 1.0
    return ev, coef, psi, factor, reference, notes
