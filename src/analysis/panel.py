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
from analysis.domain import (
    NEVER_TREATED,
    PATENT_COLUMNS,
    POLLUTANTS,
    cohort_from_date,
    late_cohorts,
)
from analysis.io import read_parquet_columns, read_table, write_parquet
from analysis.schema import PanelError, validate_panel
from analysis.simulate import simulate_world
from analysis.sources import clusters as cl
from analysis.sources.attrition import SourceLog, read_source_log
from analysis.sources.firms import cluster_match_problem, read_firms
from analysis.sources.read import SourceError

__all__ = [
    "add_outcomes",
    "assign_clusters",
    "baseline",
    "build_panel",
    "check_cohorts",
    "clusters_from_panel",
    "event_time",
    "load_panel",
    "load_source_log",
    "load_world_tables",
    "main",
    "panel_path",
    "read_clusters",
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
    firms : pandas.DataFrame
        Firm-year records with ``county_code`` and ``industry_code``.
    clusters : pandas.DataFrame
        One row per certified cluster with ``cluster_id``, ``county_code``, ``industry_code``,
        ``batch`` and ``announced`` (a date).
    late_month : int
        A batch announced in or after this month is first treated the next year.
    last_year : int
        Last data year: firms first treated after it get ``cohort = 0`` (not yet treated within
        the data) and keep their ``batch``.
    definition : str, default 'cell'
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


def _raw_panel(params: Mapping[str, Any], log: SourceLog) -> pd.DataFrame:
    """Read the user's firm files and cluster list (read only) through :mod:`analysis.sources`."""
    d = params["data"]
    firms, flog = read_firms(d, root=ROOT)
    log.steps += flog.steps
    log.warnings += flog.warnings
    log.tables.update(flog.tables)
    log.facts.update(flog.facts)
    clusters = read_clusters(_resolve(d["raw_clusters"]))
    years = (int(firms["year"].min()), int(firms["year"].max()))
    last = years[1]
    check_cohorts(clusters, years, late_month=d["late_month"], log=log)
    out = assign_clusters(firms, clusters, late_month=d["late_month"], last_year=last, definition=d["treatment"])
    if out["cluster_id"].isna().all():
        problem = cluster_match_problem(firms, clusters) or (
            f"no firm matched to any certified cluster under data.treatment: {d['treatment']} (the county x industry cells do meet; "
            "check the definition's columns, e.g. industry_code4 for core4)"
        )
        raise SourceError(f"{_resolve(d['raw_firms'])} and {_resolve(d['raw_clusters'])}: {problem}")
    members = out["cluster_id"].notna()
    log.step("clusters", "assign_clusters", len(firms), len(out),
             f"{int(members.sum()):,} firm-years of {out.loc[members, 'firm_id'].nunique():,} firms in {out.loc[members, 'cluster_id'].nunique()} of "
             f"the {len(clusters)} certified clusters (data.treatment: {d['treatment']})")
    coverage = read_table(_resolve(d["clusters_coverage"])) if d.get("clusters_coverage") else None
    policy = d["clusters_incomplete_controls"]
    n_in = len(out)
    out, counties = cl.control_sample(out, clusters, complete=d["clusters_complete"], coverage=coverage, policy=policy,
                                      late_month=d["late_month"], last_year=last)
    n = int(counties["n_dropped"].sum()) if policy == "drop" else int(out["control_unverified"].sum())
    if n:
        what = "dropped" if policy == "drop" else "kept, flagged control_unverified"
        note = f"{n:,} firm-years outside the listed clusters in counties the incomplete list cannot vouch for were {what} (data.clusters_incomplete_controls)"
        print(f"note: {note}", file=sys.stderr)
        log.notice("clusters", note, rows=n)
    rule = ("never-treated controls only where the cluster list is known complete" if not d["clusters_complete"]
            else "the cluster list is complete (data.clusters_complete): every firm outside it is a control")
    log.step("clusters", "control_sample", n_in, len(out), rule)
    if out.empty:
        raise PanelError(
            f"no firm-year is left: none is in a listed cluster of {d['raw_clusters']} and none in a province whose list is known complete "
            "(data.clusters_complete: false, data.clusters_incomplete_controls: drop); supply the full list and set clusters_complete: true, or use warn"
        )
    provincial = cl.as_assignment(read_table(_resolve(d["raw_provincial_clusters"]))) if d.get("raw_provincial_clusters") else None
    out = out.assign(provincial_cluster=cl.provincial_flag(out, provincial))
    return _link_records(out, d) if d.get("raw_applications") or d.get("raw_emissions") else out


def read_clusters(path: Path) -> pd.DataFrame:
    """The user's cluster list (``cluster_id, county_code, industry_code, batch, announced``), codes as integers.

    Raises
    ------
    SourceError
        If a column is missing or a county or industry code is not a whole number, naming the rows.
    """
    clusters = read_table(path)
    if "industry_cic2" in clusters.columns:  # the format of data/external/clusters_national.csv
        return cl.as_assignment(clusters)
    need = ["cluster_id", "county_code", "industry_code", "batch", "announced"]
    missing = [c for c in need if c not in clusters.columns]
    if missing:
        raise SourceError(f"{path}: the cluster list lacks column(s) {missing}; it has {list(clusters.columns)}. "
                          f"Fix: one row per certified cluster with {need}")
    for c in ("county_code", "industry_code", "batch"):
        v = pd.to_numeric(clusters[c], errors="coerce")
        bad = v.isna() | (v != v.round())
        if bad.any():
            raise SourceError(f"{path}: column '{c}' must hold whole numbers (county: 6-digit GB/T 2260, industry: 2-digit CIC 2017); "
                              f"rows {list(clusters.index[bad][:5])}: {clusters.loc[bad, c].head(5).tolist()}")
        clusters[c] = v.astype(np.int64)
    return cl.as_assignment(clusters)


def check_cohorts(clusters: pd.DataFrame, years: tuple[int, int], *, late_month: int, log: SourceLog | None = None) -> None:
    """Stop when no certified cluster is first treated within the data years, or some before them.

    Firms of a batch first treated after the last data year are kept as not yet treated (cohort 0,
    listed); a batch first treated before the first data year has no pre-treatment years and stops
    the run, as does data that end before the first cohort.
    """
    g = pd.Series([cohort_from_date(x, late_month) for x in clusters["announced"]], index=clusters.index)
    lo, hi = years
    early = g < lo
    if early.any():
        raise SourceError(
            f"cohorts outside the data years: {int(early.sum())} certified clusters are first treated in {sorted(g[early].unique().tolist())}, "
            f"before the first data year {lo}, so their firms have no year before certification; e.g. {clusters.loc[early, 'cluster_id'].head(5).tolist()}. "
            "Fix: add earlier years of firm data, or drop those clusters from the list"
        )
    within = (g >= lo) & (g <= hi)
    if not within.any():
        raise SourceError(
            f"cohorts outside the data years: the data cover {lo}-{hi}, but the certified clusters are first treated in {sorted(g.unique().tolist())} "
            f"(announcements {sorted(clusters['announced'].astype(str).unique().tolist())[:4]}, late_month {late_month}), "
            "so no firm is treated within the data. "
            "Fix: the firm data must reach the years after certification (2023 on)"
        )
    late = g > hi
    if late.any() and log is not None:
        log.notice("clusters", f"{int(late.sum())} certified clusters are first treated after the last data year {hi} "
                   f"(cohorts {sorted(g[late].unique().tolist())}): "
                 "their firms are coded not yet treated (cohort 0) and keep their batch")


def _link_records(panel: pd.DataFrame, d: Mapping[str, Any]) -> pd.DataFrame:
    """Patent applications (``data.raw_applications``) and pollution records (``data.raw_emissions``)
    linked to the panel's firms by name (``analysis.sources.patents`` / ``emissions``); their counts
    and tonnes replace the panel's columns. The firm file needs ``firm_name`` (``former_names``,
    ``county_name`` help)."""
    from analysis.sources import emissions as em
    from analysis.sources import patents as pt

    if "firm_name" not in panel.columns:
        raise ParameterError(f"data.raw_applications / data.raw_emissions are linked by firm name: {d['raw_firms']} needs a column "
                             "firm_name (map it with data.rename)")
    # the linkage joins on integer firm ids; the front door keeps legal-unit codes as text: link on
    # integer codes of the panel's ids and put the text back afterwards
    text_ids = not pd.api.types.is_integer_dtype(panel["firm_id"])
    if text_ids:
        codes, uniq = pd.factorize(panel["firm_id"])
        numeric = pd.to_numeric(pd.Series(uniq), errors="coerce")
        by_number = dict(zip(numeric.astype("Int64"), range(len(uniq)))) if numeric.notna().all() and numeric.is_unique else None
        panel = panel.assign(firm_id=codes.astype(np.int64))
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
        records = em.read_emission_records(_resolve(d["raw_emissions"]), units=d.get("emission_units"))
        if text_ids and records["firm_id"].notna().any():
            # the records' ids (read as numbers) are the panel's codes without their leading zeros
            records["firm_id"] = records["firm_id"].map(by_number).astype("Int64") if by_number is not None else pd.array([pd.NA] * len(records), dtype="Int64")
        res = em.link_emissions(records, firms)
        print(f"note: pollution records: {res.report.share_linked:.1%} linked", file=sys.stderr)
        panel = res.to_panel(panel)
    if text_ids:
        panel["firm_id"] = pd.Series(np.asarray(uniq, dtype=object)[panel["firm_id"].to_numpy()], index=panel.index, dtype="str")
    return panel


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


def build_panel(params: Mapping[str, Any], *, log: SourceLog | None = None) -> tuple[pd.DataFrame, Any]:
    """Build the validated analysis panel of a parameter set.

    Parameters
    ----------
    params : mapping
        A parameter set from :func:`analysis.config.load_params`. ``params["data"]["source"]``
        is ``"synthetic"`` (simulate the world) or ``"raw"`` (read ``data.raw_firms`` and
        ``data.raw_clusters``, relative to the project root, through :mod:`analysis.sources`).
    log : SourceLog, optional
        A :class:`~analysis.sources.attrition.SourceLog` to fill with the attrition table, the
        listed warnings and the recode tables (``main`` writes it beside the panel).

    Returns
    -------
    (panel, world)
        The panel with outcome columns added, and the :class:`~analysis.simulate.World` (or
        ``None`` for real data).
    """
    source, d = params["data"]["source"], params["data"]
    log = SourceLog() if log is None else log
    if d.get("treatment", "cell") not in cl.DEFINITIONS:
        raise ParameterError(f"data.treatment must be one of {list(cl.DEFINITIONS)}, not {d.get('treatment')!r}")
    if source == "synthetic":
        world = simulate_world(params)  # its list is complete: every unlisted firm is a never-treated control
        cert, years = world.params["certification"], world.params["years"]
        firms = assign_clusters(world.panel, world.clusters, late_month=cert["late_month"], last_year=years[1], definition=d.get("treatment", "cell"))
        firms["provincial_cluster"] = False
        log.step("simulate", "synthetic world", 0, len(firms), "the synthetic world of the parameter set (analysis.simulate); no raw files")
    elif source == "raw":
        world = None
        firms = _raw_panel(params, log)
    else:
        raise ParameterError(f"data.source must be 'synthetic' or 'raw', not {source!r}")
    if "treatment_unclear" in firms:  # core4: firms the definition cannot place are neither members nor controls
        n = len(firms)
        firms = firms[~firms.pop("treatment_unclear").to_numpy(dtype=bool)]
        log.step("clusters", "treatment_unclear", n, len(firms), "firms the core4 definition cannot place (neither members nor controls)")
    if d.get("drop_provincial_clusters", False):  # robustness sample: no provincially certified firms among the controls
        n = len(firms)
        firms = firms[~(firms["provincial_cluster"].to_numpy(dtype=bool) & firms["cluster_id"].isna().to_numpy())]
        log.step("clusters", "drop_provincial_clusters", n, len(firms),
                 "firms of provincial clusters outside the national ones (data.drop_provincial_clusters)")
    validate_panel(firms, source=str(params["data"].get("raw_firms", "synthetic world")) if source == "raw" else "panel")
    panel = add_outcomes(firms)
    return panel, world


def write_world(world: Any, folder: Path) -> dict[str, Path]:
    """Write the synthetic world's truth tables beside the panel (atomically)."""
    paths = {}
    for name in ("truth", "potential", "latent", "clusters"):
        paths[name] = write_parquet(getattr(world, name), folder / f"{name}.parquet")
    return paths


def source_log_dir(config: str) -> Path:
    """Where the attrition table, warnings and recode tables of the panel of ``config`` are written."""
    return processed_dir(config) / "sources"


def load_source_log(config: str = "default") -> SourceLog:
    """The :class:`~analysis.sources.attrition.SourceLog` written with the panel (empty if none)."""
    return read_source_log(source_log_dir(config))


def load_panel(config: str = "default", *, build: bool = True, columns: list[str] | None = None) -> pd.DataFrame:
    """Read the built panel of a parameter set; build and write it first if it is missing.

    ``make data`` builds it; building here lets a notebook opened in JupyterLab run top to
    bottom without make. With ``build=False`` a missing panel raises ``FileNotFoundError``.
    ``columns``: read only these, those the panel has (:func:`analysis.io.read_parquet_columns`).
    """
    path = panel_path(config)
    if not path.is_file():
        if not build:
            raise FileNotFoundError(f"{path} does not exist; build it with `make data CONFIG={config}`")
        if main(["--config", config]) != 0:
            raise RuntimeError(f"building the panel of parameter set '{config}' failed (see the message above)")
    return read_parquet_columns(path, columns)


def load_world_tables(config: str = "default") -> dict[str, pd.DataFrame]:
    """The synthetic world's truth tables written beside the panel (empty dict for real data)."""
    folder = processed_dir(config)
    names = ("truth", "potential", "latent", "clusters")
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in names if (folder / f"{name}.parquet").is_file()}


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
    log = SourceLog()
    try:
        params = load_params(args.config)
        panel, world = build_panel(params, log=log)
    except (ParameterError, PanelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = processed_dir(params["config"])
    if world is not None:
        write_world(world, folder)
    log.write(source_log_dir(params["config"]))
    write_parquet(panel, panel_path(params["config"]))
    print(
        f"wrote {panel_path(params['config'])}: {len(panel):,} firm-years, {panel['firm_id'].nunique():,} firms, "
        f"{panel['year'].min()}-{panel['year'].max()} ({time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
