"""Ackerberg, Caves and Frazer (2015) (``method="acf"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.inference import blas_threads
from analysis.tfp.arrays import PanelData
from analysis.tfp.core import CoreFit, Options
from analysis.tfp.gmm import LawOfMotion, solve_moments
from analysis.tfp.roots import (
    _default_starts,
    _finish_roots,
    _first_stage,
    _MomentProblem,
    _ols_start,
    _scale_of,
    _search_roots,
    _stage2_rows,
)


# ======================================================================================
# Ackerberg-Caves-Frazer
# ======================================================================================
def fit_acf(panel: PanelData, opt: Options, start: np.ndarray | None = None, boot: bool = False) -> CoreFit:
    """Ackerberg-Caves-Frazer (2015) two-step estimator (value added).

    First stage: ``phi = E[y | l, k, m]``, OLS on a complete polynomial of degree
    ``poly_degree`` in (free, state, proxy) (+ year dummies, + Markov controls linearly).
    Second stage: for candidate ``b``, ``omega_t = phi_t - x_t'b``; ``g`` (polynomial of
    degree ``markov_degree`` in ``omega_{t-1}``, + year shifters, + Markov controls at t-1)
    is concentrated out by OLS, and ``b`` solves ``E[xi_t (free_{t-1}, state_t)] = 0``.

    Roots: the moments are solved from a grid of starting values (:func:`_default_starts`);
    every distinct solution is kept in ``info["roots"]`` with its criterion, the persistence
    of the implied productivity and the correlation of each free input with ``xi``; one is
    picked by :func:`select_root`, with a :class:`MultipleRootsWarning` when admissible roots
    disagree. On samples above ``search_rows`` second-stage rows the search runs on a random
    subsample of firms and each distinct solution is polished on the full sample.
    """
    F, K, M = panel.free, panel.state, panel.proxy
    X = panel.inputs
    _, phi = _first_stage(panel, opt, None, np.column_stack([F, K, M]))
    cur, lag = _stage2_rows(panel)
    p = X.shape[1]
    if cur.size < 10 * (p + opt.markov_degree):
        raise ValueError(f"only {cur.size} firm-years have the previous year observed; too few for the second stage")
    codes = panel.effect_codes(opt.time_effects)
    yc = None if codes is None else codes[cur]
    controls = panel.markov[lag] if panel.markov is not None else None
    Z_all = np.column_stack([F[lag], K[cur]])

    def make_problem(mask):
        c, l_ = (cur, lag) if mask is None else (cur[mask], lag[mask])
        law = LawOfMotion(opt.markov_degree, None if yc is None else (yc if mask is None else yc[mask]),
                          None if controls is None else (controls if mask is None else controls[mask]),
                          reuse_buffers=True)
        A_cur = np.column_stack([phi[c], X[c]])  # omega(b) = A_cur @ [1, -b]: one pass
        A_lag = np.column_stack([phi[l_], X[l_]])
        om_buf, w_buf = np.empty(c.size), np.empty(c.size)

        def innovation(b, r2=True):
            v = np.r_[1.0, -np.asarray(b, dtype=float)]
            xi, pers = law.innovation(np.dot(A_cur, v, out=om_buf), np.dot(A_lag, v, out=w_buf), r2=r2)
            return xi, xi, pers

        overid = _acf_overid(panel, cur, lag, innovation) if mask is None else None
        return _MomentProblem(innovation, Z_all if mask is None else Z_all[mask], free_cur=F[c], overid=overid)

    with blas_threads():
        if boot:
            prob = make_problem(None)
            prob.scale = _scale_of(prob, start)
            sols = solve_moments(prob.weighted, start[None, :])
            coef = sols[0][0] if sols else np.full(p, np.nan)
            info: dict[str, Any] = {}
            meta: dict[str, Any] = {}
        else:
            starts = _default_starts(p, opt, [_ols_start(panel, X)])
            prob, sols = _search_roots(make_problem, cur.size, panel.unit[cur], starts, opt)
            if not sols:
                raise RuntimeError("the ACF second stage did not converge from any starting value")
            coef, roots, notes = _finish_roots(prob, sols, opt, opt.free_names)
            info = {"roots": roots, "notes": notes}
            meta = {"n_second_stage": int(cur.size)}
    info["boot_start"] = coef
    return CoreFit(coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, tfp_clean=phi - X @ coef,
                   n_obs=panel.n, info=info, meta=meta)


def _acf_overid(panel: PanelData, cur: np.ndarray, lag: np.ndarray, innovation) -> Any:
    """Hansen J of the ACF moments over-identified with deeper lags, as a function of ``b``.

    Instruments ``(free_{t-1}, state_t, free_{t-2}, state_{t-1})`` on the second-stage rows
    whose year t-2 is observed; ``xi`` from the estimator's own law of motion; weight the
    inverse of the firm-clustered covariance of the moment contributions at ``b``. ``None``
    when fewer than 100 such rows exist.
    """
    L2 = panel.lag(2)[cur]
    ok = L2 >= 0
    if ok.sum() < 100:
        return None
    c, l1, l2 = cur[ok], lag[ok], L2[ok]
    Zx = np.column_stack([panel.free[l1], panel.state[c], panel.free[l2], panel.state[l1]])
    units = panel.unit[c]
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])

    def j_stat(b: np.ndarray) -> float:
        xi = innovation(np.asarray(b, dtype=float), r2=False)[0][ok]
        h = Zx * xi[:, None]
        n = h.shape[0]
        m = h.mean(axis=0)
        H = np.add.reduceat(h - m, starts, axis=0)
        S = H.T @ H / n
        return float(n * m @ np.linalg.pinv(S) @ m)

    return j_stat
