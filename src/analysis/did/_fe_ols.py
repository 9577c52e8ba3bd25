"""OLS of an outcome on indicator regressors with unit and period effects, without dense dummies.

Sun and Abraham's saturated regression has, besides the unit and period effects, one dummy per
cohort x event-time cell: 40-odd columns that a general fixed-effects routine builds as a dense
matrix and demeans (at 5 million firm-years about 2 GB a copy, several copies). Every regressor
here is an indicator, so the whole regression is a few passes of :func:`numpy.bincount` and
sparse products:

- the unit effects are absorbed exactly (within-unit demeaning, Frisch-Waugh-Lovell); the period
  effects enter as ``T - 1`` dummy columns next to the cells, so ``X'X`` of the demeaned design is
  ``X'X - M' diag(1/n_u) M`` with ``M`` the (sparse) unit sums of the indicators;
- cells collinear with the effects are dropped (a Cholesky pass in the order periods, cells, as
  fixest and pyfixest drop a regressor collinear with the absorbed effects);
- the covariance is CRV1 with pyfixest's defaults (``ssc(k_adj=True, k_fixef="nonnested",
  G_adj=True)``: ``(N-1)/(N-K) * G/(G-1)``, where a unit effect nested in the clusters counts
  for one parameter), singleton units dropped first (pyfixest's ``fixef_rm="singleton"``), and
  ``G - 1`` degrees of freedom.

:func:`analysis.did.sunab.sunab` uses it when there are no covariates and no weights; it equals
``pyfixest.feols("y ~ i(cell, ref=0) | unit + time", vcov={"CRV1": cluster})`` (tests/test_sunab.py).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> unit = np.repeat(np.arange(40), 4); time = np.tile(np.arange(4), 40)
>>> cell = np.where((unit < 10) & (time >= 2), time - 1, 0)   # 10 units treated from period 2
>>> y = 0.1 * unit + 0.2 * time + np.where(cell > 0, 1.0, 0.0) + rng.normal(scale=0.01, size=160)
>>> fit = fe_indicator_ols(y, unit, time, cell, cluster=unit)
>>> fit.names, np.round(fit.beta, 2).tolist()
(['_cell::1', '_cell::2'], [1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = ["FEFit", "fe_indicator_ols"]


@dataclass
class FEFit:
    """The estimates pyfixest would report: names ``_cell::k``, coefficients, CRV1 covariance."""

    names: list[str]
    beta: np.ndarray
    vcov: np.ndarray
    n_obs: int
    df_t: float


def _drop_singletons(unit: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Rows kept after repeatedly dropping unit and period levels observed once (fixest, pyfixest)."""
    keep = np.ones(unit.size, dtype=bool)
    while True:
        u_cnt = np.bincount(unit[keep], minlength=int(unit.max()) + 1)
        t_cnt = np.bincount(time[keep], minlength=int(time.max()) + 1)
        bad = keep & ((u_cnt[unit] == 1) | (t_cnt[time] == 1))
        if not bad.any():
            return keep
        keep &= ~bad


def _cholesky_keep(A: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Columns kept by a Cholesky pass that skips a column whose pivot is below ``tol`` times its
    diagonal (linearly dependent on the columns before it)."""
    k = A.shape[0]
    L = np.zeros((k, k))
    keep = np.zeros(k, dtype=bool)
    for j in range(k):
        d = A[j, j]
        if d <= 0:
            continue
        idx = np.flatnonzero(keep)
        lj = np.linalg.solve(L[np.ix_(idx, idx)], A[idx, j]) if idx.size else np.zeros(0)
        piv = d - lj @ lj
        if piv > tol * d:
            keep[j] = True
            L[j, idx] = lj
            L[j, j] = np.sqrt(piv)
    return keep


def fe_indicator_ols(y: np.ndarray, unit: np.ndarray, time: np.ndarray, cell: np.ndarray, *, cluster: np.ndarray) -> FEFit:
    """``y ~ i(cell, ref=0) | unit + time`` with CRV1 standard errors clustered on ``cluster``.

    Parameters
    ----------
    y : numpy.ndarray
        Outcome (finite).
    unit, time : numpy.ndarray
        Unit and period labels (integers); one row per unit and period.
    cell : numpy.ndarray
        Indicator codes 0..K; 0 is the reference (no dummy), ``k > 0`` gets the dummy ``_cell::k``.
    cluster : numpy.ndarray
        Cluster labels.

    Returns
    -------
    FEFit
    """
    y = np.asarray(y, dtype=float)
    keep = _drop_singletons(pd.factorize(unit)[0], pd.factorize(time)[0])
    if not keep.all():
        y, unit, time, cell, cluster = y[keep], unit[keep], time[keep], cell[keep], cluster[keep]
    u = pd.factorize(unit)[0]
    t = pd.factorize(time, sort=True)[0]
    cl = pd.factorize(cluster)[0]
    cell = np.asarray(cell, dtype=np.int64)
    n, U, T, G = y.size, int(u.max()) + 1, int(t.max()) + 1, int(cl.max()) + 1
    K = int(cell.max())
    # regressors: period dummies 1..T-1, then cell dummies 1..K (columns T-1 .. T-2+K)
    rows = np.arange(n)
    has_t, has_c = t > 0, cell > 0
    X = sparse.csr_matrix(
        (np.ones(int(has_t.sum() + has_c.sum())), (np.r_[rows[has_t], rows[has_c]], np.r_[t[has_t] - 1, T - 2 + cell[has_c]])),
        shape=(n, T - 1 + K),
    )
    n_u = np.bincount(u, minlength=U).astype(float)
    S_u = sparse.csr_matrix((np.ones(n), (u, rows)), shape=(U, n))  # unit sums
    M = (S_u @ X).tocsr()  # unit x columns
    inv_n = sparse.diags(1.0 / n_u)
    XtX = (X.T @ X).toarray() - (M.T @ inv_n @ M).toarray()
    y_dm = y - (np.bincount(u, weights=y, minlength=U) / n_u)[u]
    Xty = X.T @ y_dm
    ok = _cholesky_keep(XtX)
    cols = np.flatnonzero(ok)
    A = XtX[np.ix_(cols, cols)]
    bread = np.linalg.inv(A)
    coef = np.zeros(XtX.shape[0])
    coef[cols] = bread @ Xty[cols]
    fit = X @ coef
    resid = y_dm - (fit - (np.bincount(u, weights=fit, minlength=U) / n_u)[u])
    # cluster scores: sum over a cluster's rows of (x - unit mean of x) * resid
    C = sparse.csr_matrix((resid, (cl, rows)), shape=(G, n))
    CU = sparse.csr_matrix((resid, (cl, u)), shape=(G, U))  # resid summed by cluster x unit
    H = (C @ X[:, cols]).toarray() - (CU @ inv_n @ M[:, cols]).toarray()
    meat = H.T @ H
    # small-sample factor of pyfixest's defaults; the unit effect counts for one parameter when nested in the clusters
    nested_u = bool(np.all(pd.Series(cl).groupby(u).nunique().to_numpy() == 1))
    nested_t = bool(np.all(pd.Series(cl).groupby(t).nunique().to_numpy() == 1))
    k = int(np.sum(cols >= T - 1))
    k_fe_adj = U + T - 1
    df_k = k + k_fe_adj - (U * nested_u + T * nested_t) + (int(nested_u) + int(nested_t))
    ssc = (n - 1) / (n - df_k) * G / (G - 1)
    V = ssc * bread @ meat @ bread
    cell_pos = np.flatnonzero(cols >= T - 1)
    names = [f"_cell::{int(c - (T - 2))}" for c in cols[cell_pos]]
    return FEFit(names=names, beta=coef[cols][cell_pos], vcov=V[np.ix_(cell_pos, cell_pos)], n_obs=n, df_t=float(G - 1))
