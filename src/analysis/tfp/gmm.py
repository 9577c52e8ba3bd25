"""The second-stage machinery shared by OP, LP, ACF and GNR (used by :mod:`analysis.tfp`).

- :class:`LawOfMotion` concentrates out the productivity process
  ``omega_t = g(omega_{t-1}, ...) + xi_t``: for a candidate ``omega`` it regresses ``omega_t``
  on a polynomial in ``omega_{t-1}`` (plus year effects, Markov controls, survival
  probability) and returns the innovation ``xi``. Year effects are absorbed by within-year
  demeaning, so they cost O(n), not a column each.
- :func:`solve_moments` finds the zeros of a just-identified moment vector from many starting
  values (Levenberg-Marquardt on the weighted moments, a Gauss-Newton method), and
  :func:`distinct_solutions` merges the solutions that coincide.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> w = rng.normal(size=500); om = 0.5 + 0.7 * w + rng.normal(scale=0.1, size=500)
>>> xi, r2 = LawOfMotion(degree=1).innovation(om, w)
>>> round(float(np.std(xi)), 1), r2 > 0.9
(0.1, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import daxpy as _axpy
from scipy.optimize import least_squares

from analysis.tfp.arrays import poly_design, poly_terms

__all__ = ["LawOfMotion", "solve_moments", "distinct_solutions", "moment_weight"]


@dataclass
class LawOfMotion:
    """The regression that concentrates ``g`` out of the second-stage moments.

    Parameters
    ----------
    degree
        Degree of the polynomial in ``omega_{t-1}`` (and the survival probability, if any).
    years
        Year codes of the second-stage rows: year shifters in the law of motion (absorbed by
        demeaning). ``None``: a constant instead.
    controls
        Markov controls at t-1 (n2 x r): each enters linearly and interacted with
        ``omega_{t-1}`` (De Loecker 2013: ``g(omega_{t-1}, d_{t-1})``).
    survival
        Predicted survival probability (Olley-Pakes selection correction): the polynomial is
        then a complete polynomial of ``degree`` in (``omega_{t-1}``, survival).
    """

    degree: int = 3
    years: np.ndarray | None = None
    controls: np.ndarray | None = None
    survival: np.ndarray | None = None
    reuse_buffers: bool = False

    def __post_init__(self) -> None:
        self._buf: dict[str, np.ndarray] = {}
        if self.years is not None:
            self.years = np.asarray(self.years, dtype=np.int64)
            self._G = int(self.years.max()) + 1
            cnt = np.bincount(self.years, minlength=self._G).astype(float)
            self._inv_cnt = np.where(cnt > 0, 1.0 / np.where(cnt > 0, cnt, 1.0), 0.0)

    def design(self, w: np.ndarray) -> np.ndarray:
        """Regressors of ``g`` at lagged productivity ``w`` (no constant), Fortran-ordered.

        Powers are of ``w`` standardised (the spanned space, hence ``xi``, is unchanged).
        """
        n = w.size
        wz = np.subtract(w, w.mean(), out=self._buffer("wz", n))
        sd = np.sqrt(float(wz @ wz) / n)
        if sd > 0:
            wz /= sd
        if self.survival is not None:
            s = self.survival
            sz = (s - s.mean()) / (s.std() if s.std() > 0 else 1.0)
            base = poly_design(np.column_stack([wz, sz]), poly_terms(2, self.degree, include_bias=False))
        else:
            base = None
        n_ctrl = 0 if self.controls is None else 2 * self.controls.shape[1]
        k = (base.shape[1] if base is not None else self.degree) + n_ctrl
        P = self._buffer("P", n, k)
        if base is not None:
            P[:, : base.shape[1]] = base
            j = base.shape[1]
        else:
            P[:, 0] = wz
            for d in range(1, self.degree):
                np.multiply(P[:, d - 1], wz, out=P[:, d])
            j = self.degree
        if self.controls is not None:
            for c in range(self.controls.shape[1]):
                P[:, j] = self.controls[:, c]
                np.multiply(self.controls[:, c], wz, out=P[:, j + 1])
                j += 2
        return P

    def innovation(self, omega: np.ndarray, w: np.ndarray, *, r2: bool = True) -> tuple[np.ndarray, float]:
        """Innovation ``xi = omega - g_hat(w)`` and the within-year R^2 of the law of motion.

        Solved from the normal equations of ``omega`` on ``[1 or year dummies, P(w)]``; the
        dummies are handled by a Schur complement (their cross-product is diagonal), so the
        cost is a few passes over the data whatever the number of years.

        The R^2 (share of the variance of ``omega_t`` explained by ``g``, net of year effects)
        measures the persistence of the implied productivity process; :mod:`analysis.tfp`
        uses it to tell the ACF root from the degenerate one. ``r2=False`` skips it (NaN).
        """
        if self.controls is None and self.survival is None:
            return self._innovation_poly(omega, w, r2)
        P = self.design(w)
        PtP = P.T @ P
        Pto = P.T @ omega
        if self.years is None:
            n = omega.size
            s_p = P.sum(axis=0)
            s_o = float(omega.sum())
            M = PtP - np.outer(s_p, s_p) / n
            rhs = Pto - s_p * s_o / n
            coef = _solve_small(M, rhs)
            xi = np.dot(P, coef, out=self._buffer("xi", n))
            np.subtract(omega, xi, out=xi)
            xi -= (s_o - s_p @ coef) / n
            tss = float(omega @ omega) - s_o * s_o / n
        else:
            g, G, inv = self.years, self._G, self._inv_cnt
            DP = np.column_stack([np.bincount(g, weights=P[:, j], minlength=G) for j in range(P.shape[1])])
            Do = np.bincount(g, weights=omega, minlength=G)
            M = PtP - (DP * inv[:, None]).T @ DP
            rhs = Pto - DP.T @ (Do * inv)
            coef = _solve_small(M, rhs)
            cD = (Do - DP @ coef) * inv
            xi = np.dot(P, coef, out=self._buffer("xi", omega.size))
            np.subtract(omega, xi, out=xi)
            xi -= cD[g]
            tss = float(omega @ omega) - float(Do @ (Do * inv))
        if not r2:
            return xi, np.nan
        return xi, (1.0 - float(xi @ xi) / tss) if tss > 0 else 0.0

    def _buffer(self, name: str, n: int, k: int | None = None) -> np.ndarray:
        """A work array of length ``n`` (or a Fortran-ordered ``n x k`` matrix): reused across calls
        when ``reuse_buffers`` (then the returned ``xi`` is overwritten by the next call), fresh
        otherwise. At census size a fresh regressor matrix each criterion evaluation was mostly page
        faults (above malloc's mmap threshold every allocation maps new memory)."""
        shape = (n,) if k is None else (n, k)
        if not self.reuse_buffers:
            return np.empty(shape, order="F")
        b = self._buf.get(name)
        if b is None or b.shape != shape:
            b = self._buf[name] = np.empty(shape, order="F")
        return b

    def _innovation_poly(self, omega: np.ndarray, w: np.ndarray, r2: bool) -> tuple[np.ndarray, float]:
        """Fast path (no controls, no survival): the normal equations of ``omega`` on
        ``[1 or year dummies, wz, ..., wz^d]`` from dot products of powers of ``wz``; ``xi``
        updated in place (BLAS axpy). Same result as the general path, a third of the passes."""
        n, d = w.size, self.degree
        wz = np.subtract(w, w.mean(), out=self._buffer("w0", n))
        sd = np.sqrt(float(wz @ wz) / n)
        if sd > 0:
            wz *= 1.0 / sd
        pw = [wz]
        for j in range(1, d):
            pw.append(np.multiply(pw[-1], wz, out=self._buffer(f"w{j}", n)))
        PtP = np.empty((d, d))
        for i in range(d):
            for j in range(i, d):
                PtP[i, j] = PtP[j, i] = pw[i] @ pw[j]
        Pto = np.array([p @ omega for p in pw])
        if self.years is None:
            s_p = np.array([p.sum() for p in pw])
            s_o = float(omega.sum())
            coef = _solve_small(PtP - np.outer(s_p, s_p) / n, Pto - s_p * s_o / n)
            xi = np.subtract(omega, (s_o - s_p @ coef) / n, out=self._buffer("xi", n))
            tss_sub = s_o * s_o / n
        else:
            g, G, inv = self.years, self._G, self._inv_cnt
            DP = np.column_stack([np.bincount(g, weights=p, minlength=G) for p in pw])
            Do = np.bincount(g, weights=omega, minlength=G)
            coef = _solve_small(PtP - (DP * inv[:, None]).T @ DP, Pto - DP.T @ (Do * inv))
            xi = omega - ((Do - DP @ coef) * inv)[g]
            tss_sub = float(Do @ (Do * inv))
        for c, p in zip(coef, pw):
            _axpy(p, xi, a=-float(c))
        if not r2:
            return xi, np.nan
        tss = float(omega @ omega) - tss_sub
        return xi, (1.0 - float(xi @ xi) / tss) if tss > 0 else 0.0


def _solve_small(M: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(M, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(M, rhs, rcond=None)[0]


def moment_weight(Z: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor ``U`` with ``U'U = (Z_c'Z_c / n)^-1`` (``Z_c`` centred).

    With this weight ``n * |U m|^2 / var(xi)`` is the Sargan-type criterion: scale free, zero at
    an exact root, chi-squared with (moments - parameters) degrees of freedom under
    homoskedasticity.
    """
    Zc = Z - Z.mean(axis=0)
    S = Zc.T @ Zc / Z.shape[0]
    W = np.linalg.pinv(S)
    W = (W + W.T) / 2
    try:
        return np.linalg.cholesky(W).T
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(W)
        return (V * np.sqrt(np.clip(w, 0, None))).T


def solve_moments(
    fun: Callable[[np.ndarray], np.ndarray],
    starts: np.ndarray,
    *,
    max_nfev: int | None = None,
    xtol: float = 1e-9,
) -> list[tuple[np.ndarray, float, bool, int]]:
    """Minimise ``|fun(b)|^2`` (weighted moments) from each row of ``starts``.

    Levenberg-Marquardt (MINPACK through :func:`scipy.optimize.least_squares`) with
    forward-difference Jacobians: a damped Gauss-Newton method, fast for a handful of
    parameters. Failed starts (non-finite moments) are skipped.

    Returns
    -------
    list of (solution, cost |fun|^2, converged, function evaluations)
    """
    out = []
    for x0 in np.atleast_2d(starts):
        try:
            r = least_squares(
                fun, np.asarray(x0, dtype=float), method="lm", xtol=xtol, ftol=1e-15, gtol=1e-15,
                max_nfev=max_nfev or 100 * (len(x0) + 1),
            )
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            continue
        if np.all(np.isfinite(r.x)) and np.isfinite(r.cost):
            out.append((r.x, 2.0 * float(r.cost), bool(r.status > 0), int(r.nfev)))
    return out


def distinct_solutions(
    sols: list[tuple[np.ndarray, float, bool, int]], tol: float = 1e-3
) -> list[tuple[np.ndarray, float, int]]:
    """Merge solutions closer than ``tol`` (max abs difference); keep the lowest cost one.

    Returns ``(solution, cost, number of starts that reached it)``, sorted by cost.
    """
    groups: list[list] = []
    for x, cost, _, _ in sorted(sols, key=lambda s: s[1]):
        for g in groups:
            if np.max(np.abs(g[0] - x)) < tol:
                g[2] += 1
                break
        else:
            groups.append([x, cost, 1])
    return [(g[0], g[1], g[2]) for g in groups]
