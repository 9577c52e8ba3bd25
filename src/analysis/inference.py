"""Inference from influence functions: cluster-robust variance and the multiplier bootstrap.

Many modern estimators (Callaway-Sant'Anna, imputation, aggregations of either) are
asymptotically linear: ``theta_hat - theta ~= (1/n) * sum_i psi_i`` for an influence function
``psi`` with one row per independent unit. This module turns such an ``n x k`` matrix into

* a cluster-robust covariance, :func:`vcov_from_if` and its diagonal :func:`cluster_se_from_if`:
  ``V = (1/n^2) * sum_c S_c S_c'`` with ``S_c`` the sum of ``psi`` over the rows of cluster
  ``c`` (Liang-Zeger; with one row per cluster it is the heteroskedasticity-robust
  ``(1/n^2) sum_i psi_i psi_i'`` that R ``did`` reports);
* a multiplier bootstrap, :func:`multiplier_bootstrap`: one Mammen (or Rademacher) multiplier
  per cluster applied to the cluster sums (Callaway and Sant'Anna 2021, Remark 10), standard
  errors from the bootstrap interquartile range and the critical value of a uniform (sup-t)
  confidence band over the ``k`` parameters, as in R ``did::mboot``.

Conventions
-----------
``psi`` rows are independent units (firms). ``cluster`` has one label per row; rows of the same
cluster are summed before the variance is formed, so clusters may be any level *above* the unit
(county x industry cell, county). ``n`` is the divisor in ``theta_hat - theta ~= sum_i psi_i / n``
and defaults to the number of rows; pass ``n=1`` for an influence function already in the
"sum" convention (``theta_hat - theta ~= sum_i psi_i``).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> psi = rng.normal(size=(400, 2))
>>> cluster = np.repeat(np.arange(40), 10)
>>> se = cluster_se_from_if(psi, cluster)
>>> se.shape
(2,)
>>> se_b, crit = multiplier_bootstrap(psi, cluster, n_boot=499, seed=1)
>>> bool(crit > 1.96)
True
"""

from __future__ import annotations

import contextlib
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse, stats

__all__ = [
    "blas_threads",
    "BLAS_THREADS",
    "cluster_codes",
    "cluster_sums",
    "vcov_from_if",
    "cluster_se_from_if",
    "multiplier_bootstrap",
    "BootstrapResult",
]

#: BLAS threads used by the matrix products here and in the estimators built on them. The products
#: are tall and skinny (units x parameters); one thread is nearly as fast as several on an idle
#: machine and many times faster on a busy one, where OpenBLAS threads wait for each other.
#: ``None`` leaves the BLAS default.
BLAS_THREADS: int | None = 1

#: below this, a standard error is treated as zero (a degenerate parameter), as in R ``did``.
_SE_TINY = np.sqrt(np.finfo(float).eps) * 10
#: interquartile range of the standard normal: IQR / this is a robust standard deviation.
_IQR_NORMAL = float(stats.norm.ppf(0.75) - stats.norm.ppf(0.25))


def blas_threads(limit: int | None = None) -> contextlib.AbstractContextManager:
    """Context manager capping BLAS threads (``limit``, default :data:`BLAS_THREADS`).

    Uses threadpoolctl when installed; otherwise (or with a limit of ``None``) does nothing.

    Examples
    --------
    >>> with blas_threads():
    ...     float(np.ones((3, 2)).T @ np.ones(3) @ np.ones(2))
    6.0
    """
    limit = BLAS_THREADS if limit is None else limit
    if limit is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


def cluster_codes(cluster: np.ndarray | pd.Series | None, n_rows: int) -> tuple[np.ndarray | None, int]:
    """Integer codes ``0..G-1`` for cluster labels, and the number of clusters ``G``.

    Parameters
    ----------
    cluster
        One label per row, or ``None`` (every row its own cluster).
    n_rows
        Number of rows of the influence function the labels must match.

    Returns
    -------
    codes, n_clusters
        ``codes`` is ``None`` when ``cluster`` is ``None`` (then ``n_clusters == n_rows``).

    Raises
    ------
    ValueError
        If the length differs from ``n_rows`` or a label is missing.

    Examples
    --------
    >>> cluster_codes(np.array(["b", "a", "b"]), 3)
    (array([0, 1, 0]), 2)
    """
    if cluster is None:
        return None, n_rows
    labels = np.asarray(cluster)
    if labels.ndim != 1 or labels.shape[0] != n_rows:
        raise ValueError(f"cluster has {labels.shape[0] if labels.ndim else 0} labels but the influence function has {n_rows} rows")
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    if (codes < 0).any():
        raise ValueError(f"cluster has {(codes < 0).sum()} missing label(s) (rows {np.flatnonzero(codes < 0)[:5].tolist()} ...)")
    return codes.astype(np.intp, copy=False), len(uniques)


def cluster_sums(psi: np.ndarray, cluster: np.ndarray | pd.Series | None) -> np.ndarray:
    """Sum the rows of ``psi`` within clusters.

    Parameters
    ----------
    psi
        ``n x k`` (or length-``n``) influence function.
    cluster
        One label per row, or ``None`` (returns ``psi`` as a 2-D array).

    Returns
    -------
    numpy.ndarray
        ``G x k`` matrix of cluster sums, clusters in order of first appearance.

    Examples
    --------
    >>> cluster_sums(np.array([[1.0], [2.0], [4.0]]), [7, 9, 7])
    array([[5.],
           [2.]])
    """
    psi2 = _as_2d(psi)
    codes, n_clusters = cluster_codes(cluster, psi2.shape[0])
    if codes is None:
        return psi2
    n_rows = psi2.shape[0]
    indicator = sparse.csr_matrix((np.ones(n_rows), (codes, np.arange(n_rows))), shape=(n_clusters, n_rows))
    return np.asarray(indicator @ psi2)


def vcov_from_if(
    psi: np.ndarray,
    cluster: np.ndarray | pd.Series | None = None,
    *,
    n: float | None = None,
    df_correction: bool = False,
) -> np.ndarray:
    """Cluster-robust covariance of ``theta_hat`` from its influence function.

    ``V = c / n^2 * sum_g S_g S_g'`` with ``S_g`` the within-cluster sum of ``psi`` and
    ``c = G / (G - 1)`` when ``df_correction`` (the CR1 factor of Stata / fixest / diff-diff),
    else 1 (R ``did`` >= 2.5, Callaway and Sant'Anna 2021, Remark 10).

    NaN entries in a column make that column's variances and covariances NaN.

    Parameters
    ----------
    psi
        ``n x k`` influence function (or a length-``n`` vector).
    cluster
        One label per row; ``None`` treats every row as its own cluster.
    n
        Divisor in ``theta_hat - theta ~= sum(psi) / n``; defaults to ``psi.shape[0]``.
    df_correction
        Multiply by ``G / (G - 1)``.

    Returns
    -------
    numpy.ndarray
        ``k x k`` covariance matrix.

    Examples
    --------
    >>> psi = np.array([[1.0], [-1.0], [2.0], [-2.0]])
    >>> vcov_from_if(psi)          # (1 + 1 + 4 + 4) / 4**2
    array([[0.625]])
    >>> vcov_from_if(psi, [0, 0, 1, 1])   # clusters sum to 0: no variance left
    array([[0.]])
    """
    psi2 = _as_2d(psi)
    n_div = float(psi2.shape[0] if n is None else n)
    sums = cluster_sums(psi2, cluster)
    n_clusters = sums.shape[0]
    with blas_threads():
        v = sums.T @ sums / n_div**2
    if df_correction:
        if n_clusters < 2:
            raise ValueError("the G/(G-1) correction needs at least two clusters")
        v *= n_clusters / (n_clusters - 1)
    return v


def cluster_se_from_if(
    psi: np.ndarray,
    cluster: np.ndarray | pd.Series | None = None,
    *,
    n: float | None = None,
    df_correction: bool = False,
) -> np.ndarray:
    """Cluster-robust standard errors: the square root of the diagonal of :func:`vcov_from_if`.

    Computed column by column (no ``k x k`` matrix), so it is cheap for wide ``psi``.

    Examples
    --------
    >>> cluster_se_from_if(np.array([1.0, -1.0, 2.0, -2.0]))
    array([0.79056942])
    """
    psi2 = _as_2d(psi)
    n_div = float(psi2.shape[0] if n is None else n)
    sums = cluster_sums(psi2, cluster)
    var = np.einsum("gk,gk->k", sums, sums) / n_div**2
    if df_correction:
        g = sums.shape[0]
        if g < 2:
            raise ValueError("the G/(G-1) correction needs at least two clusters")
        var *= g / (g - 1)
    return np.sqrt(var)


class BootstrapResult(NamedTuple):
    """Multiplier-bootstrap output: standard errors and the uniform-band critical value."""

    se: np.ndarray
    crit: float


def multiplier_bootstrap(
    psi: np.ndarray,
    cluster: np.ndarray | pd.Series | None = None,
    n_boot: int = 999,
    seed: int | np.random.Generator | None = 0,
    alpha: float = 0.05,
    *,
    n: float | None = None,
    multipliers: Literal["mammen", "rademacher"] = "mammen",
    progress: bool | None = None,
    max_chunk_elems: int = 20_000_000,
) -> BootstrapResult:
    """Multiplier bootstrap of an asymptotically linear estimator, with a uniform band.

    Each draw ``b`` is ``theta*_b = (1/n) * sum_g V_bg S_g`` with ``S_g`` the cluster sums of
    ``psi`` and ``V_bg`` i.i.d. multipliers with mean 0 and variance 1, one per cluster
    (Callaway and Sant'Anna 2021, Algorithm 1 and Remark 10). As in R ``did::mboot``:

    * the standard error of parameter ``j`` is the interquartile range of ``theta*_j`` divided
      by ``qnorm(.75) - qnorm(.25)`` (robust to heavy tails);
    * the critical value of the ``1 - alpha`` uniform confidence band is the ``1 - alpha``
      quantile (inverted CDF, R type 1) of ``max_j |theta*_bj| / se_j`` over draws, taken over
      the non-degenerate parameters (finite standard error above ``sqrt(eps) * 10``).

    Parameters
    ----------
    psi
        ``n x k`` influence function (NaN columns are treated as degenerate).
    cluster
        One label per row, or ``None`` for one multiplier per row.
    n_boot
        Number of bootstrap draws.
    seed
        Seed or ``numpy.random.Generator``; same seed, same draws.
    alpha
        1 - coverage of the uniform band.
    n
        Divisor in ``theta_hat - theta ~= sum(psi) / n``; defaults to the number of rows.
    multipliers
        ``"mammen"`` (the two-point distribution R ``did`` uses) or ``"rademacher"``.
    progress
        Show a tqdm bar (``None``: tqdm's default, which ``TQDM_DISABLE=1`` turns off).
    max_chunk_elems
        Draws are generated in chunks of at most this many multipliers (memory bound).

    Returns
    -------
    BootstrapResult
        ``(se, crit)``: a length-``k`` array (NaN for degenerate parameters) and a float.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> psi = rng.normal(size=(2000, 3))
    >>> se, crit = multiplier_bootstrap(psi, n_boot=999, seed=3)
    >>> np.allclose(se, cluster_se_from_if(psi), rtol=0.15)
    True
    >>> bool(2.0 < crit < 2.8)
    True
    """
    from tqdm.auto import tqdm

    from analysis.io import progress_options

    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    psi2 = _as_2d(psi)
    n_div = float(psi2.shape[0] if n is None else n)
    k = psi2.shape[1]
    finite_cols = np.isfinite(psi2).all(axis=0)
    sums = cluster_sums(np.where(finite_cols, psi2, 0.0), cluster)
    n_clusters = sums.shape[0]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if multipliers == "mammen":
        s5 = np.sqrt(5.0)
        values = np.array([(1 - s5) / 2, (1 + s5) / 2])
        p_low = (s5 + 1) / (2 * s5)
    elif multipliers == "rademacher":
        values = np.array([-1.0, 1.0])
        p_low = 0.5
    else:
        raise ValueError(f"multipliers must be 'mammen' or 'rademacher', got {multipliers!r}")

    draws = np.empty((n_boot, k))
    chunk = max(1, min(n_boot, max_chunk_elems // max(n_clusters, 1)))
    starts = range(0, n_boot, chunk)
    for start in tqdm(starts, total=len(starts), desc="multiplier bootstrap", leave=False, **progress_options(progress)):
        stop = min(start + chunk, n_boot)
        v = np.where(rng.random((stop - start, n_clusters)) < p_low, values[0], values[1])
        with blas_threads():
            draws[start:stop] = v @ sums / n_div

    q75 = np.quantile(draws, 0.75, axis=0, method="inverted_cdf")
    q25 = np.quantile(draws, 0.25, axis=0, method="inverted_cdf")
    se = (q75 - q25) / _IQR_NORMAL
    ok = finite_cols & np.isfinite(se) & (se > _SE_TINY)
    se = np.where(ok, se, np.nan)
    if not ok.any():
        return BootstrapResult(se=se, crit=float("nan"))
    t_max = np.max(np.abs(draws[:, ok]) / se[ok], axis=1)
    crit = float(np.quantile(t_max, 1 - alpha, method="inverted_cdf"))
    return BootstrapResult(se=se, crit=crit)


def _as_2d(psi: np.ndarray) -> np.ndarray:
    arr = np.asarray(psi, dtype=float)
    if arr.ndim == 1:
        return arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"influence function must be a vector or a matrix, got {arr.ndim} dimensions")
    return arr
