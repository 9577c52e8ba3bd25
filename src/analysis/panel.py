"""From raw firm records to the analysis panel: clusters, treatment timing, outcomes, samples.

The same functions serve the synthetic world and a user's real data, so the pipeline cannot
treat the two differently:

- :func:`assign_clusters` merges firms to certified clusters on (county, industry) and sets
  ``cluster_id``, ``batch`` and ``cohort`` (the first treated year, by the announcement date and
  a parameter);
- :func:`add_outcomes` adds the log and derived outcome columns;
- :func:`build_panel` builds the validated panel of a parameter set (synthetic or from
  ``data/raw/``), and :func:`main` writes it (``python -m analysis.panel --config small``).

Examples
--------
>>> import pandas as pd
>>> firms = pd.DataFrame({"firm_id": [1, 2], "year": [2020, 2020], "county_code": [1, 1], "industry_code": [26, 30]})
>>> clusters = pd.DataFrame({"cluster_id": ["A"], "county_code": [1], "industry_code": [26], "batch": [2023],
...                          "announced": ["2023-10-18"]})
>>> assign_clusters(firms, clusters, late_month=7, last_year=2025)[["firm_id", "cluster_id", "cohort"]]
   firm_id cluster_id  cohort
0        1          A    2024
1        2       <NA>       0
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.config import ROOT, ParameterError, load_params, processed_dir
from analysis.domain import NEVER_TREATED, PATENT_COLUMNS, POLLUTANTS, cohort_from_date, late_cohorts
from analysis.io import read_table, write_parquet
from analysis.schema import PanelError, validate_panel
from analysis.simulate import simulate_world
from analysis.sources import clusters as cl

__all__ = [
    "assign_clusters",
    "add_outcomes",
    "event_time",
    "baseline",
    "build_panel",
    "panel_path",
    "load_panel",
    "load_world_tables",
    "clusters_from_panel",
    "main",
]


def assign_clusters(
    firms: pd.DataFrame,
    clusters: pd.DataFrame,
    *,
    late_month: int,
    last_year: int,
    definition: str = "cell",
) -> pd.DataFrame:
    """Place firms in certified clusters (by default on county_code x industry_code); set timing columns.

    Parameters
    ----------
    firms
        Firm-year records with ``county_code`` and ``industry_code``.
    clusters
        One row per certified cluster with ``cluster_id``, ``county_code``, ``industry_code``,
        ``batch`` and ``announced`` (a date).
    late_month
        A batch announced in or after this month is first treated the next year.
    last_year
        Last data year: firms first treated after it get ``cohort = 0`` (not yet treated within
        the data) and keep their ``batch``.
    definition
        Who is a member (``data.treatment``): ``cell``, ``core4``, ``county`` or ``related``,
        see :func:`analysis.sources.clusters.membership`. ``core4`` adds ``treatment_unclear``.

    Returns
    -------
    pandas.DataFrame
        ``firms`` with ``cluster_id`` (string, missing if none), ``batch`` (Int64) and
        ``cohort`` (int64, 0 if never treated within the data).

    Raises
    ------
    PanelError
        If a (county, industry) cell is certified twice.
    """
    need = ["cluster_id", "county_code", "industry_code", "batch", "announced"]
    missing = [c for c in need if c not in clusters.columns]
    if missing:
        raise PanelError(f"cluster list lacks column(s) {missing}; it has {list(clusters.columns)}")
    dup = clusters["industry_code"].notna() & clusters.duplicated(["county_code", "industry_code"], keep=False)
    if dup.any():
        raise PanelError(f"cluster list certifies the same county x industry cell twice:\n{clusters.loc[dup, need].to_string()}")
    c = clusters[need].copy()
    c["cohort"] = [cohort_from_date(d, late_month) for d in c["announced"]]
    c["cohort"] = c["cohort"].where(~late_cohorts(c["cohort"], last_year), NEVER_TREATED)
    try:
        m = cl.membership(firms, clusters, definition)
    except cl.ClusterListError as err:
        raise PanelError(str(err)) from None
    info = c.set_index(c["cluster_id"].astype(str))
    out = firms.drop(columns=[x for x in ("cluster_id", "batch", "cohort", "treatment_unclear") if x in firms.columns])
    out["cluster_id"] = m["cluster_id"].array
    out["batch"] = out["cluster_id"].map(info["batch"]).astype("Int64")
    out["cohort"] = out["cluster_id"].map(info["cohort"]).fillna(NEVER_TREATED).astype(np.int64)
    if definition == "core4":
        out["treatment_unclear"] = m["unclear"].to_numpy()
    return out[[*[x for x in firms.columns if x in out.columns], *[x for x in out.columns if x not in firms.columns]]]


def event_time(df: pd.DataFrame, *, time: str = "year", cohort: str = "cohort") -> pd.Series:
    """Years since the first treated year (``year - cohort``); missing for never-treated firms."""
    g = df[cohort].fillna(0)
    return (df[time] - g).where(g > 0).astype("Int64")


def add_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """Add log inputs and outputs and the study's outcome variables.

    Adds, where the source columns exist: ``log_output``, ``log_value_added``, ``log_capital``,
    ``log_labor``, ``log_materials``, ``log_investment`` (missing unless investment > 0),
    ``log_labor_productivity`` (value added per worker), ``patents_total``, ``any_patent``,
    ``log1p_patents``, ``log_<pollutant>`` and ``log_<pollutant>_intensity`` (per unit of gross
    output), ``age``, ``event_time``, ``cell_id`` (county x industry) if absent.
    """
    out = df.copy()
    for col in ("output", "value_added", "capital", "labor", "materials"):
        if col in out:
            out[f"log_{col}"] = np.log(out[col])
    if "investment" in out:
        out["log_investment"] = np.log(out["investment"].where(out["investment"] > 0))
    if {"value_added", "labor"} <= set(out):
        out["log_labor_productivity"] = np.log(out["value_added"] / out["labor"])
    kinds = [c for c in PATENT_COLUMNS if c in out]
    if kinds:
        out["patents_total"] = out[kinds].sum(axis=1, min_count=1)
        out["any_patent"] = (out["patents_total"] > 0).astype(float).where(out["patents_total"].notna())
        out["log1p_patents"] = np.log1p(out["patents_total"])
    for pol in POLLUTANTS:
        if pol in out:
            level = out[pol].where(out[pol] > 0)
            out[f"log_{pol}"] = np.log(level)
            if "output" in out:
                out[f"log_{pol}_intensity"] = np.log(level / out["output"])
    if "founding_year" in out:
        out["age"] = (out["year"] - out["founding_year"]).clip(lower=0)
    if "cell_id" not in out and {"county_code", "industry_code"} <= set(out):
        out["cell_id"] = out["county_code"].astype(np.int64) * 100 + out["industry_code"].astype(np.int64)
    out["event_time"] = event_time(out)
    return out


def baseline(df: pd.DataFrame, column: str, *, unit: str = "firm_id", time: str = "year", cohort: str = "cohort", lag: int = 1) -> pd.Series:
    """A firm's value of ``column`` before treatment, for heterogeneity splits.

    For a treated firm the value ``lag`` years before its cohort (or its first observed year if
    it entered later); for a never-treated firm its first observed value. Returns a Series
    aligned with ``df``'s rows.
    """
    ref = (df[cohort].fillna(0) - lag).where(df[cohort].fillna(0) > 0)
    first = df.groupby(unit)[time].transform("min")
    ref = np.maximum(ref.fillna(first), first)
    last_before = df[time] <= ref
    pick = df.loc[last_before].sort_values([unit, time]).groupby(unit)[column].last()
    return df[unit].map(pick)


# ----------------------------------------------------------------------------------------
# building the panel of a parameter set
# ----------------------------------------------------------------------------------------
def panel_path(config: str) -> Path:
    """Where the validated panel of parameter set ``config`` is written."""
    return processed_dir(config) / "panel.parquet"


def _raw_panel(params: Mapping[str, Any]) -> pd.DataFrame:
    """Read the user's firm panel and cluster list from ``data/raw`` (read only)."""
    d = params["data"]
    firms_path = _resolve(d["raw_firms"])
    firms = read_table(firms_path)
    if d.get("rename"):
        unknown = [k for k in d["rename"] if k not in firms.columns]
        if unknown:
            raise ParameterError(f"data.rename names column(s) {unknown} that {firms_path} does not have; it has {list(firms.columns)}")
        firms = firms.rename(columns=d["rename"])
    if d.get("money_scale", 1) != 1:
        for col in ("output", "value_added", "capital", "materials", "investment"):
            if col in firms:
                firms[col] = firms[col] * d["money_scale"]
    clusters = cl.as_assignment(read_table(_resolve(d["raw_clusters"])))
    last = int(firms["year"].max())
    out = assign_clusters(firms, clusters, late_month=d["late_month"], last_year=last, definition=d["treatment"])
    coverage = read_table(_resolve(d["clusters_coverage"])) if d.get("clusters_coverage") else None
    policy = d["clusters_incomplete_controls"]
    out, counties = cl.control_sample(out, clusters, complete=d["clusters_complete"], coverage=coverage, policy=policy, late_month=d["late_month"], last_year=last)
    n = int(counties["n_dropped"].sum()) if policy == "drop" else int(out["control_unverified"].sum())
    if n:
        what = "dropped" if policy == "drop" else "kept, flagged control_unverified"
        print(f"note: {n:,} firm-years outside the listed clusters in counties the incomplete list cannot vouch for were {what} (data.clusters_incomplete_controls)", file=sys.stderr)
    if out.empty:
        raise PanelError(
            f"no firm-year is left: none is in a listed cluster of {d['raw_clusters']} and none in a province whose list is known complete "
            "(data.clusters_complete: false, data.clusters_incomplete_controls: drop); supply the full list and set clusters_complete: true, or use warn"
        )
    provincial = cl.as_assignment(read_table(_resolve(d["raw_provincial_clusters"]))) if d.get("raw_provincial_clusters") else None
    out = out.assign(provincial_cluster=cl.provincial_flag(out, provincial))
    return _link_records(out, d) if d.get("raw_applications") or d.get("raw_emissions") else out


def _link_records(panel: pd.DataFrame, d: Mapping[str, Any]) -> pd.DataFrame:
    """Patent applications (``data.raw_applications``) and pollution records (``data.raw_emissions``)
    linked to the panel's firms by name (``analysis.sources.patents`` / ``emissions``); their counts
    and tonnes replace the panel's columns. The firm file needs ``firm_name`` (``former_names``,
    ``county_name`` help)."""
    from analysis.sources import emissions as em
    from analysis.sources import patents as pt

    if "firm_name" not in panel.columns:
        raise ParameterError(f"data.raw_applications / data.raw_emissions are linked by firm name: {d['raw_firms']} needs a column firm_name (map it with data.rename)")
    keep = [c for c in ("firm_id", "firm_name", "former_names", "county_code", "county_name") if c in panel.columns]
    firms = panel[keep].drop_duplicates(["firm_id", "firm_name"], keep="last")
    if d.get("raw_applications"):
        if d["patent_counting"] != "whole":
            raise ParameterError(
                f"data.patent_counting: {d['patent_counting']!r} gives shares of co-applications, but the panel's patents_* are whole counts "
                "(data contract, analysis.schema); use whole counting for the panel, fractional counts with analysis.sources.patents.link_patents"
            )
        res = pt.link_patents(pt.read_applications(_resolve(d["raw_applications"])), firms, counting=d["patent_counting"])
        print(f"note: patent applications ({d['patent_counting']} counting): {res.report.share_linked:.1%} linked", file=sys.stderr)
        panel = res.to_panel(panel)
    if d.get("raw_emissions"):
        res = em.link_emissions(em.read_emission_records(_resolve(d["raw_emissions"]), units=d.get("emission_units")), firms)
        print(f"note: pollution records: {res.report.share_linked:.1%} linked", file=sys.stderr)
        panel = res.to_panel(panel)
    return panel


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


def build_panel(params: Mapping[str, Any]) -> tuple[pd.DataFrame, Any]:
    """Build the validated analysis panel of a parameter set.

    Parameters
    ----------
    params
        A parameter set from :func:`analysis.config.load_params`. ``params["data"]["source"]``
        is ``"synthetic"`` (simulate the world) or ``"raw"`` (read ``data.raw_firms`` and
        ``data.raw_clusters``, relative to the project root).

    Returns
    -------
    (panel, world)
        The panel with outcome columns added, and the :class:`~analysis.simulate.World` (or
        ``None`` for real data).
    """
    source, d = params["data"]["source"], params["data"]
    if d.get("treatment", "cell") not in cl.DEFINITIONS:
        raise ParameterError(f"data.treatment must be one of {list(cl.DEFINITIONS)}, not {d.get('treatment')!r}")
    if source == "synthetic":
        world = simulate_world(params)  # its list is complete: every unlisted firm is a never-treated control
        cert, years = world.params["certification"], world.params["years"]
        firms = assign_clusters(world.panel, world.clusters, late_month=cert["late_month"], last_year=years[1], definition=d.get("treatment", "cell"))
        firms["provincial_cluster"] = False
    elif source == "raw":
        world = None
        firms = _raw_panel(params)
    else:
        raise ParameterError(f"data.source must be 'synthetic' or 'raw', not {source!r}")
    if "treatment_unclear" in firms:  # core4: firms the definition cannot place are neither members nor controls
        firms = firms[~firms.pop("treatment_unclear").to_numpy(dtype=bool)]
    if d.get("drop_provincial_clusters", False):  # robustness sample: no provincially certified firms among the controls
        firms = firms[~(firms["provincial_cluster"].to_numpy(dtype=bool) & firms["cluster_id"].isna().to_numpy())]
    validate_panel(firms, source=str(params["data"].get("raw_firms", "synthetic world")) if source == "raw" else "panel")
    panel = add_outcomes(firms)
    return panel, world


def write_world(world: Any, folder: Path) -> dict[str, Path]:
    """Write the synthetic world's truth tables beside the panel (atomically)."""
    paths = {}
    for name in ("truth", "potential", "latent", "clusters"):
        paths[name] = write_parquet(getattr(world, name), folder / f"{name}.parquet")
    return paths


def load_panel(config: str = "default", *, build: bool = True) -> pd.DataFrame:
    """Read the built panel of a parameter set; build and write it first if it is missing.

    ``make data`` builds it; building here lets a notebook opened in JupyterLab run top to
    bottom without make. With ``build=False`` a missing panel raises ``FileNotFoundError``.
    """
    path = panel_path(config)
    if not path.is_file():
        if not build:
            raise FileNotFoundError(f"{path} does not exist; build it with `make data CONFIG={config}`")
        if main(["--config", config]) != 0:
            raise RuntimeError(f"building the panel of parameter set '{config}' failed (see the message above)")
    return pd.read_parquet(path)


def load_world_tables(config: str = "default") -> dict[str, pd.DataFrame]:
    """The synthetic world's truth tables written beside the panel (empty dict for real data)."""
    folder = processed_dir(config)
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in ("truth", "potential", "latent", "clusters") if (folder / f"{name}.parquet").is_file()}


def clusters_from_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """One row per certified cluster present in the panel, with its cell, batch and cohort."""
    cols = [c for c in ("cluster_id", "batch", "cohort", "province", "region", "county_code", "industry_code", "cell_id") if c in panel]
    members = panel.dropna(subset=["cluster_id"])
    return members[cols].drop_duplicates("cluster_id").sort_values(["batch", "cluster_id"]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: build and write the panel of a parameter set."""
    parser = argparse.ArgumentParser(prog="python -m analysis.panel", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="parameter set in config/ (default: default)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        params = load_params(args.config)
        panel, world = build_panel(params)
    except (ParameterError, PanelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = processed_dir(params["config"])
    if world is not None:
        write_world(world, folder)
    write_parquet(panel, panel_path(params["config"]))
    print(
        f"wrote {panel_path(params['config'])}: {len(panel):,} firm-years, {panel['firm_id'].nunique():,} firms, "
        f"{panel['year'].min()}-{panel['year'].max()} ({time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
