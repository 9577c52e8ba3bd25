"""Conditional and hybrid moment-inequality tests of Andrews, Roth and Pakes (ARP, 2023) as used by
Rambachan and Roth (2023, Section 5), inverted over a grid of values of ``theta = l' tau_post``.

For one polyhedron ``Delta = {delta : A delta <= d}`` and a candidate ``theta``, the null
``theta`` is in the identified set is ``E[Y] - a theta - X nu <= 0`` for some nuisance ``nu``, with
``Y = A betahat - d`` (covariance ``Sigma_Y = A Sigma A'``) and ``(a, X) = A_post Gamma^{-1}``, where
``Gamma`` is invertible with first row ``l'`` (so the post-treatment effects are reparametrised as
``theta`` and ``nu``). The statistic is the value of the linear programme

    eta(y) = min_{eta, nu} eta   s.t.   y - X nu <= eta * sd(y),

whose dual is ``max_lambda lambda' y`` over the polytope ``P = {lambda >= 0, sd'lambda = 1,
X'lambda = 0}``. The conditional test conditions on the optimal dual vertex ``gamma`` and on the part
of ``y`` orthogonal to ``gamma'y`` (ARP, Section 5): ``gamma'y`` is then normal truncated to
``[v_lo, v_up]``, the values for which ``gamma`` stays optimal, and the test rejects when
``eta / sigma_B`` exceeds ``max(0, q_{1-alpha})`` of that truncated normal (``sigma_B^2 = gamma'
Sigma_Y gamma``). Hybrids add a first-stage test of size ``kappa``: the least-favourable
critical value ("LF", simulated) or the fixed-length confidence interval ("FLCI"), and use size
``(alpha - kappa) / (1 - kappa)`` in the second stage.

Two exact ways to the same numbers:

* **vertices** (default whenever the polytope has few candidate bases, e.g. relative magnitudes
  with up to ~8 post periods): the vertices of ``P`` are enumerated once; ``eta`` over the whole
  grid, the least-favourable simulations and ``v_lo``, ``v_up`` are then matrix products, with no
  linear programme per grid point;
* **linear programmes** otherwise (e.g. smoothness with 23 post periods): one HiGHS solve (SciPy)
  gives an optimal basis, which a parametric dual simplex then carries along the grid
  (``y = Y - a theta``), from one least-favourable draw to the next, and at each grid point along
  ``y = s + b c`` up and down from ``c = gamma'y`` until the optimal dual vertex changes, which is
  ``v_up`` / ``v_lo``. ``solver="lp-pointwise"`` instead solves HiGHS at every basis change and
  uses Newton steps on the dual (slow; an independent check).

With one post-treatment period there is no nuisance; the R package then uses the conditional test
on the normalised moments with the largest moment selected, and so do we (``_accept_no_nuisance``;
note its first-stage LF test does not truncate ``v_up``, as in the R package).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy.optimize import linprog

from analysis.did._honest_rng import r_rmvnorm

__all__ = ["accept_grid", "gamma_matrix", "lf_critical_value", "tn_quantile"]

_TOL_LAMBDA = 1e-6  # dual values above this mark binding moments (as the R package)
_MAX_SUBSETS = 60_000  # vertex enumeration up to this many candidate bases


def gamma_matrix(l_vec: np.ndarray) -> np.ndarray:
    """An invertible matrix with first row ``l'``: ``l'`` then the unit vectors except the one of
    ``l``'s last non-zero entry (the pivots of the reduced row echelon form of ``[l, I]``)."""
    l_vec = np.asarray(l_vec, dtype=float).ravel()
    nz = np.flatnonzero(l_vec)
    if nz.size == 0:
        raise ValueError("l_vec must not be all zeros")
    n = l_vec.size
    rows = [l_vec] + [np.eye(n)[j] for j in range(n) if j != nz[-1]]
    return np.vstack(rows)


def tn_quantile(p: float | np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Quantile ``p`` of the standard normal truncated to ``[lo, hi]``, accurate in the tails."""
    p = np.broadcast_to(np.asarray(p, dtype=float), np.broadcast(lo, hi).shape)
    lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
    out = np.empty(lo.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        right = lo > 0
        if np.any(right):  # both ends in the upper tail: work with survival functions
            lt = np.logaddexp(np.log1p(-p[right]) + special.log_ndtr(-lo[right]), np.log(p[right]) + special.log_ndtr(-hi[right]))
            out[right] = -special.ndtri_exp(lt)
        left = ~right
        if np.any(left):
            lt = np.logaddexp(np.log1p(-p[left]) + special.log_ndtr(lo[left]), np.log(p[left]) + special.log_ndtr(hi[left]))
            out[left] = special.ndtri_exp(lt)
    return np.clip(out, lo, hi)


def _quantile7(x: np.ndarray, p: float) -> float:
    """R's default sample quantile (type 7), ignoring NaN."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return float(np.quantile(x, p, method="linear")) if x.size else float("nan")


# ---------------------------------------------------------------------------------------------
# the linear programme and its dual polytope
# ---------------------------------------------------------------------------------------------


@dataclass
class _Problem:
    """The ARP rows of one polyhedron: ``y(theta) = Y - a theta``, ``W = [sd, X]``, ``Sigma``."""

    Y: np.ndarray
    a: np.ndarray
    W: np.ndarray
    S: np.ndarray
    vertices: np.ndarray | None  # rows are the vertices of the dual polytope, None if not enumerated
    unbounded: bool  # the primal is unbounded (no dual vertex): the test never rejects


def _reduce_columns(X: np.ndarray) -> np.ndarray:
    """An orthonormal-scaled basis of the column space of X (same linear programme values)."""
    if X.shape[1] == 0:
        return X
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    keep = s > max(X.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    return U[:, keep] * s[keep]


def _enumerate_vertices(W: np.ndarray) -> np.ndarray | None:
    """Vertices of ``{lambda >= 0 : W' lambda = e_1}`` by enumerating bases; ``None`` if too many."""
    m, r = W.shape
    if math.comb(m, r) > _MAX_SUBSETS:
        return None
    subsets = np.array(list(itertools.combinations(range(m), r)), dtype=np.intp)
    if subsets.size == 0:
        return np.zeros((0, m))
    mats = np.transpose(W[subsets], (0, 2, 1))  # (n, r, r): W_S'
    sv = np.linalg.svd(mats, compute_uv=False)
    ok = sv[:, -1] > 1e-10 * np.maximum(sv[:, 0], 1e-300)
    subsets, mats = subsets[ok], mats[ok]
    if subsets.shape[0] == 0:
        return np.zeros((0, m))
    e1 = np.zeros(r)
    e1[0] = 1.0
    lam_s = np.linalg.solve(mats, np.broadcast_to(e1, (mats.shape[0], r))[..., None])[..., 0]
    feas = np.all(lam_s >= -1e-11, axis=1)
    lam_s, subsets = lam_s[feas], subsets[feas]
    V = np.zeros((lam_s.shape[0], m))
    np.put_along_axis(V, subsets, np.maximum(lam_s, 0.0), axis=1)
    if V.shape[0]:
        resid = np.abs(V @ W - e1).max(axis=1)
        V = V[resid < 1e-8]
        V = np.unique(np.round(V, 12), axis=0)
    return V


def _problem(Y: np.ndarray, a: np.ndarray, X: np.ndarray, S: np.ndarray, *, method: str) -> _Problem:
    sd = np.sqrt(np.maximum(np.diag(S), 0.0))
    Xr = _reduce_columns(X)
    W = np.column_stack([sd, Xr])
    V = None
    if method in ("auto", "vertices"):
        V = _enumerate_vertices(W)
        if V is None and method == "vertices":
            raise ValueError("too many candidate bases to enumerate the dual vertices")
    if V is not None:
        return _Problem(Y, a, W, S, V, unbounded=V.shape[0] == 0)
    # is the primal bounded? (some lambda in the dual polytope)
    feas = linprog(np.zeros(W.shape[0]), A_eq=W.T, b_eq=np.eye(W.shape[1])[0], bounds=(0, None), method="highs")
    return _Problem(Y, a, W, S, None, unbounded=feas.status != 0)


def _lp_eta(y: np.ndarray, W: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, bool]:
    """``min eta s.t. W (eta, nu) >= y``: value, solution, dual multipliers (>= 0), success."""
    c = np.zeros(W.shape[1])
    c[0] = 1.0
    res = linprog(c, A_ub=-W, b_ub=-y, bounds=(None, None), method="highs")
    if res.status != 0:
        return float("nan"), np.full(W.shape[1], np.nan), np.full(W.shape[0], np.nan), False
    return float(res.fun), res.x, -np.asarray(res.ineqlin.marginals), True


def _lp_dual_value(f: np.ndarray, W: np.ndarray) -> tuple[float, np.ndarray]:
    """``max f' lambda`` over the dual polytope."""
    e1 = np.zeros(W.shape[1])
    e1[0] = 1.0
    res = linprog(-f, A_eq=W.T, b_eq=e1, bounds=(0, None), method="highs")
    if res.status != 0:
        return float("nan"), np.full(W.shape[0], np.nan)
    return float(-res.fun), res.x


def _dual_truncation(eta: float, gamma: np.ndarray, y: np.ndarray, S: np.ndarray, W: np.ndarray) -> tuple[float, float]:
    """``[v_lo, v_up]``: the values c of ``gamma'y`` (other directions fixed) for which ``gamma``
    stays optimal, by Newton steps on the convex piecewise-linear ``max_lambda lambda'(s + b c) - c``
    (exact at a kink; bisection as a fallback)."""
    q = float(gamma @ S @ gamma)
    b = S @ gamma / q
    s = y - b * float(gamma @ y)
    sigma_b = math.sqrt(q)
    tol = 1e-6

    def g(c: float) -> tuple[float, np.ndarray]:
        val, lam = _lp_dual_value(s + b * c, W)
        return val - c, lam

    g0, _ = g(eta)
    if not np.isfinite(g0) or abs(g0) > tol:
        return eta, math.inf  # eta is not a solution: do not reject (the R package's rule)
    out = []
    for start, sign in ((max(100.0, eta + 20 * sigma_b), 1.0), (min(-100.0, eta - 20 * sigma_b), -1.0)):
        gv, lam = g(start)
        if abs(gv) <= tol:
            out.append(sign * math.inf)
            continue
        c = start
        done = False
        for _ in range(50):
            denom = 1.0 - float(lam @ b)
            if abs(denom) < 1e-14:
                break
            c_new = float(lam @ s) / denom
            gv, lam = g(c_new)
            c = c_new
            if abs(gv) <= tol:
                done = True
                break
        if not done:  # bisection between eta (a solution) and c (not a solution)
            lo, hi = (eta, c) if sign > 0 else (c, eta)
            while abs(hi - lo) > tol:
                mid = 0.5 * (lo + hi)
                ok = abs(g(mid)[0]) <= tol
                if sign > 0:
                    lo, hi = (mid, hi) if ok else (lo, mid)
                else:
                    lo, hi = (lo, mid) if ok else (mid, hi)
            c = lo if sign > 0 else hi
        out.append(c)
    vup, vlo = out
    return vlo, vup


@dataclass
class _Solution:
    """Per grid point: statistic, optimal dual vertex (ARP rows) and truncation bounds."""

    eta: np.ndarray
    gamma: np.ndarray  # (G, m)
    vlo: np.ndarray
    vup: np.ndarray
    ok: np.ndarray  # the programme was solved


def _solve_vertices(P: _Problem, theta: np.ndarray) -> _Solution:
    V, S = P.vertices, P.S
    E, F = V @ P.Y, V @ P.a
    vals = E[:, None] - F[:, None] * theta[None, :]  # (n_v, G)
    best = np.argmax(vals, axis=0)
    eta = vals[best, np.arange(theta.size)]
    K = V @ S @ V.T
    kv = np.diag(K)
    ratio = K[:, best] / kv[best][None, :]  # u'b_v for every vertex u (rows) and grid point
    numer = vals - ratio * eta[None, :]
    denom = 1.0 - ratio
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = numer / denom
    pos, neg = denom > 1e-10, denom < -1e-10
    vlo = np.where(pos, bound, -np.inf).max(axis=0)
    vup = np.where(neg, bound, np.inf).min(axis=0)
    return _Solution(eta, V[best], vlo, vup, np.ones(theta.size, dtype=bool))


class _Basis:
    """A basis of ``min eta s.t. W x >= y`` (x = (eta, nu) free): ``r`` rows with ``W_B`` invertible
    and dual ``lambda_B = W_B^{-T} e_1 >= 0``, moved along ``y(t) = y0 + t dy`` by dual simplex
    pivots (parametric right-hand side), so that it stays optimal; Bland's rule against cycling."""

    def __init__(self, W: np.ndarray, rows: list[int]):
        self.W = W
        self.m, self.r = W.shape
        self.set(rows)

    def set(self, rows: list[int], Binv: np.ndarray | None = None) -> None:
        self.B = list(rows)
        self.Binv = np.linalg.inv(self.W[self.B]) if Binv is None else Binv
        self.lam = self.Binv[0].copy()  # dual values of the basic rows
        self.updates = 0

    def copy(self) -> _Basis:
        other = _Basis.__new__(_Basis)
        other.W, other.m, other.r = self.W, self.m, self.r
        other.B, other.Binv, other.lam, other.updates = list(self.B), self.Binv.copy(), self.lam.copy(), self.updates
        return other

    def replace(self, leave: int, j: int, alpha: np.ndarray) -> None:
        """Row ``j`` (``W_j = alpha W_B``) replaces basis position ``leave``: product-form update
        of the inverse, refactorised every 50 pivots."""
        self.B[leave] = j
        if self.updates >= 50:
            self.set(self.B)
            return
        u = alpha.copy()
        u[leave] -= 1.0
        col = self.Binv[:, leave] / alpha[leave]
        self.Binv -= np.outer(col, u)
        self.lam = self.Binv[0].copy()
        self.updates += 1

    def full_dual(self) -> np.ndarray:
        g = np.zeros(self.m)
        g[self.B] = self.lam
        return g

    def advance(self, y0: np.ndarray, dy: np.ndarray, t: float, t_to: float, stop=None, max_pivots: int = 5000):
        """Pivot until the basis is optimal on ``[t, t_to]``; ``stop(self)`` after a pivot that
        changes the dual may end the sweep: returns ``(t_reached, stopped)``."""
        W, tol = self.W, 1e-9
        nonbasic = np.ones(self.m, dtype=bool)
        for _ in range(max_pivots):
            nonbasic[:] = True
            nonbasic[self.B] = False
            x0 = self.Binv @ y0[self.B]
            dx = self.Binv @ dy[self.B]
            sl0 = W @ x0 - y0
            dsl = W @ dx - dy
            scale = 1.0 + np.abs(y0) + np.abs(dy) * abs(t)
            cand = nonbasic & (dsl < -tol * scale)
            if not cand.any():
                return t_to, False
            tj = np.full(self.m, np.inf)
            tj[cand] = -sl0[cand] / dsl[cand]
            tmin = float(tj.min())
            if tmin > t_to:
                return t_to, False
            tmin = max(tmin, t)
            j = int(np.flatnonzero(tj <= max(tmin, t) + 1e-12 * (1 + abs(tmin)))[0])  # Bland: smallest index
            alpha = W[j] @ self.Binv  # W_j = alpha W_B
            okp = alpha > 1e-12
            if not okp.any():
                raise np.linalg.LinAlgError("dual simplex: no leaving row")
            ratio = np.full(self.r, np.inf)
            ratio[okp] = self.lam[okp] / alpha[okp]
            rmin = float(ratio.min())
            ties = np.flatnonzero(ratio <= rmin + 1e-12 * (1 + rmin))
            leave = int(ties[np.argmin(np.asarray(self.B)[ties])])
            self.replace(leave, j, alpha)
            t = tmin
            if stop is not None and rmin > 1e-12 and stop(self):
                return t, True
        raise np.linalg.LinAlgError("dual simplex: too many pivots")


def _initial_basis(W: np.ndarray, y: np.ndarray) -> _Basis | None:
    """An optimal basis at ``y`` from a HiGHS solution: the rows with positive duals completed by
    binding rows to an invertible ``W_B``."""
    val, x, lam, good = _lp_eta(y, W)
    if not good:
        return None
    m, r = W.shape
    slack = W @ x - y
    order = np.lexsort((slack, ~(lam > _TOL_LAMBDA)))  # positive duals first, then tightest rows
    rows: list[int] = []
    for i in order:
        if len(rows) == r:
            break
        cand = rows + [int(i)]
        if np.linalg.matrix_rank(W[cand], tol=1e-10) == len(cand):
            rows = cand
    if len(rows) < r:
        return None
    basis = _Basis(W, rows)
    if np.any(basis.lam < -1e-9):
        return None
    return basis


def _solve_lp(P: _Problem, theta: np.ndarray) -> _Solution:
    """Linear programmes: one HiGHS solve at the smallest theta, then a parametric dual simplex
    along the grid (``y = Y - a theta``) and, at each grid point, along ``y = s + b c`` upwards and
    downwards from ``c = gamma'y`` until the optimal dual vertex changes: ``v_up``, ``v_lo``."""
    Y, a, W, S = P.Y, P.a, P.W, P.S
    G, m = theta.size, W.shape[0]
    eta = np.full(G, np.nan)
    gamma = np.full((G, m), np.nan)
    vlo, vup = np.full(G, -np.inf), np.full(G, np.inf)
    ok = np.zeros(G, dtype=bool)
    order = np.argsort(theta)
    basis = None
    t_prev = None
    for k in order:
        t = float(theta[k])
        y = Y - a * t
        try:
            if basis is None:
                basis = _initial_basis(W, y)
                if basis is None:
                    continue
            else:
                basis.advance(Y, -a, t_prev, t)
        except np.linalg.LinAlgError:
            basis = _initial_basis(W, y)
            if basis is None:
                continue
        t_prev = t
        x = basis.Binv @ y[basis.B]
        gam = basis.full_dual()
        eta[k], gamma[k], ok[k] = x[0], gam, True
        q = float(gam @ S @ gam)
        if q < np.finfo(float).eps:
            continue
        b = S @ gam / q
        s = y - b * x[0]
        for sign in (1.0, -1.0):  # c = x[0] + sign * u, u >= 0
            probe = basis.copy()
            dy = sign * b
            y0 = s + b * x[0]

            def stop(bs, dy=dy, sign=sign):
                # the new dual vertex's value grows faster in u than c = gamma'y does
                return float(bs.lam @ dy[bs.B]) > sign + 1e-9

            try:
                u, stopped = probe.advance(y0, dy, 0.0, 1e12, stop=stop)
            except np.linalg.LinAlgError:
                lo_, up_ = _dual_truncation(x[0], gam, y, S, W)
                vlo[k], vup[k] = lo_, up_
                break
            bound = x[0] + sign * u if stopped else sign * np.inf
            if sign > 0:
                vup[k] = bound
            else:
                vlo[k] = bound
    return _Solution(eta, gamma, vlo, vup, ok)


def _solve_lp_pointwise(P: _Problem, theta: np.ndarray) -> _Solution:
    """One HiGHS programme per optimal basis met along the grid, Newton steps on the dual for
    degenerate solutions (slower; kept as an independent check of :func:`_solve_lp`)."""
    Y, a, W, S = P.Y, P.a, P.W, P.S
    G, (m, r) = theta.size, W.shape
    eta = np.full(G, np.nan)
    gamma = np.full((G, m), np.nan)
    vlo, vup = np.full(G, -np.inf), np.full(G, np.inf)
    ok = np.zeros(G, dtype=bool)
    order = np.argsort(theta)
    i = 0
    while i < G:
        t = theta[order[i]]
        y = Y - a * t
        val, x, lam, good = _lp_eta(y, W)
        if not good:
            i += 1
            continue
        B = lam > _TOL_LAMBDA
        basic = np.flatnonzero(B)
        WB = W[basic]
        if basic.size == r and np.linalg.matrix_rank(WB) == r:
            # the basis stays optimal while the other moments stay slack
            p = np.linalg.solve(WB, Y[basic])
            qv = np.linalg.solve(WB, a[basic])
            gam = np.zeros(m)
            gam[basic] = np.linalg.solve(WB.T, np.eye(r)[0])
            nb = np.flatnonzero(~B)
            slope = W[nb] @ qv - a[nb]
            level = W[nb] @ p - Y[nb]
            lo_t, hi_t = -np.inf, np.inf
            with np.errstate(divide="ignore", invalid="ignore"):
                cut = level / slope
            if np.any(slope > 0):
                hi_t = np.min(cut[slope > 0])
            if np.any(slope < 0):
                lo_t = np.max(cut[slope < 0])
            span = [i]
            j = i + 1
            while j < G and lo_t - 1e-12 <= theta[order[j]] <= hi_t + 1e-12:
                span.append(j)
                j += 1
            idx = order[span]
            th = theta[idx]
            q = float(gam @ S @ gam)
            bvec = S @ gam / q
            rho = W[nb] @ np.linalg.solve(WB, bvec[basic]) - bvec[nb]
            x_t = p[None, :] - th[:, None] * qv[None, :]  # (n, r)
            y_t = Y[None, :] - th[:, None] * a[None, :]
            c0 = x_t[:, 0]
            slack = x_t @ W[nb].T - y_t[:, nb]
            with np.errstate(divide="ignore", invalid="ignore"):
                bnd = c0[:, None] - slack / rho[None, :]
            vlo[idx] = np.where(rho[None, :] > 0, bnd, -np.inf).max(axis=1) if nb.size else -np.inf
            vup[idx] = np.where(rho[None, :] < 0, bnd, np.inf).min(axis=1) if nb.size else np.inf
            eta[idx], gamma[idx], ok[idx] = c0, gam, True
            i = j
        else:  # degenerate: the dual approach at this point only
            k = order[i]
            eta[k], gamma[k], ok[k] = val, lam, True
            if float(lam @ S @ lam) >= np.finfo(float).eps:
                vlo[k], vup[k] = _dual_truncation(val, lam, y, S, W)
            i += 1
    return _Solution(eta, gamma, vlo, vup, ok)



def _solve(P: _Problem, theta: np.ndarray, pointwise: bool = False) -> _Solution:
    if P.vertices is not None:
        return _solve_vertices(P, theta)
    if pointwise:
        return _solve_lp_pointwise(P, theta)
    return _solve_lp(P, theta)


def lf_critical_value(P: _Problem, kappa: float, sims: int = 1000, seed: int = 0) -> float:
    """Least-favourable critical value: quantile ``1 - kappa`` of ``eta(xi)``, ``xi ~ N(0, Sigma_Y)``
    (1,000 draws of R's ``mvtnorm::rmvnorm`` after ``set.seed(seed)``, as the R package)."""
    xi = r_rmvnorm(sims, P.S, seed)
    if P.unbounded:
        return float("nan")
    if P.vertices is not None:
        etas = (xi @ P.vertices.T).max(axis=1)
    else:  # a dual-simplex homotopy from one draw to the next (a few pivots each)
        etas = np.full(sims, np.nan)
        basis, prev = None, None
        for i, x in enumerate(xi):
            try:
                if basis is None:
                    basis = _initial_basis(P.W, x)
                else:
                    basis.advance(prev, x - prev, 0.0, 1.0)
            except np.linalg.LinAlgError:
                basis = _initial_basis(P.W, x)
            if basis is None:
                etas[i] = _lp_eta(x, P.W)[0]
                continue
            etas[i] = float((basis.Binv @ x[basis.B])[0])
            prev = x
    return _quantile7(etas, 1 - kappa)


# ---------------------------------------------------------------------------------------------
# the tests over a grid of theta
# ---------------------------------------------------------------------------------------------


@dataclass
class FLCIHybrid:
    """First-stage FLCI of the C-F hybrid: ``l_flci' betahat +/- halflength`` (level 1 - kappa)."""

    l_flci: np.ndarray  # over all T coefficients
    halflength: float
    vbar: np.ndarray | None = None  # A' vbar = l_flci (nuisance case)


def _decide(eta, sigma_b, zlo, zup, size) -> np.ndarray:
    """Reject when ``eta / sigma_B`` exceeds ``max(0, q_{1-size})`` of N(0,1) truncated to
    ``[zlo, zup]``; never reject when the statistic is outside the truncation interval."""
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = eta / sigma_b
    inside = (zlo <= stat) & (stat <= zup)
    cv = np.full(eta.shape, np.inf)
    if np.any(inside):
        cv[inside] = np.maximum(0.0, tn_quantile(1 - size, zlo[inside], zup[inside]))
    return inside & (stat > cv)


def accept_grid(
    beta: np.ndarray,
    sigma: np.ndarray,
    n_pre: int,
    l_vec: np.ndarray,
    A: np.ndarray,
    d: np.ndarray,
    rows: np.ndarray,
    theta: np.ndarray,
    *,
    alpha: float,
    hybrid: str,
    kappa: float,
    flci: FLCIHybrid | None = None,
    seed: int = 0,
    solver: str = "auto",
) -> np.ndarray:
    """Which values of ``theta`` the (hybrid) conditional test of one polyhedron accepts.

    Parameters
    ----------
    hybrid
        ``"ARP"`` (conditional test), ``"LF"`` (least-favourable hybrid) or ``"FLCI"`` (FLCI hybrid).
    rows
        Rows of ``A`` used by the test (several post periods); with one post period ``A`` itself.
    solver
        ``"auto"`` (vertices when few, else linear programmes), ``"vertices"``, ``"lp"`` or
        ``"lp-pointwise"`` (HiGHS at every basis change; an independent check).
    """
    beta, sigma = np.asarray(beta, dtype=float), np.asarray(sigma, dtype=float)
    l_vec = np.asarray(l_vec, dtype=float).ravel()
    theta = np.asarray(theta, dtype=float)
    n_post = l_vec.size
    if n_post == 1:
        return _accept_no_nuisance(beta, sigma, n_pre, float(l_vec[0]), A, d, theta, alpha=alpha,
                                   hybrid=hybrid, kappa=kappa, flci=flci, seed=seed)
    Gam = gamma_matrix(l_vec)
    AG = A[:, n_pre:] @ np.linalg.inv(Gam)
    a_full, X_full = AG[:, 0], AG[:, 1:]
    Y_full = A @ beta - d
    S_full = A @ sigma @ A.T
    rows = np.asarray(rows, dtype=np.intp)
    P = _problem(Y_full[rows], a_full[rows], X_full[rows], S_full[np.ix_(rows, rows)],
                 method={"auto": "auto", "vertices": "vertices", "lp": "lp", "lp-pointwise": "lp"}[solver])
    G = theta.size
    if P.unbounded:
        warnings.warn("the linear programme for eta is unbounded; the test does not reject", RuntimeWarning, stacklevel=3)
        return np.ones(G, dtype=bool)
    reject = np.zeros(G, dtype=bool)
    live = np.ones(G, dtype=bool)
    if hybrid == "LF":
        lf_cv = lf_critical_value(P, kappa, seed=seed)
    elif hybrid == "FLCI":
        if flci is None or flci.vbar is None:
            raise ValueError("the FLCI hybrid needs the first-stage FLCI")
        vbar = flci.vbar
        vd, va = float(vbar @ d), float(vbar @ a_full)
        # first stage: |vbar'(Y - a theta) - (-vbar'd + (1 - vbar'a) theta)| <= halflength
        lin = float(vbar @ (A @ beta)) - theta
        # theta outside the first-stage FLCI; the grid ends lie on its boundary, where this
        # comparison is a floating-point tie: they count as outside (the R package rejects them
        # in all but one of its published examples, by rounding)
        first = np.abs(lin) >= flci.halflength * (1 - 1e-9)
        reject |= first
        live &= ~first
    size = alpha if hybrid == "ARP" else (alpha - kappa) / (1 - kappa)
    sol = _solve(P, theta, pointwise=solver == "lp-pointwise")
    live &= sol.ok
    if hybrid == "LF":
        first = live & (sol.eta > lf_cv)
        reject |= first
        live &= ~first
    idx = np.flatnonzero(live)
    if idx.size == 0:
        return ~reject
    gam = sol.gamma[idx]
    q = np.einsum("ij,jk,ik->i", gam, P.S, gam)
    tiny = q < np.finfo(float).eps
    sigma_b = np.sqrt(np.where(tiny, 1.0, q))
    eta = sol.eta[idx]
    vlo, vup = sol.vlo[idx].copy(), sol.vup[idx].copy()
    if hybrid == "LF":
        vup = np.minimum(vup, lf_cv)
    elif hybrid == "FLCI":
        g_full = np.zeros((idx.size, A.shape[0]))
        g_full[:, rows] = gam
        sg = g_full @ S_full  # (n, rows): (Sigma gamma)'
        sg = sg / np.where(tiny, 1.0, q)[:, None]
        y_full = Y_full[None, :] - theta[idx, None] * a_full[None, :]
        gy = np.einsum("ij,ij->i", g_full, y_full)
        s_full = y_full - sg * gy[:, None]
        vs, vc = s_full @ vbar, sg @ vbar
        dbar_hi = flci.halflength - vd + (1 - va) * theta[idx]
        dbar_lo = flci.halflength + vd - (1 - va) * theta[idx]
        # rows  vbar'(s + c sg) <= dbar_hi  and  -vbar'(s + c sg) <= dbar_lo
        with np.errstate(divide="ignore", invalid="ignore"):
            up1, up2 = (dbar_hi - vs) / vc, (dbar_lo + vs) / (-vc)
        f_lo = np.where(vc < 0, up1, np.where(vc > 0, up2, -np.inf))
        f_up = np.where(vc > 0, up1, np.where(vc < 0, up2, np.inf))
        vlo, vup = np.maximum(vlo, f_lo), np.minimum(vup, f_up)
    rej = _decide(eta, sigma_b, vlo / sigma_b, vup / sigma_b, size)
    rej = np.where(tiny, eta > 0, rej)
    reject[idx] |= rej
    return ~reject


def _accept_no_nuisance(beta, sigma, n_pre, l_scalar, A, d, theta, *, alpha, hybrid, kappa, flci, seed):
    """One post period: condition on the largest normalised moment (the R package's no-nuisance test)."""
    sd = np.sqrt(np.einsum("ij,jk,ik->i", A, sigma, A))
    At, dt = A / sd[:, None], d / sd
    e = np.zeros(beta.size)
    e[n_pre] = 1.0
    G = theta.size
    Y = beta[None, :] - (theta / l_scalar)[:, None] * e[None, :]  # (G, T)
    mom = Y @ At.T - dt[None, :]
    j = np.argmax(mom, axis=1)
    maxmom = mom[np.arange(G), j]
    reject = np.zeros(G, dtype=bool)
    size = alpha
    if hybrid == "LF":
        xi = r_rmvnorm(1000, A @ sigma @ A.T, seed) / sd[None, :]
        lf_cv = _quantile7(xi.max(axis=1), 1 - kappa)
        reject |= maxmom > lf_cv
        size = (alpha - kappa) / (1 - kappa)
    elif hybrid == "FLCI":
        if flci is None:
            raise ValueError("the FLCI hybrid needs the first-stage FLCI")
        lin = Y @ flci.l_flci
        reject |= np.abs(lin) >= flci.halflength * (1 - 1e-9)
        size = (alpha - kappa) / (1 - kappa)
    live = ~reject
    gam = At[j]  # (G, T), gamma' Sigma gamma = 1
    c = gam @ sigma  # Sigma gamma (sigma_bar = 1)
    gy = np.einsum("ij,ij->i", gam, Y)
    z = Y - c * gy[:, None]
    Abar = At[None, :, :] - gam[:, None, :]  # (G, rows, T)
    dbar = dt[None, :] - dt[j][:, None]
    if hybrid == "FLCI":
        extra = np.vstack([flci.l_flci, -flci.l_flci])
        Abar = np.concatenate([Abar, np.broadcast_to(extra, (G,) + extra.shape)], axis=1)
        dbar = np.concatenate([dbar, np.full((G, 2), flci.halflength)], axis=1)
    Ac = np.einsum("grt,gt->gr", Abar, c)
    Az = np.einsum("grt,gt->gr", Abar, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        obj = (dbar - Az) / Ac
    vlo = np.where(Ac < 0, obj, -np.inf).max(axis=1)
    vup = np.where(Ac > 0, obj, np.inf).min(axis=1)
    mu = dt[j]
    # critical value: max(0, quantile of N(mu, 1) truncated to [vlo, vup]); statistic gamma'y
    q = mu + tn_quantile(1 - size, vlo - mu, vup - mu)
    cv = np.maximum(0.0, q)
    rej2 = gy > cv
    reject |= live & rej2
    return ~reject
