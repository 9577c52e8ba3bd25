"""Paper tables from tidy frames, and their export as CSV and booktabs LaTeX.

:func:`wide_table` formats a tidy frame (any estimator's, see :mod:`analysis.results`) as a
paper table: estimates with stars over standard errors. :func:`export_table` writes any table
as ``<name>.csv`` and ``<name>.tex`` atomically, by default into the project's
``reports/tables``.

Examples
--------
>>> from analysis.results import tidy_frame
>>> t = tidy_frame([0.1, 0.02], [0.02, 0.05], term="ATT", outcome=["tfp", "patents"], estimator="cs", n_obs=[500, 400])
>>> wide_table(t).to_dict("index")
{'cs': {'tfp': '0.100***', 'patents': '0.020'}, 'cs (s.e.)': {'tfp': '(0.020)', 'patents': '(0.050)'}, 'Observations': {'tfp': '500', 'patents': '400'}}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.config import TABLES
from analysis.io import write_text
from analysis.results import check_tidy

__all__ = ["wide_table", "to_latex_booktabs", "export_table"]


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""


def wide_table(
    tidy: pd.DataFrame,
    *,
    rows: str = "estimator",
    columns: str = "outcome",
    digits: int = 3,
    stars: bool = True,
    show_n: bool = True,
) -> pd.DataFrame:
    """A paper-style table: estimate (with stars) over its standard error in parentheses.

    Parameters
    ----------
    tidy : pandas.DataFrame
        A tidy frame with one row per (``rows``, ``columns``) pair.
    rows, columns : str, default 'estimator' and 'outcome'
        Tidy columns whose values label the table's rows and columns.

    Examples
    --------
    >>> from analysis.results import tidy_frame
    >>> t = tidy_frame([0.1], [0.02], term="ATT", outcome="y", estimator="cs", n_obs=50)
    >>> wide_table(t).loc["cs", "y"]
    '0.100***'
    """
    check_tidy(tidy)
    if tidy.duplicated([rows, columns]).any():
        raise ValueError(f"wide_table needs one row per ({rows}, {columns}); filter the tidy frame first")
    fmt = f"{{:.{digits}f}}"
    est = tidy.apply(lambda r: fmt.format(r["estimate"]) + (_stars(r["p_value"]) if stars else ""), axis=1)
    se = tidy["std_error"].map(lambda s: f"({fmt.format(s)})")
    frame = tidy.assign(_est=est, _se=se)
    row_order = list(dict.fromkeys(tidy[rows]))
    col_order = list(dict.fromkeys(tidy[columns]))
    top = frame.pivot(index=rows, columns=columns, values="_est").reindex(index=row_order, columns=col_order)
    bottom = frame.pivot(index=rows, columns=columns, values="_se").reindex(index=row_order, columns=col_order)
    bottom.index = [f"{i} (s.e.)" for i in bottom.index]
    parts = []
    for i in range(len(row_order)):
        parts += [top.iloc[[i]], bottom.iloc[[i]]]
    out = pd.concat(parts).fillna("")
    if show_n:
        n = frame.groupby(columns, sort=False)["n_obs"].max().reindex(col_order)
        out.loc["Observations"] = [f"{int(v):,}" if pd.notna(v) else "" for v in n]
    out.index.name = rows
    out.columns.name = None
    return out


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(a, b)
    return text


def to_latex_booktabs(table: pd.DataFrame, *, caption: str = "", label: str = "", notes: str = "") -> str:
    """Render a (string) table as a booktabs LaTeX ``table`` environment."""
    frame = table.reset_index() if table.index.name or not isinstance(table.index, pd.RangeIndex) else table
    cols = [_latex_escape(str(c)) for c in frame.columns]
    align = "l" + "c" * (len(cols) - 1)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(cols) + r" \\", r"\midrule"]
    for _, row in frame.iterrows():
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append("" if np.isnan(v) else f"{v:.3f}")
            else:
                cells.append(_latex_escape(str(v)))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines.append(rf"\par\medskip\footnotesize\emph{{Notes:}} {_latex_escape(notes)}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def export_table(
    table: pd.DataFrame,
    name: str,
    *,
    directory: str | Path | None = None,
    caption: str = "",
    notes: str = "",
    index: bool | None = None,
) -> dict[str, Path]:
    """Write ``table`` as ``<name>.csv`` and ``<name>.tex`` (booktabs), atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        Any frame: a tidy frame or a :func:`wide_table`.
    name : str
        File stem, e.g. ``"effects_productivity_headline"``.
    directory : str or pathlib.Path, optional
        Target folder; defaults to ``reports/tables``.
    caption, notes : str, default ''
        Put in the LaTeX table.
    index : bool, optional
        Write the index to the CSV; by default only when it is named or not a range.

    Returns
    -------
    dict
        ``{"csv": path, "tex": path}``.
    """
    folder = Path(directory) if directory is not None else TABLES
    keep_index = index if index is not None else not isinstance(table.index, pd.RangeIndex)
    paths = {"csv": folder / f"{name}.csv", "tex": folder / f"{name}.tex"}
    write_text(table.to_csv(index=keep_index), paths["csv"])
    write_text(to_latex_booktabs(table, caption=caption, label=f"tab:{name}", notes=notes), paths["tex"])
    return paths
