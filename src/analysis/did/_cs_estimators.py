"""The 2x2 DiD estimators of every (cohort, period) cell at once.

Each cell ``c`` compares the change ``dY_ic = Y_i,t(c) - Y_i,b(c)`` of its treated cohort with
that of its controls, over the units observed in both periods. All cells are computed together
on ``units x cells`` arrays (columns = cells): without covariates block by block of cohorts (units
are sorted by cohort), with covariates in chunks of columns that bound memory; there is no
per-cell Python or pandas work. The formulas are those of Sant'Anna and Zhao (2020) as
implemented in R ``DRDID`` 1.2 (``drdid_panel``, ``std_ipw_did_panel``, ``reg_did_panel``), the
estimators R ``did::att_gt`` calls, written with sums instead of means: the influence function
returned is R ``did``'s, ``psi_i = (n / n_c) * phi_i`` with ``phi`` the 2x2 influence function on
the ``n_c`` units of the cell, so that ``ATT_hat - ATT ~= sum_i psi_i / n``.

Without covariates the three methods coincide (difference of weighted means) and a closed form
is used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from analysis.did._cs_data import CellPlan, CSPanel

__all__ = ["CellEstimates", "estimate_cells"]

#: R DRDID caps propensity scores here to avoid dividing by zero
_PS_CAP = 1 - 1e-6
#: R DRDID gives zero weight to control units with a propensity score at or above this
_PS_TRIM = 0.995
#: R did sets a cell to NA when a propensity score reaches this (overlap violated)
_PS_OVERLAP = 0.999
#: cap on n_units x cells_per_chunk, to bound the temporaries (about 8 bytes x this x 15)
_CHUNK_ELEMS = 2_000_000


@dataclass
class CellEstimates:
    """ATT(g,t) and influence functions of all cells.

    Attributes
    ----------
    att
        ``K`` estimates (NaN where a cell could not be estimated).
    psi
        ``n x K`` influence functions in R ``did``'s scaling (zero for units outside a cell).
    n_units
        ``K`` numbers of units in each 2x2 comparison (treated + controls observed in both periods).
    n_treated, n_control
        The two parts of ``n_units``.
    problems
        Readable reasons for NaN cells.
    """

    att: np.ndarray
    psi: np.ndarray
    n_units: np.ndarray
    n_treated: np.ndarray
    n_control: np.ndarray
    problems: list[str]


class _Design:
    """Covariates (with intercept) of each unit for a set of cells, as matrix products.

    Time-invariant covariates are one ``n x k`` matrix shared by every cell; time-varying ones
    are read in each cell's earlier period, so cells are handled in blocks sharing that period.
    """

    def __init__(self, x: np.ndarray, cov_idx: np.ndarray):
        self.k = x.shape[-1]
        self.n = x.shape[0]
        periods = np.unique(cov_idx)
        if x.ndim == 2:
            self.blocks: list[tuple[slice | np.ndarray, np.ndarray]] = [(slice(None), x)]
        elif periods.size == 1:
            self.blocks = [(slice(None), np.nan_to_num(x[:, periods[0], :]))]
        else:
            self.blocks = [(np.flatnonzero(cov_idx == p), np.nan_to_num(x[:, p, :])) for p in periods]
        self._xx: list[np.ndarray] | None = None

    def gram(self, v: np.ndarray) -> np.ndarray:
        """``K x k x k``: sum_i v_ic x_i x_i' for each cell c."""
        if self._xx is None:
            self._xx = [(X[:, :, None] * X[:, None, :]).reshape(self.n, -1) for _, X in self.blocks]
        out = np.empty((v.shape[1], self.k, self.k))
        for (cols, _), xx in zip(self.blocks, self._xx, strict=True):
            out[cols] = (xx.T @ v[:, cols]).T.reshape(-1, self.k, self.k)
        return out

    def xtv(self, v: np.ndarray) -> np.ndarray:
        """``K x k``: sum_i v_ic x_i for each cell c."""
        out = np.empty((v.shape[1], self.k))
        for cols, X in self.blocks:
            out[cols] = (X.T @ v[:, cols]).T
        return out

    def xb(self, b: np.ndarray) -> np.ndarray:
        """``n x K``: x_i' b_c for each cell c."""
        if len(self.blocks) == 1:
            return self.blocks[0][1] @ b.T
        out = np.empty((self.n, b.shape[0]))
        for cols, X in self.blocks:
            out[:, cols] = X @ b[cols].T
        return out


def _unique_columns(*masks: np.ndarray, tag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the distinct columns of the boolean ``masks`` (with ``tag``) and the inverse map.

    Cells that share their sample, treated units and covariate period share their propensity
    score and control-group regression design (e.g. all cells of a cohort in a balanced panel
    with never-treated controls), so these are fitted once.
    """
    packed = [np.packbits(m, axis=0) for m in masks]
    first: dict[bytes, int] = {}
    inverse = np.empty(tag.size, dtype=np.intp)
    uniq: list[int] = []
    for j in range(tag.size):
        key = b"".join(p[:, j].tobytes() for p in packed) + int(tag[j]).to_bytes(8, "little")
        if key not in first:
            first[key] = len(uniq)
            uniq.append(j)
        inverse[j] = first[key]
    return np.array(uniq, dtype=np.intp), inverse


def _solve(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched ``a_c^{-1} b_c``; cells whose matrix is singular or ill-conditioned come back NaN."""
    out, bad = _solve_many(a, b[..., None])
    return out[..., 0], bad


def _standardise(x: np.ndarray) -> np.ndarray:
    """Covariates centred and scaled column by column (intercept column 0 left as is).

    Every quantity computed from the design (ATT, influence functions) is invariant to an
    invertible affine map of the non-intercept columns, so scaling is exact up to rounding; it
    keeps Gram and information matrices well conditioned when covariates are in money units
    (a column in dollars next to 0/1 dummies gives condition numbers of 1e10 and more). Constant
    columns are left unscaled (they are collinear with the intercept and reported as such).
    """
    vals = x[..., 1:]
    flat = vals.reshape(-1, vals.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of unobserved periods
        centre = np.nanmean(flat, axis=0)
        scale = np.nanstd(flat, axis=0)
    constant = ~(scale > 0)
    centre = np.where(constant | ~np.isfinite(centre), 0.0, centre)
    scale = np.where(constant | ~np.isfinite(scale), 1.0, scale)
    out = x.copy()
    out[..., 1:] = (vals - centre) / scale
    return out


#: smallest / largest eigenvalue of the (diagonal-normalised) Gram matrix below which covariates are collinear
_COLLINEAR_TOL = 1e-11


def _collinear(gram: np.ndarray) -> np.ndarray:
    """``K`` flags: the Gram matrices ``K x k x k`` are (numerically) rank deficient.

    The matrices are normalised to unit diagonal first, so the test does not depend on the
    covariates' units; a zero diagonal (a covariate that is 0 throughout the sample) counts.
    """
    d = np.sqrt(np.clip(np.diagonal(gram, axis1=1, axis2=2), 0, None))
    zero = (d == 0).any(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = gram / (d[:, :, None] * d[:, None, :])
    corr = np.where(np.isfinite(corr), corr, 0.0)
    eig = np.linalg.eigvalsh(corr)
    return zero | ~(eig[:, 0] > _COLLINEAR_TOL * eig[:, -1])


def _collinear_message(gram: np.ndarray, names: list[str] | None) -> str:
    """Which covariates are collinear, from a singular (scaled) Gram matrix ``k x k``."""
    d = np.sqrt(np.clip(np.diag(gram), 0, None))
    zero = np.flatnonzero(d[1:] == 0) + 1
    label = (lambda j: repr(names[j - 1])) if names else (lambda j: f"covariate {j}")
    if zero.size:
        return f"covariate(s) {', '.join(label(j) for j in zero)} take no value in the cell's sample"
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = gram / np.outer(d, d)
    _, vecs = np.linalg.eigh(np.nan_to_num(corr))
    null = np.abs(vecs[:, 0])
    involved = [j for j in np.flatnonzero(null > 0.05 * null.max()) if j > 0]
    what = ", ".join(label(j) for j in involved) if involved else "the covariates"
    with_const = " and the intercept" if null[0] > 0.05 * null.max() else ""
    return f"covariates are collinear in the cell's sample ({what}{with_const})"


def _loglik(eta: np.ndarray, d: np.ndarray, ws: np.ndarray) -> np.ndarray:
    """``K`` weighted logit log-likelihoods, sum_i ws_ic [d_ic eta_ic - log(1 + exp(eta_ic))]."""
    return (ws * (d * eta - np.logaddexp(0.0, eta))).sum(axis=0)


def _logit(
    design: _Design,
    d: np.ndarray,
    ws: np.ndarray,
    *,
    names: list[str] | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted logit of ``d`` on the covariates in every cell at once.

    Newton-Raphson with step halving: a step that lowers a cell's log-likelihood is halved
    (up to 40 times) until it does not, so the iterations climb monotonically from the
    intercept-only start; the log-likelihood is concave, so this converges whenever the
    maximum exists. The design should be scaled (:func:`_standardise`); the fit is invariant to
    that. ``ws`` holds the weights of the units in each cell's sample (0 outside it).

    Convergence: the Newton step is below ``tol`` (relative to the coefficients), or a full
    Newton step raised the log-likelihood by less than ``1e-12`` of its size (as R's ``glm``,
    whose criterion is the relative change of the deviance; it matters only under separation).

    Returns the coefficients ``K x k`` (on the scaled design; they are not used outside this
    module, so they are not mapped back), the fitted probabilities ``n x K``, ``K`` reasons
    (``""`` for a cell fitted without problems) which name the real cause of a failure, and
    ``K`` notes on separation:

    * collinear covariates in the cell's sample (the Gram matrix ``sum ws x x'`` is singular,
      checked before iterating; the covariates involved are named);
    * no convergence within ``max_iter`` iterations (with the size of the last step, or the
      information matrix turning singular);
    * (quasi-)complete separation is a note, not a failure: the maximum likelihood estimate does
      not exist, the log-likelihood stops changing while coefficients drift and some fitted
      probabilities reach 0 or 1 (R's ``glm`` warns "fitted probabilities numerically 0 or 1
      occurred" and R ``did`` carries on). Units with a score near 0 get no weight, which is
      the limit of the estimator; a score near 1 is an overlap violation, which the caller
      turns into a missing cell, citing the note.
    """
    n_cells = d.shape[1]
    reason = np.full(n_cells, "", dtype=object)
    wsum = ws.sum(0)
    share = (ws * d).sum(0) / np.where(wsum > 0, wsum, 1.0)
    beta = np.zeros((n_cells, design.k))
    with np.errstate(divide="ignore", invalid="ignore"):
        beta[:, 0] = np.log(share / (1 - share))
    degenerate = ~np.isfinite(beta[:, 0])
    beta[degenerate] = 0.0
    reason[degenerate] = "all units of the cell's sample are treated or all are controls"
    gram = design.gram(ws)
    singular = _collinear(gram)
    for j in np.flatnonzero(singular & ~degenerate):
        reason[j] = _collinear_message(gram[j], names)
    done = reason != ""
    eta = design.xb(beta)
    ll = _loglik(eta, d, ws)
    last_step = np.zeros(n_cells)
    info_singular = np.zeros(n_cells, dtype=bool)
    stalled = np.zeros(n_cells, dtype=bool)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        p = expit(eta)
        grad = design.xtv(ws * (d - p))
        info = design.gram(ws * p * (1 - p))
        step, bad = _solve(info, grad)
        bad &= ~done
        info_singular |= bad
        step[done | bad] = 0.0
        # step halving: shrink each cell's step until its log-likelihood does not fall
        t = np.ones(n_cells)
        for _ in range(40):
            eta_new = design.xb(beta + t[:, None] * step)
            ll_new = _loglik(eta_new, d, ws)
            worse = ll_new < ll - 1e-12 * (1 + np.abs(ll))
            if not worse.any():
                break
            t[worse] *= 0.5
        else:
            t[worse] = 0.0
            eta_new = design.xb(beta + t[:, None] * step)
            ll_new = _loglik(eta_new, d, ws)
        beta += t[:, None] * step
        eta, gain, ll = eta_new, ll_new - ll, ll_new
        last_step = np.abs(t[:, None] * step).max(axis=1)
        small = last_step < tol * (1 + np.abs(beta).max(axis=1))
        stalled |= (gain <= 1e-12 * (0.1 + np.abs(ll))) & ~done
        done |= small | stalled | bad
        if done.all():
            break
    p = expit(eta)
    cap = 1e-8
    sample = ws > 0
    n_low = (sample & (p < cap)).sum(axis=0)
    n_high = (sample & (p > 1 - cap)).sum(axis=0)
    note = np.full(n_cells, "", dtype=object)
    for j in np.flatnonzero((reason == "") & (n_low + n_high > 0)):
        note[j] = (
            f"(quasi-)complete separation: the covariates predict treatment status perfectly for "
            f"{int(n_low[j] + n_high[j])} unit(s) ({int(n_high[j])} with a propensity score within {cap:g} of 1, "
            f"{int(n_low[j])} of 0, after {iterations} iterations); the logit's maximum likelihood estimate does not exist"
        )
    converged = ((last_step < tol * (1 + np.abs(beta).max(axis=1))) | stalled) & ~info_singular
    for j in np.flatnonzero((reason == "") & ~converged):
        cause = "information matrix singular at the current estimate" if info_singular[j] else f"last step {last_step[j]:.2g}"
        reason[j] = f"propensity-score logit did not converge in {iterations} iterations ({cause})"
        if note[j]:
            reason[j] += "; " + note[j]
    return beta, p, reason, note


def _chunks(n_units: int, n_cells: int) -> list[np.ndarray]:
    size = max(1, min(n_cells, _CHUNK_ELEMS // max(n_units, 1)))
    return [np.arange(s, min(s + size, n_cells)) for s in range(0, n_cells, size)]


def estimate_cells(panel: CSPanel, plan: CellPlan, *, method: str, control: str) -> CellEstimates:
    """ATT(g,t) and the influence functions of all cells of ``plan`` (see module docstring).

    Covariates are centred and scaled internally (:func:`_standardise`); results do not depend
    on their units.
    """
    n, n_cells = panel.n_units, len(plan)
    problems: list[str] = []
    if panel.x is None:
        att, psi, n_treat, n_ctrl = _diff_in_means(panel, plan, control)
    else:
        att = np.full(n_cells, np.nan)
        psi = np.zeros((n, n_cells))
        n_treat = np.zeros(n_cells, dtype=np.int64)
        n_ctrl = np.zeros(n_cells, dtype=np.int64)
        never = panel.cohort == 0
        x_scaled = _standardise(panel.x)
        names = list(panel.x_names) or None
        for cols in _chunks(n, n_cells):
            g = plan.group[cols]
            dy = panel.y[:, plan.t_idx[cols]] - panel.y[:, plan.base_idx[cols]]
            obs = np.isfinite(dy)
            np.copyto(dy, 0.0, where=~obs)
            treated = (panel.cohort[:, None] == g[None, :]) & obs
            ctrl = _control_mask(panel.cohort, never, g, plan.threshold[cols], control) & obs
            n_treat[cols] = treated.sum(0)
            n_ctrl[cols] = ctrl.sum(0)
            att[cols], psi[:, cols], reason = _with_covariates(dy, treated, ctrl, panel.weights, n, x_scaled, plan.cov_idx[cols], method, names)
            for j in np.flatnonzero(reason != ""):
                problems.append(f"ATT({g[j]:g},{plan.time[cols][j]:g}): {reason[j]}")

    empty = (n_treat == 0) | (n_ctrl == 0)
    ref = plan.reference
    for j in np.flatnonzero(empty & ~ref):
        what = "treated" if n_treat[j] == 0 else "control"
        problems.append(f"ATT({plan.group[j]:g},{plan.time[j]:g}): no {what} unit observed in both period {plan.time[j]:g} "
                        f"and base period {panel.times[plan.base_idx[j]]:g}")
    bad = (empty | ~np.isfinite(att)) & ~ref
    att[bad] = np.nan
    psi[:, bad] = np.nan
    att[ref] = 0.0
    psi[:, ref] = 0.0
    return CellEstimates(att=att, psi=psi, n_units=n_treat + n_ctrl, n_treated=n_treat, n_control=n_ctrl, problems=problems)


def _control_mask(cohort: np.ndarray, never: np.ndarray, g: np.ndarray, threshold: np.ndarray, control: str) -> np.ndarray:
    """``n x K`` (or ``n x 1``) control-group membership of units for cells of cohort ``g``."""
    if control == "never":
        return never[:, None]
    return never[:, None] | ((cohort[:, None] > threshold[None, :]) & (cohort[:, None] != g[None, :]))


def _diff_in_means(panel: CSPanel, plan: CellPlan, control: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """No covariates: ATT = weighted mean change of the treated minus that of the controls.

    Influence function (R scaling): ``n * (wD (dY - m_T) / W_T - wC (dY - m_C) / W_C)``.

    Units are sorted by cohort, so each cohort is a block of rows that is, for any cell, either
    all treated, all control or not involved. Each block is processed once for the cells it takes
    part in (its own cohort's cells as treated; as control, every cell with never-treated
    controls, or the cells it is not yet treated in); the work is the size of the influence
    function's non-zero part.
    """
    n, n_cells = panel.n_units, len(plan)
    values, starts = np.unique(panel.cohort, return_index=True)
    ends = np.append(starts[1:], n)
    s_w = np.zeros((2, n_cells))  # row 0: treated, row 1: controls
    s_wy = np.zeros((2, n_cells))
    count = np.zeros((2, n_cells), dtype=np.int64)
    blocks = []
    for value, start, end in zip(values, starts, ends, strict=True):
        is_treated = plan.group == value
        if control == "never":
            is_control = np.full(n_cells, value == 0)
        else:
            is_control = (value == 0) | ((value > plan.threshold) & ~is_treated)
        cols = np.flatnonzero(is_treated | is_control)
        if cols.size == 0:
            continue
        y = panel.y[start:end]
        dy = y[:, plan.t_idx[cols]]
        dy -= y[:, plan.base_idx[cols]]
        obs = np.isfinite(dy)
        np.copyto(dy, 0.0, where=~obs)
        wobs = obs * panel.weights[start:end, None]
        role = (~is_treated[cols]).astype(np.intp)  # 0 treated, 1 control
        s_w[role, cols] += wobs.sum(axis=0)
        s_wy[role, cols] += np.einsum("ik,ik->k", wobs, dy)
        count[role, cols] += obs.sum(axis=0)
        blocks.append((start, end, cols, role, dy, wobs))

    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s_wy / s_w
        scale = n / s_w
    scale[1] *= -1.0
    psi = np.zeros((n, n_cells))
    for start, end, cols, role, dy, wobs in blocks:
        dy -= mean[role, cols]
        dy *= wobs
        dy *= scale[role, cols]
        psi[start:end, cols] = dy
    return mean[0] - mean[1], psi, count[0], count[1]


def _with_covariates(
    dy: np.ndarray,
    treated: np.ndarray,
    ctrl: np.ndarray,
    w: np.ndarray,
    n: int,
    x: np.ndarray,
    cov_idx: np.ndarray,
    method: str,
    names: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DR / IPW / REG with covariates for a chunk of cells. Returns att, psi and NaN reasons.

    With sums over each cell's units (R's means times ``n_c``; ``n`` = all units)::

        DR:  psi = n [ wT (e - eta_T) / S_T - wC (e - eta_C) / S_C
                       - w(1-D) e x'G^{-1} (M1 / S_T - M3 / S_C) - w (D - p) x'H^{-1} M2 / S_C ]

    with ``e = dY - x'beta`` (OLS of dY on x over controls, Gram ``G``), ``p`` the logit
    propensity score (information ``H``), ``wT = w D``, ``wC = w p / (1 - p)`` over untrimmed
    controls, ``M1 = sum wT x``, ``M3 = sum wC x``, ``M2 = sum wC (e - eta_C) x``. IPW drops the
    OLS terms (``e = dY``), REG the propensity-score terms (``drdid_panel``, ``std_ipw_did_panel``,
    ``reg_did_panel`` of R DRDID 1.2).
    """
    n_cells = dy.shape[1]
    reason = np.full(n_cells, "", dtype=object)
    design = _Design(x, cov_idx)
    w_col = w[:, None]
    w_ctrl = np.where(ctrl, w_col, 0.0)
    w_treat = np.where(treated, w_col, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_t = w_treat.sum(0)
        if method in ("dr", "reg"):
            uc, inv_c = _unique_columns(ctrl, tag=cov_idx)
            gram_u = _Design(x, cov_idx[uc]).gram(w_ctrl[:, uc])
            gram_inv_u, singular_u = _solve_inv(gram_u)
            singular_u |= _collinear(gram_u)
            gram_inv = gram_inv_u[inv_c]
            for j in np.flatnonzero(singular_u[inv_c]):
                reason[j] = "outcome regression on the control units: " + _collinear_message(gram_u[inv_c[j]], names)
            beta = np.einsum("ckl,cl->ck", gram_inv, design.xtv(w_ctrl * dy))
            fitted = design.xb(np.nan_to_num(beta))
            resid = dy - fitted
            ols_lin = w_ctrl * resid  # per-unit factor of the OLS asymptotic linear representation
        if method in ("dr", "ipw"):
            up, inv_p = _unique_columns(treated, ctrl, tag=cov_idx)
            design_u = _Design(x, cov_idx[up])
            ws_u = w_treat[:, up] + w_ctrl[:, up]
            _, ps_u, logit_reason, logit_note = _logit(design_u, treated[:, up].astype(float), ws_u, names=names)
            np.minimum(ps_u, _PS_CAP, out=ps_u)
            hess_inv_u, sing_h = _solve_inv(design_u.gram(ws_u * ps_u * (1 - ps_u)))
            overlap = np.where(ws_u > 0, ps_u, 0.0).max(axis=0) >= _PS_OVERLAP
            for j in np.flatnonzero(reason == ""):
                u = inv_p[j]
                if logit_reason[u]:
                    text = logit_reason[u]
                    reason[j] = text if text.startswith("propensity") else "propensity-score logit: " + text
                elif overlap[u]:
                    reason[j] = f"overlap violated (a propensity score >= {_PS_OVERLAP})" + (f": {logit_note[u]}" if logit_note[u] else "")
                elif sing_h[u]:
                    reason[j] = "propensity-score information matrix is singular at the fitted scores"
            ps = ps_u[:, inv_p]
            hess_inv = hess_inv_u[inv_p]
            w_cont = np.where(ctrl & (ps < _PS_TRIM), w_col * ps / (1 - ps), 0.0)
            ps_lin = treated - ps  # w (D - p) over the cell's sample
            ps_lin *= w_treat + w_ctrl
            s_c = w_cont.sum(0)

        if method == "dr":
            eta_t = np.einsum("ik,ik->k", w_treat, resid) / s_t
            eta_c = np.einsum("ik,ik->k", w_cont, resid) / s_c
            a_ols = np.einsum("ckl,cl->ck", gram_inv, design.xtv(w_treat) / s_t[:, None] - design.xtv(w_cont) / s_c[:, None])
            m2 = design.xtv(w_cont * (resid - eta_c))
            h_ps = np.einsum("ckl,cl->ck", hess_inv, m2) / s_c[:, None]
            psi = w_treat * (resid - eta_t) / s_t
            psi -= w_cont * (resid - eta_c) / s_c
            psi -= ols_lin * design.xb(np.nan_to_num(a_ols))
            psi -= ps_lin * design.xb(np.nan_to_num(h_ps))
        elif method == "ipw":
            eta_t = np.einsum("ik,ik->k", w_treat, dy) / s_t
            eta_c = np.einsum("ik,ik->k", w_cont, dy) / s_c
            h_ps = np.einsum("ckl,cl->ck", hess_inv, design.xtv(w_cont * (dy - eta_c))) / s_c[:, None]
            psi = w_treat * (dy - eta_t) / s_t
            psi -= w_cont * (dy - eta_c) / s_c
            psi -= ps_lin * design.xb(np.nan_to_num(h_ps))
        elif method == "reg":
            eta_t = np.einsum("ik,ik->k", w_treat, dy) / s_t
            eta_c = np.einsum("ik,ik->k", w_treat, fitted) / s_t
            a_ols = np.einsum("ckl,cl->ck", gram_inv, design.xtv(w_treat)) / s_t[:, None]
            psi = w_treat * (dy - eta_t - fitted + eta_c) / s_t
            psi -= ols_lin * design.xb(np.nan_to_num(a_ols))
        else:  # pragma: no cover - validated by the caller
            raise ValueError(method)
        psi *= n
    att = eta_t - eta_c
    att[reason != ""] = np.nan
    return att, psi, reason


def _solve_inv(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched inverse; singular or ill-conditioned cells come back NaN with a flag."""
    k = a.shape[-1]
    inv, bad = _solve_many(a, np.broadcast_to(np.eye(k), a.shape))
    return inv, bad


def _solve_many(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cond = np.linalg.cond(a)
    bad = ~np.isfinite(cond) | (cond > 1 / np.finfo(float).eps)
    a_safe = np.where(bad[:, None, None], np.eye(a.shape[-1]), a)
    out = np.linalg.solve(a_safe, b)
    out[bad] = np.nan
    return out, bad
