"""The pieces the two-step estimators share: first stage, moment problems, the root search.

OP, LP, ACF and GNR have a first stage (a polynomial regression giving ``phi``) and a second
stage whose moments may have several roots. Here are the first stage (:func:`_first_stage`),
the rows with a previous year (:func:`_stage2_rows`), the second stage as a moment or
least-squares problem (:class:`_MomentProblem`), the multi-start search on a firm subsample
with polishing on all rows (:func:`_search_roots`), the table of every distinct solution and the
documented rule that picks one (:func:`select_root`).

The second stages call BLAS on tall, thin arrays (dot products, matrix-vector products)
hundreds of times; OpenBLAS threads gain nothing there and, on a busy machine, spin-wait (a
200,000-row ACF search took 28 s with OpenBLAS' default threads on 2 loaded cores and 1.9 s
with one thread), so the fitters run them inside :func:`analysis.inference.blas_threads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.tfp.arrays import PanelData, Standardizer, ols_absorb, poly_design, poly_terms
from analysis.tfp.core import Options
from analysis.tfp.gmm import distinct_solutions, moment_weight, solve_moments


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
