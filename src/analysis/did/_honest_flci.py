"""Fixed-length confidence intervals (FLCI) under Delta^SD(M), Rambachan and Roth (2023, Section 4),
after Armstrong and Kolesar (2018, 2020).

The FLCI is ``a + v' betahat +/- chi``: an affine estimator of ``theta = l' tau_post`` plus the
half-length ``chi = sd * cv_{1-alpha}(bias / sd)``, where ``cv`` is the ``1 - alpha`` quantile of
``|N(b, 1)|`` (the folded normal) and ``bias`` the worst-case bias over Delta^SD(M). The estimator
puts ``l`` on the post-treatment coefficients and weights ``v_pre`` on the pre-treatment ones; it is
unbiased for linear trends. Writing ``v_pre`` through its double cumulative sums ``c`` (``c_K`` is
fixed by unbiasedness for linear trends), the worst-case bias is ``M (k_l + sum_j |c_j|)`` and the
variance a quadratic in ``c`` (the constraints of the R package's ``findOptimalFLCI``). The
bias-variance frontier is therefore a lasso path, computed here exactly by homotopy (piecewise
linear in the penalty), and ``chi(h)`` along the frontier, ``h`` the standard deviation, is
minimised as in the R package: bisection on central-difference derivatives over
``[h_min, h_0]`` (minimum variance to minimum bias), with a 100-point grid as fallback.

``cv`` is the R package's simulated quantile (``quantile(abs(rnorm(1e6) + b), 1 - alpha)`` after
``set.seed(seed)``), evaluated exactly: its draws are R's, and the order statistic of
``|z + b|`` is found by merging the two monotone halves of the sorted draws (no sort per call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from analysis.did._honest_rng import r_rnorm

__all__ = ["FLCI", "folded_normal_quantile", "optimal_flci"]

_N_DRAWS = 10**6


@lru_cache(maxsize=4)
def _sorted_draws(seed: int) -> np.ndarray:
    z = np.sort(np.asarray(r_rnorm(_N_DRAWS, seed)))
    z.setflags(write=False)
    return z


def _kth_abs(z: np.ndarray, b: float, k: int) -> float:
    """The k-th smallest (0-based) of ``|z_i + b|`` for sorted ``z``: the union of two sorted
    sequences, ``z_i + b`` for ``z_i >= -b`` and ``-(z_i + b)`` (read backwards) for ``z_i < -b``."""
    j0 = int(np.searchsorted(z, -b, side="left"))
    n1, n2 = z.size - j0, j0

    def a1(i: int) -> float:
        return float(z[j0 + i] + b)

    def a2(i: int) -> float:
        return float(-(z[j0 - 1 - i] + b))

    lo, hi = max(0, k + 1 - n2), min(k + 1, n1)
    while lo < hi:  # smallest i (taken from the first sequence) with a2(k - i) <= a1(i)
        i = (lo + hi) // 2
        j = k + 1 - i
        if j > 0 and a2(j - 1) > a1(i):
            lo = i + 1
        else:
            hi = i
    i, j = lo, k + 1 - lo
    return max(a1(i - 1) if i > 0 else -math.inf, a2(j - 1) if j > 0 else -math.inf)


def folded_normal_quantile(p: float, b: float, seed: int = 0) -> float:
    """``quantile(abs(rnorm(1e6) + b), p)`` after ``set.seed(seed)`` in R (type-7 quantile).

    Examples
    --------
    >>> round(folded_normal_quantile(0.95, 0.0), 4)  # the simulated 1.96 R uses
    1.9622
    """
    z = _sorted_draws(int(seed))
    h = (z.size - 1) * p
    k = int(math.floor(h))
    lo = _kth_abs(z, b, k)
    if k + 1 >= z.size:
        return lo
    hi = _kth_abs(z, b, k + 1)
    return lo + (h - k) * (hi - lo)


@dataclass
class _Frontier:
    """The variance of the estimator as a quadratic in the free cumulative weights ``x``:
    ``var(x) = x'Px + p'x + p0``; bias ``M (k_l + |c_K| + sum |x|)``; ``l_pre = D [x, c_K]``."""

    P: np.ndarray
    p: np.ndarray
    p0: float
    D: np.ndarray
    cK: float
    bias0: float  # k_l + |c_K|
    breaks: list  # lasso path: list of (lam_hi, lam_lo, active, u, v) with x_A = u + v lam

    def x_at(self, seg, lam: float) -> np.ndarray:
        _, _, act, u, v = seg
        x = np.zeros(self.p.size)
        x[act] = u + v * lam
        return x

    def var(self, x: np.ndarray) -> float:
        return float(x @ self.P @ x + self.p @ x + self.p0)

    def l_pre(self, x: np.ndarray) -> np.ndarray:
        return self.D @ np.concatenate([x, [self.cK]])


def _frontier(sigma: np.ndarray, n_pre: int, l_vec: np.ndarray) -> _Frontier:
    K, n_post = n_pre, l_vec.size
    t = np.arange(1, n_post + 1, dtype=float)
    cK = float(t @ l_vec)
    # k_l = sum_s |sum_{i<=s} i * l_{n_post - s + i}| - sum_t t l_t  (bias of the post-period part)
    k_l = sum(abs(float(np.arange(1, s + 1) @ l_vec[n_post - s:])) for s in range(1, n_post + 1)) - cK
    # l_pre = D c with c the cumulative sums of the cumulative sums of l_pre
    W = np.eye(K) - np.eye(K, k=-1)  # w -> l
    C = np.eye(K) - np.eye(K, k=-1)  # c -> w
    D = W @ C
    S_pre = sigma[:n_pre, :n_pre]
    S_pp = sigma[:n_pre, n_pre:] @ l_vec
    v_post = float(l_vec @ sigma[n_pre:, n_pre:] @ l_vec)
    Df, dK = D[:, :K - 1], D[:, K - 1]
    P = Df.T @ S_pre @ Df
    p = 2 * Df.T @ (S_pre @ dK) * cK + 2 * Df.T @ S_pp
    p0 = cK * cK * float(dK @ S_pre @ dK) + 2 * cK * float(dK @ S_pp) + v_post
    fr = _Frontier(P, p, p0, D, cK, k_l + abs(cK), [])
    fr.breaks = _lasso_path(P, p)
    return fr


def _lasso_path(P: np.ndarray, p: np.ndarray) -> list:
    """Exact homotopy for ``min_x x'Px + p'x + lam |x|_1`` from ``lam_max`` (x = 0) to 0."""
    n = p.size
    if n == 0:
        return [(math.inf, 0.0, np.zeros(0, dtype=np.intp), np.zeros(0), np.zeros(0))]
    H = 2 * P
    lam = float(np.max(np.abs(p)))
    segs = [(math.inf, lam, np.zeros(0, dtype=np.intp), np.zeros(0), np.zeros(0))]
    if lam == 0.0:
        return segs
    active = [int(np.argmax(np.abs(p)))]
    signs = [-float(np.sign(p[active[0]]))]
    for _ in range(10 * n + 10):
        act = np.array(active, dtype=np.intp)
        s = np.array(signs)
        Hi = np.linalg.pinv(H[np.ix_(act, act)])
        u, v = -Hi @ p[act], -Hi @ s
        cands = [(0.0, "end", -1)]
        inact = np.setdiff1d(np.arange(n), act)
        if inact.size:
            ru = H[np.ix_(inact, act)] @ u + p[inact]
            rv = H[np.ix_(inact, act)] @ v
            with np.errstate(divide="ignore", invalid="ignore"):
                for num, den, sg in ((ru, 1 - rv, -1.0), (-ru, 1 + rv, 1.0)):  # r_j = +lam: x_j enters negative
                    lj = num / den
                    for jj, val in zip(inact, lj):
                        if np.isfinite(val) and 0 < val < lam * (1 - 1e-12):
                            cands.append((float(val), "join", (int(jj), sg)))
        with np.errstate(divide="ignore", invalid="ignore"):
            lj = -u / v
        for pos, val in enumerate(lj):
            if np.isfinite(val) and 0 < val < lam * (1 - 1e-12):
                cands.append((float(val), "leave", pos))
        nxt, kind, what = max(cands, key=lambda c: c[0])
        segs.append((lam, nxt, act, u, v))
        if kind == "end":
            break
        if kind == "join":
            active.append(what[0])
            signs.append(what[1])
        else:
            del active[what]
            del signs[what]
        lam = nxt
    return segs


def _point_for_h(fr: _Frontier, h: float) -> tuple[np.ndarray, float] | None:
    """The frontier point with standard deviation ``h``: (x, sum |x|); None outside the frontier."""
    h2 = h * h
    v_min = fr.var(fr.x_at(fr.breaks[-1], fr.breaks[-1][1]))
    v_max = fr.p0
    if h2 < v_min * (1 - 1e-12) - 1e-300:
        return None
    if h2 >= v_max:
        return np.zeros(fr.p.size), 0.0
    for seg in fr.breaks[1:]:
        lam_hi, lam_lo, act, u, v = seg
        x_hi, x_lo = fr.x_at(seg, lam_hi), fr.x_at(seg, lam_lo)
        vh, vl = fr.var(x_hi), fr.var(x_lo)
        if vl <= h2 <= vh:
            # var(lam) = (u+v lam)' P_AA (u+v lam) + p_A'(u + v lam) + p0 = a2 lam^2 + a1 lam + a0
            PA = fr.P[np.ix_(act, act)]
            a2 = float(v @ PA @ v)
            a1 = float(2 * u @ PA @ v + fr.p[act] @ v)
            a0 = float(u @ PA @ u + fr.p[act] @ u + fr.p0) - h2
            if abs(a2) < 1e-300:
                lam = -a0 / a1 if a1 != 0 else lam_lo
            else:
                disc = max(a1 * a1 - 4 * a2 * a0, 0.0)
                r1, r2 = (-a1 - math.sqrt(disc)) / (2 * a2), (-a1 + math.sqrt(disc)) / (2 * a2)
                lam = min((r1, r2), key=lambda r: 0 if lam_lo - 1e-12 <= r <= lam_hi + 1e-12 else abs(r - 0.5 * (lam_lo + lam_hi)))
            lam = min(max(lam, lam_lo), lam_hi)
            x = fr.x_at(seg, lam)
            return x, float(np.abs(x).sum())
    x = fr.x_at(fr.breaks[-1], 0.0)
    return x, float(np.abs(x).sum())


@dataclass
class FLCI:
    """An FLCI: weights over all coefficients (pre then post), half-length, and the diagnostics."""

    l_full: np.ndarray
    halflength: float
    h: float
    bias: float
    method: str  # "bisection" or "grid"


def optimal_flci(sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, M: float, alpha: float,
                 *, num_points: int = 100, seed: int = 0) -> FLCI:
    """The shortest FLCI for ``l' tau_post`` under Delta^SD(M) at level ``1 - alpha``.

    Follows the R package's optimisation: the half-length ``chi(h)`` over ``h`` in
    ``[h_min, h_0]``, minimised by bisection on central differences with step
    ``min((h_0 - h_min) / num_points, h_0 * eps^(1/3))`` (a grid of ``num_points`` values if the
    derivatives are not monotone).
    """
    sigma = np.asarray(sigma, dtype=float)
    l_vec = np.asarray(l_vec, dtype=float).ravel()
    fr = _frontier(sigma, n_pre, l_vec)
    last = fr.breaks[-1]
    x_min = fr.x_at(last, last[1])
    h_min = math.sqrt(max(fr.var(x_min), 0.0))
    h0 = math.sqrt(max(fr.p0, 0.0))
    p = 1 - alpha

    def bias_at(h: float) -> tuple[float, np.ndarray] | None:
        pt = _point_for_h(fr, h)
        if pt is None:
            return None
        x, l1 = pt
        return M * (fr.bias0 + l1), x

    def chi(h: float) -> float:
        got = bias_at(h)
        if got is None or h <= 0:
            return math.nan
        return folded_normal_quantile(p, got[0] / h, seed) * h

    def done(h: float, method: str) -> FLCI:
        b, x = bias_at(h)
        half = folded_normal_quantile(p, b / h, seed) * h
        return FLCI(np.concatenate([fr.l_pre(x), l_vec]), half, h, b, method)

    if h0 - h_min <= 0 or fr.p.size == 0:
        return done(h0, "bisection")
    a, b = h_min, h0
    eps = np.finfo(float).eps
    dif = min((b - a) / num_points, abs(b) * eps ** (1 / 3))
    fa, fb = chi(a), chi(b)
    fpa = (chi(a + dif) - fa) / dif
    fpb = (chi(b - dif) - fb) / -dif
    maxiter = 10 * math.ceil(math.log(abs(b - a) / dif) / math.log(2))
    failtol = eps ** 0.5
    failed = False
    if fpa > fpb or math.isnan(fa) or math.isnan(fb):
        failed = True
    elif fpb < 0:
        return done(b, "bisection")
    elif fpa > 0:
        return done(a, "bisection")
    else:
        it = 1
        while not failed and abs(b - a) > dif:
            it += 1
            x = 0.5 * (a + b)
            fpx = (chi(x + dif) - chi(x - dif)) / (2 * dif)
            failed = (fpx > fpb + failtol) or (fpx + failtol < fpa) or it > maxiter
            if fpx > 0:
                b = x
            else:
                a = x
        if not failed:
            return done(0.5 * (a + b), "bisection")
    grid = np.linspace(h_min, h0, num_points)
    vals = np.array([chi(h) for h in grid])
    return done(float(grid[int(np.nanargmin(vals))]), "grid")
