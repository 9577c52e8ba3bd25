"""The wide unit x period arrays behind :func:`analysis.did.att_gt`, from the checked container.

The panel is checked once by :class:`analysis.did.data.DiDPanel` (as for every estimator);
everything here is O(rows): the container's unit and period codes are scattered into
``n_units x n_periods`` arrays. Errors name the column and the offending units or rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.did.data import as_panel, numeric_column, show

__all__ = ["CSPanel", "prepare_panel", "CellPlan", "plan_cells"]

_MAX_SHOWN = 5


@dataclass
class CSPanel:
    """A panel in wide form, one row per unit (sorted by cohort), ready for the 2x2 comparisons.

    Attributes
    ----------
    times
        Sorted distinct periods, length ``T``.
    y
        ``n x T`` outcome; NaN where the unit is not observed (or the row was dropped).
    cohort
        ``n`` first treatment period; 0 = never treated (after recoding, see ``notes``).
    weights
        ``n`` sampling weights normalised to mean 1 (all ones without weights).
    x
        Covariates with a leading intercept column: ``n x k`` when every covariate is constant
        within units, else ``n x T x k`` (NaN where unobserved); ``None`` without covariates.
    cluster
        ``n`` integer cluster codes, or ``None`` (each unit is its own cluster).
    n_clusters
        Number of clusters (``n`` when ``cluster`` is ``None``).
    unit_ids
        Unit labels in row order.
    n_rows
        Unit-period rows in the estimation sample.
    treated_groups
        Cohorts for which ATT(g,t) is estimated.
    notes
        Human-readable descriptions of every row, unit or period that was dropped or recoded.
    x_names
        Names of the covariates (the columns of ``x`` after the intercept).
    """

    times: np.ndarray
    y: np.ndarray
    cohort: np.ndarray
    weights: np.ndarray
    x: np.ndarray | None
    cluster: np.ndarray | None
    n_clusters: int
    unit_ids: np.ndarray
    n_rows: int
    treated_groups: np.ndarray
    notes: list[str] = field(default_factory=list)
    x_names: list[str] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return self.y.shape[0]

    @property
    def x_varying(self) -> bool:
        return self.x is not None and self.x.ndim == 3

    @property
    def balanced(self) -> bool:
        return bool(np.isfinite(self.y).all())


def _period_codes(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..T-1 of the sorted distinct periods (a counting fast path for integer periods)."""
    lo, hi = t.min(), t.max()
    if hi - lo < 100_000 and np.array_equal(t, np.round(t)):
        offset = (t - lo).astype(np.intp)
        present = np.bincount(offset, minlength=int(hi - lo) + 1) > 0
        lookup = np.cumsum(present) - 1
        return lookup[offset], np.flatnonzero(present).astype(float) + lo
    codes, uniques = pd.factorize(t, sort=True)
    return codes, np.asarray(uniques, dtype=float)


def _constant_within(codes: np.ndarray, values: np.ndarray, n_units: int, col: str, unit: str, unit_ids: np.ndarray, what: str) -> np.ndarray:
    """Per-unit value of a column that must not vary within units; raise naming the units if it does."""
    per_unit = np.empty(n_units, dtype=values.dtype)
    per_unit[codes] = values
    differ = per_unit[codes] != values
    if values.dtype.kind == "f":
        differ &= ~(np.isnan(values) & np.isnan(per_unit[codes]))
    if differ.any():
        bad = np.unique(codes[differ])
        raise ValueError(f"{what} column {col!r} is not constant within {unit!r}: unit(s) {show(unit_ids[bad])} take more than one value "
                         f"({bad.size} unit(s) in all)")
    return per_unit


def _first_period_value(codes: np.ndarray, time_codes: np.ndarray, values: np.ndarray, n_units: int) -> np.ndarray:
    """Per-unit value of ``values`` in the unit's earliest period (rows in any order)."""
    order = np.lexsort((-time_codes, codes))  # by unit, latest period first: the last write wins
    out = np.empty(n_units)
    out[codes[order]] = values[order]
    return out


def prepare_panel(
    data: Any,
    *,
    outcome: str,
    unit: str | None,
    time: str | None,
    cohort: str | None,
    covariates: Sequence[str] | None,
    cluster: str | None,
    weights: str | None,
    anticipation: float,
    control: str,
    fix_weights: bool = False,
) -> CSPanel:
    """Put a checked panel (:class:`~analysis.did.data.DiDPanel`) in wide form (see :class:`CSPanel`).

    The container checks the panel and codes the timing by the rules every estimator shares
    (0 or missing cohort = never treated; cohorts after the last period plus ``anticipation`` are
    never treated in the sample). On top, the rules of R ``did`` 2.5, except where marked:

    * units treated in or before the first period plus ``anticipation`` are dropped;
    * rows with a missing outcome or covariate are dropped (the unit stays, with a gap);
    * the weights and the cluster must be constant within a unit; weights that vary
      are an error unless ``fix_weights=True``, which takes each unit's weight in its first
      observed period (R ``did``'s rule: its panel estimators read the weights of the first
      period, ``tlist[1]``, for every cell);
    * with ``control="never"`` and no never-treated unit: an error (R silently turns the last
      cohort into the control group); with ``control="notyet"``: periods from the last cohort's
      treatment (minus anticipation) on are dropped and the last cohort serves only as control.
    """
    covariates = list(covariates or [])
    for role, col in (("outcome", outcome), ("time", time), ("cohort", cohort)):
        if col is not None and col in covariates:
            raise ValueError(f"{role} column {col!r} cannot also be a covariate")
    src = as_panel(data, unit=unit, time=time, cohort=cohort, cluster=cluster, weights=weights,
                   anticipation=anticipation, columns=[outcome, *covariates])
    data, unit = src.data, src.unit
    notes: list[str] = list(src.notes)

    # -- unit and time ------------------------------------------------------------------------
    unit_codes, unit_ids = src.unit_codes, src.unit_ids
    n_units = unit_ids.size
    time_codes, times = _period_codes(src.periods_row)
    n_times = times.size
    key = unit_codes * n_times + time_codes
    g_unit = src.cohort_unit

    # -- weights and cluster --------------------------------------------------------------------
    if weights is not None:
        w_all = src.column(weights, "weights")
        if not np.isfinite(w_all).all():
            rows = np.flatnonzero(~np.isfinite(w_all))
            raise ValueError(f"weights column {weights!r} must be finite and non-negative; {rows.size} row(s) are not (row positions {show(rows)})")
        if fix_weights:
            w_unit = _first_period_value(unit_codes, time_codes, w_all, n_units)
        else:
            try:
                w_unit = _constant_within(unit_codes, w_all, n_units, weights, unit, unit_ids, "weights")
            except ValueError as err:
                raise ValueError(f"{err}; pass fix_weights=True to use each unit's weight in its first period (R did's rule)") from None
    else:
        w_unit = np.ones(n_units)
    if cluster is not None:
        c_codes = src.cluster_codes
        per_unit = np.empty(n_units, dtype=c_codes.dtype)
        per_unit[unit_codes] = c_codes
        differ = per_unit[unit_codes] != c_codes
        if differ.any():
            bad = np.unique(unit_codes[differ])
            raise ValueError(
                f"units are not nested in clusters: {bad.size} unit(s) of {unit!r} appear in more than one "
                f"{cluster!r} cluster (e.g. {show(unit_ids[bad])}); the cluster must be a unit attribute "
                "(a level above the unit, constant over time)"
            )
        c_unit = per_unit
    else:
        c_unit = None

    # -- outcome and covariates; rows with missing values leave a gap ------------------------------
    y_all = numeric_column(data, outcome, "outcome")
    x_all = np.column_stack([numeric_column(data, c, "covariate") for c in covariates]) if covariates else None
    keep = np.isfinite(y_all)
    if x_all is not None:
        keep &= np.isfinite(x_all).all(axis=1)
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} row(s) with a missing or non-finite outcome or covariate")
    y = np.full((n_units, n_times), np.nan)
    all_kept = bool(keep.all())
    y.ravel()[key if all_kept else key[keep]] = y_all if all_kept else y_all[keep]
    del key, y_all

    x: np.ndarray | None = None
    if x_all is not None:
        k = x_all.shape[1]
        xk, uk = x_all[keep], unit_codes[keep]
        per_unit = np.full((n_units, k), np.nan)
        per_unit[uk] = xk
        invariant = bool((per_unit[uk] == xk).all())
        if invariant:
            x = np.column_stack([np.ones(n_units), np.nan_to_num(per_unit)])
        else:
            x = np.full((n_units, n_times, k + 1), np.nan)
            x[:, :, 0] = 1.0
            x[uk, time_codes[keep], 1:] = xk
            notes.append("covariates vary over time: each 2x2 comparison uses their values in its earlier period (as R did)")

    # -- unit drops (late cohorts were recoded by the container) ------------------------------------
    always = (g_unit > 0) & (g_unit <= times[0] + anticipation)
    observed_any = np.isfinite(y).any(axis=1)
    if (~observed_any).any():
        notes.append(f"dropped {int((~observed_any).sum())} unit(s) with no usable row")
    if always.any():
        notes.append(f"dropped {int(always.sum())} unit(s) already treated in the first period (+ anticipation)")
    keep_units = observed_any & ~always
    if not keep_units.all():
        y, g_unit, w_unit, unit_ids = y[keep_units], g_unit[keep_units], w_unit[keep_units], unit_ids[keep_units]
        x = None if x is None else x[keep_units]
        c_unit = None if c_unit is None else c_unit[keep_units]
    if y.shape[0] == 0:
        raise ValueError("no unit left after dropping units without usable rows or already treated in the first period")

    last_cohort_control_only = False
    if not (g_unit == 0).any():
        if control == "never":
            raise ValueError(
                f"no never-treated units (cohort {cohort!r} equal to 0 or missing) to use as controls with "
                "control='never'; use control='notyet' (not-yet-treated units as controls)"
            )
        latest = g_unit.max()
        cutoff = latest - anticipation
        keep_t = times < cutoff
        notes.append(
            f"no never-treated units: periods from {cutoff:g} on are dropped and cohort {latest:g} serves only as a not-yet-treated control"
        )
        times, y = times[keep_t], y[:, keep_t]
        if x is not None and x.ndim == 3:
            x = x[:, keep_t]
        last_cohort_control_only = True

    # drop periods nobody is observed in (after the unit drops)
    seen = np.isfinite(y).any(axis=0)
    if not seen.all():
        times, y = times[seen], y[:, seen]
        if x is not None and x.ndim == 3:
            x = x[:, seen]
    if times.size < 2:
        raise ValueError(f"need at least two periods, found {times.size}")

    groups = np.unique(g_unit[g_unit > 0])
    groups = groups[groups > times[0] + anticipation]
    if last_cohort_control_only:
        groups = groups[groups < g_unit.max()]
    if groups.size == 0:
        raise ValueError(f"no treated cohort with a pre-treatment period: check the cohort column {cohort!r}")

    if w_unit.mean() <= 0:
        raise ValueError(f"weights column {weights!r} must have a positive mean")
    w_unit = w_unit / w_unit.mean()

    # units sorted by cohort (never treated first): each cohort is a contiguous block of rows
    order = np.argsort(g_unit, kind="stable")
    if (np.diff(order) != 1).any():
        y, g_unit, w_unit, unit_ids = y[order], g_unit[order], w_unit[order], unit_ids[order]
        x = None if x is None else x[order]
        c_unit = None if c_unit is None else c_unit[order]

    n_clusters = y.shape[0]
    if c_unit is not None:
        c_unit, c_uniques = pd.factorize(c_unit)
        n_clusters = len(c_uniques)
    return CSPanel(
        times=times,
        y=y,
        cohort=g_unit,
        weights=w_unit,
        x=x,
        cluster=c_unit,
        n_clusters=n_clusters,
        unit_ids=unit_ids,
        n_rows=int(np.isfinite(y).sum()),
        treated_groups=groups,
        notes=notes,
        x_names=covariates,
    )


@dataclass
class CellPlan:
    """The (cohort, period) cells: which periods each 2x2 comparison uses and its controls.

    Attributes
    ----------
    group, time
        Cohort and period of each cell (values, not indices).
    t_idx, base_idx
        Column indices (into ``CSPanel.times``) of the period and of its base period.
    cov_idx
        Column index of the earlier of the two periods (where time-varying covariates are read).
    threshold
        Not-yet-treated controls must have cohort above this (period after both plus anticipation).
    reference
        True for the universal base period's own cell (ATT fixed at 0, no variance).
    post
        True for ``time >= group``.
    """

    group: np.ndarray
    time: np.ndarray
    t_idx: np.ndarray
    base_idx: np.ndarray
    cov_idx: np.ndarray
    threshold: np.ndarray
    reference: np.ndarray
    post: np.ndarray

    def __len__(self) -> int:
        return self.group.size


def plan_cells(times: np.ndarray, groups: np.ndarray, *, base_period: str, anticipation: float) -> CellPlan:
    """All ATT(g,t) cells, in R ``did``'s order (cohort, then period).

    Base periods: for ``t >= g`` the last period with ``period + anticipation < g``; for earlier
    ``t`` the previous period (``"varying"``) or that same last pre-period (``"universal"``).
    With ``"varying"`` the first period has no cell (it has no previous period).
    """
    rows = []
    first_t = 1 if base_period == "varying" else 0
    for g in groups:
        pre = np.flatnonzero(times + anticipation < g)
        if pre.size == 0:
            continue
        pret = int(pre[-1])
        for ti in range(first_t, times.size):
            post = g <= times[ti]
            bi = pret if (post or base_period == "universal") else ti - 1
            rows.append((g, times[ti], ti, bi, min(ti, bi), times[max(ti, bi)] + anticipation, bi == ti, post))
    if not rows:
        raise ValueError("no (cohort, period) cell to estimate")
    cols = list(zip(*rows, strict=True))
    return CellPlan(
        group=np.array(cols[0], dtype=float),
        time=np.array(cols[1], dtype=float),
        t_idx=np.array(cols[2], dtype=np.intp),
        base_idx=np.array(cols[3], dtype=np.intp),
        cov_idx=np.array(cols[4], dtype=np.intp),
        threshold=np.array(cols[5], dtype=float),
        reference=np.array(cols[6], dtype=bool),
        post=np.array(cols[7], dtype=bool),
    )
