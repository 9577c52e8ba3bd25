"""Goodman-Bacon (2021) decomposition of the static two-way fixed effects DiD estimate.

On a balanced panel without covariates the TWFE coefficient on ``D_it = 1[t >= cohort]`` is a
weighted average of every 2x2 DiD between timing groups (Goodman-Bacon 2021, Theorem 1):

* Treated vs Untreated: a timing group against the never-treated units, all periods;
* Earlier vs Later Treated: an earlier group treated, a later group as control, in the periods
  before the later group is treated;
* Later vs Earlier Treated: a later group treated, an earlier (already treated) group as
  control, in the periods after the earlier group is treated (the "forbidden" comparison that
  turns dynamic effects against TWFE);
* Later vs Always Treated: a timing group against units treated in every period.

Each weight is ``(n_sub / n)^2 * V_sub / V``: the squared share of the sample's rows in the
2x2 subsample times the variance of the two-way demeaned treatment dummy inside it, over the
variance of the two-way demeaned dummy in the whole panel. The weights are non-negative, sum to
one, and the weighted 2x2 estimates sum to the TWFE coefficient (checked in ``meta['gap']``).
The type labels are those of R's ``bacondecomp``.

Treatment can be given as a cohort column (first treated period) or, as in ``bacondecomp``'s
``y ~ D`` formula, as a 0/1 treatment column, which must switch on once and stay on (a unit's
cohort is its first period with ``D = 1``).

With covariates (Goodman-Bacon 2021, Section 5; ``bacondecomp``'s controls): the TWFE
coefficient of ``y ~ D + X | unit + period`` is, by Frisch-Waugh-Lovell, the regression of
``y`` on ``r``, the residual of the two-way demeaned ``D`` on the two-way demeaned ``X``. Split
``r`` into its timing-group x period means ``rbar_kt`` and the rest, ``r - rbar_kt``:

* the **within** term: the regression of ``y`` on ``r - rbar_kt`` (variation of the covariates
  within timing groups), with weight ``Omega = sum (r - rbar)^2 / sum r^2``;
* the **between** terms: for each pair of timing groups ``(k, l)``, the 2x2-style regression of
  the difference of their mean outcomes on the difference of their ``rbar`` (both demeaned over
  periods), which is the TWFE regression of ``y`` on ``rbar`` in the two groups' subsample, with
  weight ``(1 - Omega) n_k n_l sum_t (rbar_kt - rbar_lt)^2 / (N sum_k n_k sum_t rbar_kt^2)``.

The weights sum to one and the weighted estimates to the TWFE coefficient exactly (the pairwise
identity ``sum_k n_k a_k^2 = (1/N) sum_{k<l} n_k n_l (a_k - a_l)^2`` for ``sum_k n_k a_k = 0``;
checked in ``meta['gap']``). Without covariates (or with covariates absorbed by the unit
effects) ``Omega = 0`` and each pair's term is the weight-sum and weighted mean of Theorem 1's
two 2x2s of that pair. Pairs are labelled as ``bacondecomp`` does with controls: "Both
Treated", "Treated vs Untreated", "Later vs Always Treated" (and "Always Treated vs Untreated",
which has weight 0 without covariates). ``bacondecomp`` returns ``Omega`` (our
``meta['within_weight']``), ``beta_hat_w`` (``meta['within_estimate']``) and ``two_by_twos`` whose
weights sum to one among themselves: they are our pair weights divided by ``1 - Omega``. Its
published castle-doctrine output with controls could not be checked here (the data are not
shipped with any installed package); the tests check the exact identity against the TWFE
coefficient with covariates (pyfixest) and the reduction to Theorem 1 without within variation.

Reference: Mixtape Sessions, Advanced-DID, Exercise 1 solutions (R ``bacondecomp``, Medicaid
expansion ``ehec`` data, ``dins ~ postTreated``): TWFE 0.070321; Earlier vs Later Treated weight
0.14911, average estimate 0.06983; Later vs Earlier Treated 0.05827, 0.04486; Treated vs
Untreated 0.79262, 0.07228 (tests/test_bacon.py checks every one of the 24 2x2 rows).

Examples
--------
>>> import moderndid
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> bd = bacon_decomp(mpdta, "lemp", "countyreal", "year", "first.treat")
>>> round(float(bd.table["weight"].sum()), 10), round(bd.meta["twfe_estimate"], 4)
(1.0, -0.0365)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.did._common import prepare_panel
from analysis.did.data import DiDPanel
from analysis.domain import NEVER_TREATED
from analysis.results import EstimationResult, tidy_frame

__all__ = ["bacon_decomp", "BaconDecomposition"]

TYPES = (
    "Earlier vs Later Treated",
    "Later vs Earlier Treated",
    "Treated vs Untreated",
    "Later vs Always Treated",
)


@dataclass(repr=False)
class BaconDecomposition(EstimationResult):
    """One row per 2x2 comparison (``cohort`` = treated group, ``control``, ``type``, ``weight``)."""

    def by_type(self) -> pd.DataFrame:
        """Total weight and weighted average 2x2 estimate by comparison type."""
        t = self.table
        g = t.assign(_we=t["weight"] * t["estimate"]).groupby("type", sort=False)
        out = pd.DataFrame({"weight": g["weight"].sum(), "avg_est": g["_we"].sum() / g["weight"].sum()})
        order = [x for x in TYPES if x in out.index]
        return out.loc[order].reset_index()


def _two_way_demeaned(d: np.ndarray) -> np.ndarray:
    """Two-way demeaning of a balanced units x periods array."""
    return d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()


def _did(y: np.ndarray, post: np.ndarray) -> float:
    """TWFE coefficient of a balanced 2-group subsample: rows 0 = treated group's mean path, 1 = control's."""
    diff = y[0] - y[1]
    return float(diff[post].mean() - diff[~post].mean())


_TREATMENT_COHORT = "_cohort_from_treatment"


def _cohort_from_treatment(data: pd.DataFrame, unit: str, time: str, treatment: str) -> pd.Series:
    """Each row's unit cohort (first period with treatment 1; 0 if never) from a 0/1 column.

    Raises naming the rows or units when the column is not 0/1 or a unit's treatment switches off.
    """
    for col in (unit, time, treatment):
        if col not in data.columns:
            raise ValueError(f"column {col!r} not found in data; it has {list(data.columns)}")
    d = pd.to_numeric(data[treatment], errors="coerce")
    bad = ~d.isin([0, 1])
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        raise ValueError(f"treatment column {treatment!r} must be 0 or 1; {rows.size} row(s) are not (row positions {rows[:5].tolist()})")
    order = np.lexsort((data[time].to_numpy(), pd.factorize(data[unit])[0]))
    u = data[unit].to_numpy()[order]
    dv = d.to_numpy()[order]
    same = u[1:] == u[:-1]
    off = same & (dv[1:] < dv[:-1])
    if off.any():
        units = pd.unique(u[1:][off])
        raise ValueError(
            f"treatment column {treatment!r} switches from 1 back to 0 in {units.size} unit(s) of {unit!r} "
            f"(e.g. {units[:5].tolist()}): the decomposition needs a staggered (absorbing) treatment"
        )
    t = pd.to_numeric(data[time])
    first = t.where(d == 1).groupby(data[unit]).transform("min")
    return first.fillna(0.0)


def bacon_decomp(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str | None = None,
    *,
    treatment: str | None = None,
    covariates: str | list[str] | None = None,
) -> BaconDecomposition:
    """Goodman-Bacon decomposition of the static TWFE estimate into 2x2 DiDs.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Balanced long panel (every unit in every period), no missing outcome.
    outcome, unit, time, cohort : str
        Column names; ``cohort`` is the first treated period, 0 or missing for never treated;
        units first treated in or before the first period are "always treated".
    treatment : str, optional
        Instead of ``cohort``: a 0/1 treatment column that switches on once and stays on
        (``bacondecomp``'s ``y ~ D``). Give exactly one of ``cohort`` and ``treatment``.
    covariates : str or list of str, optional
        Time-varying controls: the covariate-adjusted decomposition of Goodman-Bacon (2021,
        Section 5) into a within term and between-group pair terms (see the module docstring).

    Returns
    -------
    BaconDecomposition
        Rows ``"<treated> vs <control>"`` with the 2x2 ``estimate``, ``weight``, ``type``,
        ``cohort`` (treated timing group) and ``control``; ``std_error`` is not defined (NaN).
        ``meta['twfe_estimate']`` is the TWFE coefficient, ``meta['gap']`` the difference between
        the weighted sum of the 2x2 estimates and it; ``by_type()`` summarises as bacondecomp.

    Raises
    ------
    ValueError
        If the panel is unbalanced or has no treatment variation, the treatment column is not an
        absorbing 0/1 treatment, or both or neither of ``cohort`` and ``treatment`` are given.

    Examples
    --------
    >>> import moderndid
    >>> ehec = moderndid.load_ehec().to_pandas()
    >>> ehec["post"] = (ehec["year"] >= ehec["yexp2"]).astype(int)
    >>> bd = bacon_decomp(ehec, "dins", "stfips", "year", treatment="post")
    >>> round(bd.meta["twfe_estimate"], 6)
    0.070321
    """
    if (cohort is None) == (treatment is None):
        raise ValueError("give exactly one of cohort= (first treated period) and treatment= (a 0/1 column)")
    if isinstance(data, DiDPanel) and treatment is not None:
        data = data.data
    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):
        data = data.to_pandas()
    if treatment is not None:
        data = data.assign(**{_TREATMENT_COHORT: _cohort_from_treatment(data, unit, time, treatment)})
        cohort = _TREATMENT_COHORT
    covs = [covariates] if isinstance(covariates, str) else list(covariates or [])
    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, covariates=covs or None)
    f = panel.frame
    periods = np.sort(f["_t"].unique())
    n_units = int(f["_i"].max()) + 1
    T = len(periods)
    if len(f) != n_units * T:
        counts = f.groupby("_i").size()
        short = int((counts < T).sum())
        raise ValueError(
            f"the Goodman-Bacon decomposition needs a balanced panel: {short} of {n_units} units are "
            f"not observed in all {T} periods (drop them or use another estimator)"
        )
    if panel.notes:
        raise ValueError("; ".join(panel.notes) + " - the decomposition needs a balanced panel without missing values")
    f = f.sort_values(["_i", "_t"])
    Y = f["_y"].to_numpy().reshape(n_units, T)
    gu = f["_g"].to_numpy().reshape(n_units, T)[:, 0]
    t_min = periods[0]
    never = gu == NEVER_TREATED
    gu_lab = np.where(never, np.inf, np.where(gu <= t_min, -np.inf, gu))  # group labels: inf never, -inf always treated
    D = (~never[:, None] & (periods[None, :] >= gu[:, None])).astype(float)
    Dt = _two_way_demeaned(D)
    VD = float((Dt**2).mean())
    if VD <= 1e-15:
        raise ValueError("no variation in treatment timing: the TWFE estimate is not defined")
    beta = float((Dt * Y).sum() / (Dt**2).sum())

    groups = np.unique(gu_lab)
    mean_path = {k: Y[gu_lab == k].mean(axis=0) for k in groups}
    n_g = {k: int((gu_lab == k).sum()) for k in groups}
    timing = [k for k in groups if np.isfinite(k)]
    rows: list[dict[str, Any]] = []

    def add(treated: float, control: float, window: np.ndarray, kind: str) -> None:
        t_w = periods[window]
        post = t_w >= treated
        if post.all() or not post.any():
            return
        y2 = np.vstack([mean_path[treated][window], mean_path[control][window]])
        est = _did(y2, post)
        d_sub = np.vstack([np.repeat(post[None, :].astype(float), n_g[treated], axis=0),
                           np.repeat((t_w[None, :] >= control).astype(float), n_g[control], axis=0)])
        v_sub = float((_two_way_demeaned(d_sub) ** 2).mean())
        share = (n_g[treated] + n_g[control]) * window.sum() / (n_units * T)
        ctrl_lab = "never treated" if control == np.inf else "always treated" if control == -np.inf else str(int(control))
        rows.append({
            "treated": int(treated), "control": ctrl_lab,
            "control_cohort": float(control) if np.isfinite(control) else np.nan,
            "type": kind, "estimate": est, "weight": share**2 * v_sub / VD,
            "n_obs": int((n_g[treated] + n_g[control]) * window.sum()),
        })

    all_periods = np.ones(T, dtype=bool)
    for k in timing:
        if np.inf in n_g:
            add(k, np.inf, all_periods, "Treated vs Untreated")
        if -np.inf in n_g:
            add(k, -np.inf, all_periods, "Later vs Always Treated")
        for later in timing:
            if later <= k:
                continue
            add(k, later, periods < later, "Earlier vs Later Treated")
            add(later, k, periods >= k, "Later vs Earlier Treated")
    if not rows:
        raise ValueError("no 2x2 comparison: need at least one timing group and a comparison group")
    if covs:
        xs = np.stack([f[c].to_numpy().reshape(n_units, T) for c in panel.xcols], axis=-1)
        return _with_covariates(Y, D, xs, gu_lab, panel, outcome, treatment or cohort, covs)
    tab = pd.DataFrame(rows)
    gap = float((tab["weight"] * tab["estimate"]).sum() - beta)
    table = tidy_frame(
        tab["estimate"].to_numpy(), np.full(len(tab), np.nan),
        term=[f"{a} vs {b}" for a, b in zip(tab["treated"], tab["control"])],
        outcome=outcome, estimator="bacon_2x2", n_obs=tab["n_obs"].to_numpy(),
        cohort=tab["treated"].to_numpy(), control=tab["control"].to_numpy(),
        control_cohort=tab["control_cohort"].to_numpy(), type=tab["type"].to_numpy(),
        weight=tab["weight"].to_numpy(),
    )
    return BaconDecomposition(
        table=table,
        vcov=None,
        meta=panel.meta(twfe_estimate=beta, weight_sum=float(tab["weight"].sum()), gap=gap,
                        notes=["2x2 estimates have no standard errors; weights follow Goodman-Bacon (2021) Theorem 1"]),
        title=f"Goodman-Bacon decomposition: {outcome} (TWFE {beta:.4f})",
    )


def _pair_type(a: float, b: float) -> str:
    """bacondecomp's labels for a pair of timing groups (with controls)."""
    kinds = {a, b}
    if np.inf in kinds:
        return "Always Treated vs Untreated" if -np.inf in kinds else "Treated vs Untreated"
    if -np.inf in kinds:
        return "Later vs Always Treated"
    return "Both Treated"


def _label(k: float) -> str:
    return "never treated" if k == np.inf else "always treated" if k == -np.inf else str(int(k))


def _with_covariates(
    Y: np.ndarray, D: np.ndarray, X: np.ndarray, group: np.ndarray, panel: Any, outcome: str, treat_name: str, covs: list[str]
) -> BaconDecomposition:
    """Goodman-Bacon (2021) Section 5: within term + between-group pair terms (module docstring)."""
    n_units, T = Y.shape
    Xt = np.stack([_two_way_demeaned(X[:, :, j]) for j in range(X.shape[-1])], axis=-1).reshape(n_units * T, -1)
    norms = np.sqrt((Xt**2).sum(axis=0))
    scale = np.sqrt((X.reshape(n_units * T, -1) ** 2).sum(axis=0))
    varying = norms > 1e-10 * np.maximum(scale, 1.0)
    notes = []
    if not varying.all():
        dropped = [c for c, v in zip(covs, varying, strict=True) if not v]
        notes.append(f"covariate(s) {dropped} do not vary within units over time (absorbed by the unit effects) and were dropped")
    Dt = _two_way_demeaned(D).ravel()
    if varying.any():
        Xv = Xt[:, varying]
        gamma = np.linalg.lstsq(Xv, Dt, rcond=None)[0]
        r = (Dt - Xv @ gamma).reshape(n_units, T)
    else:
        r = Dt.reshape(n_units, T)
    ssr = float((r**2).sum())
    if ssr <= 1e-12 * max(1.0, float((Dt**2).sum())):
        raise ValueError("the treatment is collinear with the covariates and the fixed effects: the TWFE estimate is not defined")
    beta = float((r * Y).sum() / ssr)

    groups = np.unique(group)
    n_g = np.array([(group == k).sum() for k in groups], dtype=float)
    rbar = np.vstack([r[group == k].mean(axis=0) for k in groups])
    ybar = np.vstack([Y[group == k].mean(axis=0) for k in groups])
    within = r - rbar[np.searchsorted(groups, group)]
    ss_w = float((within**2).sum())
    ss_b = float((n_g[:, None] * rbar**2).sum())
    omega = ss_w / ssr
    rows: list[dict[str, Any]] = []
    if ss_w > 1e-14 * ssr:
        rows.append({"term": "within", "treated": "", "control": "", "control_cohort": np.nan, "type": "Within",
                     "estimate": float((within * Y).sum() / ss_w), "weight": omega, "n_obs": n_units * T})
    n_total = n_g.sum()
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            dr = rbar[a] - rbar[b]
            dr = dr - dr.mean()
            dy = ybar[a] - ybar[b]
            dy = dy - dy.mean()
            ss = float(dr @ dr)
            if ss <= 1e-14 * ssr:
                continue
            # the later-treated, untreated or always-treated group is listed as the control
            k, l_ = (groups[b], groups[a]) if (groups[a] == -np.inf and groups[b] != np.inf) else (groups[a], groups[b])
            rows.append({
                "term": f"{_label(k)} vs {_label(l_)}", "treated": _label(k), "control": _label(l_),
                "control_cohort": float(l_) if np.isfinite(l_) else np.nan, "type": _pair_type(k, l_),
                "estimate": float(dr @ dy / ss),
                "weight": (1 - omega) * n_g[a] * n_g[b] * ss / (n_total * ss_b),
                "n_obs": int((n_g[a] + n_g[b]) * T),
            })
    tab = pd.DataFrame(rows)
    gap = float((tab["weight"] * tab["estimate"]).sum() - beta)
    table = tidy_frame(
        tab["estimate"].to_numpy(), np.full(len(tab), np.nan), term=tab["term"].tolist(),
        outcome=outcome, estimator="bacon_2x2", n_obs=tab["n_obs"].to_numpy(),
        treated=tab["treated"].to_numpy(), control=tab["control"].to_numpy(),
        control_cohort=tab["control_cohort"].to_numpy(), type=tab["type"].to_numpy(), weight=tab["weight"].to_numpy(),
    )
    within_est = float(tab.loc[tab["type"] == "Within", "estimate"].iloc[0]) if (tab["type"] == "Within").any() else np.nan
    between = tab["type"] != "Within"
    beta_b = float((tab.loc[between, "weight"] * tab.loc[between, "estimate"]).sum() / tab.loc[between, "weight"].sum())
    return BaconDecomposition(
        table=table,
        vcov=None,
        meta=panel.meta(twfe_estimate=beta, weight_sum=float(tab["weight"].sum()), gap=gap, within_weight=omega,
                        within_estimate=within_est, between_estimate=beta_b, treatment=treat_name,
                        notes=[*notes, ("covariate-adjusted decomposition (Goodman-Bacon 2021, Section 5): within term + "
                                        "between-group pair terms; 2x2 estimates have no standard errors")]),
        title=f"Goodman-Bacon decomposition with covariates: {outcome} (TWFE {beta:.4f})",
    )
