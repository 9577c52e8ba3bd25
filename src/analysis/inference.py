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
from dataclasses import dataclass
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
    "ClusterScores",
    "ols_cluster_scores",
    "SmallSample",
    "WildBootstrap",
    "TestResult",
    "wald_test",
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
    controller = _controller()
    if controller is None:  # pragma: no cover - optional dependency
        return contextlib.nullcontext()
    return controller.limit(limits=limit, user_api="blas")


_CONTROLLER: list = []


def _controller():
    """One threadpoolctl controller per process: finding the loaded BLAS libraries takes tens of
    milliseconds (it reads the process's memory map), limiting their threads microseconds."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - optional dependency
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


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


# ---------------------------------------------------------------------------------------------
# few (treated) clusters: CR2, Bell-McCaffrey / HTZ degrees of freedom, wild cluster bootstrap-t
# ---------------------------------------------------------------------------------------------
#: a cluster whose leverage on some direction exceeds this cannot have its variance estimated
#: from its own residuals (it alone identifies that direction): rows loading on it get NaN
_LEVERAGE_ONE = 1 - 1e-9


@dataclass
class ClusterScores:
    """Cluster sums of the scores of ``p`` linear parameters, with each cluster's leverage.

    For an estimator that is linear in the outcome, ``beta_hat = B X'W y`` with ``B = (X'W X)^-1``
    (``X`` the regressors after partialling out fixed effects nested in the clusters),
    ``beta_hat - beta = sum_c S_c`` with ``S_c = B X_c' W_c u_c``. The small-sample tools below
    need, besides the scores ``S_c`` computed from residuals, the bread ``B`` and the clusters'
    Gram matrices ``M_c = X_c' W_c X_c``: the leverage of cluster ``c`` is ``B M_c``.

    Attributes
    ----------
    scores : numpy.ndarray
        ``G x p`` cluster sums ``S_c`` (residual-based), one row per cluster.
    bread : numpy.ndarray
        ``p x p`` matrix ``B``, or a length-``p`` vector when ``B`` is diagonal.
    gram : numpy.ndarray
        ``G x p x p`` matrices ``M_c``, or ``G x p`` when they are diagonal (with ``bread``).
    estimate : numpy.ndarray
        The ``p`` estimates.

    Notes
    -----
    The diagonal form covers differences of (weighted) group means, e.g. Callaway-Sant'Anna
    without covariates: the parameters are the treated and control mean changes of every
    ``(g, t)`` cell, ``B = diag(1 / W_a)`` and ``M_c = diag(W_ca)`` with ``W`` the weight of
    the group (in cluster ``c``), so cluster ``c``'s leverage on mean ``a`` is its share of it.
    """

    scores: np.ndarray
    bread: np.ndarray
    gram: np.ndarray
    estimate: np.ndarray

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=float)
        self.bread = np.asarray(self.bread, dtype=float)
        self.gram = np.asarray(self.gram, dtype=float)
        self.estimate = np.asarray(self.estimate, dtype=float)
        G, p = self.scores.shape
        want = (p,) if self.diagonal else (p, p)
        if self.bread.shape != want or self.gram.shape != (G, *want) or self.estimate.shape != (p,):
            raise ValueError(
                f"ClusterScores: scores {self.scores.shape}, bread {self.bread.shape}, gram {self.gram.shape}, "
                f"estimate {self.estimate.shape} do not fit (expected bread {want}, gram {(G, *want)})"
            )

    @property
    def diagonal(self) -> bool:
        """Whether bread and Gram matrices are diagonal (stored as vectors)."""
        return self.bread.ndim == 1

    @property
    def n_clusters(self) -> int:
        """Number of clusters (rows of the score matrix)."""
        return self.scores.shape[0]

    @property
    def n_params(self) -> int:
        """Number of parameters (columns of the score matrix)."""
        return self.scores.shape[1]


def ols_cluster_scores(
    X: np.ndarray,
    resid: np.ndarray,
    cluster: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    estimate: np.ndarray | None = None,
    xtwx: np.ndarray | None = None,
) -> ClusterScores:
    """:class:`ClusterScores` of a (weighted) least-squares fit.

    Parameters
    ----------
    X : numpy.ndarray
        ``n x p`` regressors after partialling out any fixed effects (which must be nested in
        the clusters for the CR2 correction to be exact, e.g. unit effects with clusters above
        the unit; put other effects, such as period dummies, in ``X``).
    resid : numpy.ndarray
        ``n`` residuals of the full model.
    cluster : numpy.ndarray
        ``n`` cluster labels.
    weights : numpy.ndarray, optional
        Regression weights (WLS); the working model is then ``Var(u_i) = sigma^2 / w_i``.
    estimate : numpy.ndarray, optional
        The ``p`` coefficients (for :attr:`ClusterScores.estimate`); zeros if omitted.
    xtwx : numpy.ndarray, optional
        ``X' W X`` when the caller has it already (the fit's normal equations); computed if omitted.

    Returns
    -------
    ClusterScores

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([np.ones(40), rng.normal(size=40)])
    >>> y = X @ [1.0, 2.0] + rng.normal(size=40)
    >>> b = np.linalg.lstsq(X, y, rcond=None)[0]
    >>> cs = ols_cluster_scores(X, y - X @ b, np.repeat(np.arange(8), 5), estimate=b)
    >>> cs.scores.shape, cs.gram.shape
    ((8, 2), (8, 2, 2))
    """
    X = np.asarray(X, dtype=float)
    u = np.asarray(resid, dtype=float)
    w = np.ones(len(u)) if weights is None else np.asarray(weights, dtype=float)
    codes, G = cluster_codes(cluster, X.shape[0])
    if codes is None:
        codes = np.arange(X.shape[0])
    unweighted = weights is None
    p = X.shape[1]
    wu = u if unweighted else w * u
    with blas_threads():
        if xtwx is None:
            XtWX = X.T @ X if unweighted else X.T @ (X * w[:, None])
        else:
            XtWX = np.asarray(xtwx, dtype=float)
        B = np.linalg.pinv(XtWX)
        S, gram = np.empty((G, p)), np.empty((G, p, p))
        if codes.size < 2 or bool(np.all(codes[1:] >= codes[:-1])):
            # rows already sorted by cluster (as the small-sample designs build them): slices, no copy
            bounds = np.searchsorted(codes, np.arange(G + 1))
            Xs, ws, wus = X, w, wu
        else:
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(G + 1))
            Xs, ws, wus = X[order], w[order], wu[order]
        for c in range(G):
            lo, hi = bounds[c], bounds[c + 1]
            xc = Xs[lo:hi]
            S[c] = wus[lo:hi] @ xc
            gram[c] = xc.T @ xc if unweighted else xc.T @ (xc * ws[lo:hi, None])
        S = S @ B
    return ClusterScores(scores=S, bread=B, gram=gram, estimate=np.zeros(X.shape[1]) if estimate is None else estimate)


class SmallSample:
    """CR2 inference for linear combinations ``theta = L beta`` when clusters are few or unequal.

    * Covariance: the bias-reduced linearisation CR2 of Bell and McCaffrey (2002): each
      cluster's scores are multiplied by ``(I - B M_c)^(-1/2)`` (in the symmetric form
      ``B^(1/2) (I - N_c)^(-1/2) B^(-1/2)``, ``N_c = B^(1/2) M_c B^(1/2)``), which makes the
      variance unbiased when errors are independent and homoskedastic (the working model).
      Plain cluster-robust variances (CR0 / CR1) are biased down by the clusters' leverage,
      which is large when a few clusters carry a parameter (a cohort of a dozen certified
      cells, of unequal size).
    * Pointwise degrees of freedom: Bell-McCaffrey's Satterthwaite approximation under the
      working model, ``df = (tr Omega)^2 / tr(Omega^2)`` with ``Omega`` the covariance of the
      adjusted cluster contributions (Imbens and Kolesar 2016 recommend it; it is close to
      the number of clusters that carry a parameter, less when they differ in size).
    * Joint tests: the HTZ test of Pustejovsky and Tipton (2018, JBES), an F approximation to
      Hotelling's T^2 whose degrees of freedom match the variance of the CR2 matrix under the
      working model (:meth:`htz`); and the wild cluster bootstrap-t of the CR2 Wald statistic
      (:meth:`wild_bootstrap`; unrestricted, Rademacher weights, the covariance re-estimated
      with CR2 in every draw as in Cameron, Gelbach and Miller 2008).

    Parameters
    ----------
    scores : ClusterScores
        The estimator's primitive parameters and their cluster scores.
    contrast : numpy.ndarray
        ``q x p`` matrix ``L`` of the reported parameters.
    extra : numpy.ndarray, optional
        ``G x q`` further cluster contributions added to the variance unadjusted (e.g. the
        estimation error of Callaway-Sant'Anna's cohort-share weights); they count in the
        covariance and the bootstrap, not in the degrees of freedom.
    terms : list of str, optional
        Labels of the ``q`` rows.

    Attributes
    ----------
    estimate, vcov, std_error, df
        ``L beta``, the CR2 covariance (plus ``extra``), its root diagonal and the
        Bell-McCaffrey degrees of freedom per row (NaN where a single cluster carries the row).

    Examples
    --------
    A difference of two group means, the first group made of 6 clusters of unequal size:

    >>> rng = np.random.default_rng(1)
    >>> sizes = np.array([40, 5, 5, 5, 5, 5])
    >>> cl = np.concatenate([np.repeat(np.arange(6), sizes), 6 + np.arange(200)])
    >>> d = np.r_[np.ones(sizes.sum()), np.zeros(200)]
    >>> X = np.column_stack([d, 1 - d]); y = rng.normal(size=len(d))
    >>> b = np.linalg.lstsq(X, y, rcond=None)[0]
    >>> ss = SmallSample(ols_cluster_scores(X, y - X @ b, cl, estimate=b), np.array([[1.0, -1.0]]))
    >>> round(float(ss.df[0]), 1)      # far fewer than the 205 clusters: one treated cluster dominates
    3.7
    """

    def __init__(self, scores: ClusterScores, contrast: np.ndarray, *, extra: np.ndarray | None = None, terms: list[str] | None = None):
        L = np.atleast_2d(np.asarray(contrast, dtype=float))
        cs = scores
        if L.shape[1] != cs.n_params:
            raise ValueError(f"contrast has {L.shape[1]} columns but there are {cs.n_params} parameters")
        G, q = cs.n_clusters, L.shape[0]
        self.scores, self.contrast = cs, L
        self.terms = list(terms) if terms is not None else [f"theta{j}" for j in range(q)]
        self.extra = np.zeros((G, q)) if extra is None else np.asarray(extra, dtype=float).reshape(G, q)
        with blas_threads():
            if cs.diagonal:
                root = np.sqrt(cs.bread)                         # R = B^(1/2)
                N = cs.gram * cs.bread[None, :]                  # leverages (G x p)
                bad = N > _LEVERAGE_ONE
                t = 1 / np.sqrt(np.where(bad, 1.0, 1.0 - np.clip(N, None, _LEVERAGE_ONE)))
                z = np.divide(cs.scores, root, out=np.zeros_like(cs.scores), where=root > 0)
                P = L[None, :, :] * (root * t)[:, None, :]      # G x q x p
                Gam = P * N[:, None, :]
                self.affected = (np.abs(L)[None, :, :] * bad[:, None, :]).sum(axis=(0, 2)) > 0
                self._LR = L * root[None, :]
            else:
                ev, U = np.linalg.eigh(cs.bread)
                ev = np.clip(ev, 0, None)
                root = (U * np.sqrt(ev)) @ U.T
                root_inv = (U * np.divide(1, np.sqrt(ev), out=np.zeros_like(ev), where=ev > 1e-300)) @ U.T
                LR = L @ root
                p = cs.n_params
                P, Gam = np.empty((G, q, p)), np.empty((G, q, p))
                load = np.zeros(q)
                step = max(1, 2_000_000 // (p * p))            # clusters per chunk (bounded memory)
                for lo in range(0, G, step):
                    hi = min(G, lo + step)
                    N = root[None] @ cs.gram[lo:hi] @ root[None]
                    lam, V = np.linalg.eigh(N)
                    bad = lam > _LEVERAGE_ONE
                    tl = 1 / np.sqrt(np.where(bad, 1.0, 1.0 - np.clip(lam, None, _LEVERAGE_ONE)))
                    T = (V * np.where(bad, 0.0, tl)[:, None, :]) @ np.swapaxes(V, 1, 2)
                    P[lo:hi] = LR[None] @ T
                    Gam[lo:hi] = P[lo:hi] @ N
                    if bad.any():
                        load = np.maximum(load, (np.abs(LR[None] @ V) * bad[:, None, :]).max(axis=(0, 2)))
                z = cs.scores @ root_inv
                self.affected = load > 1e-10 * max(float(np.abs(LR).max()), 1e-300)
                self._LR = LR
            self._P, self._Gam, self._z = P, Gam, z
            self._r = np.einsum("gqp,gp->gq", P, z) + self.extra
            self.estimate = L @ cs.estimate
            self.vcov = self._r.T @ self._r
        self.std_error = np.sqrt(np.clip(np.diag(self.vcov), 0, None))
        self.std_error[self.affected] = np.nan
        with blas_threads():
            self.df = np.array([self._eta([j]) for j in range(q)])
        self.df[self.affected] = np.nan

    # -- degrees of freedom --------------------------------------------------------------
    def _eta(self, rows: list[int]) -> float:
        """Degrees of freedom of the Wishart approximation to the CR2 matrix of ``rows`` (HTZ's
        ``eta``; Bell-McCaffrey's df for one row), under the working model."""
        rows = list(rows)
        q = len(rows)
        LR = self._LR[rows]
        sigma = LR @ LR.T                                        # E[V] = L B L' under the working model
        ev, U = np.linalg.eigh(sigma)
        if ev.min() <= 0:
            return float("nan")
        W = (U / np.sqrt(ev)) @ U.T
        P = np.einsum("st,gtp->gsp", W, self._P[:, rows])
        Gm = np.einsum("st,gtp->gsp", W, self._Gam[:, rows])
        G, _, p = P.shape
        A = np.einsum("gsp,gtp->gst", Gm, P)                     # A_c = P_c N_c P_c'
        trA = np.einsum("gss->g", A)
        gg = np.einsum("gsp,gsp->g", Gm, Gm)
        F = Gm.reshape(G, q * p)
        K = F.T @ F
        t1 = float(np.sum(trA**2 - 2 * trA * gg) + np.sum(K * K))
        GGt = np.einsum("gsp,gtp->gst", Gm, Gm)
        K4 = K.reshape(q, p, q, p)
        t2 = float(np.einsum("gst,gts->", A, A) - 2 * np.einsum("gst,gts->", A, GGt) + np.einsum("satb,tasb->", K4, K4))
        total = t1 + t2
        return float(q * (q + 1) / total) if total > 0 else float("nan")

    # -- tests ---------------------------------------------------------------------------
    def _rows(self, rows) -> list[int]:
        if rows is None:
            return list(range(len(self.terms)))
        out = []
        for r in rows:
            out.append(self.terms.index(r) if isinstance(r, str) else int(r))
        return out

    def wald(self, rows=None) -> float:
        """The Wald statistic ``theta' V^-1 theta`` of ``rows`` (all by default) with the CR2 ``V``."""
        rr = self._rows(rows)
        b = self.estimate[rr]
        return float(b @ np.linalg.solve(self.vcov[np.ix_(rr, rr)], b))

    def htz(self, rows=None) -> tuple[float, float, float, float]:
        """HTZ test that ``theta[rows] = 0``: ``(F, df1, df2, p_value)``.

        ``F = (eta - q + 1) / (eta q) * Wald`` is compared with ``F(q, eta - q + 1)``.
        """
        rr = self._rows(rows)
        q = len(rr)
        with blas_threads():
            eta = self._eta(rr)
        df2 = eta - q + 1
        if not np.isfinite(eta) or df2 <= 0 or self.affected[rr].any():
            return float("nan"), float(q), float(df2), float("nan")
        F = (eta - q + 1) / (eta * q) * self.wald(rr)
        return float(F), float(q), float(df2), float(stats.f.sf(F, q, df2))

    def wild_bootstrap(
        self,
        rows=None,
        *,
        n_boot: int = 999,
        seed: int | np.random.Generator | None = 0,
        alpha: float = 0.05,
        max_chunk_elems: int = 5_000_000,
        progress: bool | None = None,
    ) -> WildBootstrap:
        """Wild cluster bootstrap-t of ``theta[rows]`` with the CR2 covariance re-estimated per draw.

        Draw ``b`` multiplies every cluster's residuals by an independent Rademacher sign
        ``v_c``; refitting moves the estimate by ``delta* = sum_c v_c S_c`` and leaves cluster
        scores ``v_c S_c - (B M_c) delta*``, from which the CR2 covariance ``V*`` is formed
        again. Returns the p-value of the Wald statistic (share of draws with
        ``delta*' V*^-1 delta*`` at least the sample's), the per-row ``1 - alpha`` quantiles of
        ``|t*|`` (symmetric bootstrap-t intervals) and that of ``max_j |t*_j|`` (a uniform band).
        """
        from tqdm.auto import tqdm

        from analysis.io import progress_options

        rr = self._rows(rows)
        if n_boot < 2:
            raise ValueError(f"n_boot must be at least 2, got {n_boot}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        r = self._r[:, rr]
        Gam = self._Gam[:, rr]
        extra = self.extra[:, rr]
        z = self._z
        G, q = r.shape
        V = self.vcov[np.ix_(rr, rr)]
        b = self.estimate[rr]
        stat = float(b @ np.linalg.solve(V, b)) if not self.affected[rr].any() else float("nan")
        chunk = max(1, min(n_boot, max_chunk_elems // max(G * q, 1)))
        W_draws = np.empty(n_boot)
        T_draws = np.empty((n_boot, q))
        starts = range(0, n_boot, chunk)
        with blas_threads():
            for s in tqdm(starts, total=len(starts), desc="wild cluster bootstrap", leave=False, **progress_options(progress)):
                m = min(chunk, n_boot - s)
                v = np.where(rng.random((m, G)) < 0.5, -1.0, 1.0)
                zeta = v @ z                                          # m x p
                theta = zeta @ self._LR[rr].T + v @ extra             # m x q: L delta* (+ extra part)
                rs = v[:, :, None] * r[None] - np.einsum("gqp,mp->mgq", Gam, zeta)
                Vs = np.einsum("mgs,mgt->mst", rs, rs)
                sd = np.sqrt(np.einsum("mss->ms", Vs))
                T_draws[s : s + m] = np.abs(theta) / sd
                try:
                    W_draws[s : s + m] = np.einsum("ms,ms->m", theta, np.linalg.solve(Vs, theta[:, :, None])[:, :, 0])
                except np.linalg.LinAlgError:
                    W_draws[s : s + m] = np.nan
        crit = np.quantile(T_draws, 1 - alpha, axis=0, method="inverted_cdf")
        sup = float(np.quantile(np.nanmax(T_draws, axis=1), 1 - alpha, method="inverted_cdf"))
        p = float(np.mean(W_draws >= stat)) if np.isfinite(stat) else float("nan")
        return WildBootstrap(stat=stat, p_value=p, crit=crit, sup_crit=sup, n_boot=int(n_boot))


class WildBootstrap(NamedTuple):
    """Output of :meth:`SmallSample.wild_bootstrap`."""

    stat: float
    p_value: float
    crit: np.ndarray
    sup_crit: float
    n_boot: int


# ---------------------------------------------------------------------------------------------
# test results
# ---------------------------------------------------------------------------------------------
@dataclass
class TestResult:
    """The result of a hypothesis test: statistic, degrees of freedom, p-value and how they were got.

    Modelled on linearmodels' ``WaldTestStatistic``: readable ``repr`` and ``_repr_html_``,
    and :meth:`to_dict` for a row of a results table.

    Attributes
    ----------
    stat : float
        The test statistic.
    df : float
        Its (numerator) degrees of freedom: the number of restrictions.
    p_value : float
        The p-value.
    null : str
        The null hypothesis, in words.
    distribution : str
        The reference distribution, e.g. ``"chi2(5)"``, ``"F(5, 11.3)"`` or a bootstrap.
    method : str
        The test's name (``"chi2"``, ``"htz"``, ``"wild_bootstrap"``, ``"welch"``) .
    df_denom : float, optional
        Denominator degrees of freedom of an F distribution.
    n_boot : int, optional
        Bootstrap draws behind the p-value.

    Examples
    --------
    >>> TestResult(stat=3.2, df=2, p_value=0.2019, null="a = b = 0", distribution="chi2(2)", method="chi2")
    Test of a = b = 0: statistic 3.200, df 2, p-value 0.2019 (chi2(2))
    """

    __test__ = False  # not a pytest test class

    stat: float
    df: float
    p_value: float
    null: str
    distribution: str
    method: str
    df_denom: float | None = None
    n_boot: int | None = None

    def to_dict(self) -> dict[str, object]:
        """The fields as a dict (one row of a table of tests)."""
        return {"stat": self.stat, "df": self.df, "df_denom": self.df_denom, "p_value": self.p_value,
                "method": self.method, "distribution": self.distribution, "null": self.null, "n_boot": self.n_boot}

    def __repr__(self) -> str:
        df = f"{self.df:g}"
        return f"Test of {self.null}: statistic {self.stat:.3f}, df {df}, p-value {self.p_value:.4f} ({self.distribution})"

    def _repr_html_(self) -> str:
        import html

        rows = [("Null hypothesis", self.null), ("Statistic", f"{self.stat:.4f}"), ("Degrees of freedom", f"{self.df:g}"),
                ("p-value", f"{self.p_value:.4f}"), ("Distribution", self.distribution), ("Method", self.method)]
        if self.df_denom is not None:
            rows.insert(3, ("Denominator df", f"{self.df_denom:.2f}"))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table class='test-result'>{body}</table>"


def wald_test(estimate: np.ndarray, vcov: np.ndarray, *, null: str = "all coefficients are zero") -> TestResult:
    """Chi-squared Wald test that ``estimate = 0`` given its covariance ``vcov``.

    ``W = b' V^+ b`` against chi-squared with ``rank(V)`` degrees of freedom: valid when ``V``
    is estimated precisely, i.e. from many clusters for *each* coefficient; with few clusters
    use :meth:`SmallSample.wild_bootstrap` or :meth:`SmallSample.htz`.

    Examples
    --------
    >>> wald_test(np.array([1.0, 1.0]), np.eye(2)).p_value == float(stats.chi2.sf(2.0, 2))
    True
    """
    b = np.asarray(estimate, dtype=float)
    V = np.asarray(vcov, dtype=float)
    if b.size == 0 or not np.isfinite(V).all() or not np.isfinite(b).all():
        return TestResult(stat=float("nan"), df=0, p_value=float("nan"), null=null, distribution="chi2", method="chi2")
    stat = float(b @ np.linalg.pinv(V) @ b)
    df = int(np.linalg.matrix_rank(V))
    return TestResult(stat=stat, df=df, p_value=float(stats.chi2.sf(stat, df)), null=null, distribution=f"chi2({df})", method="chi2")
