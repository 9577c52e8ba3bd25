"""One entry point for event studies with any of the staggered-DiD estimators.

``event_study(data, outcome, unit, time, cohort, estimator=...)`` returns an
:class:`~analysis.results.EstimationResult` with one row per event time (``event_time`` column,
terms ``event_time::<e>``), the covariance over those rows in ``vcov`` and ``meta`` with
``n_clusters``, ``cluster``, ``reference_period`` and ``notes``, whatever the estimator, so the
results stack with :func:`analysis.results.combine` into one comparison table or figure.

========== ============================================================ ===================
estimator  method                                                       module
========== ============================================================ ===================
twfe       dynamic two-way fixed effects (reference -1)                 ``did.twfe``
cs         Callaway-Sant'Anna ATT(g, t) aggregated by event time        ``did.att_gt``
sunab      Sun-Abraham interaction-weighted                             ``did.sunab``
imputation Borusyak-Jaravel-Spiess (pre-periods: all leads, ref. -1)   ``did.imputation``
stacked    stacked DiD, Wing-Freedman-Hollingsworth weights             ``did.stacked``
========== ============================================================ ===================

For ``cs`` the aggregation is normalised to the same shape: rows without an event time (the
overall ATT) move to ``meta['overall']``, a universal base period's zero row becomes
``meta['reference_period']`` (``None`` with a varying base period), terms become
``event_time::<e>``.

``covariates`` are time-varying controls (fixest's ``y ~ x1 + sunab(...)``); for ``cs`` they are
the covariates of the outcome / propensity models. ``cluster`` may name a variable above the unit
(the certified county x industry cell). Further keyword arguments go to the estimator (e.g.
``bins=`` for twfe, ``control=`` for sunab, ``kappa_pre=`` for stacked, ``control=``, ``method=``
for cs; ``balance_e``, ``min_e``, ``max_e`` go to the cs event aggregation).

Examples
--------
>>> import moderndid
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> es = event_study(mpdta, "lemp", "countyreal", "year", "first.treat", estimator="sunab")
>>> es.tidy()["event_time"].tolist()
[-4, -3, -2, 0, 1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.did._common import event_term
from analysis.results import EstimationResult, check_tidy

__all__ = ["event_study", "ESTIMATORS"]

ESTIMATORS = ("twfe", "cs", "sunab", "imputation", "stacked")
_CS_AGGREGATE_KEYS = ("balance_e", "min_e", "max_e")


def _normalize_event_result(obj: Any) -> EstimationResult:
    """Put an event aggregation (any object with ``.tidy()``, optional ``vcov`` / ``meta``) into the
    dispatcher's shape: only rows with an event time, integer ``event_time``, terms
    ``event_time::<e>``, ``vcov`` over exactly those rows; a normalised reference row (estimate 0,
    no standard error) becomes ``meta['reference_period']``; rows without an event time (an
    overall ATT) move to ``meta['overall']``."""
    table = check_tidy(obj.tidy())
    vcov = getattr(obj, "vcov", None)
    meta = dict(getattr(obj, "meta", {}) or {})
    if "event_time" not in table or table["event_time"].isna().all():
        raise ValueError("the event aggregation returned no event_time column")
    has_e = table["event_time"].notna().to_numpy()
    if (~has_e).any():
        meta["overall"] = table.loc[~has_e].reset_index(drop=True)
    table = table.loc[has_e].reset_index(drop=True)
    se = table["std_error"].to_numpy(dtype=float)
    ref_rows = (table["estimate"].to_numpy(dtype=float) == 0) & (np.isnan(se) | (se == 0))
    reference = meta.get("reference_period")
    if ref_rows.sum() == 1:
        reference = int(table.loc[ref_rows, "event_time"].iloc[0])
        table = table.loc[~ref_rows].reset_index(drop=True)
    old_terms = table["term"].tolist()
    table["event_time"] = table["event_time"].astype(np.int64)
    table["term"] = [event_term(e) for e in table["event_time"]]
    if vcov is not None:
        vcov = vcov.loc[old_terms, old_terms].copy()
        vcov.index = vcov.columns = table["term"].tolist()
    meta["reference_period"] = reference
    meta.setdefault("notes", [])
    return EstimationResult(table=table, vcov=vcov, meta=meta, title=getattr(obj, "title", ""))


def event_study(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    estimator: str = "twfe",
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    **kwargs: Any,
) -> EstimationResult:
    """Event-study estimates with the chosen estimator, in the one tidy shape.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel, one row per unit and period (balanced or not).
    outcome, unit, time, cohort : str
        Column names; ``cohort`` is the first treated period, 0 or missing for never treated.
    estimator : str, default 'twfe'
        ``"twfe"``, ``"cs"``, ``"sunab"``, ``"imputation"`` or ``"stacked"``.
    covariates : str or sequence of str, optional
        Time-varying controls.
    cluster : str, optional
        Column to cluster on (default ``unit``).
    **kwargs
        Passed to the estimator (see the module docstring).

    Returns
    -------
    EstimationResult
        ``event_time`` rows with ``vcov``.

    Raises
    ------
    ValueError
        For an unknown estimator (and whatever the estimator raises on bad input).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")
    common = dict(covariates=covariates, cluster=cluster)
    if estimator == "twfe":
        from analysis.did.twfe import twfe

        return twfe(data, outcome, unit, time, cohort, dynamic=True, **common, **kwargs)
    if estimator == "sunab":
        from analysis.did.sunab import sunab

        return sunab(data, outcome, unit, time, cohort, aggregate="event", **common, **kwargs)
    if estimator == "imputation":
        from analysis.did.imputation import imputation

        kwargs.setdefault("pretrends", "all")
        return imputation(data, outcome, unit, time, cohort, aggregate="event", **common, **kwargs)
    if estimator == "stacked":
        from analysis.did.stacked import stacked

        return stacked(data, outcome, unit, time, cohort, aggregate="event", **common, **kwargs)
    # Callaway-Sant'Anna, imported lazily (written in analysis.did.att_gt)
    from analysis.did.att_gt import att_gt

    agg_kwargs = {k: kwargs.pop(k) for k in _CS_AGGREGATE_KEYS if k in kwargs}
    res = att_gt(data, outcome=outcome, unit=unit, time=time, cohort=cohort, **common, **kwargs)
    return _normalize_event_result(res.aggregate("event", **agg_kwargs))
