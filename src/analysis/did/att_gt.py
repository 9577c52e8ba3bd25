"""Callaway and Sant'Anna (2021) group-time average treatment effects, ATT(g,t), and aggregations.

:func:`att_gt` estimates, for every cohort ``g`` (units first treated in period ``g``) and period
``t``, the average effect on cohort ``g`` in period ``t`` from 2x2 comparisons of cohort ``g``
with never-treated (``control="never"``) or not-yet-treated (``control="notyet"``) units between
``t`` and a base period, by outcome regression (``"reg"``), inverse probability weighting
(``"ipw"``) or the doubly robust combination (``"dr"``) of Sant'Anna and Zhao (2020). Standard
errors come from the influence functions (clustered at any level above the unit) or a multiplier
bootstrap with uniform confidence bands. :meth:`ATTgtResult.aggregate` averages the cells into a
simple overall ATT, an event study, cohort effects or calendar-period effects.

It follows R ``did`` 2.5 (``att_gt`` / ``aggte``) and reproduces it exactly on a balanced panel.

Unbalanced panels
-----------------
Firm panels have entry and exit. Each ATT(g,t) here is the *panel* 2x2 estimator on the units
observed in both ``t`` and its base period (treated cohort and controls alike); the
influence function of a unit outside that comparison is zero for that cell, and the cells'
influence functions are stacked by unit, so the covariance of the cells, and of every
aggregation, accounts for the same unit appearing in many cells. The aggregation weights are the
cohort shares among all units (R's ``P(G = g)``; diff-diff instead weights each cell by its number
of treated units observed, so its aggregations of an unbalanced panel differ slightly while its
ATT(g,t) and their standard errors equal ours). On a balanced panel this is exactly R ``did``. R ``did`` instead
drops every unit with a gap (default) or, with ``allow_unbalanced_panel=TRUE``, treats the two
periods as repeated cross sections; the latter does not difference out the unit's own level
and so is noisier, and both differ from this estimator on unbalanced data. diff-diff's default
treatment of unbalanced panels is the same as here, and tests compare with it. Identification
additionally requires that being observed in both periods is unrelated to the trend in untreated
outcomes, given covariates (as for any panel DiD on an unbalanced panel).

Where the reference implementations disagree
--------------------------------------------
This module follows R ``did``:

* not-yet-treated controls in pre-treatment cells: Stata ``csdid`` uses the units not yet
  treated by ``g - 1`` (the cohort's last pre-period) in every cell of cohort ``g``; R ``did``
  and this module use the units not yet treated in either period of the cell (by ``t``), so
  pre-period ATT(g,t) with ``control="notyet"`` differ from csdid's (post-period cells agree);
* the overall standard error of the group aggregation (``aggregate("group")``): R ``did`` up to
  2.4 omitted the estimation error of the cohort shares from it (fixed in R ``did`` commit
  9229716); ours equals the fixed formula, so it differs from R ``did`` <= 2.4 output;
* LaLonde / CPS with money covariates: R ``DRDID``, Stata ``drdid`` and this module agree (the
  propensity-score logit is fitted on standardised covariates with step halving; see
  ``tests/reference/drdid_nsw.md``).

Examples
--------
>>> import moderndid
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> res = att_gt(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
>>> res.tidy()[["cohort", "time", "estimate"]].head(2).round(4)
   cohort    time  estimate
0  2004.0  2004.0   -0.0105
1  2004.0  2005.0   -0.0704
>>> float(res.aggregate("simple").tidy()["estimate"].iloc[0].round(4))
-0.04
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.did._cs_aggregate import KINDS, aggregate_cells
from analysis.did._cs_data import CSPanel, plan_cells, prepare_panel
from analysis.did._cs_estimators import estimate_cells
from analysis.inference import _SE_TINY, blas_threads, multiplier_bootstrap, vcov_from_if
from analysis.results import EstimationResult, tidy_frame

__all__ = ["att_gt", "ATTgtResult", "AggregatedResult"]

ESTIMATOR = "cs"
_CONTROL = {"never": "never", "nevertreated": "never", "notyet": "notyet", "notyettreated": "notyet"}
_METHOD_NAMES = {"dr": "doubly robust", "ipw": "inverse probability weighting", "reg": "outcome regression"}


@dataclass
class _Context:
    """What :meth:`ATTgtResult.aggregate` needs besides the cells (one entry per unit)."""

    outcome: str
    unit_cohort: np.ndarray
    unit_weights: np.ndarray
    cluster: np.ndarray | None
    times: np.ndarray
    n_rows: int
    alpha: float
    n_boot: int
    seed: int
    cband: bool
    units: np.ndarray


def _inference(psi: np.ndarray, ctx: _Context, *, cband: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standard errors, critical values and covariance for the columns of ``psi``.

    The covariance is always the analytic (clustered) one; standard errors are its diagonal, or
    the multiplier bootstrap's when ``ctx.n_boot > 0`` (then, with ``cband``, the critical value is
    the uniform band's). Columns with NaN (cells not estimated) get NaN.
    """
    cband = ctx.cband if cband is None else cband
    k = psi.shape[1]
    z = stats.norm.ppf(1 - ctx.alpha / 2)
    finite = np.isfinite(psi).all(axis=0)
    all_finite = bool(finite.all())
    se = np.full(k, np.nan)
    crit = np.full(k, z)
    v = np.full((k, k), np.nan)
    if not finite.any():
        return se, crit, v
    psi_f = psi if all_finite else psi[:, finite]
    v_f = vcov_from_if(psi_f, ctx.cluster)
    if all_finite:
        v = v_f
    else:
        v[np.ix_(finite, finite)] = v_f
    if ctx.n_boot > 0:
        se_b, c = multiplier_bootstrap(psi_f, ctx.cluster, n_boot=ctx.n_boot, seed=ctx.seed, alpha=ctx.alpha)
        se[finite] = se_b
        if cband and np.isfinite(c):
            crit[:] = max(c, z)
    else:
        se = np.sqrt(np.clip(np.diag(v), 0, None))
    se[~(se > _SE_TINY)] = np.nan
    return se, crit, v


@dataclass(repr=False)
class AggregatedResult(EstimationResult):
    """An aggregation of ATT(g,t) (see :meth:`ATTgtResult.aggregate`).

    ``vcov`` is the covariance of all rows (including the overall ``ATT`` row) from the
    influence functions, clustered as the ATT(g,t) were; ``influence`` holds those influence
    functions (``n_units x rows``, R ``did`` scaling), one row per unit of ``units``.
    """

    influence: np.ndarray | None = field(default=None, repr=False)
    units: np.ndarray | None = field(default=None, repr=False)
    kind: str = ""


@dataclass(repr=False)
class ATTgtResult(EstimationResult):
    """Group-time average treatment effects, one tidy row per (cohort, period).

    Attributes
    ----------
    influence
        ``n_units x n_cells`` influence functions (R ``did`` scaling:
        ``ATT_hat - ATT ~= influence.sum(0) / n_units``); NaN columns for cells not estimated.
    units
        The unit labels of the rows of ``influence`` (units are ordered by cohort).
    """

    influence: np.ndarray | None = field(default=None, repr=False)
    units: np.ndarray | None = field(default=None, repr=False)
    _context: _Context | None = field(default=None, repr=False)

    def aggregate(
        self,
        kind: str = "simple",
        *,
        balance_e: int | None = None,
        min_e: float = -np.inf,
        max_e: float = np.inf,
    ) -> AggregatedResult:
        """Aggregate ATT(g,t) into summary parameters (R ``did::aggte``).

        Parameters
        ----------
        kind : str, default 'simple'
            ``"simple"`` (post-treatment cells weighted by cohort size), ``"event"`` (by event
            time ``e = t - g``; alias ``"dynamic"``), ``"group"`` (by cohort) or ``"calendar"``
            (by period). Each but ``simple`` ends with an overall ``ATT`` row: the cohort-size
            weighted mean of cohort effects (group), the mean of ``e >= 0`` effects (event), the
            mean of period effects (calendar).
        balance_e : int, optional
            Event study only: keep the cohorts observed at least ``balance_e`` periods after
            treatment, so every event time up to ``balance_e`` has the same cohorts.
        min_e, max_e : float, default -inf and inf
            Event times kept (event study); ``max_e`` also caps the cells used by ``simple``
            and ``group``.

        Returns
        -------
        AggregatedResult
            Tidy rows with ``event_time`` (event), ``cohort`` (group) or ``time`` (calendar); a
            ``vcov`` over all rows. With a bootstrap (``n_boot > 0`` in :func:`att_gt`) the
            standard errors are bootstrap ones and the non-overall rows get a uniform band.

        Examples
        --------
        >>> import moderndid
        >>> mpdta = moderndid.load_mpdta().to_pandas()
        >>> res = att_gt(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
        >>> es = res.aggregate("event")
        >>> es.tidy()[["event_time", "estimate"]].tail(2).round(4)
           event_time  estimate
        6         3.0   -0.1008
        7         NaN   -0.0772
        """
        ctx = self._context
        if ctx is None or self.influence is None:
            raise ValueError("this result carries no influence functions to aggregate")
        kind = "event" if kind == "dynamic" else kind
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS} (or 'dynamic'), got {kind!r}")
        if balance_e is not None and (int(balance_e) != balance_e or balance_e < 0):
            raise ValueError(f"balance_e must be a non-negative integer, got {balance_e!r}")
        cells = self.table
        with blas_threads():
            agg = aggregate_cells(
                kind,
                att=cells["estimate"].to_numpy(dtype=float),
                psi=self.influence,
                cell_group=cells["cohort"].to_numpy(dtype=float),
                cell_time=cells["time"].to_numpy(dtype=float),
                unit_cohort=ctx.unit_cohort,
                unit_weights=ctx.unit_weights,
                times=ctx.times,
                balance_e=balance_e,
                min_e=min_e,
                max_e=max_e,
            )
        rows = ~agg.overall
        se, crit, v = _inference(agg.influence, ctx, cband=False)
        if ctx.n_boot > 0 and ctx.cband and rows.any():
            # uniform band over the non-overall rows; the overall row keeps a pointwise interval (as R)
            _, crit[rows], _ = _inference(agg.influence[:, rows], ctx)
        table = tidy_frame(
            agg.estimate,
            se,
            term=agg.term,
            outcome=ctx.outcome,
            estimator=ESTIMATOR,
            n_obs=ctx.n_rows,
            alpha=ctx.alpha,
            crit=crit,
            event_time=agg.event_time,
            cohort=agg.cohort,
            time=agg.time,
        )
        meta = {k: v_ for k, v_ in self.meta.items() if k not in ("band", "problems")}
        meta["aggregation"] = kind
        if kind == "event":
            meta.update(balance_e=balance_e, min_e=min_e, max_e=max_e)
        elif kind in ("simple", "group") and np.isfinite(max_e):
            meta["max_e"] = max_e
        n_missing = int((~np.isfinite(cells["estimate"])).sum())
        if n_missing:
            meta["cells_missing"] = f"{n_missing} ATT(g,t) not estimable were left out of the aggregation"
        if ctx.n_boot > 0 and ctx.cband and rows.sum() > 1:
            meta["band"] = f"uniform (sup-t) over the {kind} rows, critical value {crit[rows][0]:.3f}; overall row pointwise"
        else:
            meta["band"] = "pointwise"
        title = {"simple": "overall ATT", "event": "event study", "group": "ATT by cohort", "calendar": "ATT by period"}[kind]
        return AggregatedResult(
            table=table,
            vcov=pd.DataFrame(v, index=agg.term, columns=agg.term),
            meta=meta,
            title=f"Callaway-Sant'Anna {title}: {ctx.outcome}",
            influence=agg.influence,
            units=ctx.units,
            kind=kind,
        )


def att_gt(
    data: pd.DataFrame,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] | str | None = None,
    control: str = "never",
    method: str = "dr",
    base_period: str = "varying",
    anticipation: float = 0,
    cluster: str | None = None,
    weights: str | None = None,
    n_boot: int = 0,
    alpha: float = 0.05,
    seed: int = 0,
    cband: bool = True,
    fix_weights: bool = False,
) -> ATTgtResult:
    """Callaway-Sant'Anna group-time average treatment effects ATT(g,t).

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel: one row per unit and period.
    outcome, unit, time, cohort : str
        Column names. ``cohort`` is the first period of treatment, constant within a unit;
        0 or missing means never treated. ``time`` and ``cohort`` are numeric, on one scale.
    covariates : sequence of str or str, optional
        Column name(s) of covariates for conditional parallel trends (with an intercept). If
        they vary over time, each 2x2 comparison uses the values of its earlier period (as R).
    control : str, default 'never'
        ``"never"``: never-treated units; ``"notyet"``: never-treated units and units not yet
        treated (nor anticipating) in either period of the comparison.
    method : str, default 'dr'
        ``"dr"`` doubly robust (default), ``"ipw"`` (normalised) inverse probability weighting,
        ``"reg"`` outcome regression. Without covariates all three are the difference in mean
        changes.
    base_period : str, default 'varying'
        ``"varying"`` (pre-treatment cells compare consecutive periods) or ``"universal"`` (all
        cells compare with ``g - anticipation - 1``; that cell is reported as 0 without variance).
    anticipation : float, default 0
        Number of periods before ``g`` in which units may already react.
    cluster : str, optional
        Column to cluster on, at or above the unit (e.g. the county x industry cell); must be
        constant within a unit. ``None``: units are independent (R ``did``'s default).
    weights : str, optional
        Column of sampling weights, constant within a unit (see ``fix_weights``).
    n_boot : int, default 0
        0: analytic standard errors from the influence functions. Otherwise the number of
        multiplier-bootstrap draws (one Mammen multiplier per cluster), giving bootstrap
        standard errors and, with ``cband``, uniform confidence bands.
    alpha : float, default 0.05
        1 - confidence level.
    seed : int, default 0
        Seed of the bootstrap draws.
    cband : bool, default True
        With ``n_boot > 0``: uniform (simultaneous) bands over all cells instead of pointwise
        intervals, as R ``did``'s ``cband = TRUE``.
    fix_weights : bool, default False
        Weights that vary within a unit are an error by default (a unit's weight is one number
        in a panel estimator). ``True`` takes each unit's weight in its first observed period,
        the rule of R ``did``'s panel estimators (they read the weights of the first period);
        the choice is recorded in ``meta["weights"]``.

    Returns
    -------
    ATTgtResult
        Tidy rows per cell (``cohort``, ``time``, ``event_time = time - cohort``; ``term``
        ``"ATT(g,t)"``; ``n_obs`` = unit-period rows of the 2x2 comparison), ``vcov`` of the
        cells, ``meta`` (``n_units``, ``n_clusters``, ``control``, ``method``,
        ``base_period``, ``anticipation``, ``panel``, ``se``, notes) and :meth:`~ATTgtResult.aggregate`.

    Raises
    ------
    ValueError
        For a missing column, a cohort, weight or cluster that varies within a unit, duplicate
        unit-period rows, no never-treated unit with ``control="never"``, bad arguments.

    Notes
    -----
    Standard errors: ``sqrt(sum_c S_c^2) / n`` with ``S_c`` the sum of the influence function
    over the units of cluster ``c`` (units themselves without ``cluster``), as R ``did`` 2.5; no
    small-sample factor (``analysis.inference.vcov_from_if(..., df_correction=True)`` gives the
    ``G / (G - 1)`` CR1 variant). Bootstrap standard errors are the interquartile range of the
    draws over 1.349, as R ``did``. See the module docstring for unbalanced panels.

    Examples
    --------
    >>> import moderndid
    >>> mpdta = moderndid.load_mpdta().to_pandas()
    >>> res = att_gt(mpdta, outcome="lemp", unit="countyreal", time="year",
    ...              cohort="first.treat", covariates="lpop", control="notyet")
    >>> res.meta["control"], res.meta["n_units"]
    ('notyet', 500)
    """
    control_key = _CONTROL.get(str(control).lower())
    if control_key is None:
        raise ValueError(f"control must be 'never' or 'notyet', got {control!r}")
    if method not in _METHOD_NAMES:
        raise ValueError(f"method must be one of {list(_METHOD_NAMES)}, got {method!r}")
    if base_period not in ("varying", "universal"):
        raise ValueError(f"base_period must be 'varying' or 'universal', got {base_period!r}")
    if not (np.isfinite(anticipation) and anticipation >= 0):
        raise ValueError(f"anticipation must be a non-negative number, got {anticipation!r}")
    if int(n_boot) != n_boot or n_boot < 0 or n_boot == 1:
        raise ValueError(f"n_boot must be 0 (analytic) or an integer >= 2, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    covs = [covariates] if isinstance(covariates, str) else list(covariates or [])

    panel = prepare_panel(
        data,
        outcome=outcome,
        unit=unit,
        time=time,
        cohort=cohort,
        covariates=covs,
        cluster=cluster,
        weights=weights,
        anticipation=anticipation,
        control=control_key,
        fix_weights=bool(fix_weights),
    )
    plan = plan_cells(panel.times, panel.treated_groups, base_period=base_period, anticipation=anticipation)
    with blas_threads():
        est = estimate_cells(panel, plan, method=method, control=control_key)
    if est.problems:
        shown = "; ".join(est.problems[:5]) + (f"; and {len(est.problems) - 5} more" if len(est.problems) > 5 else "")
        warnings.warn(f"{len(est.problems)} ATT(g,t) could not be estimated and are NaN: {shown}", RuntimeWarning, stacklevel=2)

    ctx = _Context(
        outcome=outcome,
        unit_cohort=panel.cohort,
        unit_weights=panel.weights,
        cluster=panel.cluster,
        times=panel.times,
        n_rows=panel.n_rows,
        alpha=alpha,
        n_boot=int(n_boot),
        seed=seed,
        cband=cband,
        units=panel.unit_ids,
    )
    se, crit, v = _inference(est.psi, ctx)
    terms = [f"ATT({g:g},{t:g})" for g, t in zip(plan.group, plan.time, strict=True)]
    table = tidy_frame(
        est.att,
        se,
        term=terms,
        outcome=outcome,
        estimator=ESTIMATOR,
        n_obs=2 * est.n_units,
        alpha=alpha,
        crit=crit,
        event_time=plan.time - plan.group,
        cohort=plan.group,
        time=plan.time,
    )
    weights_label = f"{weights} (first period of each unit)" if (weights and fix_weights) else weights
    meta = _meta(panel, control_key, method, base_period, anticipation, cluster, weights_label, covs, ctx, crit, est.problems)
    return ATTgtResult(
        table=table,
        vcov=pd.DataFrame(v, index=terms, columns=terms),
        meta=meta,
        title=f"Callaway-Sant'Anna ATT(g,t): {outcome}",
        influence=est.psi,
        units=panel.unit_ids,
        _context=ctx,
    )


def _meta(
    panel: CSPanel,
    control: str,
    method: str,
    base_period: str,
    anticipation: float,
    cluster: str | None,
    weights: str | None,
    covariates: list[str],
    ctx: _Context,
    crit: np.ndarray,
    problems: list[str],
) -> dict[str, Any]:
    n_cells_units = panel.y.size
    missing = 1 - panel.n_rows / n_cells_units
    meta: dict[str, Any] = {
        "control": control,
        "method": method,
        "base_period": base_period,
        "anticipation": anticipation,
        "covariates": ", ".join(covariates) if covariates else "none",
        "weights": weights or "none",
        "n_units": panel.n_units,
        "n_periods": panel.times.size,
        "cluster": cluster or "unit",
        "n_clusters": panel.n_clusters,
        "panel": "balanced"
        if panel.balanced
        else f"unbalanced ({missing:.1%} of unit-periods missing): each ATT(g,t) uses the units observed in both its period and its base period",
        "se": f"multiplier bootstrap, {ctx.n_boot} draws (Mammen), IQR-based" if ctx.n_boot else "analytic, from influence functions",
        "band": f"uniform (sup-t) over all ATT(g,t), critical value {crit[0]:.3f}" if ctx.n_boot and ctx.cband else "pointwise",
    }
    if panel.notes:
        meta["notes"] = "; ".join(panel.notes)
    if problems:
        meta["problems"] = list(problems)
    return meta
