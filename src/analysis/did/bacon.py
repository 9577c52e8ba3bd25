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


def bacon_decomp(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
) -> BaconDecomposition:
    """Goodman-Bacon decomposition of the static TWFE estimate into 2x2 DiDs.

    Parameters
    ----------
    data
        Balanced long panel (every unit in every period), no missing outcome.
    outcome, unit, time, cohort
        Column names; ``cohort`` is the first treated period, 0 or missing for never treated;
        units first treated in or before the first period are "always treated".

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
        If the panel is unbalanced or has no treatment variation.
    """
    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort)
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
    gu_lab = np.where(np.isinf(gu), np.inf, np.where(gu <= t_min, -np.inf, gu))  # -inf = always treated
    D = (periods[None, :] >= gu[:, None]).astype(float)
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
