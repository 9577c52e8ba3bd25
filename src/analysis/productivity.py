"""Firm TFP for the study: production functions by method, TFP columns, checks against the truth.

``notebooks/03_productivity.ipynb`` calls :func:`estimate_tfp`, which estimates the value-added
production function ``log VA = b_l log L + b_k log K + omega + e`` with each method of the
``tfp`` parameters (ACF main; LP, OP, OLS, FE as robustness), adds one column ``tfp_<method>``
per method to the panel, and returns the fits. :func:`write_tfp_panel` writes the panel that the
effect reports read; :func:`load_tfp_panel` reads it (estimating it first if missing, so the
effect notebook also runs on its own in JupyterLab).

Examples
--------
>>> comparison = truth_comparison({}, None)
>>> list(comparison.columns)
['method', 'b_l', 'b_k', 'returns_to_scale', 'corr_with_true_omega', 'status']
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.config import processed_dir
from analysis.io import progress as progress_bar
from analysis.io import write_parquet

__all__ = [
    "SPEC",
    "estimate_tfp",
    "estimate_by_group",
    "truth_comparison",
    "tfp_panel_path",
    "write_tfp_panel",
    "load_tfp_panel",
    "panel_columns",
    "INPUTS",
    "tfp_columns",
    "fits_note",
    "coefficient_table",
    "acf_roots",
    "status_table",
    "tfp_correlations",
    "truth_report",
    "truth_note",
]

#: the production function of the study (value added, Cobb-Douglas, ACF timing)
SPEC: dict[str, Any] = {
    "output": "log_value_added",
    "free": ["log_labor"],
    "state": ["log_capital"],
    "proxy": {"op": "log_investment", "default": "log_materials"},
}

#: the firm-file inputs the productivity page requires (value added and the three inputs, in levels)
INPUTS: list[str] = ["value_added", "capital", "labor", "materials"]


def _certified(panel: pd.DataFrame) -> pd.Series:
    g = panel["cohort"].fillna(0)
    return ((g > 0) & (panel["year"] >= g)).astype(float)


def _used_columns(panel: pd.DataFrame, tfp: Mapping[str, Any], *extra: str | None) -> list[str]:
    """The columns the production functions read: keys, inputs, proxies, effects, Markov controls."""
    want = ["firm_id", "year", SPEC["output"], *SPEC["free"], *SPEC["state"], *SPEC["proxy"].values(),
            tfp.get("by"), tfp.get("group_effects"), *tfp.get("markov_controls", []), *extra]
    return [c for c in dict.fromkeys(w for w in want if w) if c in panel.columns]


def _se_kind(method: str, *, main: bool, n_boot: int) -> str:
    """Analytic standard errors where they exist; a firm bootstrap for the main proxy method only."""
    if method in ("ols", "fe", "wrdg"):
        return "analytic"
    return "bootstrap" if main and n_boot > 0 else "none"


def estimate_tfp(
    panel: pd.DataFrame,
    tfp: Mapping[str, Any],
    *,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Estimate the production function by each method and add ``tfp_<method>`` columns.

    Parameters
    ----------
    panel : pandas.DataFrame
        The analysis panel (``log_value_added``, ``log_labor``, ``log_capital``,
        ``log_materials``, ``log_investment``).
    tfp : mapping
        The ``tfp`` section of the parameter set: ``method`` (main), ``robustness`` (others),
        ``by`` (estimate per group, e.g. industry), ``group_effects`` (industry x year effects in
        the proxy function and the law of motion, coefficients common), ``n_boot`` (firm bootstrap draws for the main
        method; 0 for none; other proxy methods get no standard errors, OLS, FE and Wooldridge
        analytic ones), ``time_effects``, ``markov_controls``, ``engine`` (where the bootstrap draws
        run: ``null``, the default, in a loop here; ``local``, ``slurm``, ``pbs``, a scheduler address
        or a mapping as :func:`analysis.engine.open_client` takes it, on that Dask cluster; the
        draws are the same either way).
    seed : int, default 0
        Seed of the bootstrap and of the ACF start search.

    Returns
    -------
    (panel, fits)
        The panel with one TFP column per method; ``{method: ProductionResult or Exception}``
        (a method that fails is kept as its exception, to be shown, not hidden).

    Examples
    --------
    The bootstrap of the main method on all local cores (config: ``tfp: {engine: local}``):

    >>> from analysis.config import load_params
    >>> tfp = {**load_params("small")["tfp"], "engine": "local"}
    >>> panel_tfp, fits = estimate_tfp(panel, tfp, seed=1)  # doctest: +SKIP
    """
    from analysis.engine import check_engine, draws_mapper
    from analysis.tfp import estimate_production

    engine = check_engine(tfp.get("engine"), "tfp.engine")
    out = panel.copy(deep=False)  # new columns only; the panel's own columns are not copied
    if "certified" in tfp.get("markov_controls", []) and "certified" not in out:
        out["certified"] = _certified(out)
    use = _used_columns(out, tfp)  # each method sees these columns only (no copy of the whole panel per method)
    fits: dict[str, Any] = {}
    methods = [tfp["method"], *[m for m in tfp["robustness"] if m != tfp["method"]]]
    bar = progress_bar(methods, desc="production functions", progress=progress)
    for method in bar:
        bar.set_postfix_str(method)
        proxy = SPEC["proxy"].get(method, SPEC["proxy"]["default"]) if method not in ("ols", "fe") else None
        kwargs = dict(
            output=SPEC["output"], free=SPEC["free"], state=SPEC["state"], proxy=proxy, method=method, by=tfp.get("by"),
            time_effects=tfp.get("time_effects", True), group_effects=tfp.get("group_effects"), seed=seed, progress=progress,
            se=_se_kind(method, main=method == tfp["method"], n_boot=int(tfp.get("n_boot", 0))),
            n_boot=max(int(tfp.get("n_boot", 0)), 1),
        )
        if method in ("op", "lp", "acf", "wrdg") and tfp.get("markov_controls"):
            kwargs["markov_controls"] = list(tfp["markov_controls"])
        data = out[use].dropna(subset=[SPEC["output"], *SPEC["free"], *SPEC["state"], *([proxy] if proxy else [])])
        # the bootstrap's cluster (tfp.engine) lives while this method runs; its failure to start is not the method's
        with draws_mapper(engine if kwargs["se"] == "bootstrap" else None, key="tfp.engine") as mapper:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    fit = estimate_production(data, **kwargs, mapper=mapper)
                fit.meta["warnings"] = "; ".join(sorted({str(w.message) for w in caught})) or "none"
                fits[method] = fit
                out[f"tfp_{method}"] = fit.tfp.reindex(out.index)
            except Exception as exc:  # noqa: BLE001 - a failed method is reported in the notebook
                fits[method] = exc
                out[f"tfp_{method}"] = np.nan
        del data
        gc.collect()  # reference cycles left by a fit would hold its data-sized arrays until much later
    return out, fits


def estimate_by_group(panel: pd.DataFrame, tfp: Mapping[str, Any], by: str, *, seed: int = 0) -> pd.DataFrame:
    """The main method estimated separately in each group (e.g. 2-digit industry), as the
    literature does: one row per group with the elasticities, returns to scale and firm-years.

    No standard errors (a bootstrap per industry is left to ``tfp.by`` with ``n_boot``). Groups
    where the estimator fails or finds no admissible root are kept with their message.
    """
    from analysis.tfp import estimate_production

    method = tfp["method"]
    data = panel.copy(deep=False)
    if "certified" in tfp.get("markov_controls", []) and "certified" not in data:
        data["certified"] = _certified(data)
    data = data[_used_columns(data, tfp, by)]
    proxy = SPEC["proxy"].get(method, SPEC["proxy"]["default"]) if method not in ("ols", "fe") else None
    data = data.dropna(subset=[SPEC["output"], *SPEC["free"], *SPEC["state"], *([proxy] if proxy else [])])
    kwargs = dict(output=SPEC["output"], free=SPEC["free"], state=SPEC["state"], proxy=proxy, method=method, by=by,
                  time_effects=tfp.get("time_effects", True), se="none" if method not in ("ols", "fe", "wrdg") else "analytic", seed=seed, progress=False)
    if method in ("op", "lp", "acf", "wrdg") and tfp.get("markov_controls"):
        kwargs["markov_controls"] = list(tfp["markov_controls"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = estimate_production(data, **kwargs)
    t = fit.tidy()
    wide = t.pivot_table(index="group", columns="term", values="estimate")
    wide["returns_to_scale"] = wide.sum(axis=1)
    wide["firm_years"] = data.groupby(by).size().reindex(wide.index)
    failures = getattr(fit, "failures", None)
    if failures is not None and len(failures):
        failed = pd.DataFrame(failures) if not isinstance(failures, pd.DataFrame) else failures
        wide = pd.concat([wide, failed.set_index(failed.columns[0])], axis=0)
    wide.index.name = by
    return wide


def truth_comparison(
    fits: Mapping[str, Any], latent: pd.DataFrame | None, panel: pd.DataFrame | None = None, *, truth: tuple[float, float] | None = None
) -> pd.DataFrame:
    """Elasticities, returns to scale and correlation of each method's TFP with the true omega.

    ``latent`` is the world's latent table (``firm_id``, ``year``, ``omega``) aligned with
    ``panel``; without it (real data) the correlation is left empty. ``truth`` adds a row with the
    true elasticities.
    """
    rows = []
    for method, fit in fits.items():
        if isinstance(fit, Exception):
            rows.append({"method": method, "b_l": np.nan, "b_k": np.nan, "returns_to_scale": np.nan, "corr_with_true_omega": np.nan,
                         "status": f"failed: {fit}"})
            continue
        t = fit.tidy()
        coef = t.groupby("term")["estimate"].mean()  # mean over groups when estimated by industry
        corr = np.nan
        if latent is not None and panel is not None and f"tfp_{method}" in panel:
            both = pd.concat([panel[f"tfp_{method}"].rename("tfp"), latent["omega"]], axis=1).dropna()
            corr = float(both["tfp"].corr(both["omega"]))
        rows.append({
            "method": method,
            "b_l": coef.get(SPEC["free"][0], np.nan),
            "b_k": coef.get(SPEC["state"][0], np.nan),
            "returns_to_scale": coef.get(SPEC["free"][0], np.nan) + coef.get(SPEC["state"][0], np.nan),
            "corr_with_true_omega": corr,
            "status": "ok" if fit.meta.get("warnings", "none") == "none" else f"warning: {fit.meta['warnings']}",
        })
    if truth is not None:
        rows.append({"method": "truth", "b_l": truth[0], "b_k": truth[1], "returns_to_scale": sum(truth), "corr_with_true_omega": 1.0, "status": ""})
    return pd.DataFrame(rows, columns=["method", "b_l", "b_k", "returns_to_scale", "corr_with_true_omega", "status"])


def tfp_panel_path(config: str):
    """``data/processed/<config>/panel_tfp.parquet``."""
    return processed_dir(config) / "panel_tfp.parquet"


def write_tfp_panel(panel: pd.DataFrame, config: str):
    """Write the panel with TFP columns (atomically) for the effect reports.

    ``panel`` may hold every column of the built panel, or only those the productivity page reads
    (:func:`panel_columns`). In the second case its columns that the built panel's file lacks (the
    ``tfp_<method>`` columns, ``certified``) are appended to that file, read a batch of rows at a
    time (:func:`analysis.io.append_parquet_columns`, which checks ``firm_id`` and ``year`` row by
    row): the file the effect reports read has every column either way, and the page never holds
    the whole panel.
    """
    import pyarrow.parquet as pq

    from analysis.io import append_parquet_columns
    from analysis.panel import panel_path

    source, path = panel_path(config), tfp_panel_path(config)
    have = pq.read_schema(source).names if source.is_file() else []
    if not have or set(have) <= set(panel.columns):
        return write_parquet(panel, path)
    added = [c for c in panel.columns if c not in have]
    keys = [c for c in ("firm_id", "year") if c in panel.columns]
    return append_parquet_columns(source, panel[added], path, keys=panel[keys] if keys else None)


def panel_columns(params: Mapping[str, Any]) -> list[str]:
    """The panel columns the productivity page reads: the inputs it checks for, the production
    function's variables, fixed effects and Markov controls (:data:`SPEC`, the ``tfp`` section),
    ``cohort`` (for the ``certified`` control) and the keys. A census-size panel has 45 columns;
    loading these keeps the page at the size of its fits (:func:`write_tfp_panel` appends the TFP
    columns to the whole panel's file).

    >>> from analysis.config import load_params
    >>> cols = panel_columns(load_params("default"))
    >>> {"log_capital", "industry_code", "cohort"} <= set(cols) and "so2" not in cols
    True
    """
    tfp = params["tfp"]
    want = ["firm_id", "year", "cohort", "industry_code", *INPUTS, SPEC["output"], *SPEC["free"], *SPEC["state"],
            *SPEC["proxy"].values(), tfp.get("by"), tfp.get("group_effects"), *tfp.get("markov_controls", [])]
    return [c for c in dict.fromkeys(w for w in want if w) if c != "certified"]


def load_tfp_panel(config: str, params: Mapping[str, Any] | None = None, *, columns: list[str] | None = None) -> pd.DataFrame:
    """Read the panel with TFP columns; estimate and write it first if it is missing.

    ``columns``: read only these (those the file has); a census-size panel has 50-odd columns and
    a report usually needs a handful.
    """
    from analysis.io import read_parquet_columns

    path = tfp_panel_path(config)
    if not path.is_file():
        from analysis.config import load_params
        from analysis.panel import load_panel

        params = params or load_params(config)
        panel, _ = estimate_tfp(load_panel(config, columns=panel_columns(params)), params["tfp"], seed=params["seed"])
        write_tfp_panel(panel, config)
        del panel
    return read_parquet_columns(path, columns)


# ---------------------------------------------------------------------------------------------
# what notebooks/03_productivity.ipynb shows
# ---------------------------------------------------------------------------------------------
def _ok(fits: Mapping[str, Any]) -> dict[str, Any]:
    return {m: f for m, f in fits.items() if not isinstance(f, Exception)}


def tfp_columns(fits: Mapping[str, Any]) -> list[str]:
    """The ``tfp_<method>`` columns of the methods that did not fail."""
    return [f"tfp_{m}" for m in _ok(fits)]


def fits_note(fits: Mapping[str, Any], panel: pd.DataFrame) -> str:
    """How many methods were estimated, on how many firm-years, and which failed (with the message)."""
    failed = {m: str(f) for m, f in fits.items() if isinstance(f, Exception)}
    return (f"Estimated {len(_ok(fits))} of {len(fits)} methods on {panel['log_value_added'].notna().sum():,} firm-years"
            + (f"; **failed**: {failed}" if failed else "; none failed") + ".")


def coefficient_table(fits: Mapping[str, Any]) -> pd.DataFrame:
    """Elasticities and standard errors by method (rows: method names, columns: estimate / std_error x input)."""
    from analysis.results import combine
    from analysis.tfp import METHODS

    coefs = combine(list(_ok(fits).values()))
    coefs["method"] = coefs["estimator"].map(METHODS)
    return coefs.pivot_table(index="method", columns="term", values=["estimate", "std_error"]).round(3)


def acf_roots(fits: Mapping[str, Any]) -> pd.DataFrame | None:
    """The roots table of the ACF second stage (every distinct solution found), or ``None``."""
    acf = _ok(fits).get("acf")
    return getattr(acf, "roots", None) if acf is not None else None


def status_table(fits: Mapping[str, Any]) -> pd.DataFrame:
    """Warnings and notes of each method's fit, one row per method."""
    return pd.DataFrame({m: {"warnings": f.meta.get("warnings", "none"), "notes": f.meta.get("notes", "")} for m, f in _ok(fits).items()}).T


def tfp_correlations(panel: pd.DataFrame, fits: Mapping[str, Any]) -> pd.DataFrame:
    """Correlation of log TFP across methods (rounded to 3 decimals)."""
    cols = tfp_columns(fits)
    corr = panel[cols].corr().round(3)
    corr.index = corr.columns = [c.removeprefix("tfp_") for c in cols]
    return corr


def truth_report(fits: Mapping[str, Any], panel: pd.DataFrame, world: Mapping[str, pd.DataFrame], params: Mapping[str, Any]) -> pd.DataFrame | None:
    """Each method against the synthetic world's true elasticities and log TFP (:func:`truth_comparison`).

    ``None`` on real data (no latent table).
    """
    if params["data"]["source"] != "synthetic" or "latent" not in world:
        return None
    from analysis.simulate import world_params
    from analysis.truth import latent_for

    wp = world_params(params)["production"]
    return truth_comparison(fits, latent_for(panel, world["latent"]), panel, truth=(wp["b_l"], wp["b_k"]))


def truth_note(comparison: pd.DataFrame, params: Mapping[str, Any]) -> str:
    """The main method's elasticities against the truth, and its TFP's correlation with the true omega."""
    from analysis.simulate import world_params

    wp = world_params(params)["production"]
    method = params["tfp"]["method"]
    main = comparison.set_index("method").loc[method]
    return (f"The main method ({method.upper()}) estimates b_l = {main['b_l']:.3f} and b_k = {main['b_k']:.3f} "
            f"against true {wp['b_l']} and {wp['b_k']}; its TFP correlates {main['corr_with_true_omega']:.3f} with the true omega.")
