"""The one validated panel container of every difference-in-differences estimator.

:class:`DiDPanel` checks a long panel once, as linearmodels' ``PanelData`` serves every panel
model: the columns exist; unit, period and cluster are never missing; periods are whole numbers;
one row per unit and period; the cohort (first treated period) is numeric, whole, non-negative
and constant within a unit; weights are numeric and non-negative. It codes the treatment timing
by one rule for all estimators (:mod:`analysis.domain`):

- never treated is cohort :data:`~analysis.domain.NEVER_TREATED` (0); 0, missing and infinite
  cohorts are read that way;
- a unit first treated after the last period plus ``anticipation`` is not treated within the
  sample: it is recoded as never treated, with a note (:func:`analysis.domain.late_cohorts`, the
  rule the panel builder and the data contract apply too).

Every estimator of :mod:`analysis.did` starts with :func:`as_panel`, which builds the container
or reuses one the caller built (so a study running several estimators on the same data checks
it once); each then lays it out the way its algorithm needs (a long frame with internal columns
in :mod:`analysis.did._common`, unit x period arrays for Callaway-Sant'Anna in
:mod:`analysis.did._cs_data`).

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"id": [1, 1, 2, 2, 3, 3], "t": [1, 2, 1, 2, 1, 2], "g": [2, 2, 0, 0, 5, 5], "y": range(6)})
>>> p = DiDPanel.from_data(df, unit="id", time="t", cohort="g")
>>> p.cohort_unit.tolist(), p.notes
([2.0, 0.0, 0.0], ['1 unit(s) first treated after the last period (2) are never treated in this sample'])
>>> as_panel(p, unit="id", time="t", cohort="g") is p
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.domain import NEVER_TREATED, duplicated_unit_periods, late_cohorts

__all__ = ["DiDPanel", "as_panel", "show"]

_MAX_SHOWN = 5


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def show(values: Sequence[Any] | np.ndarray, k: int = _MAX_SHOWN) -> str:
    """The first ``k`` values, comma separated, with how many more there are.

    Examples
    --------
    >>> show([1, 2, 3, 4, 5, 6, 7])
    '1, 2, 3, 4, 5 and 2 more'
    """
    vals = list(values)
    more = f" and {len(vals) - k} more" if len(vals) > k else ""
    return ", ".join(repr(_scalar(v)) for v in vals[:k]) + more


def _to_pandas(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):  # polars, pyarrow
        return data.to_pandas()
    raise ValueError(f"data must be a pandas (or polars) DataFrame, got {type(data).__name__}")


def numeric_column(data: pd.DataFrame, col: str, role: str) -> np.ndarray:
    """A numeric (or boolean) column as a float array; a clear error naming the column otherwise."""
    series = data[col]
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        raise ValueError(f"{role} column {col!r} must be numeric, it has dtype {series.dtype}")
    return series.to_numpy(dtype=float, na_value=np.nan)


@dataclass
class DiDPanel:
    """A long panel checked once, with the treatment timing coded by one rule.

    Build it with :meth:`from_data` (or :func:`as_panel`); the estimators read the outcome and
    covariates from :attr:`data` by name.

    Attributes
    ----------
    data : pandas.DataFrame
        The caller's data (not copied, never modified).
    unit, time, cohort : str
        Column names of the unit, the period and the first treated period.
    cluster : str or None
        Column of the clusters (``None``: the unit).
    weights : str or None
        Column of sampling weights.
    anticipation : float
        Periods of anticipation used by the late-cohort rule.
    unit_codes : numpy.ndarray
        Per row, the unit's code ``0..N-1`` (codes follow the sorted unit labels).
    unit_ids : numpy.ndarray
        The unit labels of the codes.
    periods_row : numpy.ndarray
        Per row, the period (float, whole numbers).
    cohort_unit : numpy.ndarray
        Per unit, the first treated period; ``0`` if not treated within the sample.
    cluster_codes : numpy.ndarray or None
        Per row, the cluster's code ``0..G-1`` (sorted labels); ``None`` without ``cluster``.
    notes : list of str
        Data decisions a reader should know (cohorts recoded).
    """

    data: pd.DataFrame
    unit: str
    time: str
    cohort: str
    cluster: str | None
    weights: str | None
    anticipation: float
    unit_codes: np.ndarray
    unit_ids: np.ndarray
    periods_row: np.ndarray
    cohort_unit: np.ndarray
    cluster_codes: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_data(
        cls,
        data: Any,
        *,
        unit: str,
        time: str,
        cohort: str,
        cluster: str | None = None,
        weights: str | None = None,
        anticipation: float = 0,
        columns: Sequence[str] = (),
    ) -> DiDPanel:
        """Check a long panel and code its treatment timing.

        Parameters
        ----------
        data : pandas.DataFrame
            Long panel, one row per unit and period (pandas, or anything with ``to_pandas``).
        unit, time, cohort : str
            Column names. ``cohort`` is the first treated period; 0 or missing means never treated.
        cluster : str, optional
            Column to cluster standard errors on (e.g. the county x industry cell); the unit if ``None``.
        weights : str, optional
            Column of non-negative sampling weights.
        anticipation : float, default 0
            Periods of anticipation (late-cohort rule, :func:`analysis.domain.late_cohorts`).
        columns : sequence of str
            Further columns that must exist (outcome, covariates), checked with the others.

        Returns
        -------
        DiDPanel

        Raises
        ------
        ValueError
            Naming the missing columns, the rows with a missing unit, period or cluster, a
            non-integer period, the duplicated unit-period pairs, a bad or varying cohort, or
            negative weights.

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"id": [1, 1], "t": [1, 1], "g": [0, 0], "y": [0.0, 1.0]})
        >>> DiDPanel.from_data(df, unit="id", time="t", cohort="g")
        Traceback (most recent call last):
        ...
        ValueError: duplicate ('id', 't') rows: 1 unit-period pair(s) appear more than once, e.g. (1, 1); a panel needs one row per unit and period
        """
        df = _to_pandas(data)
        roles = [unit, time, cohort, *([cluster] if cluster is not None else []), *([weights] if weights is not None else []), *columns]
        missing = [c for c in dict.fromkeys(roles) if c not in df.columns]
        if missing:
            raise ValueError(f"column(s) {missing} not found in data; it has {list(df.columns)}")
        if df.empty:
            raise ValueError("data has no rows")
        if not (np.isfinite(anticipation) and anticipation >= 0):
            raise ValueError(f"anticipation must be a non-negative number, got {anticipation!r}")
        notes: list[str] = []

        # unit, period, cluster: never missing
        for role, col in (("unit", unit), ("time", time), ("cluster", cluster)):
            if col is not None and df[col].isna().any():
                rows = np.flatnonzero(df[col].isna().to_numpy())
                raise ValueError(f"{role} column {col!r} is missing in {rows.size} row(s) (row positions {show(rows)})")
        unit_codes, unit_ids = pd.factorize(df[unit], sort=True)
        unit_ids = np.asarray(unit_ids)
        t = numeric_column(df, time, "time")
        if not np.isfinite(t).all() or not np.array_equal(t, np.round(t)):
            rows = np.flatnonzero(~np.isfinite(t) | (t != np.round(t)))
            raise ValueError(f"time column {time!r} must hold whole numbers (periods); {rows.size} row(s) do not (row positions {show(rows)})")

        # one row per unit and period
        dup = duplicated_unit_periods(unit_codes, t)
        if dup.any():
            pairs = pd.DataFrame({"u": unit_ids[unit_codes[dup]], "t": t[dup]}).drop_duplicates()
            shown = ", ".join(f"({_scalar(u)!r}, {tt:g})" for u, tt in pairs.head(_MAX_SHOWN).itertuples(index=False))
            raise ValueError(
                f"duplicate ({unit!r}, {time!r}) rows: {len(pairs)} unit-period pair(s) appear more than once, e.g. {shown}; "
                "a panel needs one row per unit and period"
            )

        # cohort: numeric, whole, non-negative, constant within a unit; 0 / missing / inf = never
        g = numeric_column(df, cohort, "cohort")
        g = np.where(np.isfinite(g), g, float(NEVER_TREATED))
        bad = (g < 0) | (g != np.round(g))
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"cohort column {cohort!r} must hold the first treated period (a non-negative whole number, 0 or missing "
                f"for never treated); {rows.size} row(s) do not (row positions {show(rows)})"
            )
        n_units = unit_ids.size
        g_unit = np.empty(n_units)
        g_unit[unit_codes] = g
        differ = g_unit[unit_codes] != g
        if differ.any():
            bad_units = np.unique(unit_codes[differ])
            raise ValueError(
                f"cohort column {cohort!r} is not constant within {unit!r}: unit(s) {show(unit_ids[bad_units])} take more than "
                f"one value ({bad_units.size} unit(s) in all); treatment must be absorbing with one first period per unit"
            )
        last = float(t.max())
        late = late_cohorts(g_unit, last, anticipation)
        if late.any():
            plus = f" + {anticipation:g} of anticipation" if anticipation else ""
            notes.append(f"{int(late.sum())} unit(s) first treated after the last period ({last:g}{plus}) are never treated in this sample")
            g_unit = np.where(late, float(NEVER_TREATED), g_unit)

        if weights is not None:
            w = numeric_column(df, weights, "weights")
            if (w[~np.isnan(w)] < 0).any():
                rows = np.flatnonzero(w < 0)
                raise ValueError(f"weights column {weights!r} has negative values in {rows.size} row(s) (row positions {show(rows)})")
        cluster_codes = None
        if cluster is not None:
            cluster_codes = pd.factorize(df[cluster], sort=True)[0].astype(np.int64)
        return cls(
            data=df, unit=unit, time=time, cohort=cohort, cluster=cluster, weights=weights, anticipation=float(anticipation),
            unit_codes=unit_codes.astype(np.int64), unit_ids=unit_ids, periods_row=t, cohort_unit=g_unit,
            cluster_codes=cluster_codes, notes=notes,
        )

    # -- what the estimators read ---------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        """Unit-period rows."""
        return int(self.unit_codes.size)

    @property
    def n_units(self) -> int:
        """Units."""
        return int(self.unit_ids.size)

    @property
    def cohort_row(self) -> np.ndarray:
        """Per row, the unit's cohort (0 if never treated within the sample)."""
        return self.cohort_unit[self.unit_codes]

    @property
    def periods(self) -> np.ndarray:
        """The sorted distinct periods."""
        return np.unique(self.periods_row)

    @property
    def cohorts(self) -> np.ndarray:
        """The treated cohorts, sorted."""
        return np.unique(self.cohort_unit[self.cohort_unit != NEVER_TREATED])

    @property
    def has_never_treated(self) -> bool:
        """Whether some unit is never treated within the sample."""
        return bool((self.cohort_unit == NEVER_TREATED).any())

    def column(self, col: str, role: str) -> np.ndarray:
        """A numeric column of :attr:`data` (outcome, covariate, weights) as a float array."""
        if col not in self.data.columns:
            raise ValueError(f"column(s) {[col]} not found in data; it has {list(self.data.columns)}")
        return numeric_column(self.data, col, role)

    def matches(self, *, unit: str, time: str, cohort: str, cluster: str | None, weights: str | None, anticipation: float) -> bool:
        """Whether this container was built with these roles (then an estimator reuses it)."""
        return (self.unit, self.time, self.cohort, self.cluster, self.weights, self.anticipation) == (
            unit, time, cohort, cluster, weights, float(anticipation))

    def __repr__(self) -> str:
        return (
            f"DiDPanel: {self.n_rows:,} rows, {self.n_units:,} units ({self.unit!r}) x {self.periods.size} periods ({self.time!r}), "
            f"cohorts {[float(c) for c in self.cohorts]}, never treated: {int((self.cohort_unit == NEVER_TREATED).sum()):,} units"
            + (f", clusters {self.cluster!r}" if self.cluster else "")
        )


def as_panel(
    data: Any,
    *,
    unit: str | None,
    time: str | None,
    cohort: str | None,
    cluster: str | None = None,
    weights: str | None = None,
    anticipation: float = 0,
    columns: Sequence[str] = (),
) -> DiDPanel:
    """The container of ``data``: reused if ``data`` is a :class:`DiDPanel` built with these roles.

    Parameters
    ----------
    data : pandas.DataFrame or DiDPanel
        The panel, or a container built before.
    unit, time, cohort, cluster, weights, anticipation : str, str, str, str or None, str or None, float
        As in :meth:`DiDPanel.from_data`. With a container, ``None`` for ``unit``, ``time`` or
        ``cohort`` takes the container's.
    columns : sequence of str
        Further columns that must exist (outcome, covariates).

    Returns
    -------
    DiDPanel
    """
    if isinstance(data, DiDPanel):
        unit, time, cohort = unit or data.unit, time or data.time, cohort or data.cohort
        missing = [c for c in columns if c not in data.data.columns]
        if missing:
            raise ValueError(f"column(s) {missing} not found in data; it has {list(data.data.columns)}")
        if data.matches(unit=unit, time=time, cohort=cohort, cluster=cluster, weights=weights, anticipation=anticipation):
            return data
        data = data.data
    if unit is None or time is None or cohort is None:
        raise ValueError("give the unit, time and cohort columns (or a DiDPanel)")
    return DiDPanel.from_data(data, unit=unit, time=time, cohort=cohort, cluster=cluster, weights=weights,
                              anticipation=anticipation, columns=columns)
