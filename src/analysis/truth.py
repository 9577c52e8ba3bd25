"""The synthetic world's truth beside the estimates: bias, coverage, true effects by group.

On the synthetic world every estimate can be put next to the effect it targets, computed from
both potential outcomes (:func:`analysis.simulate.simulate_world` writes the ``truth`` and
``potential`` tables beside the panel). On real data there is no truth: every function here then
returns its input with empty truth columns (or ``None``), so the reports run unchanged.

- :func:`attach_truth`, :func:`attach_truth_overall`: ``truth``, ``bias`` and ``covered`` columns
  for tidy frames of overall ATTs, event studies, cohorts and calendar years;
- :func:`event_truth`: the true event-time path of one outcome (for figures);
- :func:`truth_by_group`, :func:`heterogeneity_truth`: true ATTs within subgroups;
- :func:`proportional_truth`, :func:`count_truth`: the estimand of the Poisson models;
- :func:`simple_truth_table`, :func:`truth_paths`, :func:`latent_for`: what the data and
  productivity reports show of the truth.

Examples
--------
>>> import pandas as pd
>>> truth = pd.DataFrame({"outcome": ["tfp"], "aggregation": ["simple"], "att": [0.1], "n_obs": [50]})
>>> simple_truth_table(truth).to_dict("index")
{'tfp': {'true ATT': 0.1, 'treated firm-years': 50}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "attach_truth",
    "attach_truth_overall",
    "event_truth",
    "truth_by_group",
    "heterogeneity_truth",
    "proportional_truth",
    "count_truth",
    "simple_truth_table",
    "truth_paths",
    "latent_for",
]

#: columns of a tidy frame with its truth, as the reports show them
COMPARISON_COLUMNS = ["outcome", "estimator", "estimate", "std_error", "conf_low", "conf_high", "p_value", "n_obs", "truth", "bias", "covered"]


def attach_truth(tidy: pd.DataFrame, truth: pd.DataFrame | None, mapping: Mapping[str, str | None], aggregation: str) -> pd.DataFrame:
    """Add ``truth``, ``bias`` and ``covered`` (truth inside the confidence interval) columns.

    ``mapping`` maps outcome columns to outcomes of the world's truth table; ``aggregation`` is
    ``simple``, ``event``, ``group`` or ``calendar``. Without a truth table the frame is returned
    with empty columns.
    """
    out = tidy.copy()
    out["truth"] = np.nan
    if truth is not None:
        key = {"simple": [], "event": ["event_time"], "group": ["cohort"], "calendar": ["time"]}[aggregation]
        t = truth[truth["aggregation"] == aggregation]
        for col, name in mapping.items():
            if name is None:
                continue
            tt = t[t["outcome"] == name]
            rows = out["outcome"] == col
            if not key:
                out.loc[rows, "truth"] = float(tt["att"].iloc[0]) if len(tt) else np.nan
            else:
                lookup = tt.set_index(key[0])["att"]
                out.loc[rows, "truth"] = pd.to_numeric(out.loc[rows, key[0]], errors="coerce").map(lookup).astype(float)
    out["bias"] = out["estimate"] - out["truth"]
    out["covered"] = ((out["conf_low"] <= out["truth"]) & (out["truth"] <= out["conf_high"])).astype("boolean")
    out.loc[out["truth"].isna(), "covered"] = pd.NA
    return out


def attach_truth_overall(simple: pd.DataFrame, truth: pd.DataFrame | None, mapping: Mapping[str, str | None]) -> pd.DataFrame:
    """:func:`attach_truth` for overall ATTs, each compared with its own estimand.

    Every estimator targets the average effect over certified firm-years (``simple``), except
    stacked DiD, whose window ends at event time 0 here (see :func:`run_estimator`): its rows are
    compared with the true effect at impact.
    """
    out = attach_truth(simple, truth, mapping, "simple")
    stacked = (out["estimator"] == "stacked").to_numpy()
    if truth is not None and stacked.any():
        impact = attach_truth(simple.assign(event_time=0), truth, mapping, "event")
        out.loc[stacked, ["truth", "bias", "covered"]] = impact.loc[stacked, ["truth", "bias", "covered"]]
    return out


def truth_by_group(potential: pd.DataFrame, labels: pd.DataFrame, outcome: str, dimension: str) -> pd.Series:
    """True ATT (mean Y(1) - Y(0) over post-certification member firm-years) by group label.

    ``labels`` has ``firm_id``, ``year`` and the ``dimension`` column.
    """
    post = potential[potential["event_time"] >= 0]
    d = post.merge(labels[["firm_id", "year", dimension]], on=["firm_id", "year"], how="inner")
    d = d.dropna(subset=[f"{outcome}_1", f"{outcome}_0"])
    return (d[f"{outcome}_1"] - d[f"{outcome}_0"]).groupby(d[dimension].astype(str)).mean()


def proportional_truth(potential: pd.DataFrame, outcome: str) -> float:
    """True effect on a count as a log ratio: the treated-observation-weighted mean over (cohort, year)
    cells of ``log(sum Y(1) / sum Y(0))``, the estimand of the extended TWFE Poisson."""
    post = potential[potential["event_time"] >= 0]
    cell = post.groupby(["cohort", "year"]).agg(y1=(f"{outcome}_1", "sum"), y0=(f"{outcome}_0", "sum"), n=(f"{outcome}_1", "size"))
    cell = cell[(cell["y0"] > 0) & (cell["y1"] > 0)]
    return float(np.average(np.log(cell["y1"] / cell["y0"]), weights=cell["n"]))


def event_truth(truth: pd.DataFrame | None, name: str | None, window: Sequence[int]) -> pd.DataFrame | None:
    """The true effect of outcome ``name`` by event time within ``window`` (``None`` without a truth).

    Parameters
    ----------
    truth : pandas.DataFrame or None
        The world's truth table.
    name : str or None
        The outcome's name in the truth table.
    window : (int, int)
        First and last event time.

    Returns
    -------
    pandas.DataFrame or None
        Rows of ``truth`` with ``event_time`` and ``att``.
    """
    if truth is None or not name:
        return None
    tr = truth[(truth["aggregation"] == "event") & (truth["outcome"] == name)]
    return tr[tr["event_time"].between(*window)]


def heterogeneity_truth(het: pd.DataFrame, potential: pd.DataFrame | None, panel: pd.DataFrame, groups: Mapping[str, pd.Series],
                        name: str | None) -> pd.DataFrame:
    """Add the true ATT of each (dimension, group) row of a heterogeneity table (``truth`` column).

    Parameters
    ----------
    het : pandas.DataFrame
        Tidy rows with ``dimension`` and ``group`` (:func:`analysis.effects.heterogeneity`).
    potential : pandas.DataFrame or None
        The world's potential outcomes; ``None`` on real data (``het`` returned unchanged).
    panel : pandas.DataFrame
        The panel the groups label (``firm_id``, ``year``).
    groups : mapping
        ``{dimension: labels aligned with panel}``.
    name : str or None
        The outcome's name in the potential outcomes.

    Returns
    -------
    pandas.DataFrame
    """
    if potential is None or not name or het.empty:
        return het
    labelled = panel[["firm_id", "year"]].assign(**{k: v.astype(str) for k, v in groups.items()})
    out = het.copy()
    out["truth"] = [truth_by_group(potential, labelled, name, d).get(g) for d, g in zip(out["dimension"], out["group"])]
    return out


def count_truth(counts: pd.DataFrame, potential: pd.DataFrame | None, mapping: Mapping[str, str | None]) -> pd.DataFrame:
    """Add the true log ratio (:func:`proportional_truth`) to Poisson estimates (``truth`` column).

    ``counts`` is returned unchanged on real data (``potential`` is ``None``) or when it is empty.
    """
    if potential is None or counts.empty:
        return counts
    out = counts.copy()
    out["truth"] = [proportional_truth(potential, mapping[o]) for o in out["outcome"]]
    return out


def simple_truth_table(truth: pd.DataFrame) -> pd.DataFrame:
    """True average effects on treated firm-years, one row per outcome (``true ATT``, ``treated firm-years``)."""
    simple = truth[truth["aggregation"] == "simple"].set_index("outcome")[["att", "n_obs"]]
    simple.columns = ["true ATT", "treated firm-years"]
    return simple


def truth_paths(truth: pd.DataFrame, outcomes: Sequence[str], *, min_e: int = -5) -> pd.DataFrame:
    """True effects by event time of several outcomes, shaped as a tidy frame for an event-study plot.

    Each outcome is an "estimator" (one colour) whose estimate and bounds are the true effect.
    """
    ev = truth[(truth["aggregation"] == "event") & truth["outcome"].isin(list(outcomes))]
    return ev[ev["event_time"] >= min_e].assign(estimator=ev["outcome"], estimate=ev["att"], conf_low=ev["att"], conf_high=ev["att"])


def latent_for(panel: pd.DataFrame, latent: pd.DataFrame) -> pd.DataFrame:
    """The world's latent table (true log TFP ``omega``) aligned row by row with ``panel`` (same index)."""
    out = latent.set_index(["firm_id", "year"]).reindex(pd.MultiIndex.from_frame(panel[["firm_id", "year"]])).reset_index(drop=True)
    out.index = panel.index
    return out
