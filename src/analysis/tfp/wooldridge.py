"""Wooldridge (2009) one-step GMM (``method="wrdg"``)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from analysis.inference import blas_threads
from analysis.tfp.arrays import PanelData, Standardizer, poly_design, poly_terms
from analysis.tfp.core import CoreFit, Options
from analysis.tfp.design import Design, Dummies, cluster_meat
from analysis.tfp.roots import (
    _ols_start,
    _stage2_rows,
)


# ======================================================================================
# Wooldridge (2009)
# ======================================================================================
def fit_wrdg(panel: PanelData, opt: Options, start: np.ndarray | None = None, boot: bool = False) -> CoreFit:
    """Wooldridge (2009) one-step GMM with the proxy polynomial shared across equations.

    With ``c(k, m) = q(k, m)'lam`` a polynomial of degree ``poly_degree`` (no constant)::

        (1) y_t = a1 + f_t'b_f + k_t'b_k + q_t'lam                       + e_t
        (2) y_t = a2 + f_t'b_f + k_t'b_k + g(q_{t-1}'lam)                + u_t
            g(v) = rho_1 v + ... + rho_G v^G   (G = markov_degree)

    Instruments: (1) ``1, f_t, q_t``; (2) ``1, f_{t-1}, k_t, q_{t-1}`` (+ year dummies in both
    equations with ``time_effects``, and additive group dummies with ``group_effects``; Markov
    controls enter both linearly, at t in (1) and t-1 in (2)). ``lam`` is the *same* vector in both equations: without that restriction the
    capital coefficient is only weakly identified (Wooldridge 2009, Section 3). Step one uses
    the block-diagonal 2SLS weight, step two the efficient weight from firm-clustered moment
    contributions; the covariance is the clustered GMM sandwich. Both equations use the rows
    with the previous year observed.
    """
    F, K, M = panel.free, panel.state, panel.proxy
    cur, lag = _stage2_rows(panel)
    nf, ns = F.shape[1], K.shape[1]
    std = Standardizer.fit(np.column_stack([K, M]))
    terms = poly_terms(ns + 1, opt.poly_degree, include_bias=False)
    q_t = poly_design(std(np.column_stack([K[cur], M[cur]])), terms)
    q_l = poly_design(std(np.column_stack([K[lag], M[lag]])), terms)
    n2, nq, G = cur.size, q_t.shape[1], opt.markov_degree
    if n2 < 5 * (nq + nf + ns + G + 4):
        raise ValueError(f"only {n2} firm-years have the previous year observed; too few for Wooldridge GMM")
    y = panel.y[cur]
    Fc, Kc, Fl = F[cur], K[cur], F[lag]
    # dummies stay codes (analysis.tfp.design): no dense 0/1 columns, whatever the panel's size
    ones = np.ones((n2, 1))
    extra1: list = [ones]
    extra2: list = [ones]
    if opt.time_effects:
        # codes of the years present among these rows: the panel's first year has no previous year,
        # and a dummy for it would be an empty column, leaving the others collinear with the constant
        yc = np.unique(panel.year_codes()[0][cur], return_inverse=True)[1]
        D = Dummies(yc, int(yc.max()) + 1)
        extra1.append(D)
        extra2.append(D)
    if panel.group is not None:  # additive group dummies (not group x year) in both equations
        gc = np.unique(panel.group[cur], return_inverse=True)[1]
        Dg = Dummies(gc, int(gc.max()) + 1)
        extra1.append(Dg)
        extra2.append(Dg)
    if panel.markov is not None:
        extra1.append(panel.markov[cur])
        extra2.append(panel.markov[lag])
    E1, E2 = Design(extra1), Design(extra2)
    Z1 = Design([*E1.blocks, Fc, q_t])
    Z2 = Design([*E2.blocks, Fl, Kc, q_l])
    ne1, ne2 = E1.width, E2.width
    # parameter vector: [b (nf+ns), lam (nq), rho (G), e1 (ne1), e2 (ne2)]
    p = nf + ns
    sl_b, sl_lam = slice(0, p), slice(p, p + nq)
    sl_rho = slice(p + nq, p + nq + G)
    sl_e1 = slice(p + nq + G, p + nq + G + ne1)
    sl_e2 = slice(p + nq + G + ne1, p + nq + G + ne1 + ne2)
    Xc = np.column_stack([Fc, Kc])

    def residuals(theta):
        b, lam, rho = theta[sl_b], theta[sl_lam], theta[sl_rho]
        v = q_l @ lam
        gv = sum(rho[j] * v ** (j + 1) for j in range(G))
        r1 = y - Xc @ b - q_t @ lam - E1.dot(theta[sl_e1])
        r2 = y - Xc @ b - gv - E2.dot(theta[sl_e2])
        return r1, r2, v

    # Equation (1) is linear in theta and equation (2) is linear except in g(q_{t-1}'lam): the
    # instrument cross-products of every linear part are computed once, so an evaluation costs
    # O(n * instruments * (nq + G)) instead of O(n * instruments * parameters).
    k_theta = sl_e2.stop
    A1 = Design([Xc, q_t, *E1.blocks])
    idx1 = np.r_[np.arange(sl_b.start, sl_b.stop), np.arange(sl_lam.start, sl_lam.stop), np.arange(sl_e1.start, sl_e1.stop)]
    Z1y, Z1A1 = Z1.tdot(y) / n2, Z1.cross(A1) / n2
    Z2y, Z2X, Z2E = Z2.tdot(y) / n2, Z2.tdot(Xc) / n2, Z2.cross(E2) / n2
    nz1, nz2 = Z1.width, Z2.width

    def moments(theta):
        lam, rho = theta[sl_lam], theta[sl_rho]
        v = q_l @ lam
        gv = sum(rho[j] * v ** (j + 1) for j in range(G))
        m1 = Z1y - Z1A1 @ theta[idx1]
        m2 = Z2y - Z2X @ theta[sl_b] - Z2.tdot(gv) / n2 - Z2E @ theta[sl_e2]
        return np.r_[m1, m2]

    def moment_jac(theta):
        lam, rho = theta[sl_lam], theta[sl_rho]
        v = q_l @ lam
        dg = sum((j + 1) * rho[j] * v**j for j in range(G))
        Gm = np.zeros((nz1 + nz2, k_theta))
        Gm[:nz1, idx1] = -Z1A1
        Gm[nz1:, sl_b] = -Z2X
        Gm[nz1:, sl_e2] = -Z2E
        Gm[nz1:, sl_lam] = -Z2.tdot(dg[:, None] * q_l) / n2
        Gm[nz1:, sl_rho] = -Z2.tdot(np.column_stack([v ** (j + 1) for j in range(G)])) / n2
        return Gm

    units = panel.unit[cur]
    firm = np.cumsum(np.r_[True, units[1:] != units[:-1]]) - 1  # rows are sorted by firm
    n_firms = int(firm[-1]) + 1

    def cluster_S(theta):
        r1, r2, _ = residuals(theta)
        return cluster_meat([(Z1, r1), (Z2, r2)], firm, n_firms) / n2

    def solve(theta0, U):
        fun = lambda th: U @ moments(th)  # noqa: E731
        jac = lambda th: U @ moment_jac(th)  # noqa: E731
        r = least_squares(fun, theta0, jac=jac, method="trf", xtol=1e-12, ftol=1e-14, gtol=1e-12, max_nfev=500)
        return r.x, bool(r.status > 0)

    def chol_inv(S):
        W = np.linalg.pinv(S)
        W = (W + W.T) / 2
        w, V = np.linalg.eigh(W)
        return (V * np.sqrt(np.clip(w, 0, None))).T

    # starting values: eq (1) by OLS gives b_f, lam (with b_k absorbed in lam's linear k part)
    if start is not None and start.size == sl_e2.stop:
        theta0 = start.copy()
    else:
        A0 = Design([Fc, q_t, *E1.blocks])  # least squares from the normal equations (minimum norm)
        c1 = np.linalg.lstsq(A0.cross(A0), A0.tdot(y), rcond=None)[0]
        b_k0 = _ols_start(panel, panel.inputs)[nf:] if start is None else start[nf:p]
        lam0 = c1[nf : nf + nq].copy()
        lin_k = [terms.index(tuple(int(i == j) for i in range(ns + 1))) for j in range(ns)]
        lam0[lin_k] -= b_k0
        theta0 = np.zeros(sl_e2.stop)
        theta0[sl_b] = np.r_[c1[:nf], b_k0]
        theta0[sl_lam] = lam0
        theta0[sl_rho] = np.r_[0.8, np.zeros(G - 1)]
        theta0[sl_e1] = c1[nf + nq :]
        theta0[sl_e2.start] = float(np.mean(y - Xc @ theta0[sl_b] - 0.8 * (q_l @ lam0)))
    U1 = np.zeros((nz1 + nz2,) * 2)
    o = 0
    for Zk in (Z1, Z2):
        kk = Zk.width
        U1[o : o + kk, o : o + kk] = chol_inv(Zk.cross(Zk) / n2)
        o += kk
    with blas_threads():
        theta, ok = solve(theta0, U1)
        steps = 1
        if opt.wrdg_steps >= 2:
            S = cluster_S(theta)
            theta, ok = solve(theta, chol_inv(S))
            steps = 2
    coef = theta[sl_b]
    # clustered sandwich at the final estimate
    Gm = moment_jac(theta)
    S = cluster_S(theta)
    Uw = chol_inv(S) if steps == 2 else U1
    W = Uw.T @ Uw
    bread = np.linalg.pinv(Gm.T @ W @ Gm)
    V = bread @ (Gm.T @ W @ S @ W @ Gm) @ bread / n2
    m = moments(theta)
    J = float(n2 * m @ np.linalg.pinv(S) @ m)
    df = nz1 + nz2 - theta.size
    X = panel.inputs
    info = {"boot_start": theta} if boot else {
        "n_second_stage": int(n2), "converged": ok, "steps": steps, "hansen_j": J, "j_df": int(df),
        "boot_start": theta,
    }
    meta = {} if boot else {"n_second_stage": int(n2), "hansen_j": round(J, 3), "j_df": int(df)}
    return CoreFit(coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, n_obs=int(n2), vcov=V[sl_b, sl_b], info=info, meta=meta)
