"""Randomization inference for staggered certification: relabel cells as the design would, fast.

Certification is assigned to county x industry cells, batch by batch, at most a fixed number a
province. Randomization (permutation) inference asks how unusual the actual estimate is among
the estimates the same estimator gives when certification is reassigned at random *as the design
assigns it*: the same number of cells in each batch and province (``within="province"``), or in
each batch nationally with the per-province cap (``within="batch"``), drawn from the eligible cells.
Under the sharp null of no effect on any firm the actual assignment is one draw from that
distribution, so ``p = (1 + #{|theta_b| >= |theta|}) / (1 + B)`` is exact whatever the number of
clusters (Fisher 1935; in DiD, e.g. MacKinnon and Webb 2020, Roth et al. 2023 Section 5.2). Chinese
DiD papers report it as the "placebo test" figure: the distribution of placebo estimates with the
actual one marked.

Speed. A draw only relabels cells, so everything that does not depend on the labels is computed
once:

* Callaway-Sant'Anna, never-treated controls, no covariates (``statistic="cs"``): every post-period
  ATT(g, t) compares mean changes ``y_t - y_{g-1}``; their sums and counts per cell and (t, g - 1)
  pair are computed once, and a draw is a few (draws x cells) @ (cells x pairs) products. Equal to
  :func:`analysis.did.att_gt` ``.aggregate("simple")`` on the relabelled data (tested).
* Static TWFE (``statistic="twfe"``): with ``y~`` the two-way residual of the outcome (once),
  ``b = D'y~ / (D'WD - D'WL (L'WL)^-1 L'WD)`` (W within-unit demeaning, L period dummies); every term
  is a sum over cells of what a cell contributes if it gets cohort g, computed once per cell and
  cohort. Equal to :func:`analysis.did.twfe` on the relabelled data (tested).

``bench/robustness.py`` measures draws per second against re-running ``att_gt`` per draw.

Seeds and engines. The draws come in chunks of ``chunk_size``; chunk ``c`` draws its assignments
and evaluates the statistic with its own seed, ``numpy.random.SeedSequence(seed).spawn(n_chunks)[c]``,
so a chunk depends on nothing but its seed: the chunks can run in a loop here (the default) or
through ``mapper``, a function with the contract of :func:`analysis.engine.map_draws` (e.g.
``functools.partial(map_draws, client=client)`` on a Dask cluster; the robustness section's
``ri.engine`` builds it), with the same draws. Each worker receives the precomputed statistic and
the design once, never the panel.

Examples
--------
>>> import pandas as pd
>>> cells = pd.DataFrame({"cell": range(8), "stratum": [0, 0, 0, 0, 1, 1, 1, 1], "batch": [1, 0, 0, 0, 1, 2, 0, 0]})
>>> design = AssignmentDesign.from_cells(cells["cell"], cells["stratum"], cells["batch"], cohorts={1: 2020, 2: 2021})
>>> draws = design.draw(5, seed=1)
>>> draws.shape, bool(((draws == 1).sum(axis=1) == 2).all())
((5, 8), True)
>>> bool((design.draw(3, seed=1) == draws[:3]).all())  # the first draws of a larger number are the same
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.did._common import demean_by_group

__all__ = [
    "AssignmentDesign",
    "CSStatistic",
    "RIResult",
    "TWFEStatistic",
    "randomization_inference",
    "ri_p_value",
]


def _array_bytes(obj: Any) -> int:
    """Bytes of the NumPy arrays among a dataclass's fields (what sending it to a worker moves)."""
    return int(sum(v.nbytes for v in vars(obj).values() if isinstance(v, np.ndarray)))


# ---------------------------------------------------------------------------------------------
# the assignment design
# ---------------------------------------------------------------------------------------------
@dataclass
class AssignmentDesign:
    """Which cells may be certified, in which strata, and how many per batch.

    Attributes
    ----------
    cells
        Labels of the eligible cells (the pool), in a fixed order.
    stratum
        Integer stratum code (province) of each pool cell.
    actual
        Actual batch index of each pool cell (0 = not certified, 1..K the batches in order).
    cohorts
        First treated year within the data of each batch index (0 = treated after the data).
    within
        ``"province"``: the counts per stratum and batch are kept; ``"batch"``: the counts per
        batch, at most ``max_per_stratum`` cells of a stratum in a batch.
    """

    cells: np.ndarray
    stratum: np.ndarray
    actual: np.ndarray
    cohorts: np.ndarray
    within: str = "province"
    max_per_stratum: int | None = None
    batch_labels: list[Any] = field(default_factory=list)

    @classmethod
    def from_cells(
        cls,
        cells: Sequence[Any],
        stratum: Sequence[Any],
        batch: Sequence[Any],
        *,
        cohorts: Mapping[Any, int],
        within: str = "province",
        max_per_stratum: int | None = None,
    ) -> AssignmentDesign:
        """Build from one row per eligible cell: its stratum and actual batch (0 / missing: none).

        ``cohorts`` maps each batch label to its first treated year within the data (0 if after).
        """
        if within not in ("province", "batch"):
            raise ValueError(f"within must be 'province' or 'batch', got {within!r}")
        b = pd.Series(list(batch))
        labels = sorted(x for x in b.dropna().unique() if x != 0)
        unknown = [x for x in labels if x not in cohorts]
        if unknown:
            raise ValueError(f"batch(es) {unknown} have no cohort in cohorts={dict(cohorts)}")
        idx = b.map({x: i + 1 for i, x in enumerate(labels)}).fillna(0).astype(int).to_numpy()
        cells = np.asarray(list(cells))
        if pd.Series(cells).duplicated().any():
            raise ValueError("each eligible cell must appear once")
        s = pd.factorize(pd.Series(list(stratum)), sort=True)[0]
        design = cls(cells=cells, stratum=s, actual=idx, cohorts=np.array([0, *[int(cohorts[x]) for x in labels]]),
                     within=within, max_per_stratum=max_per_stratum, batch_labels=labels)
        if within == "batch" and max_per_stratum is not None:
            counts = pd.crosstab(s[idx > 0], idx[idx > 0]).to_numpy()
            if counts.size and counts.max() > max_per_stratum:
                raise ValueError(f"the actual assignment has {counts.max()} cells of one stratum in a batch, above max_per_stratum={max_per_stratum}")
        return design

    @property
    def n_cells(self) -> int:
        """Number of eligible cells."""
        return self.cells.size

    @property
    def nbytes(self) -> int:
        """Bytes of the design's arrays."""
        return _array_bytes(self)

    def describe(self) -> str:
        """One sentence for a report."""
        n_b = [int((self.actual == k).sum()) for k in range(1, self.cohorts.size)]
        rule = ("the same number of cells in each province and batch" if self.within == "province"
                else f"the same number of cells in each batch, at most {self.max_per_stratum} a province")
        return (f"certification reassigned among {self.n_cells} eligible cells in {int(self.stratum.max()) + 1} provinces, "
                f"batches of {n_b} cells, keeping {rule}")

    def cohort_of(self, assignment: np.ndarray) -> np.ndarray:
        """First treated year (0: not within the data) of each cell for batch indices ``assignment``."""
        return self.cohorts[assignment]

    def draw(self, n_draws: int, *, seed: int = 0) -> np.ndarray:
        """``n_draws`` assignments (n_draws x n_cells batch indices, 0 = not certified)."""
        rng = np.random.default_rng(seed)
        K = self.cohorts.size - 1
        out = np.zeros((n_draws, self.n_cells), dtype=np.int8 if K < 127 else np.int16)
        if self.within == "province":
            counts = np.zeros((int(self.stratum.max()) + 1, K + 1), dtype=np.int64)
            np.add.at(counts, (self.stratum, self.actual), 1)
            cum = np.cumsum(counts[:, 1:], axis=1)                     # strata x K
            start = np.concatenate([[0], np.cumsum(np.bincount(self.stratum))[:-1]])
            for lo in range(0, n_draws, 256):
                m = min(256, n_draws - lo)
                key = self.stratum[None, :] + rng.random((m, self.n_cells))
                order = np.argsort(key, axis=1, kind="stable")
                s_sorted = self.stratum[order]
                rank = np.arange(self.n_cells)[None, :] - start[s_sorted]
                batch = 1 + (rank[:, :, None] >= cum[s_sorted]).sum(axis=2)
                batch = np.where(rank < cum[s_sorted, -1], batch, 0)
                rows = np.arange(m)[:, None]
                out[lo + rows, order] = batch
            return out
        # within batch, capped per stratum: the simulator's rule with a random score
        n_b = np.bincount(self.actual, minlength=K + 1)[1:]
        cap = self.max_per_stratum if self.max_per_stratum is not None else self.n_cells
        for d in range(n_draws):
            free = np.ones(self.n_cells, dtype=bool)
            for k in range(K):
                perm = rng.permutation(np.flatnonzero(free))
                s = self.stratum[perm]
                order = np.argsort(s, kind="stable")
                pos_in_s = np.empty(perm.size, dtype=np.int64)
                sorted_s = s[order]
                first = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
                runs = np.diff(np.r_[first, sorted_s.size])
                pos_in_s[order] = np.arange(sorted_s.size) - np.repeat(first, runs)
                take = perm[pos_in_s < cap][: n_b[k]]
                if take.size < n_b[k]:
                    raise ValueError(f"batch {self.batch_labels[k]}: only {take.size} eligible cells within the cap, {n_b[k]} needed")
                out[d, take] = k + 1
                free[take] = False
        return out


# ---------------------------------------------------------------------------------------------
# statistics: precomputed once, evaluated on (draws x cells) cohort matrices
# ---------------------------------------------------------------------------------------------
def _frame(data: pd.DataFrame, outcome: str, unit: str, time: str, cell: str) -> pd.DataFrame:
    missing = [c for c in (outcome, unit, time, cell) if c not in data.columns]
    if missing:
        raise KeyError(f"column(s) {missing} are not in the data")
    d = data[[unit, time, cell, outcome]].dropna(subset=[outcome])
    if d.empty:
        raise ValueError(f"no row with a non-missing {outcome!r}")
    per_unit = d.groupby(unit)[cell].nunique()
    if (per_unit > 1).any():
        raise ValueError(f"units are not nested in cells: {int((per_unit > 1).sum())} unit(s) of {unit!r} appear in more than one {cell!r}")
    return d.reset_index(drop=True)


def _pool_index(cells_of_rows: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Position of each row's cell in the pool, -1 if the cell is not eligible."""
    lookup = pd.Series(np.arange(pool.size), index=pool)
    return pd.Series(cells_of_rows).map(lookup).fillna(-1).astype(np.int64).to_numpy()


@dataclass
class CSStatistic:
    """Callaway-Sant'Anna simple ATT (never-treated controls, no covariates) as a function of cell cohorts.

    Build with :meth:`prepare`; call on a (draws x pool cells) array of cohorts (0 = not treated
    within the data) to get one ATT per draw.
    """

    cohorts: np.ndarray           # the treated cohorts a draw may give (sorted)
    pairs: list[tuple[int, int]]  # (t, base) per column of S, N
    pair_cohort: np.ndarray       # cohort index of each (cohort, t) post cell
    pair_col: np.ndarray          # column of S/N of each post cell
    S: np.ndarray                 # pool cells x pairs: sums of y_t - y_base
    N: np.ndarray                 # pool cells x pairs: counts
    S_out: np.ndarray             # pairs: the same for firms outside the pool (always controls)
    N_out: np.ndarray
    n_cell: np.ndarray            # firms per pool cell
    n_units: int

    name = "cs"
    label = "Callaway-Sant'Anna (never-treated controls)"

    @property
    def nbytes(self) -> int:
        """Bytes of the precomputed arrays."""
        return _array_bytes(self)

    @classmethod
    def prepare(cls, data: pd.DataFrame, outcome: str, *, unit: str, time: str, cell: str, pool: np.ndarray, cohorts: Sequence[int]) -> CSStatistic:
        """Precompute the label-free pieces (cell sums of outcome changes) of the statistic."""
        d = _frame(data, outcome, unit, time, cell)
        u, units = pd.factorize(d[unit])
        times = np.sort(d[time].unique())
        tpos = np.searchsorted(times, d[time].to_numpy())
        Y = np.full((units.size, times.size), np.nan)
        Y[u, tpos] = d[outcome].to_numpy(dtype=float)
        unit_cell = np.full(units.size, -1)
        unit_cell[u] = _pool_index(d[cell].to_numpy(), pool)
        cohorts = np.array(sorted(int(g) for g in cohorts if g and times[0] < g <= times[-1]))
        pairs, pc, pcol = [], [], []
        for k, g in enumerate(cohorts):
            base = np.flatnonzero(times < g)[-1]
            for ti in range(base + 1, times.size):
                if times[ti] < g:
                    continue
                key = (ti, int(base))
                if key not in pairs:
                    pairs.append(key)
                pc.append(k)
                pcol.append(pairs.index(key))
        S = np.zeros((pool.size, len(pairs)))
        N = np.zeros((pool.size, len(pairs)))
        S_out, N_out = np.zeros(len(pairs)), np.zeros(len(pairs))
        inside = unit_cell >= 0
        for j, (ti, bi) in enumerate(pairs):
            delta = Y[:, ti] - Y[:, bi]
            ok = np.isfinite(delta)
            S[:, j] = np.bincount(unit_cell[ok & inside], weights=delta[ok & inside], minlength=pool.size)
            N[:, j] = np.bincount(unit_cell[ok & inside], minlength=pool.size)
            S_out[j] = delta[ok & ~inside].sum()
            N_out[j] = (ok & ~inside).sum()
        n_cell = np.bincount(unit_cell[inside], minlength=pool.size).astype(float)
        return cls(cohorts=cohorts, pairs=[(int(times[a]), int(times[b])) for a, b in pairs], pair_cohort=np.array(pc),
                   pair_col=np.array(pcol), S=S, N=N, S_out=S_out, N_out=N_out, n_cell=n_cell, n_units=int(units.size))

    def __call__(self, cohort: np.ndarray) -> np.ndarray:
        """The statistic for each row of ``cohort`` (one cohort per eligible cell, 0 = never treated)."""
        cohort = np.atleast_2d(cohort)
        ctrl = (cohort == 0).astype(float)
        CS, CN = ctrl @ self.S + self.S_out, ctrl @ self.N + self.N_out
        num = np.zeros(cohort.shape[0])
        den = np.zeros(cohort.shape[0])
        for k, g in enumerate(self.cohorts):
            m = (cohort == g).astype(float)
            pg = (m @ self.n_cell) / self.n_units
            cols = self.pair_col[self.pair_cohort == k]
            TS, TN = m @ self.S[:, cols], m @ self.N[:, cols]
            with np.errstate(invalid="ignore", divide="ignore"):
                att = TS / TN - CS[:, cols] / CN[:, cols]
            ok = np.isfinite(att)
            num += pg * np.where(ok, att, 0.0).sum(axis=1)
            den += pg * ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / den



@dataclass
class TWFEStatistic:
    """The static TWFE coefficient as a function of cell cohorts (see the module docstring)."""

    cohorts: np.ndarray
    R: np.ndarray        # pool cells x cohorts: sum of y~ over t >= g
    Q: np.ndarray        # pool cells x cohorts: D'WD contributions
    P: np.ndarray        # pool cells x cohorts x (T - 1): L'WD contributions
    A: np.ndarray        # (L'WL)^-1

    name = "twfe"
    label = "TWFE (static)"

    @property
    def nbytes(self) -> int:
        """Bytes of the precomputed arrays."""
        return _array_bytes(self)

    @classmethod
    def prepare(cls, data: pd.DataFrame, outcome: str, *, unit: str, time: str, cell: str, pool: np.ndarray, cohorts: Sequence[int]) -> TWFEStatistic:
        """Precompute the label-free pieces (partialled-out outcome, cell sums) of the statistic."""
        d = _frame(data, outcome, unit, time, cell)
        u = pd.factorize(d[unit])[0]
        nu = int(u.max()) + 1
        t = d[time].to_numpy()
        periods = np.unique(t)
        pos = np.searchsorted(periods, t)
        L = np.zeros((t.size, periods.size - 1))
        r = np.flatnonzero(pos > 0)
        L[r, pos[r] - 1] = 1.0
        Lw = demean_by_group(L, u, nu)
        A = np.linalg.pinv(Lw.T @ Lw)
        yw = demean_by_group(d[outcome].to_numpy(dtype=float), u, nu)
        ytil = yw - Lw @ (A @ (Lw.T @ yw))
        n_i = np.bincount(u, minlength=nu).astype(float)
        unit_cell = np.full(nu, -1)
        unit_cell[u] = _pool_index(d[cell].to_numpy(), pool)
        cohorts = np.array(sorted(int(g) for g in cohorts if g and periods[0] < g <= periods[-1]))
        K = cohorts.size
        R = np.zeros((pool.size, K))
        Q = np.zeros((pool.size, K))
        P = np.zeros((pool.size, K, periods.size - 1))
        row_cell = unit_cell[u]
        inside = row_cell >= 0
        for k, g in enumerate(cohorts):
            post = (t >= g) & inside
            R[:, k] = np.bincount(row_cell[post], weights=ytil[post], minlength=pool.size)
            n1 = np.bincount(u[post], minlength=nu).astype(float)
            q_i = n1 - n1**2 / np.where(n_i > 0, n_i, 1.0)
            ok = unit_cell >= 0
            Q[:, k] = np.bincount(unit_cell[ok], weights=q_i[ok], minlength=pool.size)
            for j in range(periods.size - 1):
                P[:, k, j] = np.bincount(row_cell[post], weights=Lw[post, j], minlength=pool.size)
        return cls(cohorts=cohorts, R=R, Q=Q, P=P, A=A)

    def __call__(self, cohort: np.ndarray) -> np.ndarray:
        """The statistic for each row of ``cohort`` (one cohort per eligible cell, 0 = never treated)."""
        cohort = np.atleast_2d(cohort)
        r = np.zeros(cohort.shape[0])
        q = np.zeros(cohort.shape[0])
        p = np.zeros((cohort.shape[0], self.A.shape[0]))
        for k, g in enumerate(self.cohorts):
            m = (cohort == g).astype(float)
            r += m @ self.R[:, k]
            q += m @ self.Q[:, k]
            p += m @ self.P[:, k, :]
        den = q - np.einsum("bi,ij,bj->b", p, self.A, p)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 1e-12, r / den, np.nan)


STATISTICS = {"cs": CSStatistic, "twfe": TWFEStatistic}


# ---------------------------------------------------------------------------------------------
# the test
# ---------------------------------------------------------------------------------------------
def ri_p_value(actual: float, draws: np.ndarray) -> float:
    """Two-sided randomization p-value ``(1 + #{|draw| >= |actual|}) / (1 + #draws)`` (NaN draws left out)."""
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    return float((1 + np.sum(np.abs(d) >= abs(actual) - 1e-12 * max(1.0, abs(actual)))) / (1 + d.size))


@dataclass(repr=False)
class RIResult:
    """The actual estimate, the permutation distribution and the randomization p-value."""

    outcome: str
    statistic: str
    label: str
    actual: float
    draws: np.ndarray
    p_value: float
    design: str
    seed: int
    notes: list[str] = field(default_factory=list)

    @property
    def n_draws(self) -> int:
        """Number of draws with a finite placebo estimate."""
        return int(np.isfinite(self.draws).sum())

    def tidy(self) -> pd.DataFrame:
        """One tidy row: ``estimate`` the actual statistic, ``p_value`` the RI p-value, the draws' 2.5 / 97.5 % quantiles."""
        from analysis.results import check_tidy

        lo, hi = np.nanquantile(self.draws, [0.025, 0.975])
        return check_tidy(pd.DataFrame({
            "outcome": [self.outcome], "estimator": [f"ri_{self.statistic}"], "term": ["ATT"], "estimate": [self.actual],
            "std_error": [float(np.nanstd(self.draws, ddof=1))], "conf_low": [np.nan], "conf_high": [np.nan],
            "p_value": [self.p_value], "n_obs": [np.nan], "draws": [self.n_draws], "placebo_q025": [lo], "placebo_q975": [hi],
        }))

    def plot(self, ax=None, *, analytic_p: float | None = None, title: str | None = None):
        """Histogram of the placebo estimates with the actual estimate marked (the "placebo test" figure)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        d = self.draws[np.isfinite(self.draws)]
        ax.hist(d, bins=min(60, max(10, d.size // 20)), color="C0", alpha=0.7, label=f"{d.size} placebo assignments")
        ax.axvline(self.actual, color="black", lw=1.5, label=f"actual estimate {self.actual:.4f}")
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        text = f"RI p = {self.p_value:.3f}"
        if analytic_p is not None and np.isfinite(analytic_p):
            text += f"\nanalytic p = {analytic_p:.3f}"
        ax.text(0.02, 0.95, text, transform=ax.transAxes, va="top", fontsize="small")
        ax.set_xlabel("estimate under reassigned certification")
        ax.set_ylabel("draws")
        ax.set_title(title or f"Randomization inference: {self.outcome}")
        ax.legend(frameon=False, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        return ax.figure

    def __repr__(self) -> str:
        return (f"Randomization inference ({self.label}, {self.outcome}): actual {self.actual:.4f}, RI p = {self.p_value:.4f} "
                f"over {self.n_draws} draws; {self.design}")


def _chunk_statistics(seed: np.random.SeedSequence | int, design: AssignmentDesign, stat: Callable[[np.ndarray], np.ndarray], size: int) -> np.ndarray:
    """The statistic on ``size`` assignments drawn with ``seed``: one chunk of draws (module-level, for workers)."""
    return np.asarray(stat(design.cohort_of(design.draw(size, seed=seed))), dtype=float)


def randomization_inference(
    data: pd.DataFrame,
    outcome: str,
    design: AssignmentDesign,
    *,
    unit: str = "firm_id",
    time: str = "year",
    cell: str = "cell_id",
    statistic: str = "cs",
    n_draws: int = 999,
    seed: int = 0,
    progress: bool | None = True,
    mapper: Callable[..., list] | None = None,
    chunk_size: int = 100,
) -> RIResult:
    """Randomization inference for the effect of certification on ``outcome``.

    Parameters
    ----------
    data : pandas.DataFrame
        The panel (firms nested in cells); its cohort column is not read: the actual cohorts come
        from ``design``, and cells outside the pool are never treated.
    outcome : str
        Outcome column.
    design : AssignmentDesign
        The eligible cells, strata and batch sizes (:class:`AssignmentDesign`).
    unit, time, cell : str
        Firm, year and cell (where certification is assigned) columns.
    statistic : {"cs", "twfe"}
        ``"cs"`` (Callaway-Sant'Anna simple ATT, never-treated controls) or ``"twfe"``.
    n_draws : int
        Placebo assignments (999 or more for a p-value to three decimals).
    seed : int
        Seed of the draws: chunk ``c`` uses ``numpy.random.SeedSequence(seed).spawn(n_chunks)[c]``.
    progress : bool, optional
        tqdm progress bar over the draws.
    mapper : callable, optional
        Runs the chunks: called as ``mapper(fn, seeds, *args, progress=..., desc=...)`` and returning
        ``[fn(s, *args) for s in seeds]`` in order, the contract of
        :func:`analysis.engine.map_draws` (``functools.partial(map_draws, client=client)`` runs
        them on a Dask cluster). ``None`` (default): a plain loop here. The draws are the same.
    chunk_size : int, default 100
        Draws per chunk (each chunk is one seed and one vectorised evaluation). Part of the
        draws' definition: the same ``seed`` and ``chunk_size`` give the same draws on any engine,
        and the first draws of a larger ``n_draws`` are the draws of a smaller one.

    Returns
    -------
    RIResult

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> cells = pd.DataFrame({"cell_id": range(12), "province": np.repeat([0, 1], 6), "batch": [1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]})
    >>> panel = pd.DataFrame({"firm_id": np.repeat(np.arange(48), 4), "year": np.tile(np.arange(2019, 2023), 48)})
    >>> panel["cell_id"] = panel["firm_id"] % 12
    >>> panel["y"] = rng.normal(size=len(panel)) + 0.5 * ((panel["cell_id"].isin([0, 1, 6])) & (panel["year"] >= 2021))
    >>> design = AssignmentDesign.from_cells(cells["cell_id"], cells["province"], cells["batch"], cohorts={1: 2021})
    >>> res = randomization_inference(panel, "y", design, n_draws=99, seed=1, progress=False)
    >>> def loop(fn, seeds, *args, progress=None, desc=""):  # a mapper: here a plain one, e.g. map_draws on a cluster
    ...     return [fn(s, *args) for s in seeds]
    >>> same = randomization_inference(panel, "y", design, n_draws=99, seed=1, progress=False, mapper=loop)
    >>> bool(np.array_equal(res.draws, same.draws)), res.draws.size, 0 < res.p_value <= 1
    (True, 99, True)
    """
    from tqdm.auto import tqdm

    from analysis.io import progress_options

    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
    if n_draws < 1:
        raise ValueError("n_draws must be positive")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    stat = STATISTICS[statistic].prepare(data, outcome, unit=unit, time=time, cell=cell, pool=design.cells, cohorts=design.cohorts[1:])
    actual = float(stat(design.cohort_of(design.actual)[None, :])[0])
    size = min(chunk_size, n_draws)
    seeds = np.random.SeedSequence(seed).spawn(-(-n_draws // size))
    desc = f"randomization inference ({statistic}, {outcome})"
    if mapper is None:
        out = []
        bar = tqdm(total=n_draws, desc=desc, unit="draw", **progress_options(progress))
        for s in seeds:
            out.append(_chunk_statistics(s, design, stat, size))
            bar.update(min(size, n_draws - bar.n))
        bar.close()
    else:
        out = mapper(_chunk_statistics, seeds, design, stat, size, progress=progress, desc=desc)
    draws = np.concatenate([np.asarray(o, dtype=float) for o in out])[:n_draws]  # the last chunk's surplus dropped
    notes = []
    n_bad = int((~np.isfinite(draws)).sum())
    if n_bad:
        notes.append(f"{n_bad} draw(s) gave no estimate (a cohort without observed treated firms) and are left out")
    return RIResult(outcome=outcome, statistic=statistic, label=stat.label, actual=actual, draws=draws,
                    p_value=ri_p_value(actual, draws), design=design.describe(), seed=seed, notes=notes)
