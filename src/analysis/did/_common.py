"""Shared plumbing for the staggered difference-in-differences estimators.

Every estimator in :mod:`analysis.did` starts from :func:`prepare_panel`, which checks the input
once (columns present, one cohort per unit, one row per unit and period, no missing identifiers)
and returns a :class:`Panel` with normalised internal columns:

``_y``   the outcome (float)
``_i``   unit codes 0..N-1
``_t``   the period (integer)
``_g``   the first treated period, ``inf`` for never-treated units (cohort 0, missing, or first
         treated after the last observed period)
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
{'_i': [0, 0, 1, 1], '_t': [1, 2, 1, 2], '_g': [2.0, 2.0, inf, inf], '_e': [-1.0, 0.0, nan, nan]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.results import EstimationResult

__all__ = [
    "Panel",
    "prepare_panel",
    "event_term",
    "event_time_result",
    "scalar_result",
    "singleton_note",
    "as_list",
]


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
        """Treated cohorts (finite first-treatment periods), sorted."""
        g = self.frame["_g"].to_numpy()
        return np.sort(np.unique(g[np.isfinite(g)]))

    @property
    def has_never_treated(self) -> bool:
        return bool(np.isinf(self.frame["_g"].to_numpy()).any())

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


def _to_pandas(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):  # polars, pyarrow
        return data.to_pandas()
    raise ValueError(f"data must be a pandas (or polars) DataFrame, got {type(data).__name__}")


def _show(values: Sequence[Any], k: int = 5) -> str:
    values = list(values)
    more = f" ... ({len(values)} in all)" if len(values) > k else ""
    return ", ".join(map(str, values[:k])) + more


def prepare_panel(
    data: Any,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    extra: Sequence[str] = (),
) -> Panel:
    """Check a long panel and return it with normalised internal columns.

    Parameters
    ----------
    data
        Long panel, one row per unit and period (pandas or polars).
    outcome, unit, time, cohort
        Column names. ``cohort`` is the first treated period; 0 or missing means never treated.
    covariates
        Time-varying controls (column names).
    cluster
        Column to cluster standard errors on, e.g. the certified county x industry cell above the
        firm; defaults to ``unit``.
    weights
        Optional column of non-negative sampling weights (kept as ``_w``).
    extra
        Further columns to carry along unchanged (same names).

    Returns
    -------
    Panel

    Raises
    ------
    ValueError
        Naming the missing columns, the rows with a missing unit / period / cluster, the units
        whose cohort changes over time, the duplicated unit-period rows, or a non-integer
        period / cohort.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": [1, 1], "t": [1, 1], "g": [0, 0], "y": [0.0, 1.0]})
    >>> prepare_panel(df, outcome="y", unit="id", time="t", cohort="g")
    Traceback (most recent call last):
    ...
    ValueError: 1 duplicated (id, t) pair(s), e.g. (1, 1); a panel needs one row per unit and period
    """
    df = _to_pandas(data)
    covs = as_list(covariates)
    cl_name = cluster if cluster is not None else unit
    needed = [outcome, unit, time, cohort, *covs, cl_name, *as_list(weights), *extra]
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in data; it has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError("data has no rows")

    notes: list[str] = []
    for col in dict.fromkeys([unit, time, cl_name]):
        bad = df.index[df[col].isna().to_numpy()]
        if len(bad):
            raise ValueError(f"column '{col}' is missing in {len(bad)} row(s), e.g. index {_show(bad)}")

    t = pd.to_numeric(df[time], errors="coerce").to_numpy(dtype=float)
    if np.isnan(t).any() or not np.all(t == np.round(t)):
        bad = df.index[np.isnan(t) | (t != np.round(t))]
        raise ValueError(f"period column '{time}' must hold integers; rows {_show(bad)} do not")

    g = pd.to_numeric(df[cohort], errors="coerce").to_numpy(dtype=float)
    nonnum = df[cohort].notna().to_numpy() & np.isnan(g)
    if nonnum.any():
        raise ValueError(f"cohort column '{cohort}' must be numeric; rows {_show(df.index[nonnum])} are not")
    g = np.where(np.isnan(g) | (g == 0), np.inf, g)
    bad = np.isfinite(g) & ((g != np.round(g)) | (g < 0))
    if bad.any():
        raise ValueError(
            f"cohort column '{cohort}' must hold the first treated period (a non-negative integer, "
            f"0 or missing for never treated); rows {_show(df.index[bad])} do not"
        )

    ids, uniq_units = pd.factorize(df[unit], sort=True)
    # one cohort per unit
    g_key = np.where(np.isinf(g), -1.0, g)
    per_unit = pd.Series(g_key).groupby(ids).nunique()
    varying = per_unit.index[per_unit.to_numpy() > 1]
    if len(varying):
        raise ValueError(
            f"cohort '{cohort}' varies within {len(varying)} unit(s) of '{unit}', e.g. "
            f"{_show(uniq_units[varying])}; treatment must be absorbing with one first period per unit"
        )
    key = pd.DataFrame({"i": ids, "t": t})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        first = df.loc[dup, [unit, time]].iloc[0]
        n_pairs = int(key[dup].drop_duplicates().shape[0])
        raise ValueError(
            f"{n_pairs} duplicated ({unit}, {time}) pair(s), e.g. ({first[unit]}, {first[time]}); "
            "a panel needs one row per unit and period"
        )

    t_max = np.nanmax(t)
    late = np.isfinite(g) & (g > t_max)
    if late.any():
        n_late = int(pd.Series(ids[late]).nunique())
        notes.append(f"{n_late} unit(s) first treated after the last period ({int(t_max)}) are never treated in this sample")
        g = np.where(late, np.inf, g)

    cl_codes, _ = pd.factorize(df[cl_name], sort=True)
    out = pd.DataFrame(
        {
            "_y": pd.to_numeric(df[outcome], errors="coerce").to_numpy(dtype=float),
            "_i": ids.astype(np.int64),
            "_t": t.astype(np.int64),
            "_g": g,
            "_cl": cl_codes.astype(np.int64),
        }
    )
    for k, c in enumerate(covs):
        x = pd.to_numeric(df[c], errors="coerce")
        if df[c].notna().to_numpy().sum() != x.notna().to_numpy().sum():
            raise ValueError(f"covariate '{c}' must be numeric (encode categories as dummies first)")
        out[f"_x{k}"] = x.to_numpy(dtype=float)
    if weights is not None:
        w = pd.to_numeric(df[weights], errors="coerce").to_numpy(dtype=float)
        if np.any(w[~np.isnan(w)] < 0):
            raise ValueError(f"weights column '{weights}' has negative values")
        out["_w"] = w
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
    out["_e"] = np.where(np.isfinite(out["_g"]), out["_t"] - out["_g"], np.nan)
    return Panel(
        frame=out,
        outcome=outcome,
        unit=unit,
        time=time,
        cohort=cohort,
        cluster=cl_name,
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
