"""Wild cluster bootstrap (restricted or unrestricted) for one coefficient, with confidence sets.

With few treated clusters (60 certified cells in the default world, about 100 a batch nationally)
cluster-robust t-tests over-reject; the wild cluster bootstrap with the null imposed (WCR,
Cameron, Gelbach and Miller 2008; MacKinnon and Webb 2017) is the standard remedy. This module
runs it for the two linear headline estimators of the study:

* :func:`twfe_design`: the static TWFE coefficient on ``D_it = 1[t >= cohort]`` with unit and
  period effects;
* :func:`imputation_design`: the Borusyak, Jaravel and Spiess (2024) imputation ATT. It is a linear
  estimator ``c'y`` whose weights ``c`` are orthogonal to the unit and period dummies (it is exact
  for any ``y = a_i + l_t``), so it is exactly the OLS coefficient on ``z = c / c'c`` in the
  regression of ``y`` on ``z`` and the two sets of effects. The wild bootstrap of that regression is
  the wild bootstrap of the imputation estimator, with the null "no effect on any treated
  observation" imposed (y then follows the two-way model).

Both designs partial the unit effects out by within-unit demeaning and keep the period dummies as
regressors. Units are nested in every cluster level used here (cell, county, prefecture,
province), so multiplying the restricted residuals cluster by cluster commutes with the
within-unit demeaning and the bootstrap on the demeaned data is the bootstrap of the full
regression (Roodman, MacKinnon, Nielsen and Webb 2019, section 3.4); period effects are not nested
in clusters and are therefore kept as regressors.

The algorithm is the "fast and wild" one of Roodman et al. (2019): every quantity of a bootstrap
draw is a product of G-vectors (G = clusters) with the weights, and the bootstrap variance uses the
rank-k structure of the cluster cross products, so a draw costs O(G k) instead of the O(G^2) of
the ``wildboottest`` package's ``WildboottestCL`` (whose G x G loop takes minutes at the 2,300
cells of the default world; ``bench/robustness.py``) or the one-hot fixed effects of pyfixest's
``Feols.wildboottest`` (20,000 firm dummies). Both p-values and confidence sets come from that one
pass: under ``H0: beta = b`` the restricted scores, numerators and bootstrap variances are affine
and quadratic in ``b``, so after one pass over the draws the p-value of any ``b`` costs O(B) and
the confidence set (all ``b`` not rejected) is found by scanning and bisection, as ``boottest``
does.

Agreement with the well-kept implementation. The weight distributions are the ``wildboottest``
package's (Rademacher, Webb, Mammen, normal; all 2^G sign vectors when 2^G <= B), drawn chunk by
chunk with NumPy's generator; the t statistic uses its CRV1 small-sample factor
``(N - 1)/(N - k) G/(G - 1)`` and its two-sided p-value rule. ``tests/test_robustness_wild.py`` gives
both programs the package's own draws and requires our bootstrap t statistics to equal
``WildboottestCL``'s draw by draw, and reproduces the published example of the package's README
(Petersen's data, which ``statsmodels`` ships).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> G, n = 30, 20
>>> cl = np.repeat(np.arange(G), n)
>>> x = rng.normal(size=G * n) + rng.normal(size=G)[cl]
>>> y = 0.0 * x + rng.normal(size=G * n) + rng.normal(size=G)[cl]
>>> X = np.column_stack([np.ones(G * n), x])
>>> res = wild_cluster_bootstrap(X, y, cl, param=1, B=999, seed=1)
>>> bool(0 < res.p_value < 1), bool(res.conf_low < 0 < res.conf_high)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.did._common import demean_by_group

__all__ = [
    "LinearDesign",
    "WildBootstrapResult",
    "imputation_design",
    "twfe_design",
    "wild_bootstrap_did",
    "wild_cluster_bootstrap",
]

WEIGHTS = ("rademacher", "webb", "mammen", "norm")


@dataclass
class WildBootstrapResult:
    """One wild cluster bootstrap test of ``beta[param] = null`` and its confidence set.

    Attributes
    ----------
    estimate, std_error
        The OLS coefficient and its CRV1 standard error (small-sample factor as ``wildboottest``).
    t_stat
        ``(estimate - null) / std_error``.
    p_value
        Bootstrap p-value of ``H0: beta = null``: the share of draws with ``|t*| > |t|``.
    conf_low, conf_high
        The bootstrap confidence set at level ``1 - alpha``: the values ``b`` whose p-value exceeds
        ``alpha`` (its hull, if it is not an interval; ``meta["ci_note"]`` says so).
    t_boot
        The bootstrap t statistics under ``null`` (one per draw).
    meta
        Weights, draws, clusters, whether the null was imposed, notes.
    """

    estimate: float
    std_error: float
    t_stat: float
    p_value: float
    conf_low: float
    conf_high: float
    t_boot: np.ndarray = field(repr=False)
    meta: dict[str, Any] = field(default_factory=dict)
    _pfun: Any = field(default=None, repr=False)

    def p_value_at(self, b: float | np.ndarray) -> np.ndarray:
        """Bootstrap p-value of ``H0: beta = b`` (same draws), for one value or an array."""
        return self._pfun(np.atleast_1d(np.asarray(b, dtype=float)))


def _cluster_codes(cluster: Any, n: int) -> tuple[np.ndarray, int]:
    codes, uniq = pd.factorize(np.asarray(cluster), sort=True)
    if codes.shape[0] != n:
        raise ValueError(f"cluster has {codes.shape[0]} labels for {n} rows")
    if (codes < 0).any():
        raise ValueError(f"cluster labels are missing in {int((codes < 0).sum())} row(s)")
    return codes, len(uniq)


def _group_sums(A: np.ndarray, codes: np.ndarray, G: int) -> np.ndarray:
    """Column sums of ``A`` (n x m) within clusters: G x m."""
    return np.column_stack([np.bincount(codes, weights=A[:, j], minlength=G) for j in range(A.shape[1])])


_WEBB = np.concatenate([-np.sqrt(np.array([3.0, 2.0, 1.0]) / 2), np.sqrt(np.array([1.0, 2.0, 3.0]) / 2)])
_MAMMEN = np.array([-(np.sqrt(5) - 1) / 2, (np.sqrt(5) + 1) / 2])
_MAMMEN_P = np.array([(np.sqrt(5) + 1) / (2 * np.sqrt(5)), (np.sqrt(5) - 1) / (2 * np.sqrt(5))])


class _Weights:
    """Bootstrap weights drawn chunk by chunk (G x b), or all 2^G Rademacher sign vectors when 2^G <= B.

    The distributions are those of the ``wildboottest`` package (Rademacher, Webb's six points,
    Mammen's two points, the standard normal); explicit weights ``v`` (G x B) can be passed instead.
    """

    def __init__(self, kind: str, G: int, B: int, seed: int, v: np.ndarray | None = None) -> None:
        if v is None and kind not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {kind!r}")
        self.kind, self.G, self.rng = kind, G, np.random.default_rng(seed)
        self.v = None if v is None else np.asarray(v, dtype=float)
        self.full = v is None and kind == "rademacher" and 2**G <= B
        if self.v is not None:
            if self.v.shape[0] != G:
                raise ValueError(f"v must have one row per cluster ({G}), got {self.v.shape}")
            self.B = self.v.shape[1]
        elif self.full:
            self.B = 2**G
        else:
            self.B = int(B)
        self.unit_square = self.v is None and kind == "rademacher"

    def chunk(self, lo: int, size: int) -> np.ndarray:
        if self.v is not None:
            return self.v[:, lo:lo + size]
        if self.full:
            idx = np.arange(lo, min(lo + size, self.B))
            bits = (idx[None, :] >> np.arange(self.G)[::-1, None]) & 1
            return 2.0 * bits - 1.0
        n = min(size, self.B - lo)
        if self.kind == "rademacher":
            return 2.0 * self.rng.integers(0, 2, size=(self.G, n), dtype=np.int8) - 1.0
        if self.kind == "webb":
            return _WEBB[self.rng.integers(0, 6, size=(self.G, n))]
        if self.kind == "mammen":
            return _MAMMEN[(self.rng.random((self.G, n)) > _MAMMEN_P[0]).astype(np.intp)]
        return self.rng.standard_normal((self.G, n))


def wild_cluster_bootstrap(
    X: np.ndarray,
    y: np.ndarray,
    cluster: Any,
    *,
    param: int = 0,
    null: float = 0.0,
    B: int = 9999,
    weights: str = "rademacher",
    impose_null: bool = True,
    seed: int = 0,
    alpha: float = 0.05,
    v: np.ndarray | None = None,
    chunk: int = 1000,
) -> WildBootstrapResult:
    """Wild cluster bootstrap test of one coefficient of an OLS regression (WCR11 / WCU11).

    Parameters
    ----------
    X, y : numpy.ndarray
        Regressors (n x k, full column rank) and outcome (n).
    cluster : array-like
        One cluster label per row.
    param : int
        Column of ``X`` whose coefficient is tested.
    null : float
        The value under the null hypothesis.
    B : int
        Bootstrap draws (with Rademacher weights and 2^G <= B: all 2^G sign vectors instead).
    weights : {"rademacher", "webb", "mammen", "norm"}
        ``"rademacher"``, ``"webb"`` (six-point; better with few clusters), ``"mammen"`` or ``"norm"``.
    impose_null : bool
        ``True``: restricted bootstrap (WCR, the residuals of the model with the null imposed);
        ``False``: unrestricted (WCU).
    seed : int
        Seed of the weights.
    alpha : float
        1 - level of the confidence set.
    v : numpy.ndarray, optional
        Explicit G x B weights (clusters in sorted label order), e.g. to reproduce another program.
    chunk : int
        Draws processed at a time (memory is O(G x chunk)).

    Returns
    -------
    WildBootstrapResult
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be n x k and y of length n; got {X.shape} and {y.shape}")
    n, k = X.shape
    if not 0 <= param < k:
        raise ValueError(f"param {param} is not a column of X (k = {k})")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    codes, G = _cluster_codes(cluster, n)
    if G < 2:
        raise ValueError("the wild cluster bootstrap needs at least 2 clusters")
    XX = X.T @ X
    XXinv = np.linalg.inv(XX)
    beta = XXinv @ (X.T @ y)
    R = np.zeros(k)
    R[param] = 1.0
    XXinvR = XXinv @ R                      # k
    A = 1.0 / float(R @ XXinvR)
    ssc = (n - 1) / (n - k) * G / (G - 1)

    # per-cluster cross products X_g'X_g (G x k x k) and X_g'y_g (G x k): rows sorted by cluster
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
    Xs = X[order]
    Xy_g = np.add.reduceat(Xs * y[order][:, None], starts, axis=0)
    XX_g = np.empty((G, k, k))
    for j in range(k):
        XX_g[:, j, :] = np.add.reduceat(Xs * Xs[:, [j]], starts, axis=0)
    del Xs
    # the observed t statistic (unrestricted residuals)
    s_hat = Xy_g - XX_g @ beta                                  # G x k scores
    c_hat = s_hat @ XXinvR                                      # G: R XXinv s_g
    se = float(np.sqrt(ssc * np.sum(c_hat**2)))
    estimate = float(beta[param])

    # scores as affine functions of the null value b: s_g(b) = s0_g - b s1_g
    if impose_null:
        beta0 = beta - XXinvR * A * (beta[param] - 0.0)         # restricted at b = 0
        s0 = Xy_g - XX_g @ beta0
        s1 = XX_g @ (XXinvR * A)                                # d beta_tilde / d b = XXinv R A
    else:
        s0 = s_hat
        s1 = np.zeros_like(s_hat)
    C0, C1 = s0 @ XXinvR, s1 @ XXinvR                           # G: numerators' cluster terms
    Q0, Q1 = s0 @ XXinv, s1 @ XXinv                             # G x k (rows: XXinv s_g)
    a = XX_g @ XXinvR                                           # G x k: X_g'X_g XXinv R
    aa = a.T @ a
    # bootstrap cluster terms of the variance: Z_g(b) = (C0_g - b C1_g) v_g - a_g'(Q0 - b Q1)'v, so every
    # per-draw quantity is a product of v with one of these columns (one matrix product per chunk)
    M = np.column_stack([Q0, Q1, a * C0[:, None], a * C1[:, None], C0, C1])
    S2 = np.column_stack([C0 * C0, C0 * C1, C1 * C1])

    draws = _Weights(weights, G, B, seed, v)
    B, full = draws.B, draws.full
    n0, n1 = np.empty(B), np.empty(B)
    d00, d01, d11 = np.empty(B), np.empty(B), np.empty(B)
    for lo in range(0, B, chunk):
        vb = draws.chunk(lo, chunk)
        sl = slice(lo, lo + vb.shape[1])
        P = M.T @ vb
        u0, u1, m0, m1 = P[:k], P[k:2 * k], P[2 * k:3 * k], P[3 * k:4 * k]
        n0[sl], n1[sl] = P[4 * k], P[4 * k + 1]
        sq = np.repeat(S2.sum(axis=0)[:, None], vb.shape[1], axis=1) if draws.unit_square else S2.T @ (vb * vb)
        d00[sl] = sq[0] - 2 * np.einsum("kb,kb->b", m0, u0) + np.einsum("kb,kl,lb->b", u0, aa, u0)
        d01[sl] = sq[1] - np.einsum("kb,kb->b", m0, u1) - np.einsum("kb,kb->b", m1, u0) + np.einsum("kb,kl,lb->b", u0, aa, u1)
        d11[sl] = sq[2] - 2 * np.einsum("kb,kb->b", m1, u1) + np.einsum("kb,kl,lb->b", u1, aa, u1)

    def t_boot_at(b: float) -> np.ndarray:
        if impose_null:
            num = n0 - b * n1
            den = d00 - 2 * b * d01 + b * b * d11
        else:
            num, den = n0, d00
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / np.sqrt(ssc * np.clip(den, 0, None))

    def pfun(bs: np.ndarray) -> np.ndarray:
        out = np.empty(bs.size)
        for i, b in enumerate(bs):
            t_obs = (estimate - b) / se
            out[i] = float(np.mean(np.abs(t_obs) < np.abs(t_boot_at(b))))
        return out

    p_null = float(pfun(np.array([null]))[0])
    lo_ci, hi_ci, note = _invert(pfun, estimate, se, alpha)
    meta = {
        "weights": weights,
        "draws": int(B),
        "full_enumeration": bool(full),
        "n_clusters": int(G),
        "n_obs": int(n),
        "bootstrap": "WCR11 (null imposed)" if impose_null else "WCU11 (null not imposed)",
        "null": float(null),
        "small_sample_factor": ssc,
        "alpha": alpha,
    }
    if note:
        meta["ci_note"] = note
    if full:
        meta["note"] = f"2^{G} <= {B}: every Rademacher sign vector used once (full enumeration)"
    return WildBootstrapResult(
        estimate=estimate, std_error=se, t_stat=(estimate - null) / se, p_value=p_null,
        conf_low=lo_ci, conf_high=hi_ci, t_boot=t_boot_at(null), meta=meta, _pfun=pfun,
    )


def _invert(pfun, estimate: float, se: float, alpha: float, *, width: float = 8.0, points: int = 401) -> tuple[float, float, str]:
    """The set {b : p(b) > alpha}: scan a grid around the estimate, widen if needed, bisect the edges."""
    for _ in range(4):
        grid = estimate + se * np.linspace(-width, width, points)
        p = pfun(grid)
        inside = p > alpha
        if not inside.any():
            return np.nan, np.nan, "no value on the scanned grid has a p-value above alpha"
        if inside[0] or inside[-1]:
            width *= 3
            continue
        break
    else:
        return -np.inf, np.inf, f"the confidence set extends beyond +/- {width / 3:g} standard errors (unbounded)"
    idx = np.flatnonzero(inside)
    note = "" if (np.diff(idx) == 1).all() else "the confidence set is not an interval; its hull is reported"

    def edge(out_b: float, in_b: float) -> float:
        for _ in range(40):
            mid = 0.5 * (out_b + in_b)
            if pfun(np.array([mid]))[0] > alpha:
                in_b = mid
            else:
                out_b = mid
            if abs(in_b - out_b) < 1e-6 * se:
                break
        return 0.5 * (out_b + in_b)

    return edge(grid[idx[0] - 1], grid[idx[0]]), edge(grid[idx[-1] + 1], grid[idx[-1]]), note


# ---------------------------------------------------------------------------------------------
# the two DiD estimators as regressions
# ---------------------------------------------------------------------------------------------
@dataclass
class LinearDesign:
    """A DiD estimator written as one OLS coefficient, unit effects partialled out.

    ``y`` and ``X`` are within-unit demeaned; column 0 of ``X`` is the coefficient of interest,
    the others the period dummies. ``frame`` holds the rows used (caller's columns), aligned.
    """

    y: np.ndarray
    X: np.ndarray
    frame: pd.DataFrame
    estimator: str
    names: list[str]
    notes: list[str] = field(default_factory=list)
    parts: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def coefficient(self) -> float:
        """The OLS coefficient of column 0 (the estimate)."""
        if self.estimator == "imputation":
            c = self.parts["c"]
            return float(c @ self.y)
        if "_beta0" not in self.parts:
            self.parts["_beta0"] = np.array([np.linalg.solve(self.X.T @ self.X, self.X.T @ self.y)[0]])
        return float(self.parts["_beta0"][0])

    def std_error(self, cluster: Any) -> float:
        """Cluster-robust standard error of the estimate for one cluster label per row of ``frame``.

        TWFE: CRV1 with fixest's small-sample factor ``(N - 1)/(N - K) G/(G - 1)`` (unit effects nested
        in the clusters, not counted in K), as :func:`analysis.did.twfe`. Imputation: the conservative
        variance of BJS (2024) Theorem 3 with ``tau~`` by cohort x event time (their eq. 8), as
        :func:`analysis.did.imputation` with ``aggregate="static"``.
        """
        codes, G = _cluster_codes(cluster, self.y.size)
        if self.estimator == "imputation":
            return _bjs_se(self.parts, codes, G)
        n, k = self.X.shape
        if "_h" not in self.parts:              # each row's contribution to the coefficient's score
            XXinv = np.linalg.inv(self.X.T @ self.X)
            u = self.y - self.X @ (XXinv @ (self.X.T @ self.y))
            self.parts["_h"] = (self.X @ XXinv[:, 0]) * u
        s = np.bincount(codes, weights=self.parts["_h"], minlength=G)
        return float(np.sqrt((n - 1) / (n - k) * G / (G - 1) * np.sum(s**2)))


def _codes(s: pd.Series) -> np.ndarray:
    return pd.factorize(s, sort=True)[0]



def _base_rows(data: pd.DataFrame, outcome: str, unit: str, time: str, cohort: str, keep: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    missing = [c for c in (outcome, unit, time, cohort, *keep) if c not in data.columns]
    if missing:
        raise KeyError(f"column(s) {missing} are not in the data")
    d = data[list(dict.fromkeys([unit, time, cohort, outcome, *keep]))].dropna(subset=[outcome, unit, time])
    notes = []
    n_per = d.groupby(unit)[time].transform("size")
    single = n_per == 1
    if single.any():
        notes.append(f"{int(single.sum())} singleton unit(s) (observed once) dropped: the unit effect absorbs them")
        d = d[~single]
    return d.reset_index(drop=True), notes


def _period_dummies(t: np.ndarray) -> tuple[np.ndarray, list]:
    periods = np.unique(t)
    pos = np.searchsorted(periods, t)
    L = np.zeros((t.size, periods.size - 1))
    rows = np.flatnonzero(pos > 0)
    L[rows, pos[rows] - 1] = 1.0
    return L, list(periods[1:])


def twfe_design(data: pd.DataFrame, outcome: str, unit: str, time: str, cohort: str, *, keep: Sequence[str] = ()) -> LinearDesign:
    """The static TWFE regression ``y ~ 1[t >= cohort] | unit + period`` with unit effects partialled out.

    Column 0 is the demeaned treatment dummy; its OLS coefficient equals
    :func:`analysis.did.twfe` (same rows: singletons dropped). ``keep`` names columns (clusters)
    to carry in ``frame``.
    """
    d, notes = _base_rows(data, outcome, unit, time, cohort, keep)
    g = pd.to_numeric(d[cohort], errors="coerce").fillna(0).to_numpy(dtype=float)
    t = d[time].to_numpy()
    D = ((g > 0) & (t >= g)).astype(float)
    if D.sum() == 0:
        raise ValueError(f"no treated observation: '{cohort}' is never reached within '{time}'")
    u = _codes(d[unit])
    nu = int(u.max()) + 1
    L, periods = _period_dummies(t)
    X = demean_by_group(np.column_stack([D, L]), u, nu)
    y = demean_by_group(d[outcome].to_numpy(dtype=float), u, nu)
    return LinearDesign(y=y, X=X, frame=d, estimator="twfe", names=["ATT", *[f"{time}::{p}" for p in periods]], notes=notes)


def imputation_design(data: pd.DataFrame, outcome: str, unit: str, time: str, cohort: str, *, keep: Sequence[str] = ()) -> LinearDesign:
    """The imputation ATT (all treated observations equally weighted) as one OLS coefficient.

    Computes the weights ``c`` of ``tau_hat = c'y`` (BJS 2024, Theorem 1: ``w`` on treated
    observations, minus the imputation weights on untreated ones), checks that they are orthogonal
    to the unit and period dummies, and returns the design with ``z = c / c'c`` in column 0: its OLS
    coefficient is ``c'y``, equal to :func:`analysis.did.imputation` with ``aggregate="static"``.
    Treated observations that cannot be imputed (no untreated period of their unit) are dropped,
    as there.
    """
    from analysis.did.imputation import fit_untreated

    d, notes = _base_rows(data, outcome, unit, time, cohort, keep)
    g = pd.to_numeric(d[cohort], errors="coerce").fillna(0).to_numpy(dtype=float)
    t = d[time].to_numpy()
    treated = (g > 0) & (t >= g)
    if not treated.any():
        raise ValueError(f"no treated observation: '{cohort}' is never reached within '{time}'")
    u_all = _codes(d[unit])
    nu = int(u_all.max()) + 1
    y_all = d[outcome].to_numpy(dtype=float)
    r0 = np.flatnonzero(~treated)
    fit, _ = fit_untreated(y_all[r0], u_all[r0], t[r0], np.zeros((r0.size, 0)), nu)
    r1 = np.flatnonzero(treated)
    ok = (fit.n0_unit[u_all[r1]] > 0) & np.isin(t[r1], fit.periods)
    if not ok.all():
        notes.append(f"{int((~ok).sum())} treated observation(s) cannot be imputed (no untreated period of their unit or period) and are dropped")
        r1 = r1[ok]
    w = np.full(r1.size, 1.0 / r1.size)
    u1, u0 = u_all[r1], u_all[r0]
    W1 = fit.design(t[r1], np.zeros((r1.size, 0)))
    cvec = (W1 - fit.unit_mean_w[u1]).T @ w
    v0 = -np.bincount(u1, weights=w, minlength=nu)[u0] / fit.n0_unit[u0] - fit.Wd @ (fit.M_inv @ cvec)
    rows = np.concatenate([r0, r1])
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    c = np.concatenate([v0, w])[order]
    d = d.iloc[rows].reset_index(drop=True)
    u = _codes(d[unit])
    nu = int(u.max()) + 1
    tt = d[time].to_numpy()
    L, periods = _period_dummies(tt)
    # c must be orthogonal to the unit and period dummies (the estimator is exact for y = a_i + l_t)
    scale = np.abs(c).sum()
    off_u = np.abs(np.bincount(u, weights=c, minlength=nu)).max() / scale
    off_t = np.abs(pd.Series(c).groupby(tt).sum().to_numpy()).max() / scale
    if max(off_u, off_t) > 1e-8:
        raise RuntimeError(f"imputation weights are not orthogonal to the fixed effects (unit {off_u:.1e}, period {off_t:.1e})")
    z = c / float(c @ c)
    X = np.column_stack([z, demean_by_group(L, u, nu)])
    y = demean_by_group(d[outcome].to_numpy(dtype=float), u, nu)
    # what the BJS variance needs, in the rows of d: treated flag, step-1 residuals, tau, cohort x event time
    is_t = np.concatenate([np.zeros(r0.size, bool), np.ones(r1.size, bool)])[order]
    tau = y_all[r1] - (fit.unit_mean_y[u1] + (W1 - fit.unit_mean_w[u1]) @ fit.gamma)
    eps = np.concatenate([fit.resid, tau])[order]
    gg = pd.to_numeric(d[cohort], errors="coerce").fillna(0).to_numpy(dtype=float)
    group = np.full(tt.size, -1, dtype=np.int64)
    group[is_t] = pd.factorize(gg[is_t] * 10_000 + (tt[is_t] - gg[is_t]))[0]
    parts = {"c": c, "treated": is_t, "eps": eps, "group": group}
    return LinearDesign(y=y, X=X, frame=d, estimator="imputation", names=["ATT", *[f"{time}::{p}" for p in periods]], notes=notes, parts=parts)


def _bjs_se(parts: dict[str, np.ndarray], codes: np.ndarray, G: int) -> float:
    """BJS (2024) Theorem 3 conservative clustered standard error of ``c'y`` (see ``imputation``)."""
    c, tr, eps, group = parts["c"], parts["treated"], parts["eps"].copy(), parts["group"]
    gt, ct, vt, taut = group[tr], codes[tr], c[tr], eps[tr]
    ng = int(gt.max()) + 1
    key, uniq = pd.factorize(gt.astype(np.int64) * G + ct)
    g_of_key = (uniq // G).astype(np.int64)
    a = np.bincount(key, weights=vt, minlength=uniq.size)
    b = np.bincount(key, weights=vt * taut, minlength=uniq.size)
    num = np.bincount(g_of_key, weights=a * b, minlength=ng)
    den = np.bincount(g_of_key, weights=a * a, minlength=ng)
    plain = np.bincount(gt, weights=taut, minlength=ng) / np.maximum(np.bincount(gt, minlength=ng), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tilde = np.where(den > 1e-300, num / den, plain)
    eps[tr] = taut - tilde[gt]
    psi = np.bincount(codes, weights=c * eps, minlength=G)
    return float(np.sqrt(psi @ psi))


def wild_bootstrap_did(
    data: pd.DataFrame,
    outcome: str,
    unit: str = "firm_id",
    time: str = "year",
    cohort: str = "cohort",
    *,
    estimator: str = "twfe",
    cluster: str = "cell_id",
    weights: Sequence[str] | str = ("rademacher", "webb"),
    B: int = 9999,
    impose_null: bool = True,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Wild cluster bootstrap p-values and confidence sets for a TWFE or imputation ATT.

    Returns one tidy row per weight type (``estimator`` = ``<estimator>``, ``term`` = ``ATT``,
    ``std_error`` the CRV1 one, ``conf_low``/``conf_high`` the bootstrap confidence set,
    ``p_value`` the bootstrap p-value of zero), with ``weights``, ``draws``, ``n_clusters``,
    ``cluster``, ``t_stat`` and ``bootstrap`` columns.

    Examples
    --------
    >>> import moderndid
    >>> mpdta = moderndid.load_mpdta().to_pandas()
    >>> tab = wild_bootstrap_did(mpdta, "lemp", "countyreal", "year", "first.treat", cluster="countyreal", B=199, weights="webb")
    >>> round(float(tab["estimate"].iloc[0]), 4)
    -0.0365
    """
    from analysis.results import check_tidy

    make = {"twfe": twfe_design, "imputation": imputation_design}.get(estimator)
    if make is None:
        raise ValueError(f"estimator must be 'twfe' or 'imputation', got {estimator!r}")
    design = make(data, outcome, unit, time, cohort, keep=[cluster] if cluster not in (unit, time, cohort) else [])
    cl = design.frame[cluster].to_numpy()
    rows = []
    for k, wt in enumerate([weights] if isinstance(weights, str) else list(weights)):
        r = wild_cluster_bootstrap(design.X, design.y, cl, param=0, B=B, weights=wt, impose_null=impose_null, seed=seed + k, alpha=alpha)
        rows.append({
            "outcome": outcome, "estimator": estimator, "term": "ATT", "estimate": r.estimate, "std_error": r.std_error,
            "conf_low": r.conf_low, "conf_high": r.conf_high, "p_value": r.p_value, "n_obs": r.meta["n_obs"],
            "weights": wt, "draws": r.meta["draws"], "n_clusters": r.meta["n_clusters"], "cluster": cluster,
            "t_stat": r.t_stat, "bootstrap": r.meta["bootstrap"],
            "notes": "; ".join([*design.notes, r.meta.get("ci_note", ""), r.meta.get("note", "")]).strip("; "),
        })
    return check_tidy(pd.DataFrame(rows))
