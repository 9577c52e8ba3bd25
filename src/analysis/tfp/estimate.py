"""The door of :mod:`analysis.tfp`: :func:`estimate_production` and its result.

It checks the options once (:func:`analysis.tfp.core.resolve_options`) and the data (columns,
one row per firm-year, whole years), builds the cleaned arrays (:class:`~analysis.tfp.arrays.PanelData`)
per group, calls the method's fitter (:data:`FITTERS`), runs the firm bootstrap when asked, and
assembles a :class:`ProductionResult` from what the fitters return, metadata included.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"firm_id": np.repeat(np.arange(200), 5), "year": np.tile(np.arange(2010, 2015), 200),
...                    "l": rng.normal(size=1000), "k": rng.normal(size=1000)})
>>> df["y"] = 0.6 * df["l"] + 0.3 * df["k"] + rng.normal(scale=0.1, size=1000)
>>> fit = estimate_production(df, output="y", free="l", state="k", method="ols")
>>> fit.tidy()[["term", "estimate"]].round(1)
  term  estimate
0    l       0.6
1    k       0.3
>>> round(float(fit.returns_to_scale["estimate"].iloc[0]), 1)
0.9
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from analysis.domain import duplicated_unit_periods
from analysis.inference import blas_threads
from analysis.io import progress as progress_bar
from analysis.results import EstimationResult, tidy_frame
from analysis.tfp.acf import fit_acf
from analysis.tfp.arrays import PanelData, resample_units
from analysis.tfp.core import METHODS, CoreFit, Method, MultipleRootsWarning, OPLPObjective, Options, RootRule, StandardErrors, resolve_options
from analysis.tfp.gnr import fit_gnr
from analysis.tfp.linear import fit_linear
from analysis.tfp.oplp import fit_oplp
from analysis.tfp.wooldridge import fit_wrdg

__all__ = ["estimate_production", "ProductionResult", "FITTERS"]

#: the fitter of each method (one module per method family)
FITTERS = {
    "ols": fit_linear,
    "fe": fit_linear,
    "op": fit_oplp,
    "lp": fit_oplp,
    "acf": fit_acf,
    "wrdg": fit_wrdg,
    "gnr": fit_gnr,
}


@dataclass(repr=False)
class ProductionResult(EstimationResult):
    """Result of :func:`estimate_production`.

    Attributes
    ----------
    table
        Tidy frame: one row per input (and per ``group`` with ``by=``).
    tfp
        Log TFP, a Series aligned to ``data.index`` (NaN for rows not used).
    first_stage_noise
        First-stage residual ``eps`` (proxy methods), aligned like ``tfp``; else ``None``.
    roots
        Every distinct second-stage solution with its criterion, the persistence of the
        implied productivity, admissibility and which one was selected (acf, op, lp).
    draws
        Bootstrap draws of the coefficients (one row per draw), or ``None``.
    failures
        Groups whose estimation failed (``by=``), with the error message.
    """

    tfp: pd.Series | None = None
    first_stage_noise: pd.Series | None = None
    roots: pd.DataFrame | None = None
    draws: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    _elasticity_parts: list = field(default_factory=list)
    _index: Any = None

    @property
    def elasticities(self) -> pd.DataFrame:
        """Output elasticities per row (constant within group for Cobb-Douglas methods)."""
        frames = []
        for rows, terms, values in self._elasticity_parts:
            arr = np.broadcast_to(values, (len(rows), len(terms))) if np.ndim(values) == 1 else values
            frames.append(pd.DataFrame(np.array(arr), index=rows, columns=terms))
        out = pd.concat(frames) if frames else pd.DataFrame()
        return out.reindex(self._index) if self._index is not None else out

    @property
    def returns_to_scale(self) -> pd.DataFrame:
        """Sum of the output elasticities, as a tidy frame (``term = "returns_to_scale"``).

        Its standard error comes from the bootstrap draws or from the covariance matrix.
        """
        keys = ["group"] if "group" in self.table else []
        out = []
        groups = self.table.groupby(keys, sort=False) if keys else [((), self.table)]
        for key, part in groups:
            est = float(part["estimate"].sum())
            se = np.nan
            if self.draws is not None:
                d = self.draws
                if keys:
                    d = d[d["group"] == (key[0] if isinstance(key, tuple) else key)]
                cols = [c for c in part["term"] if c in d]
                if len(d) > 1:
                    se = float(d[cols].sum(axis=1).std(ddof=1))
            elif self.vcov is not None and not keys:
                v = self.vcov.loc[part["term"], part["term"]].to_numpy()
                se = float(np.sqrt(v.sum()))
            extra = {"group": key[0] if isinstance(key, tuple) else key} if keys else {}
            out.append(
                tidy_frame([est], [se], term="returns_to_scale", outcome=part["outcome"].iloc[0],
                           estimator=part["estimator"].iloc[0], n_obs=int(part["n_obs"].iloc[0]), **extra)
            )
        return pd.concat(out, ignore_index=True)


# ======================================================================================
# Input checks
# ======================================================================================
def _as_list(x: str | Sequence[str] | None) -> list[str]:
    if x is None:
        return []
    return [x] if isinstance(x, str) else list(x)


def _check_columns(data: pd.DataFrame, columns: dict[str, list[str]]) -> None:
    missing = {role: [c for c in cols if c not in data.columns] for role, cols in columns.items()}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        desc = "; ".join(f"{role}: {cols}" for role, cols in missing.items())
        raise ValueError(f"column(s) not in the data: {desc}")
    for role, cols in columns.items():
        if role in ("unit", "by", "group_effects"):
            continue
        for c in cols:
            if not (pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])):
                raise ValueError(f"{role} column {c!r} must be numeric, it has dtype {data[c].dtype}")


def _infer_exit(data: pd.DataFrame, unit: str, time: str) -> pd.Series:
    """1 at a firm's last year when that year precedes the panel's last year; NaN in the last year."""
    t = pd.to_numeric(data[time])
    last = t.groupby(data[unit]).transform("max")
    out = pd.Series(0.0, index=data.index)
    out[t == last] = 1.0
    out[t == t.max()] = np.nan
    return out


def _build_panel(
    data: pd.DataFrame, *, output: str, free: list[str], state: list[str], proxy: str | None, share: str | None,
    markov: list[str], exit_col: pd.Series | None, unit: str, time: str, group: str | None = None,
) -> tuple[PanelData, int]:
    """Drop rows with missing/non-finite values in the variables used, sort, check, convert."""
    need = [output, *free, *state, *([proxy] if proxy else []), *([share] if share else []), *markov]
    values = data[need].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    ok = np.all(np.isfinite(values), axis=1) & data[unit].notna().to_numpy() & data[time].notna().to_numpy()
    if group is not None:
        ok &= data[group].notna().to_numpy()
    n_dropped = int((~ok).sum())
    keys = [unit, time, *([group] if group is not None else [])]
    sub = data.loc[ok, list(dict.fromkeys(keys))]  # only the key columns: no copy of the whole frame
    if len(sub) == 0:
        raise ValueError(f"no row has finite values of all of {need}")
    codes, _ = pd.factorize(sub[unit])
    tv = pd.to_numeric(sub[time], errors="coerce").to_numpy(dtype=float)
    if not np.all(tv == np.round(tv)):
        bad = sub.index[tv != np.round(tv)][:5].tolist()
        raise ValueError(f"time column {time!r} must hold whole numbers (years); rows {bad} do not")
    tv = tv.astype(np.int64)
    order = np.lexsort((tv, codes))
    codes, tv = codes[order].astype(np.int64), tv[order]
    dup = duplicated_unit_periods(codes, tv)
    if dup.any():
        rows = sub.index[order][np.flatnonzero(dup)][:6].tolist()
        raise ValueError(f"({unit}, {time}) pairs are not unique: rows {rows} repeat a firm-year")
    V = values[ok][order]
    pos = {name: j for j, name in enumerate(need)}
    col = lambda names: V[:, [pos[c] for c in names]]  # noqa: E731
    panel = PanelData(
        y=V[:, 0].copy(), free=col(free), state=col(state), unit=codes, time=tv,
        rows=sub.index.to_numpy()[order],
        proxy=V[:, pos[proxy]].copy() if proxy else None,
        share=V[:, pos[share]].copy() if share else None,
        markov=col(markov) if markov else None,
        exit=None if exit_col is None else exit_col.loc[sub.index].to_numpy(dtype=float)[order],
        group=None if group is None else pd.factorize(sub[group])[0].astype(np.int64)[order],
    )
    return panel, n_dropped


# ======================================================================================
# The entry point
# ======================================================================================
def estimate_production(
    data: pd.DataFrame,
    output: str,
    free: str | Sequence[str],
    state: str | Sequence[str],
    proxy: str | None = None,
    *,
    unit: str = "firm_id",
    time: str = "year",
    method: Method = "acf",
    by: str | None = None,
    share: str | None = None,
    time_effects: bool = False,
    group_effects: str | None = None,
    markov_controls: str | Sequence[str] | None = None,
    exit: str | bool | None = None,
    poly_degree: int = 3,
    markov_degree: int = 3,
    exclude_noise: bool = False,
    se: StandardErrors | None = None,
    n_boot: int = 100,
    seed: int = 0,
    alpha: float = 0.05,
    root_rule: RootRule = "persistence",
    admissible: tuple[float, float] = (0.0, 1.5),
    starts: Any = None,
    search_rows: int = 200_000,
    oplp_objective: OPLPObjective = "nls",
    progress: bool | None = None,
    mapper: Callable[..., list] | None = None,
) -> ProductionResult:
    """Estimate a production function and firm log TFP.

    Parameters
    ----------
    data : pandas.DataFrame
        Firm-year panel (any row order, gaps allowed; one row per firm-year).
    output : str
        Log output (value added; gross output for ``gnr``).
    free, state : str or sequence of str
        Log free (variable, e.g. labor) and state (dynamic, e.g. capital) inputs. For ``gnr``
        both are the non-flexible inputs; free ones are instrumented by their lag.
    proxy : str, optional
        Log proxy: investment (``op``), materials (``lp``, ``acf``, ``wrdg``); for ``gnr`` the
        flexible intermediate input.
    unit, time : str, default 'firm_id' and 'year'
        Firm id and (integer) year columns.
    method : Method, default 'acf'
        ``"ols"``, ``"fe"``, ``"op"``, ``"lp"``, ``"acf"``, ``"wrdg"`` or ``"gnr"``.
    by : str, optional
        Estimate separately for each value of this column (e.g. ``"industry_2d"``); the tidy
        frame gets a ``group`` column and ``.tfp`` covers every group.
    share : str, optional
        ``gnr`` only: log of the flexible input's nominal share of output,
        ``log(p_m M / (p_y Y))``.
    time_effects : bool, default False
        Year dummies in the first stage and year shifters in the law of motion.
    group_effects : str, optional
        A categorical column (e.g. ``"industry_code"``) whose effects shift the proxy function
        and the law of motion while the production coefficients stay common (unlike ``by=``):
        group effects, or group x year effects with ``time_effects``, absorbed in the first
        stage and in ``g`` (ols/fe: group(-year) fixed effects; wrdg: additive group dummies).
        Use it when materials intensity or productivity levels differ across industries.
    markov_controls : str or sequence of str, optional
        Columns whose t-1 values shift the law of motion (e.g. certification status).
    exit : str or bool, optional
        ``op``/``lp`` selection correction: a 0/1 column (1 = the firm exits after this year)
        or ``True`` to infer it (a firm's last year before the panel's last year).
    poly_degree : int, default 3
        Degree of the first-stage polynomial (and of GNR's share and ``C`` polynomials).
    markov_degree : int, default 3
        Degree of the polynomial ``g`` in ``omega_{t-1}``.
    exclude_noise : bool, default False
        Return ``omega`` (TFP without the first-stage noise) in ``.tfp``.
    se : StandardErrors, optional
        ``"analytic"`` (ols, fe, wrdg), ``"bootstrap"``, or ``"none"``; default analytic where
        available, else bootstrap.
    n_boot, seed : int, default 100 and 0
        Bootstrap draws and the seed of the firm resampling (and of the ACF search subsample).
        Draw ``b`` resamples firms with ``numpy.random.SeedSequence(seed).spawn(n_boot)[b]`` (with
        ``by=``, group ``j`` uses ``SeedSequence(seed).spawn(n_groups)[j].spawn(n_boot)[b]``), so
        each draw depends on its own seed only: the same draws in any order, on any engine, and
        the first draws of a larger ``n_boot`` are the draws of a smaller one.
    alpha : float, default 0.05
        1 - confidence level of the intervals.
    root_rule, admissible, starts, search_rows : RootRule; tuple of float; array-like or int, optional; int
        ACF/OP/LP root search: selection rule (``"persistence"`` or ``"criterion"``, see
        :func:`analysis.tfp.roots.select_root`), the admissible box for every
        coefficient, starting values (array with one column per coefficient, or a number of
        Sobol points) and the second-stage size above which the search runs on a firm
        subsample before polishing on all rows.
    oplp_objective : OPLPObjective, default 'nls'
        OP/LP second stage: ``"nls"`` (Olley-Pakes' nonlinear least squares, as R prodest) or
        ``"gmm"`` (the moment ``E[(xi + eps) k_t] = 0``).
    progress : bool, optional
        Show the bootstrap progress bar (``None``: only on a terminal/notebook).
    mapper : callable, optional
        Runs the bootstrap draws: called as ``mapper(fn, seeds, *args, progress=..., desc=...)`` and
        returning ``[fn(s, *args) for s in seeds]`` in order, the contract of
        :func:`analysis.engine.map_draws`. ``None`` (default): a plain loop here.
        ``functools.partial(map_draws, client=client)`` runs them on a Dask cluster, the panel's
        arrays sent once to each worker; the draws are identical either way. The study's
        ``tfp.engine`` parameter builds it (:func:`analysis.productivity.estimate_tfp`).

    Returns
    -------
    ProductionResult

    Raises
    ------
    ValueError
        Unknown method, missing or non-numeric columns, duplicate firm-years, non-integer
        years, a missing proxy/share, or too few firm-years with a previous year.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"firm_id": [1, 1, 2], "year": [2020, 2020, 2021], "y": [1.0, 2, 3],
    ...                    "l": [1.0, 2, 3], "k": [1.0, 1, 2]})
    >>> estimate_production(df, "y", "l", "k", method="ols")
    Traceback (most recent call last):
    ...
    ValueError: (firm_id, year) pairs are not unique: rows [0, 1] repeat a firm-year

    The firm bootstrap, in a loop here or through a mapper (here a plain one with the contract of
    :func:`analysis.engine.map_draws`; a Dask one gives the same draws):

    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"firm_id": np.repeat(np.arange(100), 4), "year": np.tile(np.arange(2010, 2014), 100),
    ...                    "l": rng.normal(size=400), "k": rng.normal(size=400)})
    >>> df["y"] = 0.6 * df["l"] + 0.3 * df["k"] + rng.normal(scale=0.1, size=400)
    >>> here = estimate_production(df, "y", "l", "k", method="ols", se="bootstrap", n_boot=5, seed=3, progress=False)
    >>> def loop(fn, seeds, *args, progress=None, desc=""):
    ...     return [fn(s, *args) for s in seeds]
    >>> there = estimate_production(df, "y", "l", "k", method="ols", se="bootstrap", n_boot=5, seed=3, progress=False, mapper=loop)
    >>> here.draws.equals(there.draws), here.draws.shape
    (True, (5, 2))
    """
    free_l, state_l, markov_l = _as_list(free), _as_list(state), _as_list(markov_controls)
    opt, se = resolve_options(
        method=method, free=free_l, state=state_l, proxy=proxy, share=share, exit=exit, se=se, n_boot=n_boot,
        exclude_noise=exclude_noise, time_effects=time_effects, group_effects=group_effects, poly_degree=poly_degree,
        markov_degree=markov_degree, root_rule=root_rule, admissible=admissible, starts=starts, search_rows=search_rows,
        seed=seed, oplp_objective=oplp_objective,
    )
    exit_is_col = isinstance(exit, str)
    _check_columns(
        data,
        {
            "output": [output], "free": free_l, "state": state_l, "proxy": _as_list(proxy), "share": _as_list(share),
            "markov_controls": markov_l, "unit": [unit], "time": [time], "by": _as_list(by),
            "group_effects": _as_list(group_effects),
            "exit": [exit] if exit_is_col else [],
        },
    )
    if by is None:
        groups = [(None, data)]
    else:
        if data[by].isna().any():
            raise ValueError(f"by column {by!r} is missing in rows {data.index[data[by].isna()][:5].tolist()}")
        groups = list(data.groupby(by, sort=True))
    parts, failures = [], []
    roots = [np.random.SeedSequence(seed)] if by is None else np.random.SeedSequence(seed).spawn(len(groups))
    for gi, (gval, gdata) in enumerate(groups):
        exit_col = None
        if exit_is_col:
            exit_col = pd.to_numeric(gdata[exit], errors="coerce")
        elif exit is True:
            exit_col = _infer_exit(gdata, unit, time)
        try:
            panel, n_dropped = _build_panel(
                gdata, output=output, free=free_l, state=state_l, proxy=proxy, share=share, markov=markov_l,
                exit_col=exit_col, unit=unit, time=time, group=group_effects,
            )
            part = _estimate_one(panel, opt, se=se, n_boot=n_boot, seed=roots[gi], progress=progress,
                                 label=f"{method} {by}={gval}" if by else method, mapper=mapper)
            part["n_dropped"] = n_dropped
            part["group"] = gval
            parts.append(part)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as err:
            if by is None:
                raise
            failures.append({"group": gval, "error": str(err)})
            warnings.warn(f"{method}: group {by}={gval!r} failed: {err}", RuntimeWarning, stacklevel=2)
    if not parts:
        raise ValueError(f"estimation failed in every group: {failures}")
    return _assemble(parts, failures, data, opt, output=output, by=by, alpha=alpha, se=se, n_boot=n_boot,
                     exclude_noise=exclude_noise, seed=seed)


def _estimate_one(panel: PanelData, opt: Options, *, se: str, n_boot: int, seed: np.random.SeedSequence, progress, label: str,
                  mapper: Callable[..., list] | None = None) -> dict:
    # one BLAS thread for the whole fit, first stage included: its products are tall and thin, and on a
    # busy machine OpenBLAS' threads wait for each other (1M firm-years: 7 s a first stage, 1 s with one)
    with blas_threads():
        return _estimate_one_threads(panel, opt, se=se, n_boot=n_boot, seed=seed, progress=progress, label=label, mapper=mapper)


def _bootstrap_draw(seed: np.random.SeedSequence | int, panel: PanelData, opt: Options, start: np.ndarray) -> np.ndarray:
    """One firm-bootstrap draw: firms resampled with the generator of ``seed``, the method refitted from ``start``.

    Module-level (importable by Dask workers) and pure: the coefficients depend only on ``seed`` and
    the arguments. A draw whose fit fails or is not finite is all NaN (counted as a failed draw).
    """
    fitter = FITTERS[opt.method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draw = resample_units(panel, np.random.default_rng(seed))
        try:
            fit = fitter(draw, opt, start=start, boot=True)
        except (ValueError, RuntimeError, np.linalg.LinAlgError, FloatingPointError):
            return np.full(start.size, np.nan)
    coef = np.asarray(fit.coef, dtype=float)
    return coef if np.all(np.isfinite(coef)) else np.full(start.size, np.nan)


def _estimate_one_threads(panel: PanelData, opt: Options, *, se: str, n_boot: int, seed: np.random.SeedSequence, progress, label: str,
                          mapper: Callable[..., list] | None = None) -> dict:
    fitter = FITTERS[opt.method]
    core = fitter(panel, opt)
    draws = None
    n_failed = 0
    if se == "bootstrap":
        seeds = seed.spawn(n_boot)
        start = np.asarray(core.info.get("boot_start", core.coef), dtype=float)
        desc = f"{label} bootstrap"
        if mapper is None:
            rows = [_bootstrap_draw(s, panel, opt, start) for s in progress_bar(seeds, desc=desc, progress=progress, leave=False)]
        else:  # the panel without its lag cache (a draw rebuilds its own): what each worker receives once
            rows = mapper(_bootstrap_draw, seeds, replace(panel, _lags={}), opt, start, progress=progress, desc=desc)
        draws = np.array(rows, dtype=float).reshape(n_boot, core.coef.size)
        n_failed = int(np.sum(~np.all(np.isfinite(draws), axis=1)))
    for note in core.info.get("notes", []):
        warnings.warn(MultipleRootsWarning(f"{label}: {note}") if "roots disagree" in note else note,
                      stacklevel=4)
    return {"core": core, "panel": panel, "draws": draws, "n_failed": n_failed}


def _assemble(parts, failures, data, opt: Options, *, output, by, alpha, se, n_boot, exclude_noise, seed) -> ProductionResult:
    tables, tfp_parts, eps_parts, roots, draws, elas, vcov = [], [], [], [], [], [], None
    notes = []
    for part in parts:
        core: CoreFit = part["core"]
        panel: PanelData = part["panel"]
        if part["draws"] is not None:
            good = part["draws"][np.all(np.isfinite(part["draws"]), axis=1)]
            std_err = good.std(axis=0, ddof=1) if len(good) > 1 else np.full(core.coef.size, np.nan)
        elif core.vcov is not None and se == "analytic":
            std_err = np.sqrt(np.clip(np.diag(core.vcov), 0, None))
        else:
            std_err = np.full(core.coef.size, np.nan)
        extra = {"group": part["group"]} if by is not None else {}
        tables.append(tidy_frame(core.coef, std_err, term=core.terms, outcome=output, estimator=opt.method,
                                 n_obs=core.n_obs, alpha=alpha, **extra))
        tfp = core.tfp_clean if (exclude_noise and core.tfp_clean is not None) else core.tfp
        tfp_parts.append(pd.Series(tfp, index=panel.rows))
        if core.tfp_clean is not None:
            eps_parts.append(pd.Series(core.tfp - core.tfp_clean, index=panel.rows))
        if "roots" in core.info:
            r = core.info["roots"].copy()
            if by is not None:
                r.insert(0, "group", part["group"])
            roots.append(r)
        if part["draws"] is not None:
            d = pd.DataFrame(part["draws"], columns=core.terms)
            if by is not None:
                d.insert(0, "group", part["group"])
            draws.append(d)
        elas.append((panel.rows, core.terms, core.elasticities if core.elasticities is not None else core.coef))
        if by is None and core.vcov is not None and se == "analytic":
            vcov = pd.DataFrame(core.vcov, index=core.terms, columns=core.terms)
        notes += [(f"{by}={part['group']}: " if by else "") + n for n in core.info.get("notes", [])]
    one = parts[0]["core"]
    meta: dict[str, Any] = {
        "method": METHODS[opt.method],
        "n_firms": int(sum(np.unique(p["panel"].unit).size for p in parts)),
        "rows_dropped_missing": int(sum(p["n_dropped"] for p in parts)),
        "se": se if se != "bootstrap" else f"firm bootstrap, {n_boot} draws (seed {seed})",
        "time_effects": opt.time_effects,
    }
    if opt.group_effects:
        meta["group_effects"] = "yes (x year)" if opt.time_effects else "yes"
    if se == "bootstrap":
        meta["failed_draws"] = int(sum(p["n_failed"] for p in parts))
    if opt.traits.proxy:
        meta["poly_degree"] = opt.poly_degree
        meta["markov_degree"] = opt.markov_degree
    if by is None:  # each fitter's own metadata (second-stage size, Hansen's J, GNR's first stage...)
        meta.update(one.meta)
    if notes:
        meta["notes"] = " | ".join(notes)
    table = pd.concat(tables, ignore_index=True)
    tfp_all = pd.concat(tfp_parts).reindex(data.index)
    tfp_all.name = f"tfp_{opt.method}"
    eps_all = pd.concat(eps_parts).reindex(data.index) if eps_parts else None
    return ProductionResult(
        table=table, vcov=vcov, meta=meta, title=f"{METHODS[opt.method]}: {output}" + (f" by {by}" if by else ""),
        tfp=tfp_all, first_stage_noise=eps_all, roots=pd.concat(roots, ignore_index=True) if roots else None,
        draws=pd.concat(draws, ignore_index=True) if draws else None,
        failures=pd.DataFrame(failures) if failures else None, _elasticity_parts=elas, _index=data.index,
    )
