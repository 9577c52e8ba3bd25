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

Agreement with the well-kept implementation. The weights are drawn by the ``wildboottest``
package's own ``draw_weights`` (same seed, same draws), the t statistic uses its CRV1 small-sample
factor ``(N - 1)/(N - k) G/(G - 1)`` and its two-sided p-value rule; ``tests/test_robustness_wild.py``
checks that the bootstrap t statistics equal ``WildboottestCL``'s draw by draw, and the published
example of the package's README (Petersen's data, ``statsmodels`` ships them).

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


def _draw_weights(kind: str, G: int, B: int, seed: int) -> tuple[np.ndarray, int, bool]:
    """Bootstrap weights (G x B) as the ``wildboottest`` package draws them (full enumeration if 2^G <= B)."""
    from wildboottest.weights import draw_weights

    if kind not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {kind!r}")
    full = kind == "rademacher" and 2**G < B
    rng = np.random.default_rng(seed)
    v, B_used = draw_weights(t=kind, full_enumeration=full, N_G_bootcluster=G, boot_iter=B, rng=rng)
    return np.asarray(v), int(B_used), full


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
    X, y
        Regressors (n x k, full column rank) and outcome (n).
    cluster
        One cluster label per row.
    param
        Column of ``X`` whose coefficient is tested.
    null
        The value under the null hypothesis.
    B
        Bootstrap draws (with Rademacher weights and 2^G <= B: all 2^G sign vectors instead).
    weights
        ``"rademacher"``, ``"webb"`` (six-point; better with few clusters), ``"mammen"`` or ``"norm"``.
    impose_null
        ``True``: restricted bootstrap (WCR, the residuals of the model with the null imposed);
        ``False``: unrestricted (WCU).
    seed
        Seed of the weights.
    alpha
        1 - level of the confidence set.
    v
        Explicit G x B weights (clusters in sorted label order), e.g. to reproduce another program.
    chunk
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

    # per-cluster cross products: X_g'X_g (G x k x k) and X_g'y_g (G x k)
    Xy_g = _group_sums(X * y[:, None], codes, G)
    XX_g = np.empty((G, k, k))
    for j in range(k):
        XX_g[:, j, :] = _group_sums(X * X[:, [j]], codes, G)
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
    C0, C1 = s0 @ XXinvR, s1 @ XXinvR                           # G
    Q0, Q1 = s0 @ XXinv, s1 @ XXinv                             # G x k (rows: XXinv s_g)
    a = XX_g @ XXinvR                                           # G x k: X_g'X_g XXinv R

    if v is None:
        v, B, full = _draw_weights(weights, G, B, seed)
    else:
        v = np.asarray(v, dtype=float)
        if v.shape[0] != G:
            raise ValueError(f"v must have one row per cluster ({G}), got {v.shape}")
        B, full = v.shape[1], False
    # per draw: numerator n0 - b n1, variance d00 - 2 b d01 + b^2 d11
    n0, n1 = np.empty(B), np.empty(B)
    d00, d01, d11 = np.empty(B), np.empty(B), np.empty(B)
    for lo in range(0, B, chunk):
        vb = v[:, lo:lo + chunk].astype(float)                  # G x b
        n0[lo:lo + chunk] = C0 @ vb
        n1[lo:lo + chunk] = C1 @ vb
        Z0 = C0[:, None] * vb - a @ (Q0.T @ vb)                 # G x b
        Z1 = C1[:, None] * vb - a @ (Q1.T @ vb)
        d00[lo:lo + chunk] = np.einsum("gb,gb->b", Z0, Z0)
        d01[lo:lo + chunk] = np.einsum("gb,gb->b", Z0, Z1)
        d11[lo:lo + chunk] = np.einsum("gb,gb->b", Z1, Z1)

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


def _codes(s: pd.Series) -> np.ndarray:
    return pd.factorize(s, sort=True)[0]


def _within(a: np.ndarray, unit: np.ndarray, n_units: int) -> np.ndarray:
    """Subtract unit means from the columns of ``a`` (n or n x m)."""
    cnt = np.bincount(unit, minlength=n_units).astype(float)
    if a.ndim == 1:
        return a - (np.bincount(unit, weights=a, minlength=n_units) / cnt)[unit]
    out = np.empty_like(a, dtype=float)
    for j in range(a.shape[1]):
        out[:, j] = a[:, j] - (np.bincount(unit, weights=a[:, j], minlength=n_units) / cnt)[unit]
    return out


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
    X = _within(np.column_stack([D, L]), u, nu)
    y = _within(d[outcome].to_numpy(dtype=float), u, nu)
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
    X = np.column_stack([z, _within(L, u, nu)])
    y = _within(d[outcome].to_numpy(dtype=float), u, nu)
    return LinearDesign(y=y, X=X, frame=d, estimator="imputation", names=["ATT", *[f"{time}::{p}" for p in periods]], notes=notes)


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
            "t_stat": r.t_stat, "bootstrap": r.meta["bootstrap"], "notes": "; ".join([*design.notes, r.meta.get("ci_note", ""), r.meta.get("note", "")]).strip("; "),
        })
    return check_tidy(pd.DataFrame(rows))
