"""Olley and Pakes (1996) and Levinsohn and Petrin (2003) (``method="op"``, ``"lp"``)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from analysis.inference import blas_threads
from analysis.tfp.arrays import PanelData, Standardizer, poly_design, poly_terms
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
# Olley-Pakes and Levinsohn-Petrin
# ======================================================================================
def _survival(panel: PanelData, opt: Options, lag_rows: np.ndarray) -> np.ndarray:
    """Probit of survival into t on a polynomial in (state, proxy) at t-1; predicted at ``lag_rows``."""
    import statsmodels.api as sm

    known = np.isfinite(panel.exit)
    V = np.column_stack([panel.state, panel.proxy])
    std = Standardizer.fit(V[known])
    terms = poly_terms(V.shape[1], min(opt.poly_degree, 3))
    Xp = poly_design(std(V[known]), terms)
    survive = (panel.exit[known] == 0).astype(float)
    if survive.min() == survive.max():
        raise ValueError("the exit correction needs both exits and survivors in the sample")
    res = sm.Probit(survive, Xp).fit(disp=0, maxiter=200)
    return stats.norm.cdf(poly_design(std(V[lag_rows]), terms) @ res.params)


def fit_oplp(panel: PanelData, opt: Options, start: np.ndarray | None = None, boot: bool = False) -> CoreFit:
    """Olley-Pakes / Levinsohn-Petrin two-step estimator (value added, prodest-style).

    First stage: OLS of ``y`` on the free inputs and a complete polynomial of degree
    ``poly_degree`` in (state, proxy) (+ year dummies, + Markov controls), giving the free
    coefficients and ``phi``. Second stage: for candidate state coefficients ``b_k``,
    ``omega = phi - k b_k``; ``g`` is concentrated out by regressing ``omega_t`` on a
    polynomial in ``omega_{t-1}`` (and the predicted survival probability when ``exit`` is
    given, Olley-Pakes' selection correction). The residual is
    ``y - f'b_f - k'b_k - g_hat = xi_t + eps_t`` and ``b_k`` minimises its sum of squares
    (Olley-Pakes' NLS second stage, as in R prodest; ``oplp_objective="nls"``) or solves
    ``E[(xi_t + eps_t) k_t] = 0`` (``"gmm"``, Levinsohn-Petrin's moment for capital).
    """
    F, K = panel.free, panel.state
    b_free, fitted = _first_stage(panel, opt, F, np.column_stack([K, panel.proxy]))
    phi = fitted - F @ b_free
    eps = panel.y - fitted
    cur, lag = _stage2_rows(panel)
    if cur.size < 10 * (K.shape[1] + opt.markov_degree):
        raise ValueError(f"only {cur.size} firm-years have the previous year observed; too few for the second stage")
    survival = _survival(panel, opt, lag) if opt.selection else None
    yc = panel.year_codes()[0][cur] if opt.time_effects else None
    controls = panel.markov[lag] if panel.markov is not None else None

    def make_problem(mask):
        c, l_, s_ = (cur, lag, survival) if mask is None else (cur[mask], lag[mask], None if survival is None else survival[mask])
        law = LawOfMotion(opt.markov_degree, None if yc is None else (yc if mask is None else yc[mask]),
                          None if controls is None else (controls if mask is None else controls[mask]), s_)
        A_cur = np.column_stack([phi[c], K[c]])
        A_lag = np.column_stack([phi[l_], K[l_]])
        ec = eps[c]

        def innovation(b, r2=True):
            v = np.r_[1.0, -np.asarray(b, dtype=float)]
            xi, pers = law.innovation(A_cur @ v, A_lag @ v, r2=r2)
            return xi + ec, xi, pers

        return _MomentProblem(innovation, K[c], kind="nls" if opt.oplp_objective == "nls" else "moments")

    with blas_threads():
        if boot:
            prob = make_problem(None)
            prob.scale = _scale_of(prob, start)
            sols = solve_moments(prob.weighted, start[None, :])
            b_state = sols[0][0] if sols else np.full(K.shape[1], np.nan)
            info, meta = {}, {}
        else:
            starts = _default_starts(K.shape[1], opt, [_ols_start(panel, panel.inputs)[F.shape[1]:]])
            prob, sols = _search_roots(make_problem, cur.size, panel.unit[cur], starts, opt)
            if not sols:
                raise RuntimeError("the second stage did not converge from any starting value")
            b_state, roots, notes = _finish_roots(prob, sols, opt, [])
            info = {"roots": roots, "notes": notes}
            meta = {"n_second_stage": int(cur.size)}
    info["boot_start"] = b_state
    coef = np.r_[b_free, b_state]
    X = panel.inputs
    return CoreFit(coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, tfp_clean=fitted - X @ coef, n_obs=panel.n, info=info,
                   meta=meta)
