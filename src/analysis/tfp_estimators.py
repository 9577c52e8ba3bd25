"""Point estimators behind :func:`analysis.tfp.estimate_production` (one function per method).

Each ``fit_<method>(panel, opt, start=None, boot=False)`` takes a cleaned
:class:`~analysis.tfp_panel.PanelData` and returns a :class:`CoreFit`: coefficients (or mean
elasticities), log TFP for every row of the panel, and diagnostics. ``boot=True`` is the call
made inside the firm bootstrap: every stage is re-run, but the second stage starts from
``start`` (the point estimate) instead of searching the whole grid again.

Coefficients are ordered free inputs, then state inputs (GNR: then the flexible input).

Methods and their moments (``x_t`` inputs, ``phi`` first-stage fit, ``g`` the concentrated
law of motion of :class:`~analysis.tfp_gmm.LawOfMotion`):

=========  ==========================================================================
ols, fe    pooled OLS / firm fixed effects (pyfixest, SE clustered by firm)
op, lp     Olley-Pakes (1996) / Levinsohn-Petrin (2003): ``y = b_f f + phi(k, proxy)``;
           then ``E[(xi + eps) k_t] = 0`` with ``g`` a polynomial in ``omega_{t-1}``
           (and the survival probability with the exit correction)
acf        Ackerberg-Caves-Frazer (2015): ``phi = E[y | l, k, m]``;
           ``E[xi (l_{t-1}, k_t)] = 0``; multi-start root search (see :func:`fit_acf`)
wrdg       Wooldridge (2009): the two equations in one GMM problem, the proxy polynomial's
           coefficients shared across equations, efficient two-step weight, clustered SE
gnr        Gandhi-Navarro-Rivers (2020): share regression for the flexible input's
           elasticity, integrate it, then ``E[eta * C-terms] = 0``
=========  ==========================================================================
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import least_squares

from analysis.tfp_gmm import LawOfMotion, distinct_solutions, moment_weight, solve_moments
from analysis.tfp_panel import (
    PanelData,
    Standardizer,
    group_demean,
    ols_absorb,
    poly_design,
    poly_terms,
    single_blas_thread,
)

__all__ = ["Options", "CoreFit", "MultipleRootsWarning", "FITTERS"]


class MultipleRootsWarning(UserWarning):
    """The second-stage moments have several admissible roots that disagree."""


@dataclass
class Options:
    """Settings shared by the estimators (built by :func:`analysis.tfp.estimate_production`)."""

    method: str
    free_names: list[str]
    state_names: list[str]
    proxy_name: str | None = None
    poly_degree: int = 3
    markov_degree: int = 3
    time_effects: bool = False
    group_effects: bool = False
    selection: bool = False
    root_rule: str = "persistence"
    admissible: tuple[float, float] = (0.0, 1.5)
    starts: Any = None
    search_rows: int = 200_000
    root_tol: float = 1e-6
    seed: int = 0
    wrdg_steps: int = 2
    oplp_objective: str = "nls"

    @property
    def terms(self) -> list[str]:
        return [*self.free_names, *self.state_names]


@dataclass
class CoreFit:
    """What one estimation returns (before inference and tidying)."""

    coef: np.ndarray
    terms: list[str]
    tfp: np.ndarray
    n_obs: int
    tfp_clean: np.ndarray | None = None
    elasticities: np.ndarray | None = None
    vcov: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ======================================================================================
# Baselines: OLS and fixed effects
# ======================================================================================
def _linear_frame(panel: PanelData) -> pd.DataFrame:
    X = panel.inputs
    frame = pd.DataFrame({f"x{j}": X[:, j] for j in range(X.shape[1])})
    frame["y"] = panel.y
    frame["unit"] = panel.unit
    frame["year"] = panel.time
    return frame


def _within(A: np.ndarray, unit: np.ndarray, years: np.ndarray | None, tol: float = 1e-12) -> np.ndarray:
    """Two-way (or one-way) within transformation by alternating projections."""
    out = group_demean(A, unit)
    if years is None:
        return out
    for _ in range(1000):
        new = group_demean(group_demean(out, years), unit)
        if np.max(np.abs(new - out)) < tol * (1 + np.max(np.abs(out))):
            return new
        out = new
    return out


def fit_linear(panel: PanelData, opt: Options, start: np.ndarray | None = None, boot: bool = False) -> CoreFit:
    """Pooled OLS (``method="ols"``) or firm fixed effects (``"fe"``); year FE with time effects.

    The point estimate and firm-clustered (CRV1) covariance come from :func:`pyfixest.feols`;
    inside the bootstrap the same estimator is computed with NumPy (within transformation).
    Log TFP is ``y - x'b`` (it keeps the intercept and, for FE, the firm effect).
    """
    X = panel.inputs
    yc = panel.effect_codes(opt.time_effects)
    if boot:
        if opt.method == "fe":
            A = _within(np.column_stack([panel.y, X]), panel.unit, yc)
            coef = np.linalg.lstsq(A[:, 1:], A[:, 0], rcond=None)[0]
        else:  # effects absorbed by demeaning (a constant when there are none)
            A = np.column_stack([panel.y, X])
            A = A - A.mean(axis=0) if yc is None else group_demean(A, yc)
            coef = np.linalg.lstsq(A[:, 1:], A[:, 0], rcond=None)[0]
        return CoreFit(coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, n_obs=panel.n)
    import pyfixest as pf

    frame = _linear_frame(panel)
    rhs = " + ".join(f"x{j}" for j in range(X.shape[1]))
    if panel.group is not None:
        frame["group"] = panel.group
    cell = "group^year" if (panel.group is not None and opt.time_effects) else ("group" if panel.group is not None else "year")
    fes = [f for f, on in (("unit", opt.method == "fe"), (cell, opt.time_effects or panel.group is not None)) if on]
    fml = f"y ~ {rhs}" + (f" | {' + '.join(fes)}" if fes else "")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*singleton.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        model = pf.feols(fml, data=frame, vcov={"CRV1": "unit"})
    names = [f"x{j}" for j in range(X.shape[1])]
    coef = model.coef()[names].to_numpy()
    order = [list(model.coef().index).index(nm) for nm in names]
    vcov = np.asarray(model._vcov)[np.ix_(order, order)]
    return CoreFit(
        coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, n_obs=int(model._N), vcov=vcov,
        info={"n_clusters": int(np.unique(panel.unit).size), "cluster": "firm (CRV1)"},
    )


# ======================================================================================
# Shared pieces of the two-step estimators
# ======================================================================================
def _first_stage(panel: PanelData, opt: Options, linear: np.ndarray | None, poly_vars: np.ndarray):
    """OLS of output on ``linear`` columns + a complete polynomial in ``poly_vars`` (+ year FE).

    Returns the coefficients on ``linear`` and the fitted values.
    """
    std = Standardizer.fit(poly_vars)
    terms = poly_terms(poly_vars.shape[1], opt.poly_degree, include_bias=False)
    lin = [] if linear is None else [linear]
    if panel.markov is not None:
        lin.append(np.nan_to_num(panel.markov))
    lin_mat = np.column_stack(lin) if lin else np.empty((panel.n, 0))
    yc = panel.effect_codes(opt.time_effects)

    def make_X(s: slice) -> np.ndarray:
        cols = [lin_mat[s], poly_design(std(poly_vars[s]), terms)]
        if yc is None:
            cols.insert(0, np.ones(s.stop - s.start))
        return np.column_stack(cols)

    coef, fitted = ols_absorb(panel.y, make_X, panel.n, groups=yc)
    k_lin = 0 if linear is None else linear.shape[1]
    offset = 0 if yc is not None else 1
    return coef[offset : offset + k_lin], fitted


def _stage2_rows(panel: PanelData) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a (gap-respecting) previous year, and the positions of that year."""
    L = panel.lag(1)
    ok = L >= 0
    if panel.markov is not None:
        ok &= np.all(np.isfinite(panel.markov[np.maximum(L, 0)]), axis=1)
    cur = np.flatnonzero(ok)
    return cur, L[cur]


def _default_starts(p: int, opt: Options, extra: list[np.ndarray]) -> np.ndarray:
    """Starting values: a grid on [0.1, 1.0]^p (p <= 2) or 16 Sobol points (p > 2), plus ``extra``."""
    if opt.starts is not None and not isinstance(opt.starts, int):
        grid = np.atleast_2d(np.asarray(opt.starts, dtype=float))
        if grid.shape[1] != p:
            raise ValueError(f"starts must have {p} columns (one per coefficient), got {grid.shape[1]}")
        return grid
    if p <= 2 and not isinstance(opt.starts, int):
        grid = np.array(list(product([0.1, 0.4, 0.7, 1.0], repeat=p)), dtype=float)
    else:
        from scipy.stats import qmc

        m = int(opt.starts) if isinstance(opt.starts, int) else 16
        grid = 0.05 + 0.95 * qmc.Sobol(d=p, scramble=True, seed=opt.seed).random(m)
    grid = np.vstack([grid, *[e[None, :] for e in extra if np.all(np.isfinite(e))]])
    return grid


def _ols_start(panel: PanelData, cols: np.ndarray) -> np.ndarray:
    A = np.column_stack([np.ones(panel.n), cols])
    return np.linalg.lstsq(A, panel.y, rcond=None)[0][1:]


def _firm_subsample(units: np.ndarray, target_rows: int, seed: int) -> np.ndarray:
    """Boolean mask selecting whole firms, about ``target_rows`` rows."""
    uniq = np.unique(units)
    share = min(1.0, target_rows / units.size)
    rng = np.random.default_rng(seed)
    keep = uniq[rng.random(uniq.size) < share]
    return np.isin(units, keep)


@dataclass
class _MomentProblem:
    """A second stage in ``b``: moments ``E[Z * resid(b)] = 0`` (``kind="moments"``, solved
    as a root) or nonlinear least squares ``min sum resid(b)^2`` (``kind="nls"``, ``Z`` unused).

    ``innovation(b)`` returns (the residual, the productivity innovation ``xi``, the
    persistence R^2 of the law of motion).
    """

    innovation: Any
    Z: np.ndarray | None
    free_cur: np.ndarray | None = None
    kind: str = "moments"
    overid: Any = None  # b -> Hansen J with extra lagged instruments (ACF), or None

    def __post_init__(self) -> None:
        self.scale = 1.0
        self.critical_value = 0.0
        if self.kind == "moments":
            self.U = moment_weight(self.Z)
            self.n = self.Z.shape[0]
            self.critical_value = float(stats.chi2.ppf(0.95, self.Z.shape[1]))

    def weighted(self, b: np.ndarray) -> np.ndarray:
        r, _, _ = self.innovation(b, r2=False)
        if self.kind == "nls":
            return r / (self.scale * np.sqrt(r.size))
        return self.U @ (self.Z.T @ r / self.n) / self.scale

    def criterion(self, b: np.ndarray) -> float:
        """Moments: ``n m'Wm / var(resid)`` (Sargan form, 0 at a root). NLS: mean squared residual."""
        r, _, _ = self.innovation(b, r2=False)
        if self.kind == "nls":
            return float(np.mean(r**2))
        m = self.U @ (self.Z.T @ r / self.n)
        v = float(r.var())
        return float(self.n * (m @ m) / v) if v > 0 else np.inf

    def diagnostics(self, b: np.ndarray) -> dict[str, float]:
        _, xi, r2 = self.innovation(b)
        out = {"criterion": self.criterion(b), "persistence": r2}
        if self.free_cur is not None:
            for j in range(self.free_cur.shape[1]):
                out[f"corr_free{j}"] = float(np.corrcoef(self.free_cur[:, j], xi)[0, 1])
        return out


def _search_roots(
    make_problem, n_rows: int, units: np.ndarray, starts: np.ndarray, opt: Options
) -> tuple[_MomentProblem, list[tuple[np.ndarray, float, int, bool]]]:
    """Multi-start search; returns the full-sample problem and ``(solution, cost, starts that
    reached it, polished on the full sample)``.

    On samples above ``opt.search_rows`` rows the starts run on a random subsample of firms;
    each distinct subsample solution that is a root there (or any NLS minimum) is then
    polished on the full sample, and local minima that are not roots are reported at their
    subsample location (``polished=False``): they cannot become the estimate.
    """
    full = make_problem(None)
    if n_rows <= opt.search_rows:
        full.scale = _scale_of(full, starts[0])
        sols = distinct_solutions(solve_moments(full.weighted, starts), tol=1e-3)
        return full, [(x, cost, c, True) for x, cost, c in sols]
    mask = _firm_subsample(units, opt.search_rows, opt.seed)
    sub = make_problem(mask)
    sub.scale = full.scale = _scale_of(sub, starts[0])
    found = distinct_solutions(solve_moments(sub.weighted, starts), tol=1e-3)
    out: list[list] = []
    for x, _, count in found:
        if sub.kind == "nls" or sub.criterion(x) <= opt.root_tol:
            polished = solve_moments(full.weighted, x[None, :])
            if not polished:
                continue
            x_full, cost = polished[0][0], polished[0][1]
            done = True
        else:
            x_full, cost, done = x, float(np.sum(full.weighted(x) ** 2)), False
        for g in out:
            if np.max(np.abs(g[0] - x_full)) < 1e-3:
                g[2] += count
                break
        else:
            out.append([x_full, cost, count, done])
    return full, [tuple(g) for g in sorted(out, key=lambda g: g[1])]


def _scale_of(problem: _MomentProblem, b0: np.ndarray) -> float:
    r, _, _ = problem.innovation(b0, r2=False)
    return float(r.std()) or 1.0


def _roots_table(problem: _MomentProblem, sols, terms: list[str], opt: Options, free_names: list[str]) -> pd.DataFrame:
    rows = []
    lo, hi = opt.admissible
    for x, _, count, polished in sols:
        d = problem.diagnostics(x)
        row = dict(zip(terms, x))
        row.update(d)
        for j, nm in enumerate(free_names):
            if f"corr_free{j}" in row:
                row[f"corr_{nm}_xi"] = row.pop(f"corr_free{j}")
        row["admissible"] = bool(np.all((x >= lo) & (x <= hi)))
        # NLS: every converged local minimum is a candidate; moments: only exact roots
        row["is_root"] = True if problem.kind == "nls" else bool(d["criterion"] <= opt.root_tol)
        row["near_root"] = row["is_root"] or bool(d["criterion"] <= problem.critical_value)
        row["overid_j"] = problem.overid(x) if (problem.overid is not None and row["near_root"]) else np.nan
        row["n_starts"] = int(count)
        row["polished"] = bool(polished)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("criterion", kind="stable").reset_index(drop=True)


def select_root(
    table: pd.DataFrame, terms: list[str], rule: str, tol: float = 0.02, kind: str = "moments"
) -> tuple[int, list[str]]:
    """Pick one row of a roots table; return its position and notes (warnings to raise).

    For an NLS second stage (``kind="nls"``, OP/LP default) the estimator is the admissible
    local minimum with the smallest sum of squares. For moment problems (ACF, GNR, and OP/LP
    with ``oplp_objective="gmm"``) the rule (``rule="persistence"``, the default) is:

    1. candidates are the exact roots (normalised criterion <= ``root_tol``) with every
       coefficient in the admissible box;
    2. if there is none, the admissible *near roots*: local minima whose criterion (the
       Sargan form ``n m'Wm / var(xi)``) is below the 5 % critical value of a chi-squared with
       as many degrees of freedom as moments, i.e. points where the moments are not
       significantly different from zero. This happens when the two moment curves nearly
       touch along a flat ridge (weak identification along constant returns) and sampling
       noise makes them miss each other; an admissible point the data cannot reject beats an
       exact root at impossible elasticities;
    3. if there is none either, all exact roots; then all local minima (noted);
    4. drop degenerate candidates: those whose law of motion ``omega_t = g(omega_{t-1}) + xi_t``
       explains less than half the R^2 ("persistence") of the most persistent candidate;
    5. if several remain, take the one with the smallest Hansen J statistic of the moments
       over-identified with deeper lags, ``E[xi_t (free_{t-1}, state_t, free_{t-2},
       state_{t-1})] = 0`` (firm-clustered efficient weight at each root, rows with t-2
       observed; column ``overid_j``); without that statistic (OP, LP, GNR, panels too short)
       the most persistent.

    Why persistence first: ACF-type moments have a second, degenerate root near ``b_l = 1, b_k = 0``
    (the "labor share" root). There ``omega(b) = y - l`` is (up to a constant) the log
    inverse labor share, which the labor first-order condition makes serially uncorrelated
    noise, so *every* moment built from t-1 information holds: the criterion is zero at both
    roots and extra lagged instruments (over-identification) do not reject it (in the ACF
    designs they reject the true root instead whenever the first stage is approximate). What
    the degenerate root cannot mimic is persistence: its law of motion explains ~0 % of omega,
    the true one 30-55 % in the ACF designs; its labor is also negatively correlated with the
    innovation (``corr_<free>_xi`` in the table), contrary to labor demand rising with
    productivity. Why J second: when the moment curves are nearly tangent along constant
    returns (a flat ridge; the study's synthetic world), two nearby non-degenerate roots can
    straddle the truth, and persistence then favours the one whose omega absorbs more of the
    persistent labor intensity (b_l too low); deeper lags are valid instruments under the
    ACF timing and tell the two apart. They cannot be used against the degenerate root (it
    satisfies every lagged moment), hence the order. ``rule="criterion"`` takes the lowest
    criterion instead (what a single optimiser does).
    """
    if rule not in ("persistence", "criterion"):
        raise ValueError(f"root_rule must be 'persistence' or 'criterion', got {rule!r}")
    notes: list[str] = []
    near = table["near_root"] if "near_root" in table else table["is_root"]
    tiers = [
        (table["is_root"] & table["admissible"], None),
        (near & table["admissible"] & ~table["is_root"],
         "no exact root in the admissible range; using an admissible near root (criterion {crit:.3g}, below the "
         "5 % chi-squared critical value: the moments are not significantly different from zero there)"),
        (table["is_root"], "no root or near root lies in the admissible range; choosing among all roots"),
        (pd.Series(True, index=table.index), "no exact root found (criterion above tolerance); using the best local minimum"),
    ]
    for mask, note in tiers:
        cand = table.index[mask]
        if len(cand):
            break
    if kind == "nls" or rule == "criterion" or note == tiers[-1][1]:
        pick = int(table.loc[cand, "criterion"].idxmin())
        how = "lowest criterion" if kind != "nls" else "lowest sum of squares"
    else:
        pers = table.loc[cand, "persistence"]
        keep = pers.index[pers >= 0.5 * pers.max()]  # drop degenerate (no-persistence) roots
        j = table.loc[keep, "overid_j"] if "overid_j" in table else pd.Series(np.nan, index=keep)
        if len(keep) > 1 and j.notna().all():
            pick = int(j.idxmin())
            how = f"lowest over-identification J ({table.loc[pick, 'overid_j']:.3g}) among non-degenerate roots"
        else:
            pick = int(table.loc[keep, "persistence"].idxmax())
            how = "the only non-degenerate root" if len(keep) == 1 else "most persistent productivity"
    if note is not None:
        notes.append(note.format(crit=table.loc[pick, "criterion"]))
    others = table.loc[table["is_root"] | near].drop(index=pick, errors="ignore")
    if kind == "nls":  # other local minima matter only when they (nearly) tie
        others = others[others["criterion"] <= 1.01 * table.loc[pick, "criterion"]]
    chosen = table.loc[pick, terms].to_numpy(dtype=float)
    far = [i for i in others.index if np.max(np.abs(others.loc[i, terms].to_numpy(dtype=float) - chosen)) > tol]
    if far:
        desc = "; ".join(
            ", ".join(f"{t}={table.loc[i, t]:.3f}" for t in terms)
            + f" (criterion {table.loc[i, 'criterion']:.3g}, persistence {table.loc[i, 'persistence']:.2f}"
            + ("" if table.loc[i, "admissible"] else ", outside the admissible range")
            + ")"
            for i in far
        )
        notes.append(
            f"{len(far) + 1} solutions of the second stage (roots disagree); chose "
            + ", ".join(f"{t}={chosen[j]:.3f}" for j, t in enumerate(terms))
            + f" (persistence {table.loc[pick, 'persistence']:.2f}; {how}); other root(s): {desc}"
        )
    return pick, notes


def _finish_roots(problem, sols, opt: Options, free_names: list[str]) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    terms = [*free_names, *opt.state_names] if free_names is not None else opt.state_names
    table = _roots_table(problem, sols, terms, opt, free_names or [])
    pick, notes = select_root(table, terms, opt.root_rule, kind=problem.kind)
    table["selected"] = False
    table.loc[pick, "selected"] = True
    return table.loc[pick, terms].to_numpy(dtype=float), table, notes


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

    with single_blas_thread():
        if boot:
            prob = make_problem(None)
            prob.scale = _scale_of(prob, start)
            sols = solve_moments(prob.weighted, start[None, :])
            b_state = sols[0][0] if sols else np.full(K.shape[1], np.nan)
            info = {}
        else:
            starts = _default_starts(K.shape[1], opt, [_ols_start(panel, panel.inputs)[F.shape[1]:]])
            prob, sols = _search_roots(make_problem, cur.size, panel.unit[cur], starts, opt)
            if not sols:
                raise RuntimeError("the second stage did not converge from any starting value")
            b_state, roots, notes = _finish_roots(prob, sols, opt, [])
            info = {"roots": roots, "notes": notes, "n_second_stage": int(cur.size)}
    info["boot_start"] = b_state
    coef = np.r_[b_free, b_state]
    X = panel.inputs
    return CoreFit(coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, tfp_clean=fitted - X @ coef, n_obs=panel.n, info=info)


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

    with single_blas_thread():
        if boot:
            prob = make_problem(None)
            prob.scale = _scale_of(prob, start)
            sols = solve_moments(prob.weighted, start[None, :])
            coef = sols[0][0] if sols else np.full(p, np.nan)
            info: dict[str, Any] = {}
        else:
            starts = _default_starts(p, opt, [_ols_start(panel, X)])
            prob, sols = _search_roots(make_problem, cur.size, panel.unit[cur], starts, opt)
            if not sols:
                raise RuntimeError("the ACF second stage did not converge from any starting value")
            coef, roots, notes = _finish_roots(prob, sols, opt, opt.free_names)
            info = {"roots": roots, "notes": notes, "n_second_stage": int(cur.size)}
    info["boot_start"] = coef
    return CoreFit(coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, tfp_clean=phi - X @ coef,
                   n_obs=panel.n, info=info)


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
    ones = np.ones((n2, 1))
    extra1 = [ones]
    extra2 = [ones]
    if opt.time_effects:
        yc = panel.year_codes()[0][cur]
        D = np.eye(yc.max() + 1)[yc][:, 1:]
        extra1.append(D)
        extra2.append(D)
    if panel.group is not None:  # additive group dummies (not group x year) in both equations
        gc = np.unique(panel.group[cur], return_inverse=True)[1]
        Dg = np.eye(gc.max() + 1)[gc][:, 1:]
        extra1.append(Dg)
        extra2.append(Dg)
    if panel.markov is not None:
        extra1.append(panel.markov[cur])
        extra2.append(panel.markov[lag])
    E1, E2 = np.column_stack(extra1), np.column_stack(extra2)
    Z1 = np.column_stack([E1, Fc, q_t])
    Z2 = np.column_stack([E2, Fl, Kc, q_l])
    ne1, ne2 = E1.shape[1], E2.shape[1]
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
        r1 = y - Xc @ b - q_t @ lam - E1 @ theta[sl_e1]
        r2 = y - Xc @ b - gv - E2 @ theta[sl_e2]
        return r1, r2, v

    # Equation (1) is linear in theta and equation (2) is linear except in g(q_{t-1}'lam): the
    # instrument cross-products of every linear part are computed once, so an evaluation costs
    # O(n * instruments * (nq + G)) instead of O(n * instruments * parameters).
    k_theta = sl_e2.stop
    A1 = np.column_stack([Xc, q_t, E1])
    idx1 = np.r_[np.arange(sl_b.start, sl_b.stop), np.arange(sl_lam.start, sl_lam.stop), np.arange(sl_e1.start, sl_e1.stop)]
    Z1y, Z1A1 = Z1.T @ y / n2, Z1.T @ A1 / n2
    Z2y, Z2X, Z2E = Z2.T @ y / n2, Z2.T @ Xc / n2, Z2.T @ E2 / n2
    nz1 = Z1.shape[1]

    def moments(theta):
        lam, rho = theta[sl_lam], theta[sl_rho]
        v = q_l @ lam
        gv = sum(rho[j] * v ** (j + 1) for j in range(G))
        m1 = Z1y - Z1A1 @ theta[idx1]
        m2 = Z2y - Z2X @ theta[sl_b] - Z2.T @ gv / n2 - Z2E @ theta[sl_e2]
        return np.r_[m1, m2]

    def moment_jac(theta):
        lam, rho = theta[sl_lam], theta[sl_rho]
        v = q_l @ lam
        dg = sum((j + 1) * rho[j] * v**j for j in range(G))
        Gm = np.zeros((nz1 + Z2.shape[1], k_theta))
        Gm[:nz1, idx1] = -Z1A1
        Gm[nz1:, sl_b] = -Z2X
        Gm[nz1:, sl_e2] = -Z2E
        Gm[nz1:, sl_lam] = -(Z2.T @ (dg[:, None] * q_l)) / n2
        Gm[nz1:, sl_rho] = -(Z2.T @ np.column_stack([v ** (j + 1) for j in range(G)])) / n2
        return Gm

    units = panel.unit[cur]
    ustarts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])

    def cluster_S(theta):
        r1, r2, _ = residuals(theta)
        h = np.column_stack([Z1 * r1[:, None], Z2 * r2[:, None]])
        hi = np.add.reduceat(h, ustarts, axis=0)
        return hi.T @ hi / n2

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
        A1 = np.column_stack([Fc, q_t, E1])
        c1 = np.linalg.lstsq(A1, y, rcond=None)[0]
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
    Zb = [Z1, Z2]
    U1 = np.zeros((Z1.shape[1] + Z2.shape[1],) * 2)
    o = 0
    for Zk in Zb:
        kk = Zk.shape[1]
        U1[o : o + kk, o : o + kk] = chol_inv(Zk.T @ Zk / n2)
        o += kk
    with single_blas_thread():
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
    df = Z1.shape[1] + Z2.shape[1] - theta.size
    X = panel.inputs
    info = {"boot_start": theta} if boot else {
        "n_second_stage": int(n2), "converged": ok, "steps": steps, "hansen_j": J, "j_df": int(df),
        "boot_start": theta,
    }
    return CoreFit(coef=coef, terms=opt.terms, tfp=panel.y - X @ coef, n_obs=int(n2), vcov=V[sl_b, sl_b], info=info)


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
    with single_blas_thread():
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
    )


def _term_name(t: tuple[int, ...], names: list[str]) -> str:
    parts = [nm if e == 1 else f"{nm}^{e}" for nm, e in zip(names, t) if e]
    return "*".join(parts) if parts else "const"


FITTERS = {
    "ols": fit_linear,
    "fe": fit_linear,
    "op": fit_oplp,
    "lp": fit_oplp,
    "acf": fit_acf,
    "wrdg": fit_wrdg,
    "gnr": fit_gnr,
}
