"""Two-way fixed effects difference-in-differences, static and dynamic (event study), on pyfixest.

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
    notes: list[str] = []
    estimator = "twfe_event_study" if dynamic else "twfe"
    if not dynamic:
        g = frame["_g"].to_numpy()
        frame = frame.assign(_D=((g != NEVER_TREATED) & (frame["_t"].to_numpy() >= g)).astype(float))
        if frame["_D"].sum() == 0:
            raise ValueError(f"no treated observation: '{cohort}' is never reached within '{time}'")
        fit = _fit(frame, f"_y ~ _D{xs} | _i + _t", cluster="_cl", weights=wcol)
        notes += singleton_note(len(frame), int(fit._N))
        coefs = _coef_table(fit, panel)
        if "_D" not in fit._coefnames:
            raise ValueError("the treatment dummy is collinear with the fixed effects (no variation left)")
        k = list(fit._coefnames).index("_D")
        return scalar_result(
            fit._beta_hat[k], np.sqrt(fit._vcov[k, k]),
            term="ATT", outcome=outcome, estimator=estimator, n_obs=int(fit._N), alpha=alpha,
            df=float(fit._df_t),
            meta=panel.meta(estimand="static TWFE coefficient on 1[t >= cohort]", coefficients=coefs, notes=notes),
        )

    code, refs, code_notes = event_codes(panel, reference=reference, bins=bins)
    notes += code_notes
    frame = frame.assign(_rel=code)
    fit = _fit(frame, f"_y ~ i(_rel, ref={int(reference)}){xs} | _i + _t", cluster="_cl", weights=wcol)
    notes += singleton_note(len(frame), int(fit._N))
    names = [str(c) for c in fit._coefnames]
    idx = [k for k, c in enumerate(names) if c.startswith("_rel::")]
    e = [int(names[k].split("::", 1)[1]) for k in idx]
    dropped = [str(c) for c in getattr(fit, "_collin_vars", []) or [] if str(c).startswith("_rel::")]
    if dropped:
        notes.append(f"collinear event-time dummies dropped by pyfixest: {dropped}")
    order = np.argsort(e)
    idx = [idx[k] for k in order]
    e = [e[k] for k in order]
    beta = np.asarray(fit._beta_hat)[idx]
    V = np.asarray(fit._vcov)[np.ix_(idx, idx)]
    rel_all = frame["_rel"].to_numpy()
    n_by_e = [int((rel_all == v).sum()) for v in e]
    return event_time_result(
        e, beta, V, outcome=outcome, estimator=estimator, n_obs=int(fit._N), alpha=alpha,
        df=float(fit._df_t),
        meta=panel.meta(
            reference_period=int(reference),
            pooled_reference=[int(r) for r in refs],
            bins=None if bins is None else (int(bins[0]), int(bins[1])),
            n_obs_by_event_time=dict(zip(e, n_by_e)),
            coefficients=_coef_table(fit, panel),
            notes=notes,
        ),
    )


def _coef_table(fit, panel: Panel) -> pd.DataFrame:
    """pyfixest's coefficient table with the caller's covariate names."""
    tab = fit.tidy().copy()
    rename = {f"_x{k}": c for k, c in enumerate(panel.covariates)}
    tab.index = [rename.get(str(i), str(i)) for i in tab.index]
    return tab
