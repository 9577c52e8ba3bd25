"""Stacked difference-in-differences with the corrective weights of Wing, Freedman and
Hollingsworth (2024, "Stacked Difference-in-Differences", NBER WP 32054).

1. One sub-experiment per treated cohort ``a`` whose event window ``[a - kappa_pre, a + kappa_post]``
   lies inside the observed periods (otherwise the cohort is trimmed): its treated units are the
   cohort, its clean controls are the units not treated through the window's end (never treated,
   and with ``control="notyet"`` those first treated after ``a + kappa_post``), its rows are the
   window's periods. A sub-experiment without a clean control is dropped.
2. Stack the sub-experiments. Weight treated rows by 1 and control rows of sub-experiment ``a`` at
   event time ``e`` by ``Q_ae = (N^D_ae / N^D_e) / (N^C_ae / N^C_e)`` (the sub-experiment's share of
   the stacked treated rows over its share of the stacked control rows), which makes the regression
   estimate the trimmed aggregate ATT, the treated-share weighted average of the
   sub-experiments' ATT(a, a + e) (WFH Section 4; their ``compute_weights()``).
3. Weighted OLS of ``y ~ i(event_time, treat, ref = -1) | treat + event_time`` (WFH eq. 3 and
   their fixest call), clustered by the original unit (or ``cluster``), t with G - 1 degrees of
   freedom. ``fixed_effects="unit"`` uses sub-experiment x unit and sub-experiment x event-time
   effects instead (identical point estimates on balanced panels).

Without covariates the WFH regression is saturated in the treat x event-time cells, so it is
solved in closed form (:func:`_wfh_cell_fit`): each coefficient is a difference in differences
of Q-weighted cell means, ``b_e = (m_1e - m_0e) - (m_1,-1 - m_0,-1)``, and its cluster score sums
``Q_i (y_i - m_c(i)) / W_c(i)`` by cluster and cell (the sandwich of the weighted regression,
with pyfixest's CRV1 factor ``(N-1)/(N-K) * G/(G-1)``). A few bincounts instead of pyfixest's
demeaned design: at 4.9 M firm-years (6.5 M stacked rows) 4.1 s and a 2.95 GB peak instead of
11.4 s and 4.55 GB.
It equals pyfixest's fit (tests/test_stacked.py); covariates, ``fixed_effects="unit"`` and an
empty cell or zero weight (an unbalanced corner) go through pyfixest.

Reference (WFH's tutorial, hollina/stacked-did-weights, ``stacked-example-r-and-stata.html``,
ACS uninsurance 2008-2021, kappa_pre = 3, kappa_post = 2): event-time coefficients -0.00102
(0.00368), -0.00303 (0.00299), [ref], -0.0163 (0.00393), -0.0239 (0.00645), -0.0255 (0.0071);
their average over e = 0..2 -0.0219 (0.00563); mean control weight at e = 0 by sub-experiment
2014: 2.888889, 2015: 0.3095238, 2016: 0.2063492, 2019: 0.3376623; 600 stacked rows.

Examples
--------
>>> import moderndid
>>> mpdta = moderndid.load_mpdta().to_pandas()
>>> es = stacked(mpdta, "lemp", "countyreal", "year", "first.treat", kappa_pre=1, kappa_post=1)
>>> es.tidy()["event_time"].tolist()
[0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.did._common import event_time_result, prepare_panel, scalar_result, singleton_note
from analysis.domain import NEVER_TREATED
from analysis.inference import blas_threads
from analysis.results import EstimationResult

__all__ = ["stacked", "stack_data"]


def stack_data(
    frame: pd.DataFrame,
    *,
    kappa_pre: int,
    kappa_post: int,
    control: str = "notyet",
) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
    """Build the stacked data from a prepared panel frame (internal columns of ``prepare_panel``).

    Returns the stacked rows (the panel's columns plus ``_sub`` (the cohort), ``_ev`` (event time),
    ``_treat`` and ``_Q``), notes, and one row per sub-experiment (treated and control units).
    """
    if kappa_pre < 1 or kappa_post < 0:
        raise ValueError("kappa_pre must be >= 1 (event time -1 is the reference) and kappa_post >= 0")
    if control not in ("notyet", "never"):
        raise ValueError(f"control must be 'notyet' or 'never', got {control!r}")
    t = frame["_t"].to_numpy()
    g = frame["_g"].to_numpy()
    t_min, t_max = int(t.min()), int(t.max())
    notes: list[str] = []
    cohorts = np.sort(np.unique(g[g != NEVER_TREATED])).astype(np.int64)
    if cohorts.size == 0:
        raise ValueError("no treated cohort")
    parts: list[np.ndarray] = []
    subs: list[dict[str, Any]] = []
    trimmed = []
    for a in cohorts:
        if a - kappa_pre < t_min or a + kappa_post > t_max:
            trimmed.append(int(a))
            continue
        window = (t >= a - kappa_pre) & (t <= a + kappa_post)
        is_treat = g == a
        never = g == NEVER_TREATED
        is_ctrl = never if control == "never" else (never | (g > a + kappa_post))
        rows = np.nonzero(window & (is_treat | is_ctrl))[0]
        units = frame["_i"].to_numpy()[rows]
        n_ctrl = int(np.unique(units[is_ctrl[rows]]).size)
        n_trt = int(np.unique(units[is_treat[rows]]).size)
        if n_ctrl == 0:
            notes.append(f"sub-experiment {a} dropped: no clean control unit")
            continue
        if n_trt == 0:
            continue
        parts.append(rows)
        subs.append({"sub_experiment": int(a), "n_treated_units": n_trt, "n_control_units": n_ctrl})
    if trimmed:
        notes.append(
            f"cohort(s) {trimmed} trimmed: their window [a - {kappa_pre}, a + {kappa_post}] leaves the "
            f"observed periods {t_min}..{t_max}"
        )
    if not parts:
        raise ValueError(
            f"no feasible sub-experiment: no cohort has its window [a - {kappa_pre}, a + {kappa_post}] "
            f"inside {t_min}..{t_max} with a clean control"
        )
    idx = np.concatenate(parts)
    sub = np.concatenate([np.full(len(p), s["sub_experiment"], dtype=np.int64) for p, s in zip(parts, subs)])
    st = frame.iloc[idx].reset_index(drop=True)
    st["_sub"] = sub
    st["_ev"] = (st["_t"].to_numpy() - sub).astype(np.int64)
    st["_treat"] = (st["_g"].to_numpy() == sub).astype(np.int64)
    st["_Q"] = _q_weights(st["_sub"].to_numpy(), st["_ev"].to_numpy(), st["_treat"].to_numpy())
    return st, notes, pd.DataFrame(subs)


def _q_weights(sub: np.ndarray, ev: np.ndarray, treat: np.ndarray) -> np.ndarray:
    """WFH corrective weights: 1 for treated rows, (N^D_ae/N^D_e)/(N^C_ae/N^C_e) for control rows."""
    d = pd.DataFrame({"a": sub, "e": ev, "d": treat})
    d["c"] = 1 - d["d"]
    by_e = d.groupby("e")[["d", "c"]].transform("sum")
    by_ae = d.groupby(["a", "e"])[["d", "c"]].transform("sum")
    q = (by_ae["d"] / by_e["d"]) / (by_ae["c"] / by_e["c"])
    return np.where(d["d"].to_numpy() == 1, 1.0, q.to_numpy())


def _wfh_cell_fit(st: pd.DataFrame, *, kappa_pre: int, kappa_post: int) -> tuple[list[int], np.ndarray, np.ndarray, float] | None:
    """WFH's ``y ~ i(_ev, _treat, ref=-1) | _treat + _ev`` weighted by ``_Q``, clustered on ``_cl``,
    in closed form (the regression is saturated in the treat x event-time cells).

    Returns event times, coefficients, CRV1 covariance (pyfixest's small-sample factor) and the
    t degrees of freedom ``G - 1``; None when a cell has no weight or a weight is not positive
    (then pyfixest decides what to drop).
    """
    ev = st["_ev"].to_numpy(dtype=np.int64) + kappa_pre          # 0 .. E-1; event time -1 at kappa_pre - 1
    treat = st["_treat"].to_numpy(dtype=np.int64)
    q = st["_Q"].to_numpy(dtype=float)
    y = st["_y"].to_numpy(dtype=float)
    E = kappa_pre + kappa_post + 1
    if (ev.min() < 0) or (ev.max() >= E) or not (q > 0).all():
        return None
    c = treat * E + ev                                            # cell: control cells 0..E-1, treated E..2E-1
    W = np.bincount(c, weights=q, minlength=2 * E)
    if not (W > 0).all():
        return None
    m = np.bincount(c, weights=q * y, minlength=2 * E) / W        # weighted cell means
    ref = kappa_pre - 1
    evs = [e for e in range(E) if e != ref]
    A = np.zeros((len(evs), 2 * E))                               # b = A @ m
    for r, e in enumerate(evs):
        A[r, [E + e, e, E + ref, ref]] = [1.0, -1.0, -1.0, 1.0]
    cl = pd.factorize(st["_cl"])[0]
    G = int(cl.max()) + 1
    score = q * (y - m[c]) / W[c]                                 # influence of row i on its cell's mean
    S = np.bincount(cl * (2 * E) + c, weights=score, minlength=G * 2 * E).reshape(G, 2 * E) @ A.T
    n = y.size
    # parameters: E - 1 interactions + the treat and event-time effects (2 + E - 1 levels), where an
    # effect whose every level lies in one cluster counts for one (pyfixest's k_fixef="nonnested")
    k = (E - 1) + (2 + E - 1)
    for codes, levels in ((treat, 2), (ev, E)):
        if (pd.Series(cl).groupby(codes).nunique().to_numpy() == 1).all():
            k -= levels - 1
    V = (n - 1) / (n - k) * G / (G - 1) * (S.T @ S)
    return [e - kappa_pre for e in evs], A @ m, V, float(G - 1)


def stacked(
    data: Any,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    *,
    kappa_pre: int = 3,
    kappa_post: int = 2,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    control: str = "notyet",
    weighting: str = "aggregate",
    fixed_effects: str = "wfh",
    aggregate: str = "event",
    alpha: float = 0.05,
) -> EstimationResult:
    """Stacked DiD event study with Wing-Freedman-Hollingsworth corrective weights.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        Long panel.
    outcome, unit, time, cohort : str
        Column names; ``cohort`` is the first treated period, 0 or missing for never treated.
    kappa_pre, kappa_post : int, default 3 and 2
        Event window: ``kappa_pre`` periods before and ``kappa_post`` after treatment.
    covariates : str or sequence of str, optional
        Time-varying controls entered linearly.
    cluster : str, optional
        Column to cluster on (default ``unit``): the original unit, not the unit x sub-experiment.
    control : str, default 'notyet'
        ``"notyet"`` (never treated and treated after the window, WFH's clean controls) or
        ``"never"``.
    weighting : str, default 'aggregate'
        ``"aggregate"`` (WFH Q-weights, the trimmed aggregate ATT) or ``"none"`` (the naive
        unweighted stacked regression, biased towards sub-experiments with many controls).
    fixed_effects : str, default 'wfh'
        ``"wfh"``: treat and event-time effects (WFH). ``"unit"``: sub-experiment x unit and
        sub-experiment x event-time effects.
    aggregate : str, default 'event'
        ``"event"``: one row per event time in the window except -1. ``"average"`` (or ``"simple"``): one row,
        the mean of the post-treatment coefficients (e = 0..kappa_post).
    alpha : float, default 0.05
        1 - confidence level.

    Returns
    -------
    EstimationResult
        Rows with ``vcov``; ``meta`` has ``sub_experiments`` (treated / control units and the
        mean control weight at event time 0), ``n_stacked_rows``, ``notes``.

    Examples
    --------
    >>> import moderndid
    >>> mpdta = moderndid.load_mpdta().to_pandas()
    >>> avg = stacked(mpdta, "lemp", "countyreal", "year", "first.treat", kappa_pre=1, kappa_post=1,
    ...               aggregate="average")
    >>> avg.tidy()["term"].tolist()
    ['ATT_average']
    """
    if weighting not in ("aggregate", "none"):
        raise ValueError(f"weighting must be 'aggregate' or 'none', got {weighting!r}")
    if fixed_effects not in ("wfh", "unit"):
        raise ValueError(f"fixed_effects must be 'wfh' or 'unit', got {fixed_effects!r}")
    aggregate = "average" if aggregate == "simple" else aggregate  # one name across estimators, as att_gt
    if aggregate not in ("event", "average"):
        raise ValueError(f"aggregate must be 'event' or 'average', got {aggregate!r}")
    panel = prepare_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort,
                          covariates=covariates, cluster=cluster)
    st, notes, subs = stack_data(panel.frame, kappa_pre=kappa_pre, kappa_post=kappa_post, control=control)
    if weighting == "none":
        st["_Q"] = 1.0
    q0 = st.loc[(st["_ev"] == 0) & (st["_treat"] == 0)].groupby("_sub")["_Q"].mean()
    subs["mean_control_weight_e0"] = subs["sub_experiment"].map(q0).to_numpy()
    closed = None
    if not panel.xcols and fixed_effects == "wfh":
        closed = _wfh_cell_fit(st, kappa_pre=kappa_pre, kappa_post=kappa_post)
    if closed is not None:
        ev, beta, V, df_t = closed
        n_used = len(st)
    else:
        ev, beta, V, df_t, n_used = _pyfixest_fit(st, panel.xcols, fixed_effects)
    notes += singleton_note(len(st), n_used)
    expected = [e for e in range(-kappa_pre, kappa_post + 1) if e != -1]
    if ev != expected:
        notes.append(f"event-time coefficients missing (collinear): {sorted(set(expected) - set(ev))}")
    meta = panel.meta(
        reference_period=-1,
        kappa_pre=int(kappa_pre),
        kappa_post=int(kappa_post),
        control=control,
        weighting=weighting,
        fixed_effects=fixed_effects,
        sub_experiments=subs,
        n_stacked_rows=int(len(st)),
        notes=notes,
    )
    es = event_time_result(ev, beta, V, outcome=outcome, estimator="stacked", n_obs=int(n_used),
                           alpha=alpha, df=df_t, meta=meta)
    return post_average(es, alpha=alpha) if aggregate == "average" else es


def _pyfixest_fit(st: pd.DataFrame, xcols: Sequence[str], fixed_effects: str) -> tuple[list[int], np.ndarray, np.ndarray, float, int]:
    """The stacked regression through pyfixest (covariates, sub-experiment effects, corner cases):
    event times, coefficients, CRV1 covariance, t degrees of freedom, observations used."""
    import pyfixest as pf

    xs = "".join(f" + {c}" for c in xcols)
    if fixed_effects == "wfh":
        fe = "_treat + _ev"
    else:
        st["_usub"] = pd.factorize(st["_i"].astype(np.int64) * (int(st["_sub"].max()) + 1) + st["_sub"])[0]
        st["_esub"] = pd.factorize(st["_ev"].astype(np.int64) * 100_000 + st["_sub"])[0]
        fe = "_usub + _esub"
    with blas_threads():  # tall, thin products: one BLAS thread (analysis.inference.BLAS_THREADS)
        fit = pf.feols(
            f"_y ~ i(_ev, _treat, ref=-1){xs} | {fe}",
            data=st, vcov={"CRV1": "_cl"}, weights="_Q", copy_data=False, store_data=False, lean=True,
        )
    names = [str(c) for c in fit._coefnames]
    idx, ev = [], []
    for k, n in enumerate(names):
        if n.startswith("_ev::"):
            idx.append(k)
            ev.append(int(n.split("::", 1)[1].split(":", 1)[0]))
    order = np.argsort(ev)
    idx = [idx[k] for k in order]
    ev = [ev[k] for k in order]
    beta = np.asarray(fit._beta_hat)[idx]
    V = np.asarray(fit._vcov)[np.ix_(idx, idx)]
    return ev, beta, V, float(fit._df_t), int(fit._N)


def post_average(es: EstimationResult, *, alpha: float = 0.05) -> EstimationResult:
    """The average of a stacked event study's post-treatment coefficients (e = 0..kappa_post), the
    one row of :func:`stacked` with ``aggregate="average"``, from the event study's estimates and
    covariance (so one stacked regression serves both).

    Examples
    --------
    >>> import moderndid
    >>> mpdta = moderndid.load_mpdta().to_pandas()
    >>> es = stacked(mpdta, "lemp", "countyreal", "year", "first.treat", kappa_pre=1, kappa_post=1)
    >>> avg = post_average(es)
    >>> bool(np.isclose(avg.tidy()["estimate"].iloc[0], es.tidy().query("event_time >= 0")["estimate"].mean()))
    True
    """
    tab = es.table
    ev = tab["event_time"].to_numpy(dtype=int)
    post = (ev >= 0).astype(float)
    a = post / post.sum()
    beta = tab["estimate"].to_numpy(dtype=float)
    V = np.asarray(es.vcov, dtype=float)
    df = tab["df"].iloc[0] if "df" in tab and tab["df"].notna().any() else None
    return scalar_result(float(a @ beta), float(np.sqrt(a @ V @ a)), term="ATT_average", outcome=str(tab["outcome"].iloc[0]),
                         estimator="stacked", n_obs=int(tab["n_obs"].iloc[0]), alpha=alpha, df=None if df is None else float(df),
                         meta=es.meta)
