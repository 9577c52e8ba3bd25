"""The panel's data contract: column names, types, ranges, one row per firm-year.

:func:`validate_panel` checks any firm panel, synthetic or a user's real data, before anything is
estimated on it, and raises :class:`PanelError` (a :class:`ValueError`) whose message names the
column at fault and shows example rows. ``data/README.md`` documents the same columns; a test
keeps the two in step.

Examples
--------
>>> import pandas as pd
>>> ok = pd.DataFrame({"firm_id": [1, 1], "year": [2015, 2016], "county_code": [320581, 320581],
...                    "industry_code": [26, 26], "cohort": [0, 0]})
>>> validate_panel(ok).shape
(2, 5)
>>> bad = ok.assign(year=[2015, 2015])
>>> validate_panel(bad)
Traceback (most recent call last):
...
analysis.schema.PanelError: duplicate firm-year: 2 rows share (firm_id, year) with another row; examples:
   firm_id  year
0        1  2015
1        1  2015
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.domain import late_cohorts

__all__ = ["PanelError", "Column", "COLUMNS", "REQUIRED", "LOG_INPUTS", "validate_panel"]


class PanelError(ValueError):
    """A panel breaks the data contract; the message names the column and shows rows."""


@dataclass(frozen=True)
class Column:
    """One column of the contract."""

    name: str
    kind: str  # "int", "float", "count", "str", "bool", "cohort"
    unit: str
    meaning: str
    real_source: str
    required: bool = False
    positive: bool = False  # strictly positive where present (logs are taken)
    nonnegative: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("firm_id", "id", "-", "firm identifier, constant over time", "ASIF legal-unit code (法人代码) after the Brandt-Van Biesebroeck-Zhang linking", True),
    Column("year", "int", "year", "calendar year of the observation", "ASIF survey year", True),
    Column("province", "str", "-", "province (English name)", "ASIF address code, first two digits", False),
    Column("region", "str", "-", "east / central / west (NBS three-belt classification)", "derived from province", False),
    Column("county_code", "id", "-", "6-digit county-level administrative code (GB/T 2260)", "ASIF address code", True),
    Column("industry_code", "int", "-", "2-digit CIC industry (GB/T 4754-2017), 13-43 for manufacturing", "ASIF industry code, first two digits (harmonised across CIC revisions)", True),
    Column("cell_id", "int", "-", "county x industry cell (county_code * 100 + industry_code): where certification is assigned", "derived", False),
    Column("cluster_id", "str", "-", "certified cluster the firm belongs to (missing if none)", "MIIT lists matched on county and leading industry", False),
    Column("batch", "int", "year", "certification batch of the firm's cluster (2022-2025; missing if none)", "MIIT notices", False),
    Column("cohort", "cohort", "year", "first treated year; 0 for never certified within the data years", "batch announcement date and the first-treated-year rule", True),
    Column("provincial_cluster", "bool", "-", "the firm's county x industry cell holds a provincially certified cluster (a competing treatment)", "provincial lists, data/external/clusters_provincial.csv", False),
    Column("control_unverified", "bool", "-", "outside every listed cluster in a county the incomplete list cannot vouch for (kept with data.clusters_incomplete_controls: warn)", "data/external/clusters_coverage.csv", False),
    Column("ownership", "str", "-", "SOE / private / foreign (incl. Hong Kong, Macau, Taiwan)", "ASIF registration type (登记注册类型)", False),
    Column("founding_year", "int", "year", "year the firm was founded", "ASIF 开业年份", False),
    Column("output", "float", "thousand yuan", "gross industrial output", "ASIF 工业总产值", False, positive=True),
    Column("value_added", "float", "thousand yuan", "industrial value added", "ASIF 工业增加值 (missing in 2008-2010 and later years: impute or use gross output)", False, positive=True),
    Column("capital", "float", "thousand yuan", "net fixed assets", "ASIF 固定资产净值 (deflate; perpetual inventory if preferred)", False, positive=True),
    Column("labor", "float", "persons", "employment, annual average", "ASIF 全部从业人员年平均人数", False, positive=True),
    Column("materials", "float", "thousand yuan", "intermediate inputs", "ASIF 工业中间投入合计", False, positive=True),
    Column("investment", "float", "thousand yuan", "investment in fixed assets (may be zero or negative)", "change in the capital stock plus depreciation", False),
    Column("patents_invention", "count", "applications", "invention patent applications (发明) filed in the year", "CNIPA, matched by firm name (He et al. 2018)", False, nonnegative=True),
    Column("patents_utility", "count", "applications", "utility-model applications (实用新型)", "CNIPA", False, nonnegative=True),
    Column("patents_design", "count", "applications", "design applications (外观设计)", "CNIPA", False, nonnegative=True),
    Column("reports_emissions", "bool", "-", "the firm is in the environmental statistics survey (key polluter)", "matched to the pollution records", False),
    Column("so2", "float", "tonnes", "sulphur dioxide emitted (missing if not surveyed)", "environmental statistics firm survey", False, nonnegative=True),
    Column("cod", "float", "tonnes", "chemical oxygen demand discharged", "environmental statistics firm survey", False, nonnegative=True),
    Column("co2", "float", "tonnes", "CO2 from energy use (estimated from fuel consumption)", "energy consumption x emission factors", False, nonnegative=True),
    Column("sme", "bool", "-", "SME under the 2011 standard (fewer than 1,000 employees or revenue under 400 m yuan)", "derived from labor and output", False),
)
COLUMN_MAP = {c.name: c for c in COLUMNS}
REQUIRED: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
#: inputs whose logs are taken: they must be strictly positive where present
LOG_INPUTS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.positive)

_MAX_EXAMPLES = 5


def _examples(df: pd.DataFrame, mask: pd.Series | np.ndarray, cols: list[str]) -> str:
    show = [c for c in ("firm_id", "year") if c in df.columns and c not in cols] + cols
    return df.loc[np.asarray(mask), show].head(_MAX_EXAMPLES).to_string()


def validate_panel(
    df: pd.DataFrame,
    *,
    required: tuple[str, ...] | list[str] = REQUIRED,
    years: tuple[int, int] = (1990, 2035),
    source: str = "panel",
) -> pd.DataFrame:
    """Check a firm panel against the contract and return it unchanged.

    Checks, in order: required columns present; types (numeric columns numeric, counts
    whole and non-negative, cohort whole); one row per (firm_id, year); years within
    ``years``; inputs whose logs are taken strictly positive where present; emissions
    non-negative; cohort constant within a firm; cohort 0/missing or within the data's years.

    Parameters
    ----------
    df
        The panel.
    required
        Columns that must be present (default :data:`REQUIRED`); pass the outcome columns an
        analysis uses to require them too.
    years
        Admissible range of ``year``.
    source
        Name of the data (a file path) quoted in error messages.

    Raises
    ------
    PanelError
        Naming the column at fault, the number of offending rows, and up to five of them.
    """
    where = f"{source}: " if source != "panel" else ""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise PanelError(f"{where}missing required column(s) {missing}; the panel has {list(df.columns)}")

    for col in df.columns:
        spec = COLUMN_MAP.get(col)
        if spec is None:
            continue
        s = df[col]
        if spec.kind in ("int", "float", "count", "cohort"):
            if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                coerced = pd.to_numeric(s, errors="coerce")
                bad = coerced.isna() & s.notna()
                raise PanelError(
                    f"{where}column '{col}' must be numeric ({spec.unit}) but has dtype {s.dtype}; "
                    f"{int(bad.sum())} value(s) are not numbers, examples:\n{_examples(df, bad, [col])}"
                )
        if spec.kind in ("count", "cohort", "int") and pd.api.types.is_float_dtype(s):
            bad = s.notna() & (s != np.round(s))
            if bad.any():
                raise PanelError(f"{where}column '{col}' must hold whole numbers; {int(bad.sum())} row(s) do not, examples:\n{_examples(df, bad, [col])}")
        if spec.kind == "id" and s.isna().any():
            bad = s.isna()
            raise PanelError(f"{where}column '{col}' has {int(bad.sum())} missing value(s); examples:\n{_examples(df, bad, [col])}")

    dup = df.duplicated(["firm_id", "year"], keep=False)
    if dup.any():
        raise PanelError(f"{where}duplicate firm-year: {int(dup.sum())} rows share (firm_id, year) with another row; examples:\n{_examples(df, dup, [])}")

    yr = df["year"]
    bad = yr.isna() | (yr < years[0]) | (yr > years[1])
    if bad.any():
        raise PanelError(f"{where}column 'year' out of range {years[0]}-{years[1]} in {int(bad.sum())} row(s); examples:\n{_examples(df, bad, ['year'])}")

    for col in LOG_INPUTS:
        if col in df.columns:
            bad = df[col].notna() & (df[col] <= 0)
            if bad.any():
                raise PanelError(f"{where}column '{col}' must be positive where present (its log is taken); {int(bad.sum())} row(s) are zero or negative, examples:\n{_examples(df, bad, [col])}")
    for spec in COLUMNS:
        if spec.nonnegative and spec.name in df.columns:
            bad = df[spec.name].notna() & (df[spec.name] < 0)
            if bad.any():
                raise PanelError(f"{where}column '{spec.name}' must be non-negative; {int(bad.sum())} row(s) are negative, examples:\n{_examples(df, bad, [spec.name])}")

    cohort = df["cohort"].fillna(0)
    n_cohorts = cohort.groupby(df["firm_id"]).nunique()
    varying = df["firm_id"].isin(n_cohorts.index[n_cohorts > 1])
    if varying.any():
        raise PanelError(
            f"{where}column 'cohort' is not constant within firm for {int((n_cohorts > 1).sum())} firm(s) "
            f"(certification timing is a firm attribute); examples:\n{_examples(df, varying, ['cohort'])}"
        )
    lo, hi = int(yr.min()), int(yr.max())
    # the one rule for late cohorts (analysis.domain.late_cohorts): a stored panel codes them 0
    bad = ((cohort != 0) & (cohort < lo)) | late_cohorts(cohort, hi)
    if bad.any():
        raise PanelError(
            f"{where}column 'cohort' outside the data years {lo}-{hi} in {int(bad.sum())} row(s); code firms "
            f"first treated after {hi} as 0 (not yet treated within the data) and keep their batch; examples:\n{_examples(df, bad, ['cohort'])}"
        )
    return df
