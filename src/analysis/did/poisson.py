"""Poisson pseudo-maximum likelihood for count outcomes with unit and period fixed effects.

Counts with many zeros (patent applications) need a model of the proportional effect on the
expected count rather than an ATT on ``log(1 + y)``, whose value depends on the units of ``y``
(Chen and Roth 2024). Two estimators, both on pyfixest's ``fepois`` and read through its public
interface only (``coef()``, ``se()``, ``resid()``):

- :func:`ppml`: one coefficient on ``1[t >= cohort]`` (static TWFE Poisson);
- :func:`etwfe_poisson`: Wooldridge's (2023) extended TWFE Poisson, one coefficient per treated
  (cohort, period) cell, averaged with weights equal to the cells' treated observations. The
  average is estimated directly by a linear reparametrisation of the cell dummies (the
  average's own coefficient and its clustered standard error, which equals the delta-method
  standard error of the weighted sum of cell coefficients).

Estimates are log ratios, ``log E[Y(1)] / E[Y(0)]``; ``100 (exp(estimate) - 1)`` is the
percentage effect. Never-treated units and late cohorts follow the one rule of
:class:`analysis.did.data.DiDPanel`.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"i": np.repeat(np.arange(300), 6), "t": np.tile(np.arange(2010, 2016), 300)})
>>> df["g"] = np.where(df["i"] < 100, 2013, 0)
>>> df["y"] = rng.poisson(np.exp(0.5 + 0.3 * ((df["g"] > 0) & (df["t"] >= df["g"]))))
>>> round(float(ppml(df, "y", "i", "t", "g").coef()["ATT"]), 1)
0.3
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from analysis.did._common import prepare_panel, scalar_result
from analysis.domain import NEVER_TREATED
from analysis.inference import blas_threads
from analysis.results import EstimationResult

__all__ = ["ppml", "etwfe_poisson"]


def _fepois(fml: str, data, cluster: str):
    import pyfixest as pf

    with warnings.catch_warnings(), blas_threads():
        warnings.filterwarnings("ignore", message=".*singleton fixed effect.*")
        return pf.fepois(fml, data=data, vcov={"CRV1": cluster})


def _frame(data: Any, outcome: str, unit: str, time: str, cohort: str, cluster: str | None):
    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=cluster)
    f = panel.frame
    g = f["_g"].to_numpy()
    f = f.assign(_D=((g != NEVER_TREATED) & (f["_t"].to_numpy() >= g)).astype(float))
    if f["_D"].sum() == 0:
        raise ValueError(f"no treated observation: '{cohort}' is never reached within '{time}'")
    return panel, f


def ppml(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    *,
    cluster: str | None = None,
    alpha: float = 0.05,
) -> EstimationResult:
    """Static TWFE Poisson: the coefficient on ``1[t >= cohort]`` with unit and period effects.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel; rows with a missing outcome are dropped.
    outcome : str
        Count outcome (non-negative).
    unit, time, cohort : str
        Column names; cohort 0 or missing is never treated.
    cluster : str, optional
        Cluster of the CRV1 standard errors (the unit if ``None``).
    alpha : float
        1 - confidence level.

    Returns
    -------
    EstimationResult
        One row, ``term="ATT"``, ``estimator="ppml_twfe"``: the log ratio.
    """
    panel, f = _frame(data, outcome, unit, time, cohort, cluster)
    fit = _fepois("_y ~ _D | _i + _t", f, "_cl")
    return scalar_result(
        float(fit.coef()["_D"]), float(fit.se()["_D"]), term="ATT", outcome=outcome, estimator="ppml_twfe",
        n_obs=len(fit.resid()), alpha=alpha,
        meta=panel.meta(estimand="log E[Y(1)]/E[Y(0)] on treated firm-years, static TWFE Poisson"),
        title=f"PPML (static TWFE Poisson): {outcome}",
    )


def etwfe_poisson(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    *,
    cluster: str | None = None,
    alpha: float = 0.05,
) -> EstimationResult:
    """Wooldridge's (2023) extended TWFE Poisson, averaged over treated (cohort, period) cells.

    With cell dummies ``d_c`` and weights ``w_c`` (the cells' treated observations, summing to
    one), the model ``sum_c d_c b_c`` is estimated in the equivalent form
    ``theta D + sum_{c < K} a_c (d_c - w_c / w_K d_K)`` with ``D = sum_c d_c``, whose coefficient
    ``theta`` is ``sum_c w_c b_c``: the weighted average and its clustered standard error come
    straight from the fit.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel; rows with a missing outcome are dropped.
    outcome : str
        Count outcome (non-negative).
    unit, time, cohort : str
        Column names; cohort 0 or missing is never treated.
    cluster : str, optional
        Cluster of the CRV1 standard errors (the unit if ``None``).
    alpha : float
        1 - confidence level.

    Returns
    -------
    EstimationResult
        One row, ``term="ATT"``, ``estimator="etwfe_poisson"``; ``meta["cells"]`` lists the
        cells and their weights.
    """
    panel, f = _frame(data, outcome, unit, time, cohort, cluster)
    g, t, treated = f["_g"].to_numpy(), f["_t"].to_numpy(), f["_D"].to_numpy() == 1
    cells = np.unique(np.column_stack([g[treated], t[treated]]).astype(np.int64), axis=0)  # sorted by cohort, then period
    dummies = [((g == gg) & (t == tt)).astype(float) for gg, tt in cells]
    counts = np.array([d.sum() for d in dummies])
    w = counts / counts.sum()
    cols = {}
    for k, (d, (gg, tt)) in enumerate(zip(dummies[:-1], cells[:-1])):
        cols[f"_c{k}"] = d - (w[k] / w[-1]) * dummies[-1]
    f = f.assign(**cols)
    rhs = " + ".join(["_D", *cols])
    fit = _fepois(f"_y ~ {rhs} | _i + _t", f, "_cl")
    table = [{"cohort": int(gg), "time": int(tt), "weight": float(wk)} for (gg, tt), wk in zip(cells, w)]
    return scalar_result(
        float(fit.coef()["_D"]), float(fit.se()["_D"]), term="ATT", outcome=outcome, estimator="etwfe_poisson",
        n_obs=len(fit.resid()), alpha=alpha,
        meta=panel.meta(estimand="treated-observation weighted mean over (cohort, period) cells of log E[Y(1)]/E[Y(0)]",
                        cells=table),
        title=f"Extended TWFE Poisson (Wooldridge 2023): {outcome}",
    )
