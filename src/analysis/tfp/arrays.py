"""Array building blocks of the production-function fitters (the cleaned panel and its lags).

Everything here is vectorised: no loop over firms. The pieces are

- :func:`lag_index` / :func:`panel_lag`: the lag of year t is year t-k of the *same* firm, or
  missing, never "the previous row" (real panels have gaps). Every lag in :mod:`analysis.tfp`
  goes through :func:`lag_index`.
- :func:`poly_terms` / :func:`poly_design`: complete polynomials (all monomials up to a total
  degree), on standardised variables so the normal equations stay well conditioned.
- :func:`ols_absorb`: least squares with one set of group effects (year dummies) absorbed
  exactly, from chunked sufficient statistics, so a 4-million-row first stage never holds the
  whole design matrix in memory.
- :func:`group_demean`: within-group demeaning with :func:`numpy.bincount`.
- :class:`PanelData` and :func:`resample_units`: the cleaned arrays an estimator needs, and a
  firm (block) bootstrap draw of them with fresh firm ids, so lags stay within each copy.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"firm": [1, 1, 1, 2], "year": [2000, 2001, 2003, 2001], "x": [1.0, 2.0, 3.0, 4.0]})
>>> panel_lag(df, "x", unit="firm", time="year").tolist()   # 2003 follows a gap: no lag
[nan, 1.0, nan, nan]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations_with_replacement

import numpy as np
import pandas as pd

from analysis.domain import duplicated_unit_periods

__all__ = [
    "lag_index",
    "panel_lag",
    "take_lag",
    "poly_terms",
    "poly_design",
    "Standardizer",
    "ols_absorb",
    "group_demean",
    "PanelData",
    "resample_units",
]


# --------------------------------------------------------------------------------------
# Lags that respect gaps
# --------------------------------------------------------------------------------------
def lag_index(unit: np.ndarray, time: np.ndarray, k: int = 1) -> np.ndarray:
    """Row positions of each row's lag: the row of the same unit at ``time - k``, or -1.

    Parameters
    ----------
    unit : numpy.ndarray
        Integer unit codes (any integers; e.g. from :func:`pandas.factorize`).
    time : numpy.ndarray
        Integer periods (years). Must be unique within a unit.
    k : int, default 1
        Lag order (``k=1``: previous year; negative ``k`` gives leads).

    Returns
    -------
    numpy.ndarray
        ``int64`` positions into the input arrays; -1 where the lagged period is absent.

    Examples
    --------
    >>> import numpy as np
    >>> lag_index(np.array([1, 1, 1, 2]), np.array([2000, 2001, 2003, 2001])).tolist()
    [-1, 0, -1, -1]
    >>> lag_index(np.array([1, 1, 1]), np.array([2001, 2000, 2002]), k=2).tolist()  # order free
    [-1, -1, 1]
    """
    unit = np.asarray(unit, dtype=np.int64)
    time = np.asarray(time, dtype=np.int64)
    n = unit.size
    if n == 0:
        return np.empty(0, dtype=np.int64)
    t = time - time.min()
    span = int(t.max()) + abs(int(k)) + 1  # keys of different units never collide
    key = (unit - unit.min()) * span + t
    order = np.argsort(key, kind="stable")
    skey = key[order]
    target = key - k
    pos = np.searchsorted(skey, target)
    pos_c = np.minimum(pos, n - 1)
    found = skey[pos_c] == target
    return np.where(found, order[pos_c], -1).astype(np.int64)


def take_lag(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values`` at the lag positions ``idx`` (from :func:`lag_index`), NaN where ``idx == -1``."""
    values = np.asarray(values, dtype=float)
    out = values[np.maximum(idx, 0)]
    out[idx < 0] = np.nan
    return out


def panel_lag(
    data: pd.DataFrame,
    columns: str | Sequence[str],
    *,
    unit: str,
    time: str,
    k: int = 1,
) -> pd.Series | pd.DataFrame:
    """Lag one or more columns of a panel by ``k`` periods, respecting gaps.

    The lag of year t is the value of year t-k of the same unit; it is missing when that year
    is not in the data. Rows may be in any order.

    Raises
    ------
    ValueError
        If ``time`` is not integer-valued or (unit, time) pairs repeat.

    Examples
    --------
    >>> df = pd.DataFrame({"id": [1, 1, 2], "t": [1, 2, 2], "y": [5.0, 6.0, 7.0]})
    >>> panel_lag(df, "y", unit="id", time="t").tolist()
    [nan, 5.0, nan]
    """
    codes, times = _unit_time_codes(data, unit, time)
    _check_unique(codes, times, data, unit, time)
    idx = lag_index(codes, times, k)
    if isinstance(columns, str):
        return pd.Series(take_lag(data[columns].to_numpy(dtype=float), idx), index=data.index, name=columns)
    return pd.DataFrame({c: take_lag(data[c].to_numpy(dtype=float), idx) for c in columns}, index=data.index)


def _unit_time_codes(data: pd.DataFrame, unit: str, time: str) -> tuple[np.ndarray, np.ndarray]:
    for col in (unit, time):
        if col not in data.columns:
            raise ValueError(f"column {col!r} is not in the data")
    codes, _ = pd.factorize(data[unit], sort=False)
    if (codes < 0).any():
        bad = data.index[codes < 0][:5].tolist()
        raise ValueError(f"unit column {unit!r} is missing in rows {bad}")
    tv = pd.to_numeric(data[time], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(tv)) or not np.all(tv == np.round(tv)):
        bad = data.index[~(np.isfinite(tv) & (tv == np.round(tv)))][:5].tolist()
        raise ValueError(f"time column {time!r} must hold whole numbers (years); rows {bad} do not")
    return codes.astype(np.int64), tv.astype(np.int64)


def _check_unique(codes: np.ndarray, times: np.ndarray, data: pd.DataFrame, unit: str, time: str) -> None:
    dup = duplicated_unit_periods(codes, times)
    if dup.any():
        rows = data.index[dup][:6].tolist()
        raise ValueError(f"({unit}, {time}) pairs are not unique: rows {rows} repeat a firm-year")


# --------------------------------------------------------------------------------------
# Polynomials
# --------------------------------------------------------------------------------------
def poly_terms(n_vars: int, degree: int, *, include_bias: bool = True) -> list[tuple[int, ...]]:
    """Exponent tuples of all monomials in ``n_vars`` variables with total degree <= ``degree``.

    Examples
    --------
    >>> poly_terms(2, 2)
    [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    """
    terms: list[tuple[int, ...]] = [(0,) * n_vars] if include_bias else []
    for deg in range(1, degree + 1):
        for combo in combinations_with_replacement(range(n_vars), deg):
            e = [0] * n_vars
            for j in combo:
                e[j] += 1
            terms.append(tuple(e))
    return terms


def poly_design(X: np.ndarray, terms: Sequence[tuple[int, ...]]) -> np.ndarray:
    """Evaluate the monomials ``terms`` (from :func:`poly_terms`) at the rows of ``X``."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, q = X.shape
    max_deg = max((max(t) for t in terms if t), default=0)
    powers = [[None] + [X[:, j] ** d for d in range(1, max_deg + 1)] for j in range(q)]
    out = np.empty((n, len(terms)), order="F")  # column by column, in place: no temporary per term
    for c, t in enumerate(terms):
        factors = [powers[j][e] for j, e in enumerate(t) if e]
        col = out[:, c]
        if not factors:
            col[:] = 1.0
        elif len(factors) == 1:
            col[:] = factors[0]
        else:
            np.multiply(factors[0], factors[1], out=col)
            for f in factors[2:]:
                np.multiply(col, f, out=col)
    return out


@dataclass(frozen=True)
class Standardizer:
    """Centre and scale columns (fit on one sample, apply to others: bootstrap draws, chunks)."""

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        """The column means and standard deviations of ``X`` (a constant column keeps scale 1)."""
        X = np.asarray(X, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        sd = X.std(axis=0)
        return cls(center=X.mean(axis=0), scale=np.where(sd > 0, sd, 1.0))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """``X`` centred and scaled by the fitted statistics."""
        X = np.asarray(X, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        return (X - self.center) / self.scale


# --------------------------------------------------------------------------------------
# Least squares with absorbed group effects, chunked
# --------------------------------------------------------------------------------------
def group_demean(A: np.ndarray, groups: np.ndarray, n_groups: int | None = None) -> np.ndarray:
    """Subtract group means (``groups`` are codes 0..G-1) from each column of ``A``."""
    A = np.asarray(A, dtype=float)
    g = np.asarray(groups)
    G = int(g.max()) + 1 if n_groups is None else n_groups
    counts = np.bincount(g, minlength=G).astype(float)
    counts[counts == 0] = 1.0
    if A.ndim == 1:
        return A - (np.bincount(g, weights=A, minlength=G) / counts)[g]
    out = np.empty_like(A, order="F")
    for j in range(A.shape[1]):
        out[:, j] = A[:, j] - (np.bincount(g, weights=A[:, j], minlength=G) / counts)[g]
    return out


def ols_absorb(
    y: np.ndarray,
    make_X: Callable[[slice], np.ndarray],
    n: int,
    *,
    groups: np.ndarray | None = None,
    chunk: int = 250_000,
    cache_bytes: float = 1.5e9,
) -> tuple[np.ndarray, np.ndarray]:
    """OLS of ``y`` on columns built by ``make_X(rows)``, with group intercepts absorbed.

    Cross products are accumulated chunk by chunk, so only ``chunk`` rows of the design exist
    at a time; the chunks are kept for the pass that computes the fitted values while they take
    at most ``cache_bytes`` (a 5-million-row cubic in three inputs is 0.8 GB), else rebuilt.
    With ``groups`` (codes 0..G-1) each group gets its own intercept (year dummies), absorbed
    exactly through group sums (``X'X - sum_g n_g xbar_g xbar_g'``); ``make_X`` must
    then not include a constant. Without ``groups`` include a constant column yourself.
    Rank deficiency is handled by a minimum-norm solve.

    Returns
    -------
    coef, fitted
        Slope coefficients on ``make_X`` columns and fitted values (group intercepts included).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(6.0); g = np.array([0, 0, 0, 1, 1, 1]); y = 2 * x + 10 * g
    >>> coef, fit = ols_absorb(y, lambda s: x[s, None], 6, groups=g)
    >>> coef.round(6).tolist(), np.allclose(fit, y)
    ([2.0], True)
    """
    y = np.asarray(y, dtype=float)
    XtX = None
    Xty = None
    G = 0
    if groups is not None:
        groups = np.asarray(groups, dtype=np.int64)
        G = int(groups.max()) + 1
        gcount = np.bincount(groups, minlength=G).astype(float)
        gy = np.bincount(groups, weights=y, minlength=G)
        gX = None
    cache: list[np.ndarray] | None = []
    for start in range(0, n, chunk):
        s = slice(start, min(start + chunk, n))
        Xc = make_X(s)
        if cache is not None:
            cache.append(Xc)
            if Xc.nbytes * -(-n // chunk) > cache_bytes:
                cache = None
        if XtX is None:
            k = Xc.shape[1]
            XtX = np.zeros((k, k))
            Xty = np.zeros(k)
            if groups is not None:
                gX = np.zeros((G, k))
        XtX += Xc.T @ Xc
        Xty += Xc.T @ y[s]
        if groups is not None:
            gc = groups[s]
            for j in range(Xc.shape[1]):
                gX[:, j] += np.bincount(gc, weights=Xc[:, j], minlength=G)
    if groups is not None:
        safe = np.where(gcount > 0, gcount, 1.0)
        xbar = gX / safe[:, None]
        ybar = gy / safe
        XtX = XtX - (xbar * gcount[:, None]).T @ xbar
        Xty = Xty - (xbar * gcount[:, None]).T @ ybar
    coef = _solve_psd(XtX, Xty)
    fitted = np.empty(n)
    for i, start in enumerate(range(0, n, chunk)):
        s = slice(start, min(start + chunk, n))
        fitted[s] = (cache[i] if cache is not None else make_X(s)) @ coef
    if groups is not None:
        intercept = ybar - xbar @ coef
        fitted += intercept[groups]
    return coef, fitted


def _solve_psd(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``A x = b`` for symmetric PSD ``A``; minimum-norm solution if singular."""
    d = np.sqrt(np.clip(np.diag(A), 1e-300, None))
    As = A / d[:, None] / d[None, :]
    w, V = np.linalg.eigh(As)
    keep = w > w.max() * 1e-12
    x = V[:, keep] @ ((V[:, keep].T @ (b / d)) / w[keep])
    return x / d


# --------------------------------------------------------------------------------------
# The cleaned panel and the firm bootstrap
# --------------------------------------------------------------------------------------
@dataclass
class PanelData:
    """Cleaned arrays for one estimation sample, rows sorted by (unit, time).

    Attributes
    ----------
    y, free, state, proxy, share
        Output, free inputs (n x nf), state inputs (n x ns), proxy (n,), log intermediate
        share (GNR), as float arrays; ``proxy``/``share`` may be ``None``.
    markov
        Variables shifting the law of motion (n x r) or ``None``.
    exit
        1 if the firm exits after this period, 0 if it survives, NaN if unknown; or ``None``.
    group
        Integer codes of the ``group_effects`` column (e.g. industry), or ``None``.
    unit, time
        Integer unit codes and periods.
    rows
        Labels of the rows of the original frame (``data.index``), for aligning TFP.
    """

    y: np.ndarray
    free: np.ndarray
    state: np.ndarray
    unit: np.ndarray
    time: np.ndarray
    rows: np.ndarray
    proxy: np.ndarray | None = None
    share: np.ndarray | None = None
    markov: np.ndarray | None = None
    exit: np.ndarray | None = None
    group: np.ndarray | None = None
    _lags: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        """Rows."""
        return self.y.size

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (lag cache included): what sending the panel to a worker moves."""
        arrays = (self.y, self.free, self.state, self.unit, self.time, self.rows, self.proxy, self.share, self.markov,
                  self.exit, self.group, *self._lags.values())
        return int(sum(getattr(a, "nbytes", 0) for a in arrays if a is not None))

    @property
    def inputs(self) -> np.ndarray:
        """Free then state inputs (n x p), the order of the coefficients everywhere."""
        return np.column_stack([self.free, self.state])

    def lag(self, k: int = 1) -> np.ndarray:
        """Positions of the (t-k) row of the same unit, -1 if absent (cached)."""
        if k not in self._lags:
            if k == 1 and self._sorted_contiguous():
                prev = np.r_[-1, np.arange(self.n - 1)]
                ok = np.r_[False, (self.unit[1:] == self.unit[:-1]) & (self.time[1:] - self.time[:-1] == 1)]
                self._lags[k] = np.where(ok, prev, -1)
            else:
                self._lags[k] = lag_index(self.unit, self.time, k)
        return self._lags[k]

    def _sorted_contiguous(self) -> bool:
        du = np.diff(self.unit)
        return bool(np.all((du > 0) | ((du == 0) & (np.diff(self.time) > 0))))

    def year_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Codes 0..T-1 of the periods and the sorted distinct periods."""
        years, codes = np.unique(self.time, return_inverse=True)
        return codes.astype(np.int64), years

    def effect_codes(self, time_effects: bool) -> np.ndarray | None:
        """Codes of the absorbed effects: years, groups, group x year cells, or ``None``."""
        parts = []
        if self.group is not None:
            parts.append(self.group)
        if time_effects:
            parts.append(self.year_codes()[0])
        if not parts:
            return None
        if len(parts) == 1:
            return np.unique(parts[0], return_inverse=True)[1].astype(np.int64)
        key = parts[0].astype(np.int64) * (int(parts[1].max()) + 1) + parts[1]
        return np.unique(key, return_inverse=True)[1].astype(np.int64)

    def subset(self, mask: np.ndarray) -> PanelData:
        """Rows where ``mask`` is true (lags are recomputed)."""
        take = lambda a: None if a is None else a[mask]  # noqa: E731
        return PanelData(
            y=self.y[mask], free=self.free[mask], state=self.state[mask], unit=self.unit[mask],
            time=self.time[mask], rows=self.rows[mask], proxy=take(self.proxy), share=take(self.share),
            markov=take(self.markov), exit=take(self.exit), group=take(self.group),
        )


def resample_units(panel: PanelData, rng: np.random.Generator) -> PanelData:
    """One firm-bootstrap draw: firms drawn with replacement, each copy a new firm.

    Rows of the input must be sorted by (unit, time) with each unit contiguous (as built by
    :mod:`analysis.tfp`). The draw keeps that order, so lags are recomputed in O(n) and never
    link two copies of a firm.
    """
    starts = np.flatnonzero(np.r_[True, panel.unit[1:] != panel.unit[:-1]])
    lengths = np.diff(np.r_[starts, panel.n])
    n_units = starts.size
    pick = rng.integers(0, n_units, n_units)
    lens = lengths[pick]
    total = int(lens.sum())
    offsets = np.repeat(starts[pick] - np.r_[0, np.cumsum(lens)[:-1]], lens)
    idx = np.arange(total) + offsets
    new_unit = np.repeat(np.arange(n_units, dtype=np.int64), lens)
    take = lambda a: None if a is None else a[idx]  # noqa: E731
    return replace(
        panel,
        y=panel.y[idx], free=panel.free[idx], state=panel.state[idx], unit=new_unit,
        time=panel.time[idx], rows=panel.rows[idx], proxy=take(panel.proxy), share=take(panel.share),
        markov=take(panel.markov), exit=take(panel.exit), group=take(panel.group), _lags={},
    )
