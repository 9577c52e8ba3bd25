"""de Chaisemartin and D'Haultfoeuille (2020) weights of the static two-way fixed effects estimate.

Theorem 1 of de Chaisemartin and D'Haultfoeuille (2020, AER): under parallel trends the TWFE
coefficient of ``y_it = a_i + l_t + b D_it + e_it`` is a weighted sum of the treatment effects of
the treated observations,

    b_fe = E[ sum_{it: D=1} pi_it w_it Delta_it ],   pi_it = 1 / N_1,   w_it = eps_it / (sum_{D=1} pi eps),

where ``eps`` is the residual of the regression of ``D`` on the unit and period effects. The
weights sum to one but can be negative: for already-treated units in late periods, which the
regression uses as controls for later-treated ones. This module computes them for an unbalanced
panel (the residual by within-unit demeaning and period dummies; no dense unit dummies), with the
summary measures of the ``twowayfeweights`` command:

* the number of treated observations with positive and negative weights and the sums of each;
* Corollary 1 (i), ``sigma_fe = |b_fe| / sigma(w)``, ``sigma(w) = (sum pi (w - 1)^2)^(1/2)``: the
  smallest standard deviation of the treatment effects compatible with ``b_fe`` and an average
  effect on the treated of zero;
* Corollary 1 (ii): the smallest standard deviation compatible with ``b_fe`` and effects that all
  have the opposite sign of ``b_fe`` (only when some weights are negative).

Groups in the paper are the cells where treatment is assigned; here every unit-period is a cell
(``N_gt = 1``), as in ``twowayfeweights Y unit time D``. ``by_cohort_time()`` sums the weights by
cohort and year, the picture to show.

Checks (``tests/test_robustness_dcdh.py``): Theorem 1 holds exactly on a world without noise;
the counts, ``fraction_negative`` and ``sigma_fe`` equal diff-diff's ``twowayfeweights`` on the
Vella-Verbeek union panel; Corollary 1 (ii) equals the minimum of the quadratic programme that
defines it.

Examples
--------
>>> import moderndid
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> tw = twfe_weights(mpdta, "lemp", "countyreal", "year", "first.treat")
>>> round(tw.beta_fe, 4), tw.summary()["n_negative"] >= 0
(-0.0365, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.did._common import demean_by_group

__all__ = ["TWFEWeights", "twfe_weights"]


@dataclass(repr=False)
class TWFEWeights:
    """The weights of every treated observation and the summary measures (see the module docstring).

    Attributes
    ----------
    weights
        One row per treated observation: ``unit``, ``time``, ``cohort`` (if known), ``w`` (the
        paper's weight, mean one) and ``weight`` (``w / N_1``, summing to one).
    beta_fe
        The TWFE coefficient.
    """

    weights: pd.DataFrame
    beta_fe: float
    outcome: str
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts and sums of positive and negative weights, and Corollary 1's two measures."""
        wt = self.weights["weight"].to_numpy()
        w = self.weights["w"].to_numpy()
        n1 = wt.size
        tol = 1e-12 * np.abs(wt).max()
        pos, neg = wt > tol, wt < -tol
        pi = np.full(n1, 1.0 / n1)
        sd_w = float(np.sqrt(pi @ (w - 1.0) ** 2))
        return {
            "beta_fe": self.beta_fe,
            "n_treated": int(n1),
            "n_positive": int(pos.sum()),
            "n_negative": int(neg.sum()),
            "n_zero": int(n1 - pos.sum() - neg.sum()),
            "sum_positive": float(wt[pos].sum()),
            "sum_negative": float(wt[neg].sum()),
            "share_negative": float(neg.mean()),
            "sigma_fe": abs(self.beta_fe) / sd_w if sd_w > 0 else np.inf,
            "sigma_fe_sign": _sigma_opposite_sign(self.beta_fe, w[pos | neg], pi[pos | neg]) if neg.any() else np.inf,
        }

    def by_cohort_time(self) -> pd.DataFrame:
        """Weights summed by cohort and period (``weight``), with the count and the negative part."""
        d = self.weights
        keys = ["cohort", "time"] if "cohort" in d else ["time"]
        g = d.assign(negative=d["weight"].clip(upper=0)).groupby(keys)
        return g.agg(weight=("weight", "sum"), negative=("negative", "sum"), n=("weight", "size")).reset_index()

    def table(self) -> pd.DataFrame:
        """The summary as a two-column table (measure, value) for a report."""
        s = self.summary()
        labels = {
            "beta_fe": "TWFE coefficient",
            "n_treated": "treated observations",
            "n_positive": "with a positive weight",
            "n_negative": "with a negative weight",
            "sum_positive": "sum of positive weights",
            "sum_negative": "sum of negative weights",
            "share_negative": "share of treated observations with a negative weight",
            "sigma_fe": "min sd of effects compatible with beta_fe and ATT = 0 (Cor. 1 i)",
            "sigma_fe_sign": "min sd of effects all of the opposite sign (Cor. 1 ii)",
        }
        return pd.DataFrame({"measure": [labels[k] for k in labels], "value": [s[k] for k in labels]})

    def plot(self, ax=None, title: str | None = None):
        """Bars of the summed weight by cohort and period (negative parts hatched)."""
        import matplotlib.pyplot as plt

        t = self.by_cohort_time()
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        cohorts = list(dict.fromkeys(t["cohort"])) if "cohort" in t else [None]
        width = 0.8 / max(len(cohorts), 1)
        for i, g in enumerate(cohorts):
            part = t[t["cohort"] == g] if g is not None else t
            x = part["time"].to_numpy(dtype=float) + (i - (len(cohorts) - 1) / 2) * width
            ax.bar(x, part["weight"], width=width, color=f"C{i % 10}", label=f"cohort {int(g)}" if g is not None else None)
            ax.bar(x, part["negative"], width=width, color="none", edgecolor="black", hatch="//", lw=0.5)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(sorted(int(v) for v in t["time"].unique()))
        ax.set_xlabel("year")
        ax.set_ylabel("sum of TWFE weights")
        ax.set_title(title or f"de Chaisemartin-D'Haultfoeuille weights of the TWFE estimate: {self.outcome}")
        if cohorts != [None]:
            ax.legend(frameon=False, fontsize="small")
        return ax.figure

    def __repr__(self) -> str:
        s = self.summary()
        return (f"TWFE weights ({self.outcome}): beta_fe {s['beta_fe']:.4f}; {s['n_negative']} of {s['n_treated']} treated "
                f"observations have negative weights (sum {s['sum_negative']:.4f}); sigma_fe {s['sigma_fe']:.4f}")


def _sigma_opposite_sign(beta: float, w: np.ndarray, pi: np.ndarray) -> float:
    """Corollary 1 (ii): min sd of effects, all of the sign opposite to beta, compatible with beta.

    Sort the weights in decreasing order; with ``P_k, S_k, T_k`` the sums over ``j >= k`` of
    ``pi``, ``pi w`` and ``pi w^2``, take the first ``k`` (from the top, ``k >= 2``) where
    ``w_k < -S_k / (1 - P_k)`` holds from then on, and return ``|beta| / sqrt(T_k + S_k^2 / (1 - P_k))``.
    """
    order = np.argsort(-w, kind="stable")
    w, pi = w[order], pi[order] / pi.sum()
    P = np.cumsum(pi[::-1])[::-1]
    S = np.cumsum((pi * w)[::-1])[::-1]
    T = np.cumsum((pi * w * w)[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = -S / (1 - P)
        ind = w < ratio
    ind[0] = False
    ind = np.maximum.accumulate(ind)
    if not ind.any():
        return np.inf
    k = int(np.argmax(ind))
    return float(abs(beta) / np.sqrt(T[k] + S[k] ** 2 / (1 - P[k])))



def twfe_weights(
    data: pd.DataFrame,
    outcome: str,
    unit: str,
    time: str,
    cohort: str | None = None,
    *,
    treatment: str | None = None,
) -> TWFEWeights:
    """The dCDH (2020) weights of the static TWFE coefficient and its robustness measures.

    Parameters
    ----------
    data : pandas.DataFrame
        Long panel, balanced or not.
    outcome, unit, time : str
        Column names.
    cohort : str, optional
        First treated period (0 or missing: never treated); ``D = 1[time >= cohort]``.
    treatment : str, optional
        Instead of ``cohort``: a 0/1 treatment column (it may switch on and off, as in the paper's
        union example).

    Returns
    -------
    TWFEWeights

    Raises
    ------
    ValueError
        If neither or both of ``cohort`` and ``treatment`` are given, a column is missing, the
        treatment is not 0/1, or it is collinear with the fixed effects.
    """
    if (cohort is None) == (treatment is None):
        raise ValueError("give exactly one of cohort= (first treated period) and treatment= (a 0/1 column)")
    cols = [c for c in (outcome, unit, time, cohort, treatment) if c is not None]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise KeyError(f"column(s) {missing} are not in the data")
    d = data[cols].dropna(subset=[outcome, unit, time]).reset_index(drop=True)
    notes = []
    single = d.groupby(unit)[time].transform("size") == 1
    if single.any():
        notes.append(f"{int(single.sum())} singleton unit(s) dropped")
        d = d[~single].reset_index(drop=True)
    t = d[time].to_numpy()
    if cohort is not None:
        g = pd.to_numeric(d[cohort], errors="coerce").fillna(0).to_numpy(dtype=float)
        D = ((g > 0) & (t >= g)).astype(float)
    else:
        D = pd.to_numeric(d[treatment], errors="coerce").to_numpy(dtype=float)
        if not np.isin(D, [0.0, 1.0]).all():
            raise ValueError(f"treatment column {treatment!r} must be 0 or 1 in every row")
    if D.sum() == 0:
        raise ValueError("no treated observation")
    u = pd.factorize(d[unit], sort=True)[0]
    nu = int(u.max()) + 1
    periods = np.unique(t)
    pos = np.searchsorted(periods, t)
    L = np.zeros((t.size, periods.size - 1))
    rows = np.flatnonzero(pos > 0)
    L[rows, pos[rows] - 1] = 1.0
    Lw = demean_by_group(L, u, nu)
    Dw = demean_by_group(D, u, nu)
    eps = Dw - Lw @ np.linalg.lstsq(Lw, Dw, rcond=None)[0]
    yw = demean_by_group(d[outcome].to_numpy(dtype=float), u, nu)
    ss = float(eps @ eps)
    if ss <= 1e-12 * max(1.0, float(D @ D)):
        raise ValueError("the treatment is collinear with the unit and period effects: no TWFE coefficient")
    beta = float(eps @ yw / ss)
    tr = D == 1
    e1 = eps[tr]
    w = e1 / e1.mean()
    out = pd.DataFrame({"unit": d.loc[tr, unit].to_numpy(), "time": t[tr]})
    if cohort is not None:
        out["cohort"] = g[tr]
    out["w"] = w
    out["weight"] = w / w.size
    return TWFEWeights(weights=out, beta_fe=beta, outcome=outcome, notes=notes)
