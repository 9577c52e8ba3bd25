"""Gandhi, Navarro and Rivers (2020) for gross output (``method="gnr"``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from analysis.inference import blas_threads
from analysis.tfp.arrays import PanelData, poly_design, poly_terms
from analysis.tfp.core import CoreFit, Options
from analysis.tfp.gmm import LawOfMotion, solve_moments
from analysis.tfp.roots import (
    _MomentProblem,
    _scale_of,
    _stage2_rows,
)


# ======================================================================================
# Gandhi-Navarro-Rivers (2020)
# ======================================================================================
def _deriv_terms(terms: list[tuple[int, ...]], coef: np.ndarray, j: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Derivative of ``sum coef_t x^t`` with respect to variable ``j``, as (terms, coef)."""
    new_terms, new_coef = [], []
    for t, c in zip(terms, coef):
        if t[j] > 0:
            e = list(t)
            e[j] -= 1
            new_terms.append(tuple(e))
            new_coef.append(c * t[j])
    return new_terms, np.asarray(new_coef)


def fit_gnr(panel: PanelData, opt: Options, start: np.ndarray | None = None, boot: bool = False) -> CoreFit:
    """Gandhi, Navarro and Rivers (2020) for gross output with a flexible intermediate input.

    Stage 1 (share regression): ``s_t = ln D^E(x_t, m_t) - eps_t`` by nonlinear least squares,
    ``D^E`` a complete polynomial of degree ``poly_degree`` in (state, free, proxy), raw
    levels as in GNR's code; ``E = mean(exp(eps))``, ``gamma = gamma^E / E`` and the
    elasticity of the flexible input is ``D = gamma' poly``. Stage 2: integrate ``D`` in
    ``m`` and form ``Y = y - eps - int D dm = -C(x) + omega``; with ``C`` a polynomial of the
    same degree in the non-flexible inputs (no constant), ``omega = Y - P(x)'alpha``, ``g``
    concentrated out (cubic by default), and ``alpha`` solves ``E[eta * P(state_t,
    free_{t-1})] = 0`` (free inputs instrumented by their lag, as in ACF). Elasticities vary by
    observation; the reported coefficients are their sample means. Year and group effects
    (``time_effects``, ``group_effects``) and Markov controls enter the law of motion only; the
    share regression has none.
    """
    if panel.share is None:
        raise ValueError("method='gnr' needs share= (log of the flexible input's nominal share of output)")
    F, K, M, s = panel.free, panel.state, panel.proxy, panel.share
    NF = np.column_stack([K, F])  # non-flexible inputs: state then free
    V = np.column_stack([NF, M])
    q = NF.shape[1]
    terms = poly_terms(q + 1, opt.poly_degree)
    Xp = poly_design(V, terms)
    # ---- stage 1: NLLS of s on ln(X gamma)
    g0 = np.linalg.lstsq(Xp, np.exp(s), rcond=None)[0]
    fit0 = Xp @ g0
    if fit0.min() <= 0:
        g0[0] += 0.1 - fit0.min()

    def r1(g):
        return s - np.log(np.clip(Xp @ g, 1e-12, None))

    def j1(g):
        return -Xp / np.clip(Xp @ g, 1e-12, None)[:, None]

    res1 = least_squares(r1, g0, jac=j1, method="lm", xtol=1e-12, ftol=1e-14, gtol=1e-14)
    gamma_e = res1.x
    eps = np.log(np.clip(Xp @ gamma_e, 1e-12, None)) - s
    E = float(np.mean(np.exp(eps)))
    gamma = gamma_e / E
    elas_m = Xp @ gamma
    int_terms = [t[:-1] + (t[-1] + 1,) for t in terms]
    int_coef = gamma / np.array([t[-1] + 1 for t in terms])
    intD = poly_design(V, int_terms) @ int_coef
    Ycal = panel.y - eps - intD
    # ---- stage 2
    cterms = poly_terms(q, opt.poly_degree, include_bias=False)
    P = poly_design(NF, cterms)
    cur, lag = _stage2_rows(panel)
    Zinst = poly_design(np.column_stack([K[cur], F[lag]]), cterms)
    codes = panel.effect_codes(opt.time_effects)
    yc = None if codes is None else codes[cur]
    law = LawOfMotion(opt.markov_degree, yc, panel.markov[lag] if panel.markov is not None else None)
    Pc, Pl, Yc, Yl = P[cur], P[lag], Ycal[cur], Ycal[lag]

    def innovation(a, r2=True):
        xi, pers = law.innovation(Yc - Pc @ a, Yl - Pl @ a, r2=r2)
        return xi, xi, pers

    prob = _MomentProblem(innovation, Zinst)
    if boot and start is not None:
        a0 = np.asarray(start, dtype=float)
    else:
        a0 = np.linalg.lstsq(np.column_stack([np.ones(panel.n), P]), Ycal, rcond=None)[0][1:]
    prob.scale = _scale_of(prob, a0)
    with blas_threads():
        sols = solve_moments(prob.weighted, a0[None, :], max_nfev=2000)
    if not sols:
        raise RuntimeError("the GNR second stage did not converge")
    alpha = sols[0][0]
    omega = Ycal - P @ alpha
    # elasticities of the non-flexible inputs: d(int D)/dx_j + d(P alpha)/dx_j
    elas = np.empty((panel.n, q + 1))
    for j in range(q):
        t1, c1 = _deriv_terms(int_terms, int_coef, j)
        t2, c2 = _deriv_terms(cterms, alpha, j)
        e = np.zeros(panel.n)
        if t1:
            e += poly_design(V, t1) @ c1
        if t2:
            e += poly_design(NF, t2) @ c2
        elas[:, j] = e
    elas[:, q] = elas_m
    # order as everywhere: free, state, then flexible input
    ns = K.shape[1]
    order = list(range(ns, q)) + list(range(ns)) + [q]
    elas = elas[:, order]
    names = [*opt.free_names, *opt.state_names, opt.proxy_name]
    info: dict[str, Any] = {"boot_start": alpha}
    if not boot:
        wl = Yl - Pl @ alpha
        A = np.column_stack([wl**d for d in range(opt.markov_degree + 1)])
        delta = np.linalg.lstsq(A, omega[cur], rcond=None)[0]
        info = {
            "gamma": pd.Series(gamma, index=[_term_name(t, [*opt.state_names, *opt.free_names, opt.proxy_name]) for t in terms]),
            "E": E,
            "alpha": pd.Series(alpha, index=[_term_name(t, [*opt.state_names, *opt.free_names]) for t in cterms]),
            "delta": delta,
            "criterion": prob.criterion(alpha),
            "n_second_stage": int(cur.size),
            "boot_start": alpha,
        }
    return CoreFit(
        coef=elas.mean(axis=0), terms=names, tfp=panel.y - intD - P @ alpha, tfp_clean=omega,
        elasticities=elas, n_obs=panel.n, info=info,
        meta={} if boot else {"n_second_stage": info["n_second_stage"], "gnr_first_stage_E": info["E"], "gnr_alpha": info["alpha"],
                              "gnr_gamma": info["gamma"], "gnr_delta": info["delta"]},
    )


def _term_name(t: tuple[int, ...], names: list[str]) -> str:
    parts = [nm if e == 1 else f"{nm}^{e}" for nm, e in zip(names, t) if e]
    return "*".join(parts) if parts else "const"
