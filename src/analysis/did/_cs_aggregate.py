"""Aggregations of ATT(g,t) into summary parameters, with their influence functions.

Callaway and Sant'Anna (2021), Section 3 and R ``did::aggte`` (2.5): every summary parameter is
a weighted average ``theta_j = sum_k a_jk ATT_k`` of cells. When the weights are cohort shares
``P(G = g)`` estimated from the sample, their estimation error enters the influence function::

    IF_j = sum_k a_jk psi_k + Z u_j,   Z_ig = w_i 1{G_i = g} - pg_g,
    u_jg = sum_{k in S_j, g_k = g} (ATT_k - theta_j) / sum_{k in S_j} pg_k

(R's ``wif``, rewritten as one matrix product for all parameters at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Aggregation", "aggregate_cells"]

KINDS = ("simple", "event", "group", "calendar")


@dataclass
class Aggregation:
    """Summary parameters: estimates, influence functions and labels.

    The last row is the overall summary (for ``simple`` it is the only row).
    """

    term: list[str]
    estimate: np.ndarray
    influence: np.ndarray
    event_time: np.ndarray
    cohort: np.ndarray
    time: np.ndarray
    overall: np.ndarray


def _weighted(
    member: np.ndarray, att: np.ndarray, psi: np.ndarray, pg_cell: np.ndarray, z: np.ndarray, cell_gidx: np.ndarray, by_share: bool
) -> tuple[np.ndarray, np.ndarray]:
    """theta_j and IF_j for targets ``member`` (J x K boolean over cells)."""
    a = member * (pg_cell[None, :] if by_share else 1.0)
    spg = a.sum(axis=1, keepdims=True)
    a = a / spg
    theta = a @ att
    influence = psi @ a.T
    if by_share:
        m = member * (att[None, :] - theta[:, None]) / spg  # J x K
        onehot = np.zeros((att.size, z.shape[1]))
        onehot[np.arange(att.size), cell_gidx] = 1.0
        influence += z @ (m @ onehot).T
    return theta, influence


def aggregate_cells(
    kind: str,
    *,
    att: np.ndarray,
    psi: np.ndarray,
    cell_group: np.ndarray,
    cell_time: np.ndarray,
    unit_cohort: np.ndarray,
    unit_weights: np.ndarray,
    times: np.ndarray,
    balance_e: int | None = None,
    min_e: float = -np.inf,
    max_e: float = np.inf,
) -> Aggregation:
    """Aggregate cells into ``kind`` = simple | event | group | calendar (see module docstring).

    Cells with a NaN estimate are left out (R's ``na.rm = TRUE``).

    * ``simple``: all post-treatment cells (``g <= t <= g + max_e``) weighted by cohort share.
    * ``group``: per cohort the mean of its post-treatment cells (``t <= g + max_e``); overall the
      cohort-share weighted mean of these.
    * ``event``: per event time ``e = t - g`` the cohort-share weighted mean of its cells
      (``balance_e``: only cohorts observed ``balance_e`` periods after treatment, and event times
      ``balance_e - (T_max - T_min) <= e <= balance_e``; then ``min_e <= e <= max_e``); overall the
      mean over ``e >= 0``.
    * ``calendar``: per period the cohort-share weighted mean of the cells treated by then;
      overall the mean over periods.
    """
    if kind not in KINDS:
        raise ValueError(f"aggregation must be one of {KINDS}, got {kind!r}")
    valid = np.isfinite(att)
    if not valid.any():
        raise ValueError("every ATT(g,t) is missing: nothing to aggregate")
    idx = np.flatnonzero(valid)
    att_v, psi_v = att[idx], psi[:, idx]
    g_v, t_v = cell_group[idx], cell_time[idx]
    groups = np.unique(g_v)
    gidx = np.searchsorted(groups, g_v)
    share = (unit_weights[:, None] * (unit_cohort[:, None] == groups[None, :]))
    pg = share.mean(axis=0)
    z = share - pg[None, :]
    pg_cell = pg[gidx]
    post = (g_v <= t_v) & (t_v <= g_v + max_e)
    nan = np.nan

    def build(member, by_share):
        return _weighted(member, att_v, psi_v, pg_cell, z, gidx, by_share)

    if kind == "simple":
        if not post.any():
            raise ValueError("no post-treatment ATT(g,t) in the window: nothing to aggregate")
        theta, inf = build(post[None, :], True)
        return Aggregation(["ATT"], theta, inf, np.array([nan]), np.array([nan]), np.array([nan]), np.array([True]))

    if kind == "group":
        member = np.stack([post & (g_v == g) for g in groups])
        keep = member.any(axis=1)
        if not keep.any():
            raise ValueError("no cohort has a post-treatment ATT(g,t) in the window")
        member, gk = member[keep], groups[keep]
        theta_g, inf_g = build(member, False)
        pgg = pg[keep]
        b = pgg / pgg.sum()
        theta = float(b @ theta_g)
        inf = inf_g @ b + z[:, keep] @ ((theta_g - theta) / pgg.sum())
        return Aggregation(
            [f"g={g:g}" for g in gk] + ["ATT"],
            np.append(theta_g, theta),
            np.column_stack([inf_g, inf]),
            np.full(gk.size + 1, nan),
            np.append(gk, nan),
            np.full(gk.size + 1, nan),
            np.append(np.zeros(gk.size, bool), True),
        )

    if kind == "event":
        e_v = t_v - g_v
        include = np.ones_like(valid[idx])
        eseq = np.unique(e_v)
        if balance_e is not None:
            include = times.max() - g_v >= balance_e
            eseq = np.unique(e_v[include])
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - (times.max() - times.min()))]
        eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
        if eseq.size == 0:
            raise ValueError("no event time in the requested window (min_e, max_e, balance_e)")
        member = np.stack([include & (e_v == e) for e in eseq])
        theta_e, inf_e = build(member, True)
        pos = eseq >= 0
        if pos.any():
            theta = float(theta_e[pos].mean())
            inf = inf_e[:, pos].mean(axis=1)
        else:
            theta, inf = nan, np.full(psi.shape[0], nan)
        return Aggregation(
            [f"e={e:g}" for e in eseq] + ["ATT"],
            np.append(theta_e, theta),
            np.column_stack([inf_e, inf]),
            np.append(eseq, nan),
            np.full(eseq.size + 1, nan),
            np.full(eseq.size + 1, nan),
            np.append(np.zeros(eseq.size, bool), True),
        )

    # calendar
    periods = times[times >= g_v.min()]
    member = np.stack([(t_v == t) & (g_v <= t_v) for t in periods])
    keep = member.any(axis=1)
    member, periods = member[keep], periods[keep]
    if periods.size == 0:
        raise ValueError("no period has a post-treatment ATT(g,t)")
    theta_t, inf_t = build(member, True)
    return Aggregation(
        [f"t={t:g}" for t in periods] + ["ATT"],
        np.append(theta_t, theta_t.mean()),
        np.column_stack([inf_t, inf_t.mean(axis=1)]),
        np.full(periods.size + 1, nan),
        np.full(periods.size + 1, nan),
        np.append(periods, nan),
        np.append(np.zeros(periods.size, bool), True),
    )
