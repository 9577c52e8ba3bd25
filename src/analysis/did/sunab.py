"""Sun and Abraham (2021) interaction-weighted event study.

Step 1 (pyfixest): regress the outcome on unit and period effects, optional time-varying
covariates (``x1 + sunab(...)`` in fixest) and a full set of cohort x event-time dummies,
omitting event time ``reference`` (-1) for every cohort; the control cohort (never treated, or the
last-treated cohort) gets no dummies. Each coefficient is a cohort-specific average treatment
effect on the treated, CATT(g, e).

Step 2: average the CATT(g, e) over cohorts with the cohorts' shares of the estimation sample at
each event time, ``w_ge = n_ge / sum_g' n_g'e`` (``n`` counts observations, or sums ``weights``),
exactly as fixest's ``sunab`` / ``aggregate(agg = "period")`` and pyfixest's saturated event study
do. Standard errors come from the delta method with the regression's clustered covariance,
treating the shares as known (as fixest does: "the cohort share in the sample is considered to be
a perfect measure for the cohort share in the population"); Sun and Abraham's own variance adds
a term for the estimated shares, which is negligible when cohorts are large.

``control="never"`` (default) compares with never-treated units and, like fixest, drops units
treated in or before the first period (always treated). ``control="last"`` uses the last-treated
cohort (together with any never-treated units) as control and keeps only the periods before that
cohort is treated, as Sun and Abraham suggest when no unit is never treated.

Examples
--------
>>> import moderndid
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> es = sunab(mpdta, "lemp", "countyreal", "year", "first.treat")
>>> es.tidy().set_index("event_time")["estimate"].round(4).to_dict()[0]
-0.0199
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.did._common import Panel, event_time_result, prepare_panel, scalar_result, singleton_note
from analysis.did._fe_ols import fe_indicator_ols
from analysis.domain import NEVER_TREATED
from analysis.inference import blas_threads
from analysis.results import EstimationResult, tidy_frame

__all__ = ["SunabResult", "sunab"]


@dataclass(repr=False)
class SunabResult(EstimationResult):
    """A Sun-Abraham result; ``tidy(covariates=True)`` appends the covariates' own coefficients.

    The covariate rows (``term`` = the covariate's name, ``event_time`` and ``cohort`` missing)
    are the coefficients of the time-varying controls in the saturated regression, with the
    same clustered standard errors (fixest prints them above the aggregated rows). They are
    also in ``meta["covariate_coefficients"]``; ``vcov`` covers the aggregated rows only.
    """

    def tidy(self, covariates: bool = False) -> pd.DataFrame:
        """The tidy frame; with ``covariates=True`` plus one row per covariate."""
        out = self.table.copy()
        cov = self.meta.get("covariate_coefficients")
        if not covariates or cov is None or len(cov) == 0:
            return out
        return pd.concat([out, cov], ignore_index=True)


@dataclass
class _Fit:
    """The attributes of a pyfixest fit that :func:`sunab` reads."""

    _coefnames: list
    _beta_hat: np.ndarray
    _vcov: np.ndarray
    _df_t: float
    _N: int


def _restrict_sample(panel: Panel, control: str, notes: list[str]) -> tuple[pd.DataFrame, float]:
    """Apply the control-group rule; return the estimation frame and the control cohort."""
    f = panel.frame
    g = f["_g"].to_numpy()
    t_min = f["_t"].min()
    always = (g != NEVER_TREATED) & (g <= t_min)
    if always.any():
        notes.append(f"dropped {int(f.loc[always, '_i'].nunique())} unit(s) treated in or before the first period (always treated)")
        f = f.loc[~always]
        g = f["_g"].to_numpy()
    if control == "never":
        if not (g == NEVER_TREATED).any():
            raise ValueError(
                f"control='never' needs never-treated units ('{panel.cohort}' 0 or missing); none found. "
                "Use control='last' to compare with the last-treated cohort."
            )
        return f, np.inf
    if control == "last":
        finite = np.unique(g[g != NEVER_TREATED])
        if finite.size < 2:
            raise ValueError("control='last' needs at least two treated cohorts")
        last = float(finite.max())
        keep = f["_t"].to_numpy() < last
        extra = " and the never-treated units" if (g == NEVER_TREATED).any() else ""
        notes.append(f"control: cohort {int(last)} (last treated){extra}; periods >= {int(last)} dropped")
        f = f.loc[keep]
        return f, last
    raise ValueError(f"control must be 'never' or 'last', got {control!r}")


def sunab(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    *,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    control: str = "never",
    reference: int = -1,
    aggregate: str = "event",
    weights: str | None = None,
    alpha: float = 0.05,
) -> EstimationResult:
    """Sun-Abraham interaction-weighted event study (or its overall ATT).

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel, balanced or not.
    outcome, unit, time, cohort : str
        Column names; ``cohort`` is the first treated period, 0 or missing for never treated.
    covariates : str or sequence of str, optional
        Time-varying controls entered linearly (fixest's ``y ~ x1 + sunab(cohort, period)``).
    cluster : str, optional
        Column to cluster on (default ``unit``).
    control : str, default 'never'
        ``"never"`` or ``"last"`` (see the module docstring).
    reference : int, default -1
        Event time omitted for every cohort.
    aggregate : str, default 'event'
        ``"event"``: one row per event time. ``"att"`` (or ``"simple"``): one row, the average of all post-treatment
        CATT(g, e) (e >= 0) weighted by their sample counts (fixest's ``agg = "att"``).
        ``"cohort"`` (alias ``"group"``): one row per cohort, the average of that cohort's
        post-treatment CATT(g, e) (e >= 0) weighted by their sample counts (fixest's
        ``agg = "cohort"``, which aggregates the coefficients of non-negative relative periods
        by cohort with the model matrix's column counts as weights).
    weights : str, optional
        Optional regression weights (also used for the cohort shares).
    alpha : float, default 0.05
        1 - confidence level.

    Returns
    -------
    SunabResult
        Rows as chosen by ``aggregate`` with ``vcov``; ``meta['catt']`` is the tidy frame of the
        CATT(g, e) (``cohort`` and ``event_time`` columns) and ``meta['weights']`` the share
        of each (g, e) cell; with covariates, ``tidy(covariates=True)`` (and
        ``meta['covariate_coefficients']``) gives their own coefficients.

    Examples
    --------
    >>> import moderndid
    >>> mpdta = moderndid.load_mpdta().to_pandas()
    >>> att = sunab(mpdta, "lemp", "countyreal", "year", "first.treat", aggregate="att")
    >>> att.tidy()["term"].tolist()
    ['ATT']
    >>> by_cohort = sunab(mpdta, "lemp", "countyreal", "year", "first.treat", aggregate="cohort")
    >>> by_cohort.tidy()["term"].tolist()
    ['cohort::2004', 'cohort::2006', 'cohort::2007']
    """
    aggregate = {"simple": "att", "group": "cohort"}.get(aggregate, aggregate)  # one name across estimators, as att_gt
    if aggregate not in ("event", "att", "cohort"):
        raise ValueError(f"aggregate must be 'event', 'att' (or 'simple') or 'cohort' (or 'group'), got {aggregate!r}")
    panel = prepare_panel(
        data, outcome=outcome, unit=unit, time=time, cohort=cohort,
        covariates=covariates, cluster=cluster, weights=weights,
    )
    notes: list[str] = []
    f, control_cohort = _restrict_sample(panel, control, notes)
    g = f["_g"].to_numpy()
    e = f["_e"].to_numpy()
    treated = (g != NEVER_TREATED) & (g != control_cohort) & (e != reference)
    cells = pd.DataFrame({"g": g[treated], "e": e[treated]}).drop_duplicates().sort_values(["g", "e"])
    if cells.empty:
        raise ValueError("no treated cohort-by-event-time cell to estimate")
    cells["code"] = np.arange(1, len(cells) + 1)
    code = np.zeros(len(f), dtype=np.int64)
    lookup = cells.set_index(["g", "e"])["code"]
    code[treated] = lookup.reindex(pd.MultiIndex.from_arrays([g[treated], e[treated]])).to_numpy()
    f = f.assign(_cell=code)
    if not panel.xcols and weights is None:
        # only indicators besides the effects: bincount and sparse products, no dense dummy columns
        # (analysis.did._fe_ols; the same numbers as the pyfixest call below)
        fit = fe_indicator_ols(f["_y"].to_numpy(), f["_i"].to_numpy(), f["_t"].to_numpy(), code, cluster=f["_cl"].to_numpy())
        fit = _Fit(_coefnames=fit.names, _beta_hat=fit.beta, _vcov=fit.vcov, _df_t=fit.df_t, _N=fit.n_obs)
    else:
        import pyfixest as pf

        xs = "".join(f" + {c}" for c in panel.xcols)
        wcol = "_w" if weights is not None else None
        with blas_threads():
            fit = pf.feols(
                f"_y ~ i(_cell, ref=0){xs} | _i + _t",
                data=f, vcov={"CRV1": "_cl"}, weights=wcol, copy_data=False, store_data=False, lean=True,
            )
    notes += singleton_note(len(f), int(fit._N))
    names = [str(c) for c in fit._coefnames]
    pos = {int(n.split("::", 1)[1]): k for k, n in enumerate(names) if n.startswith("_cell::")}
    kept = cells[cells["code"].isin(pos)].copy()
    if len(kept) < len(cells):
        lost = cells[~cells["code"].isin(pos)]
        notes.append(f"{len(lost)} cohort x event-time cell(s) collinear and dropped: "
                     + ", ".join(f"({int(a)}, {int(b)})" for a, b in zip(lost["g"], lost["e"])))
    # cohort shares at each event time
    w_obs = f["_w"].to_numpy() if weights is not None else np.ones(len(f))
    cnt = pd.Series(w_obs[code > 0]).groupby(code[code > 0]).sum()
    kept["n"] = cnt.reindex(kept["code"]).to_numpy()
    kept["share"] = kept["n"] / kept.groupby("e")["n"].transform("sum")
    idx = np.array([pos[c] for c in kept["code"]])
    beta = np.asarray(fit._beta_hat)[idx]
    Vb = np.asarray(fit._vcov)[np.ix_(idx, idx)]
    df_t = float(fit._df_t)

    catt = tidy_frame(
        beta, np.sqrt(np.diag(Vb)),
        term=[f"cohort::{int(a)}:event_time::{int(b)}" for a, b in zip(kept["g"], kept["e"])],
        outcome=outcome, estimator="sunab_catt", n_obs=int(fit._N), alpha=alpha, df=df_t,
        event_time=kept["e"].astype(np.int64).to_numpy(), cohort=kept["g"].astype(np.int64).to_numpy(),
    )
    covariate_rows = _covariate_rows(fit, names, panel, outcome=outcome, alpha=alpha, df=df_t)
    meta = panel.meta(
        reference_period=int(reference),
        control=control,
        catt=catt,
        weights=kept[["g", "e", "n", "share"]].rename(columns={"g": "cohort", "e": "event_time"}).reset_index(drop=True),
        variance="delta method, cohort shares treated as known (as fixest)",
        notes=notes,
    )
    if covariate_rows is not None:
        meta["covariate_coefficients"] = covariate_rows
    post = (kept["e"] >= 0).to_numpy()
    if aggregate in ("att", "cohort") and not post.any():
        raise ValueError("no post-treatment cell to aggregate")
    if aggregate == "att":
        a = np.where(post, kept["n"].to_numpy(), 0.0)
        a = a / a.sum()
        est = float(a @ beta)
        se = float(np.sqrt(a @ Vb @ a))
        return _as_sunab(scalar_result(est, se, term="ATT", outcome=outcome, estimator="sunab", n_obs=int(fit._N),
                                       alpha=alpha, df=df_t, meta=meta))
    if aggregate == "cohort":
        gs = np.sort(kept.loc[post, "g"].unique())
        g_kept = kept["g"].to_numpy()
        n_kept = np.where(post, kept["n"].to_numpy(), 0.0)
        A = np.zeros((len(gs), len(kept)))
        for r, gv in enumerate(gs):
            A[r] = np.where(g_kept == gv, n_kept, 0.0)
            A[r] /= A[r].sum()
        V = A @ Vb @ A.T
        terms = [f"cohort::{int(gv)}" for gv in gs]
        n_cohort = [int(kept.loc[post & (g_kept == gv), "n"].sum()) for gv in gs]
        meta["cohort_obs"] = dict(zip(terms, n_cohort, strict=True))
        return SunabResult.from_estimates(
            estimate=A @ beta, std_error=np.sqrt(np.clip(np.diag(V), 0, None)), term=terms, outcome=outcome,
            estimator="sunab", n_obs=int(fit._N), alpha=alpha, df=df_t, cohort=gs.astype(np.int64),
            vcov=V, meta=meta,
        )
    evs = np.sort(kept["e"].unique())
    A = np.zeros((len(evs), len(kept)))
    e_kept = kept["e"].to_numpy()
    share = kept["share"].to_numpy()
    for r, v in enumerate(evs):
        A[r, e_kept == v] = share[e_kept == v]
    return _as_sunab(event_time_result(
        evs.astype(np.int64), A @ beta, A @ Vb @ A.T, outcome=outcome, estimator="sunab",
        n_obs=int(fit._N), alpha=alpha, df=df_t, meta=meta,
    ))


def _as_sunab(res: EstimationResult) -> SunabResult:
    return SunabResult(table=res.table, vcov=res.vcov, meta=res.meta, title=res.title)


def _covariate_rows(fit: Any, names: list[str], panel: Panel, *, outcome: str, alpha: float, df: float) -> pd.DataFrame | None:
    """Tidy rows of the covariates' own coefficients (named as the user's columns), or None."""
    if not panel.covariates:
        return None
    pos = {n: k for k, n in enumerate(names)}
    idx = [pos.get(c) for c in panel.xcols]
    keep = [k for k, i in enumerate(idx) if i is not None]  # a covariate collinear with the effects is dropped
    if not keep:
        return None
    ii = np.array([idx[k] for k in keep])
    b = np.asarray(fit._beta_hat)[ii]
    se = np.sqrt(np.diag(np.asarray(fit._vcov))[ii])
    return tidy_frame(b, se, term=[str(panel.covariates[k]) for k in keep], outcome=outcome, estimator="sunab",
                      n_obs=int(fit._N), alpha=alpha, df=df)
