"""Figures built from tidy frames: event studies, estimator comparisons, rollout, trends.

Every function takes tidy data, draws on a matplotlib ``Axes`` (a new figure if none is given)
and returns the figure; :func:`save_figure` writes a PNG atomically to ``reports/figures``.

Examples
--------
>>> import pandas as pd
>>> from analysis.results import tidy_frame
>>> es = tidy_frame([0.0, 0.1, 0.2], [0.02, 0.03, 0.04], term=["-2", "0", "1"], outcome="y",
...                 estimator="cs", n_obs=100, event_time=[-2, 0, 1])
>>> fig = event_study_plot(es)
>>> len(fig.axes)
1
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from analysis.io import atomic_write
from analysis.results import register_plotter

__all__ = [
    "set_style",
    "event_study_plot",
    "estimates_plot",
    "honest_plot",
    "rollout_plot",
    "trends_plot",
    "trends_figure",
    "tfp_distributions",
    "binned_kde",
    "save_figure",
    "save_figures",
]

PALETTE = sns.color_palette("colorblind")


def set_style() -> None:
    """The house style: seaborn whitegrid, readable sizes, PNG at 110 dpi inline."""
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "figure.figsize": (8, 4.5), "axes.titleweight": "bold"})


def _ax(ax, figsize=(8, 4.5)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    return ax.figure, ax


def event_study_plot(
    tidy: pd.DataFrame,
    *,
    ax=None,
    truth: pd.DataFrame | None = None,
    by: str = "estimator",
    reference: float | None = -1,
    title: str | None = None,
    ylabel: str = "effect",
    dodge: float = 0.12,
):
    """Event-study estimates with confidence bars, several estimators side by side.

    Parameters
    ----------
    tidy : pandas.DataFrame
        Tidy rows with ``event_time``, ``estimate``, ``conf_low``, ``conf_high``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure if ``None``.
    truth : pandas.DataFrame, optional
        Optional frame with ``event_time`` and ``att`` (the synthetic world's true effects),
        drawn as a black line.
    by : str, default 'estimator'
        Column whose values get their own colour and horizontal offset.
    reference : float, default -1
        Event time of the normalised reference period, marked with a dotted line (``None``: no mark).
    """
    fig, ax = _ax(ax)
    d = tidy.dropna(subset=["event_time"]).copy()
    groups = list(dict.fromkeys(d[by])) if by in d else [None]
    offsets = (np.arange(len(groups)) - (len(groups) - 1) / 2) * dodge
    for i, (g, off) in enumerate(zip(groups, offsets)):
        part = d[d[by] == g] if g is not None else d
        x = part["event_time"].astype(float) + off
        err = np.vstack([part["estimate"] - part["conf_low"], part["conf_high"] - part["estimate"]])
        ax.errorbar(x, part["estimate"], yerr=err, fmt="o", ms=4, capsize=2, lw=1, color=PALETTE[i % len(PALETTE)], label=g)
    if truth is not None and len(truth):
        t = truth.sort_values("event_time")
        ax.plot(t["event_time"].astype(float), t["att"], color="black", lw=1.5, ls="-", label="true effect", zorder=0)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(-0.5, color="grey", lw=0.8, ls="--")
    if reference is not None:
        ax.axvline(reference, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("years since certification (event time)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if groups != [None] or truth is not None:
        ax.legend(fontsize="small", frameon=False, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    return fig


def estimates_plot(tidy: pd.DataFrame, *, y: str = "estimator", ax=None, truth: float | None = None, title: str | None = None, xlabel: str = "estimate"):
    """Point estimates with confidence bars, one row per value of ``y`` (a coefficient plot)."""
    fig, ax = _ax(ax, figsize=(7, 0.45 * len(tidy) + 1.2))
    d = tidy.reset_index(drop=True)
    pos = np.arange(len(d))[::-1]
    ax.errorbar(d["estimate"], pos, xerr=np.vstack([d["estimate"] - d["conf_low"], d["conf_high"] - d["estimate"]]), fmt="o", capsize=3, color=PALETTE[0])
    ax.set_yticks(pos, d[y].astype(str))
    ax.axvline(0, color="grey", lw=0.8)
    if truth is not None:
        ax.axvline(truth, color="black", lw=1.2, label="true effect")
        ax.legend(frameon=False, fontsize="small")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return fig


register_plotter("event_study", event_study_plot)  # EstimationResult.plot() draws with it


def rollout_plot(clusters: pd.DataFrame, *, by: str = "region", ax=None, title: str | None = "Certified clusters by batch"):
    """Stacked bars of certified clusters per batch, coloured by ``by``."""
    fig, ax = _ax(ax)
    counts = clusters.groupby(["batch", by]).size().unstack(fill_value=0)
    counts.plot(kind="bar", stacked=True, ax=ax, color=PALETTE[: counts.shape[1]], width=0.7)
    ax.set_xlabel("batch")
    ax.set_ylabel("clusters")
    ax.legend(title=by, frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def trends_plot(trends: pd.DataFrame, *, outcome: str, group: str = "group", ax=None, title: str | None = None, ylabel: str | None = None):
    """Mean outcome by year for each group (e.g. cohort), with 95 % confidence bands.

    ``trends`` has columns ``year``, ``group``, ``mean``, ``conf_low``, ``conf_high``
    (see :func:`analysis.describe.outcome_trends`).
    """
    fig, ax = _ax(ax)
    for i, (g, part) in enumerate(trends.groupby(group, sort=False)):
        c = PALETTE[i % len(PALETTE)]
        ax.plot(part["year"], part["mean"], marker="o", ms=3, color=c, label=str(g))
        ax.fill_between(part["year"], part["conf_low"], part["conf_high"], color=c, alpha=0.15, lw=0)
    ax.set_xlabel("year")
    ax.set_ylabel(ylabel or outcome)
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def honest_plot(sens: pd.DataFrame, *, title: str | None = None, ax=None):
    """HonestDiD robust confidence sets: one bar per M (and the original interval), zero marked.

    ``sens`` is the tidy frame of :func:`analysis.did.honest_did` (rows with ``conf_low``,
    ``conf_high`` and ``M``, missing ``M`` for the original interval).
    """
    fig, ax = _ax(ax, figsize=(7, 4))
    ax.errorbar(range(len(sens)), (sens["conf_low"] + sens["conf_high"]) / 2, yerr=(sens["conf_high"] - sens["conf_low"]) / 2, fmt="none", capsize=4)
    ax.set_xticks(range(len(sens)), ["original" if pd.isna(mm) else f"Mbar={mm:g}" for mm in sens.get("M", [float("nan")] * len(sens))])
    ax.axhline(0, color="grey", lw=0.8)
    if title:
        ax.set_title(title)
    return fig


def trends_figure(trends: dict[str, pd.DataFrame], *, cohorts: list[float] | None = None, ncol: int = 2):
    """A grid of :func:`trends_plot` panels, one per outcome, dotted lines before each cohort's first year.

    ``trends`` maps outcome names to frames of :func:`analysis.describe.outcome_trends`.
    """
    nrow = (len(trends) + 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(12, 4 * nrow), squeeze=False)
    for ax, (col, frame) in zip(axes.flat, trends.items()):
        trends_plot(frame, outcome=col, ax=ax, title=col)
        for g in cohorts or []:
            ax.axvline(g - 0.5, color="grey", lw=0.6, ls=":")
    fig.tight_layout()
    return fig


#: above this many values per curve, densities are binned (:func:`binned_kde`), not exact
KDE_EXACT_MAX = 500_000


def binned_kde(values: np.ndarray, *, gridsize: int = 200, cut: float = 3.0, bins: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian kernel density with Scott's bandwidth (seaborn's and scipy's default) on ``gridsize``
    points, from a histogram of ``bins`` bins convolved with the kernel: O(n), where the exact
    density costs n x gridsize kernel evaluations (a 5-million-row panel: minutes per curve). The
    bins are a few hundredths of a bandwidth wide, so the curve equals the exact one to the pixel.

    Examples
    --------
    >>> from scipy import stats
    >>> x = np.random.default_rng(0).normal(size=20_000)
    >>> grid, dens = binned_kde(x)
    >>> bool(np.max(np.abs(dens - stats.gaussian_kde(x)(grid))) < 1e-3)
    True
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    bw = v.std(ddof=1) * v.size ** (-1 / 5)
    lo, hi = v.min() - cut * bw, v.max() + cut * bw
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    grid = np.linspace(lo, hi, gridsize)
    z = (grid[:, None] - centers[None, :]) / bw
    dens = np.exp(-0.5 * z**2) @ counts / (v.size * bw * np.sqrt(2 * np.pi))
    return grid, dens


def tfp_distributions(panel: pd.DataFrame, columns: list[str], *, ax=None):
    """Kernel densities of log TFP by method (``tfp_<method>`` columns); binned above
    :data:`KDE_EXACT_MAX` values (:func:`binned_kde`)."""
    fig, ax = _ax(ax, figsize=(9, 4.5))
    if panel[columns].notna().sum().max() <= KDE_EXACT_MAX:
        long = panel[columns].melt(var_name="method", value_name="log TFP").dropna()
        long["method"] = long["method"].str.removeprefix("tfp_")
        sns.kdeplot(data=long, x="log TFP", hue="method", common_norm=False, ax=ax)
    else:
        palette = sns.color_palette(n_colors=len(columns))
        for c, color in zip(columns, palette):
            grid, dens = binned_kde(panel[c].to_numpy(dtype=float))
            ax.plot(grid, dens, color=color, label=c.removeprefix("tfp_"))
        ax.set_xlabel("log TFP")
        ax.set_ylabel("Density")
        ax.legend(title="method")
    ax.set_title("Distribution of log TFP by method")
    return fig


def save_figures(figures: dict[str, object], *, directory: str | Path | None = None) -> list[Path]:
    """:func:`save_figure` for each ``{name: figure}``."""
    return [save_figure(fig, name, directory=directory) for name, fig in figures.items()]


def save_figure(fig, name: str, *, directory: str | Path | None = None) -> Path:
    """Save ``fig`` as ``<directory>/<name>.png`` atomically (default ``reports/figures``)."""
    from analysis.config import FIGURES

    path = Path(directory or FIGURES) / f"{name}.png"
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path
