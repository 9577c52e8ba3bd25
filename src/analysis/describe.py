"""Descriptive statistics of the panel: rollout, samples, pre-treatment balance, raw trends.

Everything the descriptive report shows is computed here (tested), so that the notebook only
calls and displays.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"firm_id": [1, 1, 2, 2], "year": [2021, 2022, 2021, 2022], "cohort": [2022, 2022, 0, 0],
...                    "batch": pd.array([2022, 2022, None, None], dtype="Int64"), "y": [1.0, 2.0, 1.0, 1.5]})
>>> treatment_group(df).tolist()
['cohort 2022', 'cohort 2022', 'never certified', 'never certified']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "warnings_note",
    "summary_statistics",
    "flatten_params",
    "treatment_group",
    "sample_overview",
    "rollout_table",
    "cohort_summary",
    "balance_table",
    "outcome_trends",
    "VARIABLES",
    "CHARACTERISTICS",
    "panel_note",
    "cohorts",
    "rollout_note",
    "clusters_by_province",
    "clusters_by_industry",
    "characteristics",
    "balance_note",
]

NEVER = "never certified"
LATER = "certified after the data"


def treatment_group(panel: pd.DataFrame) -> pd.Series:
    """Label each row: ``cohort YYYY``, ``certified after the data`` or ``never certified``."""
    cohort = panel["cohort"].fillna(0).astype(int)
    batch = panel["batch"] if "batch" in panel else pd.Series(pd.NA, index=panel.index)
    label = np.where(cohort > 0, "cohort " + cohort.astype(str), np.where(batch.notna(), LATER, NEVER))
    return pd.Series(label, index=panel.index, name="group")


def summary_statistics(panel: pd.DataFrame, columns: Sequence[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Count, mean, sd, 10th / 50th / 90th percentiles and share missing of each column."""
    rows = {}
    for col in columns:
        s = pd.to_numeric(panel[col], errors="coerce")
        rows[(labels or {}).get(col, col)] = {
            "N": int(s.notna().sum()),
            "mean": s.mean(),
            "sd": s.std(),
            "p10": s.quantile(0.1),
            "median": s.median(),
            "p90": s.quantile(0.9),
            "missing": float(s.isna().mean()),
        }
    return pd.DataFrame(rows).T


def flatten_params(params: dict, prefix: str = "") -> pd.DataFrame:
    """A nested parameter dict as a two-column table (``parameter``, ``value``), dotted keys."""
    rows = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.append(flatten_params(value, f"{name}."))
        else:
            rows.append(pd.DataFrame({"parameter": [name], "value": [str(value)]}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["parameter", "value"])


def _group_order(groups: pd.Series) -> list[str]:
    cohorts = sorted(g for g in groups.unique() if g.startswith("cohort"))
    return cohorts + [g for g in (LATER, NEVER) if g in set(groups)]


def sample_overview(panel: pd.DataFrame) -> pd.DataFrame:
    """Firms, entry, exit and coverage by year: the shape of an unbalanced firm panel."""
    first = panel.groupby("firm_id")["year"].transform("min")
    last = panel.groupby("firm_id")["year"].transform("max")
    y0, y1 = panel["year"].min(), panel["year"].max()
    flags = panel.assign(
        entrant=(panel["year"] == first) & (panel["year"] > y0),
        exiting=(panel["year"] == last) & (panel["year"] < y1),
        treated=(panel["cohort"] > 0) & (panel["year"] >= panel["cohort"]),
    )
    out = flags.groupby("year").agg(firms=("firm_id", "size"), entrants=("entrant", "sum"), exits=("exiting", "sum"), treated_members=("treated", "sum"))
    if "patents_total" in panel:
        out["share_no_patent"] = panel.groupby("year")["patents_total"].apply(lambda s: float((s == 0).mean()))
    if "reports_emissions" in panel:
        out["share_reporting_emissions"] = panel.groupby("year")["reports_emissions"].mean()
    return out


def rollout_table(clusters: pd.DataFrame, by: str = "region") -> pd.DataFrame:
    """Certified clusters per batch (rows) and ``by`` (columns), with totals and first treated year."""
    t = clusters.groupby(["batch", by]).size().unstack(fill_value=0)
    t["total"] = t.sum(axis=1)
    t.loc["all batches"] = t.sum()
    if "cohort" in clusters:
        first = clusters.groupby("batch")["cohort"].first()
        t.insert(0, "first treated year", [("after the data" if first[b] == 0 else str(int(first[b]))) if b in first else "" for b in t.index])
    return t


def cohort_summary(panel: pd.DataFrame, columns: Sequence[str], *, before: int | None = None) -> pd.DataFrame:
    """Mean (sd) of ``columns`` by treatment group, over the years before ``before``.

    ``before`` defaults to the first cohort year, so every group is compared before anyone is
    certified. Returns a frame with a ``(group, statistic)`` column index and one row per column.
    """
    groups = treatment_group(panel)
    if before is None:
        cohorts = panel.loc[panel["cohort"] > 0, "cohort"]
        before = int(cohorts.min()) if len(cohorts) else int(panel["year"].max()) + 1
    pre = panel["year"] < before
    d = panel.loc[pre, list(columns)].assign(group=groups[pre])
    order = _group_order(groups[pre])
    stats = d.groupby("group")[list(columns)].agg(["mean", "std"]).T.unstack()
    stats = stats.reindex(columns=pd.MultiIndex.from_product([order, ["mean", "std"]]))
    n = d.groupby("group").size().reindex(order)
    stats.loc["firm-years"] = [n[g] if s == "mean" else np.nan for g, s in stats.columns]
    return stats


def balance_table(panel: pd.DataFrame, columns: Sequence[str], *, year: int | None = None) -> pd.DataFrame:
    """Certified vs not-yet vs never-certified firms in a pre-treatment year.

    Means by group in ``year`` (default: the year before the first cohort) and the standardised
    difference of each certified group from never-certified firms
    (difference in means / pooled sd; |d| > 0.25 is the usual flag for imbalance).
    """
    groups = treatment_group(panel)
    if year is None:
        year = int(panel.loc[panel["cohort"] > 0, "cohort"].min()) - 1
    d = panel.loc[panel["year"] == year, list(columns)].assign(group=groups[panel["year"] == year])
    order = _group_order(d["group"])
    means = d.groupby("group")[list(columns)].mean().T.reindex(columns=order)
    out = means.copy()
    if NEVER in order:
        ref = d[d["group"] == NEVER]
        for g in order:
            if g == NEVER:
                continue
            other = d[d["group"] == g]
            pooled = np.sqrt((other[list(columns)].var() + ref[list(columns)].var()) / 2)
            out[f"std. diff. {g}"] = (other[list(columns)].mean() - ref[list(columns)].mean()) / pooled
    out.loc["firms"] = list(d.groupby("group").size().reindex(order)) + [np.nan] * (out.shape[1] - len(order))
    out.columns.name = f"year {year}"
    return out


def outcome_trends(panel: pd.DataFrame, outcome: str, *, group: pd.Series | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Mean of ``outcome`` by year and group, with normal confidence bounds.

    Returns columns ``year``, ``group``, ``mean``, ``conf_low``, ``conf_high``, ``n``.
    """
    from scipy import stats

    if outcome not in panel.columns:
        close = [c for c in panel.columns if c.startswith(outcome[:5])]
        raise KeyError(f"outcome column '{outcome}' is not in the panel" + (f"; similar columns: {close}" if close else ""))
    g = treatment_group(panel) if group is None else group
    d = panel[["year", outcome]].assign(group=g).dropna(subset=[outcome])
    agg = d.groupby(["group", "year"])[outcome].agg(["mean", "std", "size"]).reset_index().rename(columns={"size": "n"})
    q = stats.norm.ppf(1 - alpha / 2)
    half = q * agg["std"] / np.sqrt(agg["n"])
    agg["conf_low"], agg["conf_high"] = agg["mean"] - half, agg["mean"] + half
    agg["group"] = pd.Categorical(agg["group"], categories=_group_order(agg["group"]), ordered=True)
    return agg.sort_values(["group", "year"]).drop(columns="std").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# what the data and descriptive reports show
# ---------------------------------------------------------------------------------------------
#: variables of the summary-statistics table (those present in the panel are shown)
VARIABLES: tuple[str, ...] = ("output", "value_added", "capital", "labor", "materials", "investment", "age",
                              "patents_invention", "patents_utility", "patents_design", "any_patent", "so2", "cod", "co2")
#: firm characteristics compared before certification (those present in the panel are shown)
CHARACTERISTICS: tuple[str, ...] = ("log_output", "log_value_added", "log_labor", "log_capital", "age", "patents_total", "any_patent", "sme")


def cohorts(panel: pd.DataFrame) -> list:
    """The treated cohorts (first treated years) in the panel, sorted."""
    return sorted(panel.loc[panel["cohort"] > 0, "cohort"].unique())


def panel_note(panel: pd.DataFrame, params: dict) -> str:
    """What the panel is: its source, firms, firm-years, years, certified members and cohorts."""
    n_firms, n_obs = panel["firm_id"].nunique(), len(panel)
    y0, y1 = panel["year"].min(), panel["year"].max()
    members = panel.loc[panel["cohort"] > 0, "firm_id"].nunique()
    synthetic = params["data"]["source"] == "synthetic"
    source = "the synthetic world (simulated; see data/README.md)" if synthetic else f"the user's data in `{params['data']['raw_firms']}`"
    return (
        f"The panel comes from {source}: **{n_firms:,} firms** and **{n_obs:,} firm-years**, {y0}-{y1}, "
        f"unbalanced (a firm is observed {n_obs / n_firms:.1f} years on average). "
        f"{members:,} firms belong to clusters certified within the data years "
        f"(cohorts {', '.join(map(str, cohorts(panel)))}). "
        "The panel passed every check of the data contract (`analysis.schema.validate_panel`)."
    )


def rollout_note(clusters: pd.DataFrame) -> str:
    """How many certified clusters have firms in the panel, and how many are first treated within the data."""
    n_in = int((clusters["cohort"] > 0).sum())
    return (f"{len(clusters)} certified clusters have firms in the panel; {n_in} of them are first treated within the data years, "
            f"{len(clusters) - n_in} after (their firms serve as not-yet-treated comparisons).")


def clusters_by_province(clusters: pd.DataFrame) -> pd.DataFrame:
    """Certified clusters per province, most first (column ``clusters``)."""
    return clusters.groupby("province").size().sort_values(ascending=False).rename("clusters").to_frame()


def clusters_by_industry(clusters: pd.DataFrame) -> pd.DataFrame:
    """Certified clusters per 2-digit industry (rows) and batch (columns)."""
    return clusters.groupby(["industry_code", "batch"]).size().unstack(fill_value=0)


def characteristics(panel: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The panel with ``sme`` as a share (float) and the :data:`CHARACTERISTICS` it has (partial data:
    the others are left out)."""
    out = panel.assign(sme=panel["sme"].astype(float)) if "sme" in panel else panel
    return out, [c for c in CHARACTERISTICS if c in panel]


def warnings_note(warnings: pd.DataFrame) -> str:
    """One sentence on the build's listed warnings (ambiguous input that did not stop it).

    Examples
    --------
    >>> warnings_note(pd.DataFrame(columns=["topic", "message", "rows"]))
    'No listed warnings: nothing ambiguous in the input.'
    """
    if warnings.empty:
        return "No listed warnings: nothing ambiguous in the input."
    return f"**{len(warnings)} listed warning(s)** (ambiguous input that did not stop the build):"


def balance_note(balance: pd.DataFrame, *, threshold: float = 0.25) -> str:
    """The characteristics whose standardised difference exceeds ``threshold`` (the usual flag), in words."""
    flagged = [f"{row} ({col.removeprefix('std. diff. ')})" for col in balance.columns if col.startswith("std. diff.")
               for row, v in balance[col].dropna().items() if abs(v) > threshold]
    return f"Standardised differences above {threshold:g}: " + (", ".join(flagged) if flagged else "none") + "."
