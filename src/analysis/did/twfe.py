"""Two-way fixed effects difference-in-differences, static and dynamic (event study).

Static:  ``y_it = a_i + l_t + b * D_it + x_it'c + u_it`` with ``D_it = 1[t >= g_i]``.

Dynamic: ``y_it = a_i + l_t + sum_{e != -1} b_e * 1[t - g_i = e] + x_it'c + u_it``; never-treated
units have every event dummy equal to zero (they sit in the reference category together with
``e = -1``). With ``bins=(lo, hi)`` the event times below ``lo`` are pooled into ``lo`` and those
above ``hi`` into ``hi`` (binned endpoints). Without a never-treated group and without binning the
fully dynamic specification is not identified (a linear trend in event time is collinear with the
unit and period effects); the earliest event time is then pooled into the reference category as
well, as with fixest's ``ref = c(-1, .F)``, and a note says so.

Under staggered adoption with effects that vary over cohorts or event time both are weighted
averages with possibly negative weights (Goodman-Bacon 2021; Sun and Abraham 2021): use them as
the conventional benchmark next to :mod:`analysis.did.sunab`, :mod:`analysis.did.imputation`,
:mod:`analysis.did.stacked` or Callaway-Sant'Anna.

Standard errors are cluster-robust (CR1, fixest's small-sample correction, t with G - 1
degrees of freedom), clustered by unit unless ``cluster`` names a coarser column (the certified
county x industry cell). Observations that are fixed-effect singletons (a firm observed once)
are dropped, as reghdfe and pyfixest do (fixest keeps them; the coefficients are the same), and
``meta['notes']`` counts them.

Without covariates and weights (the study's specification) every regressor is an indicator, and the
regression runs through :func:`analysis.did._fe_ols.fe_indicator_ols` (bincounts and sparse products,
no dense dummies; at 5 million firm-years it needs a fraction of pyfixest's memory); with covariates
or weights through ``pyfixest.feols``. Both give the same numbers (tests/test_twfe.py).

Examples
--------
>>> import moderndid
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> res = twfe(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
>>> round(float(res.coef()["ATT"]), 4)
-0.0365
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.did._common import Panel, event_time_result, prepare_panel, scalar_result, singleton_note
from analysis.did._fe_ols import FEFit, fe_indicator_ols
from analysis.domain import NEVER_TREATED
from analysis.results import EstimationResult

__all__ = ["twfe", "event_codes"]


def event_codes(
    panel: Panel,
    *,
    reference: int = -1,
    bins: tuple[int, int] | None = None,
) -> tuple[np.ndarray, list[int], list[str]]:
    """Event-time codes for a TWFE event study.

    Returns the code per row (never-treated rows and pooled reference rows get ``reference``),
    the reference event times (``[reference]`` or ``[reference, earliest]``) and notes.
    """
    e = panel.frame["_e"].to_numpy(dtype=float)
    notes: list[str] = []
    if bins is not None:
        lo, hi = int(bins[0]), int(bins[1])
        if not lo < reference < hi:
            raise ValueError(f"bins={bins} must satisfy low < reference ({reference}) < high")
        e = np.where(np.isfinite(e), np.clip(e, lo, hi), e)
        notes.append(f"event times below {lo} pooled into {lo}, above {hi} into {hi} (binned endpoints)")
    refs = [reference]
    finite = e[np.isfinite(e)]
    if finite.size == 0:
        raise ValueError(f"no treated unit: every value of '{panel.cohort}' is 0, missing, or after the last period")
    if not panel.has_never_treated and bins is None:
        earliest = int(finite.min())
        if earliest != reference:
            refs.append(earliest)
            notes.append(
                f"no never-treated units: event time {earliest} is pooled with {reference} into the "
                "reference category (otherwise a linear trend in event time is not identified)"
            )
    code = np.where(np.isfinite(e), e, reference)
    code = np.where(np.isin(code, refs), reference, code).astype(np.int64)
    return code, refs, notes


def _fit(frame: pd.DataFrame, fml: str, *, cluster: str, weights: str | None):
    import pyfixest as pf

    return pf.feols(
        fml,
        data=frame,
        vcov={"CRV1": cluster},
        weights=weights,
        copy_data=False,
        store_data=False,
        lean=True,
    )


def _indicator_fit(frame: pd.DataFrame, cell: np.ndarray) -> FEFit:
    """``_y ~ i(cell, ref=0) | _i + _t``, CRV1 by ``_cl``, without dense dummies (pyfixest's numbers)."""
    return fe_indicator_ols(frame["_y"].to_numpy(), frame["_i"].to_numpy(), frame["_t"].to_numpy(), cell,
                            cluster=frame["_cl"].to_numpy())


def _indicator_coef_table(names: list[str], fit: FEFit) -> pd.DataFrame:
    """The coefficient table pyfixest's ``tidy()`` gives (95 % intervals, t with ``df_t``) for an indicator fit."""
    from scipy import stats

    se = np.sqrt(np.diag(fit.vcov))
    t = fit.beta / se
    q = stats.t.ppf(0.975, fit.df_t)
    return pd.DataFrame({"Estimate": fit.beta, "Std. Error": se, "t value": t, "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), fit.df_t),
                         "2.5%": fit.beta - q * se, "97.5%": fit.beta + q * se},
                        index=pd.Index(names, name="Coefficient"))


def twfe(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    *,
    dynamic: bool = False,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    reference: int = -1,
    bins: tuple[int, int] | None = None,
    weights: str | None = None,
    alpha: float = 0.05,
) -> EstimationResult:
    """Two-way fixed effects DiD: one static ATT, or an event study with ``dynamic=True``.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel (balanced or not), one row per unit and period.
    outcome, unit, time, cohort : str
        Column names; ``cohort`` is the first treated period, 0 or missing for never treated.
    dynamic : bool, default False
        ``False``: one coefficient on ``1[t >= cohort]`` (term ``ATT``). ``True``: one coefficient
        per event time except ``reference`` (terms ``event_time::<e>``).
    covariates : str or sequence of str, optional
        Time-varying controls entered linearly.
    cluster : str, optional
        Column to cluster on; defaults to ``unit``.
    reference : int, default -1
        The omitted event time (dynamic only).
    bins : tuple of int, optional
        ``(low, high)``: pool event times below ``low`` / above ``high`` into the endpoints.
    weights : str, optional
        Optional column of regression weights.
    alpha : float, default 0.05
        1 - confidence level.

    Returns
    -------
    EstimationResult
        Tidy rows (``event_time`` set when dynamic), ``vcov`` over the rows, ``meta`` with
        ``n_clusters``, ``cluster``, ``reference_period``, ``notes`` and the full coefficient
        table (``meta['coefficients']``, covariates included).

    Examples
    --------
    >>> import moderndid
    >>> mpdta = moderndid.load_mpdta().to_pandas()
    >>> es = twfe(mpdta, "lemp", "countyreal", "year", "first.treat", dynamic=True)
    >>> es.tidy()["event_time"].tolist()
    [-4, -3, -2, 0, 1, 2, 3]
    """
    panel = prepare_panel(
        data, outcome=outcome, unit=unit, time=time, cohort=cohort,
        covariates=covariates, cluster=cluster, weights=weights,
    )
    frame = panel.frame
    xs = "".join(f" + {c}" for c in panel.xcols)
    wcol = "_w" if weights is not None else None
    indicators_only = not panel.xcols and weights is None  # fe_indicator_ols, else pyfixest
    notes: list[str] = []
    estimator = "twfe_event_study" if dynamic else "twfe"
    if not dynamic:
        g = frame["_g"].to_numpy()
        treated = (g != NEVER_TREATED) & (frame["_t"].to_numpy() >= g)
        if not treated.any():
            raise ValueError(f"no treated observation: '{cohort}' is never reached within '{time}'")
        if indicators_only:
            ind = _indicator_fit(frame, treated.astype(np.int64))
            names, beta, vcov, n_obs, df_t = ["_D"] * len(ind.names), ind.beta, ind.vcov, ind.n_obs, ind.df_t
            coefs = _indicator_coef_table(names, ind)
        else:
            fit = _fit(frame.assign(_D=treated.astype(float)), f"_y ~ _D{xs} | _i + _t", cluster="_cl", weights=wcol)
            names, beta, vcov, n_obs, df_t = list(fit._coefnames), fit._beta_hat, fit._vcov, int(fit._N), float(fit._df_t)
            coefs = _coef_table(fit, panel)
        notes += singleton_note(len(frame), n_obs)
        if "_D" not in names:
            raise ValueError("the treatment dummy is collinear with the fixed effects (no variation left)")
        k = names.index("_D")
        return scalar_result(
            beta[k], np.sqrt(vcov[k, k]),
            term="ATT", outcome=outcome, estimator=estimator, n_obs=n_obs, alpha=alpha, df=df_t,
            meta=panel.meta(estimand="static TWFE coefficient on 1[t >= cohort]", coefficients=coefs, notes=notes),
        )

    code, refs, code_notes = event_codes(panel, reference=reference, bins=bins)
    notes += code_notes
    if indicators_only:
        levels = np.unique(code[code != reference])  # event time of dummy k is levels[k - 1]
        ind = _indicator_fit(frame, np.where(code == reference, 0, np.searchsorted(levels, code) + 1))
        e_kept = [int(levels[int(n.split("::", 1)[1]) - 1]) for n in ind.names]
        dropped = [f"_rel::{int(v)}" for v in levels if int(v) not in e_kept]
        names, beta_all, V_all, n_obs, df_t = [f"_rel::{v}" for v in e_kept], ind.beta, ind.vcov, ind.n_obs, ind.df_t
        coefs = _indicator_coef_table(names, ind)
    else:
        fit = _fit(frame.assign(_rel=code), f"_y ~ i(_rel, ref={int(reference)}){xs} | _i + _t", cluster="_cl", weights=wcol)
        names, beta_all, V_all = [str(c) for c in fit._coefnames], np.asarray(fit._beta_hat), np.asarray(fit._vcov)
        n_obs, df_t, coefs = int(fit._N), float(fit._df_t), _coef_table(fit, panel)
        dropped = [str(c) for c in getattr(fit, "_collin_vars", []) or [] if str(c).startswith("_rel::")]
    notes += singleton_note(len(frame), n_obs)
    idx = [k for k, c in enumerate(names) if c.startswith("_rel::")]
    e = [int(names[k].split("::", 1)[1]) for k in idx]
    if dropped:
        notes.append(f"collinear event-time dummies dropped: {dropped}")
    order = np.argsort(e)
    idx = [idx[k] for k in order]
    e = [e[k] for k in order]
    beta = beta_all[idx]
    V = V_all[np.ix_(idx, idx)]
    counts = pd.Series(code).value_counts()
    n_by_e = [int(counts.get(v, 0)) for v in e]
    return event_time_result(
        e, beta, V, outcome=outcome, estimator=estimator, n_obs=n_obs, alpha=alpha, df=df_t,
        meta=panel.meta(
            reference_period=int(reference),
            pooled_reference=[int(r) for r in refs],
            bins=None if bins is None else (int(bins[0]), int(bins[1])),
            n_obs_by_event_time=dict(zip(e, n_by_e)),
            coefficients=coefs,
            notes=notes,
        ),
    )


def _coef_table(fit, panel: Panel) -> pd.DataFrame:
    """pyfixest's coefficient table with the caller's covariate names."""
    tab = fit.tidy().copy()
    rename = {f"_x{k}": c for k, c in enumerate(panel.covariates)}
    tab.index = [rename.get(str(i), str(i)) for i in tab.index]
    return tab
