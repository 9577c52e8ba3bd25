"""Pooled OLS and firm fixed effects (``method="ols"``, ``"fe"``): the baselines."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from analysis.tfp.arrays import PanelData, group_demean
from analysis.tfp.core import CoreFit, Options


# ======================================================================================
# Baselines: OLS and fixed effects
# ======================================================================================
def _linear_frame(panel: PanelData) -> pd.DataFrame:
    X = panel.inputs
    frame = pd.DataFrame({f"x{j}": X[:, j] for j in range(X.shape[1])})
    frame["y"] = panel.y
    frame["unit"] = panel.unit
    frame["year"] = panel.time
    return frame


def _within(A: np.ndarray, unit: np.ndarray, years: np.ndarray | None, tol: float = 1e-12) -> np.ndarray:
    """Two-way (or one-way) within transformation by alternating projections."""
    out = group_demean(A, unit)
    if years is None:
        return out
    for _ in range(1000):
        new = group_demean(group_demean(out, years), unit)
        if np.max(np.abs(new - out)) < tol * (1 + np.max(np.abs(out))):
            return new
        out = new
    return out


def fit_linear(panel: PanelData, opt: Options, start: np.ndarray | None = None, boot: bool = False) -> CoreFit:
    """Pooled OLS (``method="ols"``) or firm fixed effects (``"fe"``); year FE with time effects.

    The point estimate and firm-clustered (CRV1) covariance come from :func:`pyfixest.feols`;
    inside the bootstrap the same estimator is computed with NumPy (within transformation).
    Log TFP is ``y - x'b`` (it keeps the intercept and, for FE, the firm effect).
    """
    X = panel.inputs
    yc = panel.effect_codes(opt.time_effects)
    if boot:
        if opt.method == "fe":
            A = _within(np.column_stack([panel.y, X]), panel.unit, yc)
            coef = np.linalg.lstsq(A[:, 1:], A[:, 0], rcond=None)[0]
        else:  # effects absorbed by demeaning (a constant when there are none)
            A = np.column_stack([panel.y, X])
            A = A - A.mean(axis=0) if yc is None else group_demean(A, yc)
            coef = np.linalg.lstsq(A[:, 1:], A[:, 0], rcond=None)[0]
        return CoreFit(coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, n_obs=panel.n)
    import pyfixest as pf

    frame = _linear_frame(panel)
    rhs = " + ".join(f"x{j}" for j in range(X.shape[1]))
    if panel.group is not None:
        frame["group"] = panel.group
    cell = "group^year" if (panel.group is not None and opt.time_effects) else ("group" if panel.group is not None else "year")
    fes = [f for f, on in (("unit", opt.method == "fe"), (cell, opt.time_effects or panel.group is not None)) if on]
    fml = f"y ~ {rhs}" + (f" | {' + '.join(fes)}" if fes else "")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*singleton.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        model = pf.feols(fml, data=frame, vcov={"CRV1": "unit"})
    names = [f"x{j}" for j in range(X.shape[1])]
    coef = model.coef()[names].to_numpy()
    order = [list(model.coef().index).index(nm) for nm in names]
    vcov = np.asarray(model._vcov)[np.ix_(order, order)]
    return CoreFit(
        coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, n_obs=int(model._N), vcov=vcov,
        info={"n_clusters": int(np.unique(panel.unit).size), "cluster": "firm (CRV1)"},
    )
