"""Facts of the study that every layer shares: the panel's key columns, outcomes, cohort rules.

This module is the bottom floor of :mod:`analysis`: it imports nothing of the package, so the
simulator, the real-data readers, the panel builder, the estimators and the reports can all use
the same names and the same rules without importing one another.

- Column names of the data contract's keys (:data:`UNIT`, :data:`TIME`, :data:`COHORT`, ...);
  the full contract with types and ranges is :data:`analysis.schema.COLUMNS`.
- Pollutants and patent types, and the outcome columns built from them
  (:data:`POLLUTANTS`, :data:`PATENT_TYPES`, :data:`OUTCOME_FAMILIES`).
- The certification batches (:data:`ANNOUNCEMENTS`) and the cohort rules: the first treated year
  of a batch (:func:`cohort_from_date`), what counts as never treated (:func:`never_treated`),
  and the one rule for units first treated after the last period (:func:`late_cohorts`,
  :func:`within_sample_cohorts`), used by the panel builder, the data contract and the
  difference-in-differences estimators alike.

Examples
--------
>>> cohort_from_date("2024-09-20", late_month=7)
2025
>>> within_sample_cohorts([2023, 2026, 0], last_period=2025).tolist()
[2023.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "UNIT",
    "TIME",
    "COHORT",
    "BATCH",
    "CLUSTER_ID",
    "CELL",
    "COUNTY",
    "INDUSTRY",
    "KEYS",
    "NEVER_TREATED",
    "POLLUTANTS",
    "PATENT_TYPES",
    "PATENT_COLUMNS",
    "OUTCOME_FAMILIES",
    "ANNOUNCEMENTS",
    "cohort_from_date",
    "never_treated",
    "late_cohorts",
    "within_sample_cohorts",
]

# -- the panel's key columns (data/README.md documents them) -------------------------------------
#: firm identifier, constant over time
UNIT = "firm_id"
#: calendar year of the observation
TIME = "year"
#: first treated year; :data:`NEVER_TREATED` for firms not certified within the data years
COHORT = "cohort"
#: certification batch of the firm's cluster (missing if none)
BATCH = "batch"
#: certified cluster the firm belongs to (missing if none)
CLUSTER_ID = "cluster_id"
#: county x industry cell, where certification is assigned (and standard errors are clustered)
CELL = "cell_id"
#: 6-digit county code and 2-digit CIC industry: together they locate a cluster
COUNTY = "county_code"
INDUSTRY = "industry_code"
#: one row per firm and year
KEYS: tuple[str, str] = (UNIT, TIME)

# -- outcomes -----------------------------------------------------------------------------------
#: pollutants of the environmental statistics survey, in tonnes
POLLUTANTS: tuple[str, ...] = ("so2", "cod", "co2")
#: the three CNIPA patent types (发明, 实用新型, 外观设计)
PATENT_TYPES: tuple[str, ...] = ("invention", "utility", "design")
#: panel columns of patent applications by type
PATENT_COLUMNS: tuple[str, ...] = tuple(f"patents_{kind}" for kind in PATENT_TYPES)
#: outcome columns of each family of the study (``analysis.panel.add_outcomes`` builds them; the
#: productivity family's ``tfp_<method>`` columns come from ``analysis.productivity``)
OUTCOME_FAMILIES: dict[str, tuple[str, ...]] = {
    "productivity": ("tfp_acf", "tfp_lp", "tfp_op", "log_labor_productivity"),
    "innovation": ("any_patent", "log1p_patents", "patents_total", "patents_invention"),
    "emissions": (*(f"log_{p}_intensity" for p in POLLUTANTS), *(f"log_{p}" for p in POLLUTANTS)),
}

# -- certification ------------------------------------------------------------------------------
#: national batches of SME characteristic industrial clusters and the dates MIIT announced them
#: (the batch named 2022 was announced in January 2023)
ANNOUNCEMENTS: dict[int, str] = {2022: "2023-01-11", 2023: "2023-10-18", 2024: "2024-09-20", 2025: "2025-11-15"}
#: the cohort code of a unit not treated within the data (missing is read the same way)
NEVER_TREATED = 0


def cohort_from_date(date: str | pd.Timestamp, late_month: int) -> int:
    """First treated year of a batch announced on ``date``.

    The announcement year, or the next year when the notice comes in or after ``late_month``.

    Parameters
    ----------
    date : str or pandas.Timestamp
        Announcement date of the batch.
    late_month : int
        A batch announced in or after this month is first treated the next year.

    Returns
    -------
    int
        The first treated year.

    Examples
    --------
    >>> cohort_from_date("2023-10-18", late_month=7), cohort_from_date("2023-01-11", late_month=7)
    (2024, 2023)
    """
    ts = pd.Timestamp(date)
    return int(ts.year + (ts.month >= late_month))


def _as_float(cohort: Any) -> np.ndarray:
    """Cohorts as a float array (missing and non-numeric values become NaN)."""
    return pd.to_numeric(pd.Series(cohort), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def never_treated(cohort: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    """Which units are never treated: cohort 0, missing or infinite.

    Parameters
    ----------
    cohort : array-like
        First treated periods.

    Returns
    -------
    numpy.ndarray
        Boolean array, one entry per value.

    Examples
    --------
    >>> never_treated([0, 2024, None, float("inf")]).tolist()
    [True, False, True, True]
    """
    g = _as_float(cohort)
    return ~np.isfinite(g) | (g == NEVER_TREATED)


def late_cohorts(cohort: Sequence[float] | np.ndarray | pd.Series, last_period: float, anticipation: float = 0) -> np.ndarray:
    """Units first treated after the last period (plus anticipation): not treated within the sample.

    The one rule for late cohorts. The panel builder codes them :data:`NEVER_TREATED` (keeping
    their ``batch``), the data contract (``analysis.schema``) rejects a stored panel that does
    not, and the difference-in-differences estimators recode them with a note (their data may be
    a subsample of years).

    Parameters
    ----------
    cohort : array-like
        First treated periods (0 or missing for never treated).
    last_period : float
        Last period of the data.
    anticipation : float, default 0
        Periods of anticipation: a unit first treated within ``anticipation`` periods after the
        data end is still treated in the sample (its anticipation periods are observed).

    Returns
    -------
    numpy.ndarray
        Boolean array, true for the late units.

    Examples
    --------
    >>> late_cohorts([2024, 2026, 0], last_period=2025).tolist()
    [False, True, False]
    >>> late_cohorts([2026], last_period=2025, anticipation=1).tolist()
    [False]
    """
    g = _as_float(cohort)
    return np.isfinite(g) & (g != NEVER_TREATED) & (g > last_period + anticipation)


def within_sample_cohorts(cohort: Sequence[float] | np.ndarray | pd.Series, last_period: float, anticipation: float = 0) -> np.ndarray:
    """Cohorts with the late ones (:func:`late_cohorts`) and missing ones coded :data:`NEVER_TREATED`.

    Parameters
    ----------
    cohort : array-like
        First treated periods.
    last_period : float
        Last period of the data.
    anticipation : float, default 0
        See :func:`late_cohorts`.

    Returns
    -------
    numpy.ndarray
        Float cohorts, 0 for units not treated within the sample.

    Examples
    --------
    >>> within_sample_cohorts([2024, 2026, None], last_period=2025).tolist()
    [2024.0, 0.0, 0.0]
    """
    g = _as_float(cohort)
    return np.where(never_treated(g) | late_cohorts(g, last_period, anticipation), float(NEVER_TREATED), g)
