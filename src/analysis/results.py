"""The one tidy result shape shared by every estimator.

Every estimator in :mod:`analysis` returns an :class:`EstimationResult` (or a subclass). Its
:meth:`~EstimationResult.tidy` frame has the columns of :data:`TIDY_COLUMNS`, plus
``event_time``, ``cohort`` and ``time`` where they apply, so that any two estimators can be put
side by side with :func:`pandas.concat`. Coefficients, standard errors and confidence intervals
are slices of that one frame (as in pyfixest's ``coef()`` / ``se()``), never stored twice.

This module knows no project paths and draws nothing: paper tables and their export are in
:mod:`analysis.tables`, figures in :mod:`analysis.plots` (which registers the plotter behind
:meth:`EstimationResult.plot`).

Examples
--------
>>> res = EstimationResult.from_estimates(
...     estimate=[0.1, 0.2], std_error=[0.05, 0.1], term=["a", "b"],
...     outcome="y", estimator="ols", n_obs=100)
>>> res.tidy()[["term", "estimate", "conf_low"]].round(3)
  term  estimate  conf_low
0    a       0.1     0.002
1    b       0.2     0.004
>>> float(res.coef()["b"])
0.2
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "TIDY_COLUMNS",
    "INDEX_COLUMNS",
    "EstimationResult",
    "tidy_frame",
    "check_tidy",
    "combine",
    "register_plotter",
]

TIDY_COLUMNS: tuple[str, ...] = (
    "outcome",
    "estimator",
    "term",
    "estimate",
    "std_error",
    "conf_low",
    "conf_high",
    "p_value",
    "n_obs",
)
INDEX_COLUMNS: tuple[str, ...] = ("event_time", "cohort", "time")


def tidy_frame(
    estimate: Sequence[float] | np.ndarray,
    std_error: Sequence[float] | np.ndarray,
    *,
    term: Sequence[str] | str,
    outcome: str,
    estimator: str,
    n_obs: int | Sequence[int],
    alpha: float = 0.05,
    df: float | None = None,
    crit: float | Sequence[float] | None = None,
    **extra: Any,
) -> pd.DataFrame:
    """Build a tidy frame from estimates and standard errors.

    Confidence bounds are ``estimate -/+ crit * std_error`` and p-values two-sided, with the
    normal distribution, or Student's t when ``df`` is given. Pass ``crit`` to use another
    critical value (e.g. a bootstrap uniform band); p-values stay pointwise.

    Parameters
    ----------
    estimate, std_error : sequence of float or numpy.ndarray
        Point estimates and their standard errors (same length).
    term : sequence of str or str
        Term labels (one per estimate, or one string for a single estimate).
    outcome, estimator : str
        Labels repeated on every row.
    n_obs : int or sequence of int
        Observations used (scalar or one per row).
    alpha : float, default 0.05
        1 - confidence level.
    df : float, optional
        Degrees of freedom for t-based inference; ``None`` for the normal.
    crit : float or sequence of float, optional
        Critical value(s) overriding the distribution's ``1 - alpha/2`` quantile.
    **extra
        Further columns (``event_time``, ``cohort``, ``time`` ...), scalars or sequences.

    Examples
    --------
    >>> tidy_frame([0.5], [0.25], term="x", outcome="y", estimator="ols", n_obs=10)["p_value"].round(4).tolist()
    [0.0455]
    """
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    se = np.atleast_1d(np.asarray(std_error, dtype=float))
    if est.shape != se.shape:
        raise ValueError(f"estimate has {est.size} values but std_error has {se.size}")
    terms = [term] * est.size if isinstance(term, str) else list(term)
    if len(terms) != est.size:
        raise ValueError(f"{len(terms)} terms for {est.size} estimates")
    dist = stats.norm if df is None else stats.t(df)
    q = np.asarray(dist.ppf(1 - alpha / 2) if crit is None else crit, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    out = pd.DataFrame(
        {
            "outcome": outcome,
            "estimator": estimator,
            "term": terms,
            "estimate": est,
            "std_error": se,
            "conf_low": est - q * se,
            "conf_high": est + q * se,
            "p_value": 2 * dist.sf(np.abs(z)),
            "n_obs": n_obs,
        }
    )
    for name, value in extra.items():
        out[name] = value
    return out


def check_tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Check that ``df`` has the tidy columns, in order; return it with the columns ordered.

    Raises
    ------
    ValueError
        Naming the missing columns.
    """
    missing = [c for c in TIDY_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"tidy frame lacks column(s) {missing}; it has {list(df.columns)}")
    extra = [c for c in INDEX_COLUMNS if c in df.columns]
    rest = [c for c in df.columns if c not in TIDY_COLUMNS and c not in INDEX_COLUMNS]
    return df[[*TIDY_COLUMNS, *extra, *rest]].reset_index(drop=True)


#: plotters by kind, registered by the plotting module (results draw nothing themselves)
_PLOTTERS: dict[str, Callable[..., Any]] = {}


def register_plotter(kind: str, plotter: Callable[..., Any]) -> None:
    """Register the function that draws a kind of result (``"event_study"``) for :meth:`EstimationResult.plot`.

    Parameters
    ----------
    kind : str
        The kind of picture, e.g. ``"event_study"``.
    plotter : callable
        Called as ``plotter(tidy_frame, ax=ax, **kwargs)``; returns a figure.
    """
    _PLOTTERS[kind] = plotter


@dataclass(repr=False)
class EstimationResult:
    """An estimator's result: one tidy table plus optional covariance and metadata.

    Attributes
    ----------
    table
        The tidy frame (see :data:`TIDY_COLUMNS`).
    vcov
        Covariance of the estimates, a square frame indexed by ``term``, or ``None``.
    meta
        What a reader needs to judge the estimate: ``n_clusters``, ``cluster``, control group,
        notes, warnings...
    title
        A short label for display.
    """

    table: pd.DataFrame
    vcov: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    title: str = ""

    def __post_init__(self) -> None:
        self.table = check_tidy(self.table)

    @classmethod
    def from_estimates(cls, *, vcov: Any = None, meta: Mapping[str, Any] | None = None, title: str = "", **kwargs: Any):
        """Build from arrays via :func:`tidy_frame`; ``vcov`` may be an array in term order."""
        table = tidy_frame(**kwargs)
        if vcov is not None and not isinstance(vcov, pd.DataFrame):
            terms = table["term"].tolist()
            vcov = pd.DataFrame(np.asarray(vcov, dtype=float), index=terms, columns=terms)
        return cls(table=table, vcov=vcov, meta=dict(meta or {}), title=title)

    # -- slices of the one table ---------------------------------------------------------
    def tidy(self) -> pd.DataFrame:
        """The tidy frame (a copy)."""
        return self.table.copy()

    def coef(self) -> pd.Series:
        """Estimates indexed by term."""
        return self.table.set_index("term")["estimate"]

    def se(self) -> pd.Series:
        """Standard errors indexed by term."""
        return self.table.set_index("term")["std_error"]

    def confint(self) -> pd.DataFrame:
        """Confidence bounds indexed by term."""
        return self.table.set_index("term")[["conf_low", "conf_high"]]

    # -- display --------------------------------------------------------------------------
    def _display_frame(self) -> pd.DataFrame:
        cols = [c for c in (*INDEX_COLUMNS, "term", "estimate", "std_error", "conf_low", "conf_high", "p_value", "n_obs") if c in self.table]
        cols = [c for c in cols if not (c in INDEX_COLUMNS and self.table[c].isna().all())]
        return self.table[cols]

    def _header(self) -> str:
        outcomes = ", ".join(map(str, self.table["outcome"].unique()))
        estimators = ", ".join(map(str, self.table["estimator"].unique()))
        return self.title or f"{estimators}: {outcomes}"

    def _meta_lines(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.meta.items() if not isinstance(v, (pd.DataFrame, np.ndarray, dict, list))]

    def __repr__(self) -> str:
        body = self._display_frame().to_string(index=False, float_format=lambda x: f"{x:.4f}")
        return "\n".join([self._header(), body, *self._meta_lines()])

    def _repr_html_(self) -> str:
        table = self._display_frame().to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0, classes="tidy")
        notes = "".join(f"<li>{html.escape(line)}</li>" for line in self._meta_lines())
        return f"<div><strong>{html.escape(self._header())}</strong>{table}<ul>{notes}</ul></div>"

    def plot(self, ax=None, **kwargs):
        """Event-study plot (estimates with confidence bars against event time).

        Drawn by the plotter registered for ``"event_study"`` (:func:`register_plotter`;
        :mod:`analysis.plots` registers its ``event_study_plot`` when imported): this module
        draws nothing itself.
        """
        if "event_time" not in self.table or self.table["event_time"].isna().all():
            raise ValueError("this result has no event_time column to plot against")
        plotter = _PLOTTERS.get("event_study")
        if plotter is None:
            raise RuntimeError("no event-study plotter registered: `import analysis.plots` (it registers one) and call .plot() again")
        return plotter(self.table, ax=ax, **kwargs)


def combine(results: Iterable[EstimationResult | pd.DataFrame]) -> pd.DataFrame:
    """Stack the tidy frames of several results (or tidy frames) into one frame."""
    frames = [r.tidy() if isinstance(r, EstimationResult) else check_tidy(r) for r in results]
    if not frames:
        return pd.DataFrame(columns=list(TIDY_COLUMNS))
    return check_tidy(pd.concat(frames, ignore_index=True))
