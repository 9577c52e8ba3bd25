"""Robust confidence sets of Rambachan and Roth (2023) for one value of M (or Mbar).

Glue between the restrictions (:mod:`._honest_deltas`), the FLCI (:mod:`._honest_flci`) and the
conditional / hybrid tests (:mod:`._honest_arp`), with the R package's defaults for the method
and the grid of the test inversion:

* smoothness (Delta^SD and its sign / monotone variants): 1,000 grid points over the first-stage
  FLCI for the C-F hybrid, otherwise over the identified set at ``betahat = 0`` widened by
  20 standard errors of ``l' betahat_post`` (mirrored for a negative sign restriction, as R);
* relative magnitudes (Delta^RM, Delta^SDRM and variants): 1,000 points over
  ``[-20 se, 20 se]`` around 0 (the identified set under parallel trends), R's ``grid.lb`` /
  ``grid.ub`` when given.

Where R's default grid misses the set (empty on it, or cut at an end: with millions of firm-years
``|estimate| / se`` is far above 20, so ``[-20 se, 20 se]`` around 0 does not reach the estimate),
the test is inverted again on a grid around the estimate, widened until the set is closed, and a
note says so. R would report an empty or cut set there; given grid bounds are always kept.

The set is ``[min, max]`` of the accepted grid points, as the R package reports it (the accepted
region is an interval in all its examples; ``accept`` keeps the whole grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from analysis.did._honest_arp import FLCIHybrid, accept_grid
from analysis.did._honest_deltas import Polyhedron, identified_set, polyhedra
from analysis.did._honest_flci import optimal_flci

__all__ = ["METHODS", "RobustSet", "default_method", "delta_name", "original_ci", "robust_set"]

METHODS = {"FLCI": "FLCI", "C-F": "FLCI", "C-LF": "LF", "Conditional": "ARP", "ARP": "ARP"}


@dataclass
class RobustSet:
    """One robust confidence set: bounds, the method used and the grid (if a test was inverted)."""

    lb: float
    ub: float
    method: str
    delta: str
    grid: np.ndarray | None = None
    accept: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def delta_name(family: str, bias: str | None, mono: str | None) -> str:
    """The R package's label of the restriction, e.g. ``DeltaSDNB`` or ``DeltaRMD``."""
    suffix = ""
    if bias is not None:
        suffix = "PB" if bias == "positive" else "NB"
    elif mono is not None:
        suffix = "I" if mono == "increasing" else "D"
    return f"Delta{family}{suffix}"


def default_method(family: str, bias: str | None, mono: str | None) -> str:
    """R's choice: FLCI for Delta^SD, C-F with a sign or shape restriction, C-LF for RM / SDRM."""
    if family == "SD":
        return "FLCI" if bias is None and mono is None else "C-F"
    return "C-LF"


def original_ci(beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """``l' betahat_post`` with its standard error and normal confidence interval (R's
    ``constructOriginalCS``): returns ``(estimate, se, crit)``."""
    post = slice(n_pre, n_pre + l_vec.size)
    est = float(l_vec @ beta[post])
    se = float(np.sqrt(l_vec @ sigma[post, post] @ l_vec))
    return est, se, float(stats.norm.ppf(1 - alpha / 2))


def _bias_scale(beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray) -> float:
    """How far one unit of M can move ``l' tau_post`` under the relative-magnitude restrictions,
    with room for sampling noise: ``sum_k |l_k| k (max_s |d_s| + 20 max_s sd(d_s))`` over the
    pre-period first differences ``d_s`` (the reference period's coefficient is 0). The width of
    the re-centred grid of :func:`robust_set`, not a bound the result relies on (the grid is
    widened until the set is closed)."""
    D = np.zeros((n_pre, n_pre))                     # d_s = beta_{s+1} - beta_s, the last one 0 - beta_{-1}
    for s in range(n_pre):
        D[s, s] = -1.0
        if s + 1 < n_pre:
            D[s, s + 1] = 1.0
    d = D @ beta[:n_pre]
    sd = np.sqrt(np.clip(np.diag(D @ sigma[:n_pre, :n_pre] @ D.T), 0, None))
    k = np.arange(1, l_vec.size + 1)
    return float(np.sum(np.abs(l_vec) * k) * (np.max(np.abs(d)) + 20 * np.max(sd))) if n_pre else 0.0


def _vbar(A: np.ndarray, l_flci: np.ndarray) -> np.ndarray:
    """A vector with ``A' vbar`` closest to ``l_flci`` (least squares, minimum norm)."""
    return np.linalg.lstsq(A.T, l_flci, rcond=None)[0]


def robust_set(
    beta: np.ndarray,
    sigma: np.ndarray,
    n_pre: int,
    l_vec: np.ndarray,
    *,
    family: str,
    M: float,
    method: str,
    bias: str | None = None,
    mono: str | None = None,
    alpha: float = 0.05,
    grid_points: int = 1000,
    grid_lb: float | None = None,
    grid_ub: float | None = None,
    seed: int = 0,
    solver: str = "auto",
) -> RobustSet:
    """The robust confidence set for ``l' tau_post`` under one Delta at one M (see module doc)."""
    n_post = l_vec.size
    name = delta_name(family, bias, mono)
    notes: list[str] = []
    kappa = alpha / 10
    sd_theta = float(np.sqrt(l_vec @ sigma[n_pre:, n_pre:] @ l_vec))
    if method == "FLCI":
        if family != "SD":
            raise ValueError("the FLCI is defined for smoothness restrictions (Delta^SD) only")
        if bias is not None or mono is not None:
            notes.append("the FLCI does not use the sign or shape restriction")
        f = optimal_flci(sigma, n_pre, l_vec, M, alpha, seed=seed)
        centre = float(f.l_full @ beta)
        return RobustSet(centre - f.halflength, centre + f.halflength, "FLCI", name, notes=notes)
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    hybrid = METHODS[method]
    if family != "SD" and hybrid == "FLCI":
        raise ValueError("relative-magnitude sets use method 'C-LF' or 'Conditional' (as the R package)")
    polys: list[Polyhedron] = polyhedra(family, n_pre, n_post, M, bias=bias, mono=mono)
    flci = None
    if family == "SD":
        (poly,) = polys
        if hybrid == "FLCI":
            f = optimal_flci(sigma, n_pre, l_vec, M, kappa, seed=seed)
            flci = FLCIHybrid(f.l_full, f.halflength, _vbar(poly.A, f.l_full) if n_post > 1 else None)
            centre = float(f.l_full @ beta)
            lo, hi = centre - f.halflength, centre + f.halflength
        else:
            id_lb, id_ub = identified_set(np.zeros(beta.size), l_vec, n_pre, polys)
            if bias == "negative" and n_post > 1:
                id_lb, id_ub = -id_ub, -id_lb
            lo, hi = id_lb - 20 * sd_theta, id_ub + 20 * sd_theta
    else:
        lo, hi = -20 * sd_theta, 20 * sd_theta
    lo = lo if grid_lb is None else float(grid_lb)
    hi = hi if grid_ub is None else float(grid_ub)

    def invert(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        grid = np.linspace(lo, hi, int(grid_points))
        accept = np.zeros(grid.size, dtype=bool)
        for poly in polys:
            A, d, rows = poly.A, poly.d, poly.rows
            if n_post == 1 and family != "SD":
                keep = np.flatnonzero(A[:, -1] != 0)
                A, d = A[keep], d[keep]
            elif n_post == 1:
                rows = np.arange(A.shape[0])
            accept |= accept_grid(beta, sigma, n_pre, l_vec, A, d, rows, grid, alpha=alpha, hybrid=hybrid,
                                  kappa=kappa, flci=flci, seed=seed, solver=solver)
        return grid, accept

    grid, accept = invert(lo, hi)
    missed = hybrid != "FLCI" and grid_lb is None and grid_ub is None and (not accept.any() or accept[0] or accept[-1])
    if missed:
        # R's default grid assumes the set lies within 20 standard errors of the identified set at
        # betahat = 0; with millions of observations |estimate| / se exceeds 20 and the set falls
        # outside it (empty, or cut at an end). Re-centre on the estimate, widened by M times the
        # largest bound the restriction allows, and widen until the set is closed on the grid.
        est = float(l_vec @ beta[n_pre:n_pre + n_post])
        half = 20 * sd_theta + float(M) * _bias_scale(beta, sigma, n_pre, l_vec)
        for _ in range(6):
            grid, accept = invert(est - half, est + half)
            if accept.any() and not (accept[0] or accept[-1]):
                break
            half *= 2
        notes.append(
            f"R's default grid [{lo:.4g}, {hi:.4g}] (20 standard errors around the identified set at "
            f"betahat = 0) missed the confidence set (|estimate| / se = {abs(est) / sd_theta:.0f}); inverted the test on "
            f"[{grid[0]:.4g}, {grid[-1]:.4g}] around the estimate instead"
        )
    if accept.any():
        lb, ub = float(grid[accept].min()), float(grid[accept].max())
        if (accept[0] or accept[-1]) and hybrid != "FLCI":
            notes.append("the confidence set is open at an end of the grid; its length may not be accurate (widen grid_lb / grid_ub)")
    else:
        lb = ub = float("nan")
        notes.append("no grid point is accepted: the confidence set is empty on this grid")
    return RobustSet(lb, ub, method, name, grid, accept, notes)
