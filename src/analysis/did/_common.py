"""Shared plumbing for the staggered difference-in-differences estimators.

The long-frame estimators (TWFE, Sun-Abraham, imputation, stacked, Bacon) start from
:func:`prepare_panel`, which takes the checked container :class:`~analysis.did.data.DiDPanel`
(one validation for every estimator, Callaway-Sant'Anna's included) and returns a :class:`Panel`
with normalised internal columns:

``_y``   the outcome (float)
``_i``   unit codes 0..N-1
``_t``   the period (integer)
``_g``   the first treated period, 0 for units never treated within the sample (the one rule of
         :mod:`analysis.domain`: cohort 0, missing, or first treated after the last period)
``_e``   event time ``_t - _g`` (``NaN`` for never-treated units)
``_cl``  cluster codes 0..G-1 (the unit unless ``cluster`` names a coarser column)
``_x0, _x1, ...``  covariates, in the order given

and :func:`event_time_result` / :func:`scalar_result`, which put estimates with their covariance
into the one tidy shape of :mod:`analysis.results`.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"id": [1, 1, 2, 2], "t": [1, 2, 1, 2], "g": [2, 2, 0, 0], "y": [0.0, 1.0, 0.0, 0.2]})
>>> p = prepare_panel(df, outcome="y", unit="id", time="t", cohort="g")
>>> p.frame[["_i", "_t", "_g", "_e"]].to_dict("list")
{'_i': [0, 0, 1, 1], '_t': [1, 2, 1, 2], '_g': [2.0, 2.0, 0.0, 0.0], '_e': [-1.0, 0.0, nan, nan]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.did.data import as_panel
from analysis.domain import NEVER_TREATED
from analysis.results import EstimationResult

__all__ = [
    "Panel",
    "prepare_panel",
    "event_term",
    "event_time_result",
    "scalar_result",
    "singleton_note",
    "as_list",
    "demean_by_group",
]


def demean_by_group(a: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None, *,
                    inplace: bool = False) -> np.ndarray:
    """Subtract the (weighted) mean of each group from ``a`` (n or n x m), column by column: exact
    within transformation for one set of effects (e.g. unit effects), one bincount per column.

    With ``inplace`` (``a`` a float64 array) the columns of ``a`` itself are overwritten and ``a``
    is returned: no second ``n x m`` array, and column access is contiguous when ``a`` is
    Fortran-ordered (as the small-sample designs build it).

    Examples
    --------
    >>> demean_by_group(np.array([1.0, 3.0, 5.0]), np.array([0, 0, 1]), 2)
    array([-1.,  1.,  0.])
    """
    if inplace and not (isinstance(a, np.ndarray) and a.dtype == np.float64):
        raise TypeError("demean_by_group(inplace=True) needs a float64 numpy array")
    a2 = (a if inplace else np.asarray(a, dtype=float)).reshape(len(a), -1)
    w = None if weights is None else np.asarray(weights, dtype=float)
    tot = np.bincount(codes, weights=w, minlength=n_groups).astype(float)
    tot = np.where(tot > 0, tot, 1.0)
    out = a2 if inplace else np.empty_like(a2)
    for j in range(a2.shape[1]):
        col = a2[:, j]
        means = np.bincount(codes, weights=col if w is None else w * col, minlength=n_groups) / tot
        out[:, j] = col - means[codes]
    return a if inplace else out.reshape(np.shape(a))


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """``None`` -> ``[]``, a string -> ``[string]``, a sequence -> list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def event_term(e: int) -> str:
    """The term label of an event-time coefficient, e.g. ``event_time::-2``."""
    return f"event_time::{int(e)}"


@dataclass
class Panel:
    """A checked panel with normalised internal columns (see the module docstring).

    Attributes
    ----------
    frame
        The data with the internal columns (only those).
    outcome, unit, time, cohort
        The caller's column names.
    cluster
        The caller's cluster column (the unit column when clustering by unit).
    covariates
        The caller's covariate names; internal names are ``_x0, _x1, ...``.
    notes
        Data decisions a reader should know (rows dropped, cohorts recoded).
    """

    frame: pd.DataFrame
    outcome: str
    unit: str
    time: str
    cohort: str
    cluster: str
    covariates: list[str]
    weights: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def xcols(self) -> list[str]:
        """Internal covariate column names."""
        return [f"_x{k}" for k in range(len(self.covariates))]

    @property
    def n_units(self) -> int:
        return int(self.frame["_i"].nunique())

    @property
    def n_clusters(self) -> int:
        return int(self.frame["_cl"].nunique())

    @property
    def periods(self) -> np.ndarray:
        return np.sort(self.frame["_t"].unique())

    @property
    def cohorts(self) -> np.ndarray:
        """Treated cohorts, sorted."""
        g = self.frame["_g"].to_numpy()
        return np.sort(np.unique(g[g != NEVER_TREATED]))

    @property
    def has_never_treated(self) -> bool:
        return bool((self.frame["_g"].to_numpy() == NEVER_TREATED).any())

    def meta(self, **extra: Any) -> dict[str, Any]:
        """The metadata every result carries."""
        out: dict[str, Any] = {
            "n_units": self.n_units,
            "n_clusters": self.n_clusters,
            "cluster": self.cluster,
            "unit": self.unit,
            "time": self.time,
            "cohort": self.cohort,
            "covariates": list(self.covariates),
        }
        out.update(extra)
        out["notes"] = list(self.notes) + list(extra.get("notes", []))
        return out


def prepare_panel(
    data: Any,
    *,
    outcome: str,
    unit: str | None,
    time: str | None,
    cohort: str | None,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    extra: Sequence[str] = (),
    anticipation: float = 0,
) -> Panel:
    """The long layout of a :class:`~analysis.did.data.DiDPanel` for one outcome.

    The container (built here by :func:`~analysis.did.data.as_panel`, or the caller's) has
    checked the panel and coded the treatment timing; this adds the outcome and covariates and
    drops the rows where one of them (or the weight) is missing or infinite, with a note.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel, one row per unit and period (pandas or polars), or a container.
    outcome, unit, time, cohort : str
        Column names. ``cohort`` is the first treated period; 0 or missing means never treated.
    covariates : str or sequence of str, optional
        Time-varying controls (column names).
    cluster : str, optional
        Column to cluster standard errors on, e.g. the certified county x industry cell above the
        firm; defaults to ``unit``.
    weights : str, optional
        Column of non-negative sampling weights (kept as ``_w``).
    extra : sequence of str
        Further columns to carry along unchanged (same names).
    anticipation : float, default 0
        Periods of anticipation (late-cohort rule of the container).

    Returns
    -------
    Panel

    Raises
    ------
    ValueError
        As :meth:`analysis.did.data.DiDPanel.from_data`; also for a non-numeric covariate.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": [1, 1, 2, 2], "t": [1, 2, 1, 2], "g": [2, 2, 0, 0], "y": [0.0, 1.0, 0.0, None]})
    >>> p = prepare_panel(df, outcome="y", unit="id", time="t", cohort="g")
    >>> p.frame[["_i", "_t", "_g", "_e"]].to_dict("list"), p.notes
    ({'_i': [0, 0, 1], '_t': [1, 2, 1], '_g': [2.0, 2.0, 0.0], '_e': [-1.0, 0.0, nan]}, ["dropped 1 row(s) with a missing or infinite value in ['y']"])
    """
    covs = as_list(covariates)
    src = as_panel(data, unit=unit, time=time, cohort=cohort, cluster=cluster, weights=weights,
                   anticipation=anticipation, columns=[outcome, *covs, *extra])
    df = src.data
    notes: list[str] = list(src.notes)
    cl_codes = src.cluster_codes if src.cluster_codes is not None else src.unit_codes
    out = pd.DataFrame(
        {
            "_y": src.column(outcome, "outcome"),
            "_i": src.unit_codes,
            "_t": src.periods_row.astype(np.int64),
            "_g": src.cohort_row,
            "_cl": cl_codes,
        }
    )
    for k, c in enumerate(covs):
        x = pd.to_numeric(df[c], errors="coerce")
        if df[c].notna().to_numpy().sum() != x.notna().to_numpy().sum():
            raise ValueError(f"covariate '{c}' must be numeric (encode categories as dummies first)")
        out[f"_x{k}"] = x.to_numpy(dtype=float)
    if weights is not None:
        out["_w"] = src.column(weights, "weights")
    for c in extra:
        out[c] = df[c].to_numpy()

    check = ["_y", *[f"_x{k}" for k in range(len(covs))], *(["_w"] if weights is not None else [])]
    nan_rows = out[check].isna().any(axis=1).to_numpy() | ~np.isfinite(out["_y"].to_numpy())
    if nan_rows.any():
        names = [outcome, *covs, *as_list(weights)]
        notes.append(f"dropped {int(nan_rows.sum())} row(s) with a missing or infinite value in {names}")
        out = out.loc[~nan_rows].reset_index(drop=True)
        if len(out) == 0:
            raise ValueError(f"no rows left after dropping missing values of {names}")
        # re-code units and clusters densely
        out["_i"] = pd.factorize(out["_i"], sort=True)[0]
        out["_cl"] = pd.factorize(out["_cl"], sort=True)[0]
    treated = out["_g"].to_numpy() != NEVER_TREATED
    out["_e"] = np.where(treated, out["_t"] - out["_g"], np.nan)
    return Panel(
        frame=out,
        outcome=outcome,
        unit=src.unit,
        time=src.time,
        cohort=src.cohort,
        cluster=src.cluster if src.cluster is not None else src.unit,
        covariates=covs,
        weights=weights,
        notes=notes,
    )


def singleton_note(n_rows: int, n_used: int) -> list[str]:
    """Note for observations pyfixest drops as fixed-effect singletons (none if nothing dropped)."""
    if n_used >= n_rows:
        return []
    return [
        f"{n_rows - n_used} singleton observation(s) dropped (a fixed-effect level observed once has no "
        "within variation; as reghdfe and pyfixest do - fixest keeps them: same coefficients, "
        "marginally different standard errors)"
    ]


def event_time_result(
    event_times: Sequence[int],
    estimate: np.ndarray,
    vcov: np.ndarray,
    *,
    outcome: str,
    estimator: str,
    n_obs: int | Sequence[int],
    alpha: float = 0.05,
    df: float | None = None,
    meta: dict[str, Any] | None = None,
    title: str = "",
    **extra: Any,
) -> EstimationResult:
    """An event-study result: one row per event time, ``vcov`` over those rows.

    Terms are ``event_time::<e>`` (see :func:`event_term`); the reference period is not a row
    (its estimate is 0 by construction) and is recorded in ``meta['reference_period']``.

    Examples
    --------
    >>> r = event_time_result([0, 1], np.array([0.1, 0.2]), np.diag([0.01, 0.04]),
    ...                       outcome="y", estimator="x", n_obs=10)
    >>> r.tidy()[["term", "event_time", "std_error"]].values.tolist()
    [['event_time::0', 0, 0.1], ['event_time::1', 1, 0.2]]
    """
    e = [int(v) for v in event_times]
    est = np.asarray(estimate, dtype=float)
    V = np.asarray(vcov, dtype=float)
    se = np.sqrt(np.clip(np.diag(V), 0, None)) if V.size else np.zeros(0)
    terms = [event_term(v) for v in e]
    return EstimationResult.from_estimates(
        estimate=est,
        std_error=se,
        term=terms,
        outcome=outcome,
        estimator=estimator,
        n_obs=n_obs,
        alpha=alpha,
        df=df,
        vcov=V,
        meta=meta,
        title=title,
        event_time=np.asarray(e, dtype=np.int64),
        **extra,
    )


def scalar_result(
    estimate: float,
    std_error: float,
    *,
    term: str,
    outcome: str,
    estimator: str,
    n_obs: int,
    alpha: float = 0.05,
    df: float | None = None,
    meta: dict[str, Any] | None = None,
    title: str = "",
) -> EstimationResult:
    """A one-row result (e.g. a static ATT) with a 1 x 1 ``vcov``."""
    return EstimationResult.from_estimates(
        estimate=[float(estimate)],
        std_error=[float(std_error)],
        term=[term],
        outcome=outcome,
        estimator=estimator,
        n_obs=n_obs,
        alpha=alpha,
        df=df,
        vcov=np.array([[float(std_error) ** 2]]),
        meta=meta,
        title=title,
    )
