"""A small staggered-adoption simulation with known effects, for the DiD tests.

Firms sit in cells (a county x industry cluster); treatment is assigned to cells in three
cohorts plus a never-treated group, so inference must cluster on the cell. Potential outcomes:

    y0_it = a_i + l_t + s_ct + b * x1_it + u_it,    y_it = y0_it + tau_it,

with unit effects ``a_i`` correlated with the cohort, a common year effect ``l_t``, a cell x year
shock ``s_ct`` (errors correlated within cells), a time-varying covariate ``x1`` whose trend
differs by cohort (so parallel trends hold only conditional on ``x1``) and i.i.d. noise.
Effects are dynamic and heterogeneous across cohorts:

    tau_it = scale_g * (1 + slope * e) for e = t - g >= 0, 0 before,

large and growing for the earliest cohort, so static TWFE, which uses already-treated cohorts as
controls, is badly biased (Goodman-Bacon 2021). With ``unbalanced=True`` firms enter late / exit
early and some firm-years are missing at random.

The true event-time effect an estimator targets is the mean of ``tau`` over the treated
observations at that event time in its estimation sample (:func:`true_event_effects`): the
cohort-share weighting of Sun-Abraham and the equal-weight averages of imputation and of
Callaway-Sant'Anna's event aggregation give exactly this; for stacked DiD restrict to the cohorts
whose window fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

COHORT_SCALE = {2014: 1.0, 2016: 0.5, 2018: 0.25}


def simulate_staggered(
    n_cells: int = 150,
    firms_per_cell: int = 8,
    years: Sequence[int] = tuple(range(2010, 2022)),
    cohort_shares: dict[int, float] | None = None,
    scale: dict[int, float] | None = None,
    slope: float = 0.5,
    beta_x: float = 0.5,
    sigma_u: float = 0.5,
    sigma_cell: float = 0.2,
    unbalanced: bool = True,
    never_treated: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate the panel; columns firm, cell, year, cohort (0 = never), x1, y, y0, tau."""
    rng = np.random.default_rng(seed)
    years = np.asarray(years)
    scale = dict(COHORT_SCALE if scale is None else scale)
    shares = cohort_shares or {2014: 0.2, 2016: 0.2, 2018: 0.2, 0: 0.4}
    if not never_treated:
        shares = {g: s for g, s in shares.items() if g != 0}
    labels = np.array(list(shares))
    p = np.array(list(shares.values()), dtype=float)
    cell_cohort = rng.choice(labels, size=n_cells, p=p / p.sum())
    n = n_cells * firms_per_cell
    cell = np.repeat(np.arange(n_cells), firms_per_cell)
    cohort = cell_cohort[cell]
    T = len(years)
    df = pd.DataFrame({
        "firm": np.repeat(np.arange(n), T),
        "cell": np.repeat(cell, T),
        "year": np.tile(years, n),
        "cohort": np.repeat(cohort, T),
    })
    g = df["cohort"].to_numpy()
    t = df["year"].to_numpy()
    a = rng.normal(0, 1, n) + 0.3 * (cohort > 0) + 0.1 * np.where(cohort > 0, cohort - 2014, 0)
    lam = 0.1 * (years - years[0]) + rng.normal(0, 0.2, T)
    s = rng.normal(0, sigma_cell, (n_cells, T))
    # covariate with a cohort-specific trend: parallel trends hold conditional on x1 only
    trend = np.where(g == 0, 0.0, 0.08 * (2019 - np.where(g == 0, 2019, g)))
    x1 = rng.normal(0, 1, len(df)) + trend * (t - years[0])
    y0 = a[df["firm"].to_numpy()] + lam[t - years[0]] + s[df["cell"].to_numpy(), t - years[0]] + beta_x * x1
    y0 = y0 + rng.normal(0, sigma_u, len(df))
    e = t - g
    sc = np.array([scale.get(int(v), 0.0) for v in g])
    tau = np.where((g > 0) & (e >= 0), sc * (1 + slope * e), 0.0)
    df["x1"] = x1
    df["y0"] = y0
    df["tau"] = tau
    df["y"] = y0 + tau
    if unbalanced:
        entry = rng.integers(0, 3, n) * (rng.random(n) < 0.3)
        exit_ = T - rng.integers(0, 3, n) * (rng.random(n) < 0.3)
        pos = t - years[0]
        f = df["firm"].to_numpy()
        keep = (pos >= entry[f]) & (pos < exit_[f]) & (rng.random(len(df)) > 0.05)
        df = df.loc[keep].reset_index(drop=True)
    return df


def true_event_effects(df: pd.DataFrame, cohorts: Sequence[int] | None = None) -> pd.Series:
    """Mean true effect over treated observations by event time (optionally for some cohorts)."""
    d = df[df["cohort"] > 0]
    if cohorts is not None:
        d = d[d["cohort"].isin(list(cohorts))]
    e = d["year"] - d["cohort"]
    return d.loc[e >= 0, "tau"].groupby(e[e >= 0]).mean()


def true_att(df: pd.DataFrame) -> float:
    """Mean true effect over all treated observations."""
    d = df[(df["cohort"] > 0) & (df["year"] >= df["cohort"])]
    return float(d["tau"].mean())
