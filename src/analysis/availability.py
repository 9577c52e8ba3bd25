"""Partial data: a report whose inputs the panel lacks says so in one paragraph and is still published.

Many users hold part of the data (a firm registry and patents, but no output or capital for recent
years; no pollution records). Each report states what it needs with :func:`require_inputs`. When the
panel has it, nothing happens. When it does not, the report shows one paragraph saying what is
missing and what it would have done, records the skip (``data/processed/<config>/skipped/<page>.json``,
read by the summary, :func:`skipped_reports`) and stops with :class:`InputsAbsent`, which the
notebook runner (``tools/run_notebook.py``) turns into a published page ending at that paragraph,
not a failed build. The other reports run.

Examples
--------
>>> import pandas as pd
>>> panel = pd.DataFrame({"firm_id": ["a"], "year": [2020], "patents_invention": [1], "so2": [float("nan")]})
>>> missing_inputs(panel, ["patents_invention", "patents_utility"], any_of=True)
[]
>>> missing_inputs(panel, ["so2", "cod"], any_of=True)
['so2 (no value)', 'cod']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from analysis.config import processed_dir
from analysis.io import write_text

__all__ = ["InputsAbsent", "is_known_column", "missing_inputs", "require_inputs", "skip_dir", "skipped_note", "skipped_reports", "usable_columns"]


class InputsAbsent(Exception):
    """A report's inputs are absent from the panel; the page is published with the paragraph that says so."""


def skip_dir(config: str) -> Path:
    """Where the skipped reports of parameter set ``config`` are recorded."""
    return processed_dir(config) / "skipped"


def missing_inputs(panel: pd.DataFrame, columns: Sequence[str], *, any_of: bool = False) -> list[str]:
    """Columns of ``columns`` the panel lacks or holds no value in.

    With ``any_of``, nothing is missing as long as one of them has a value (e.g. any patent type).
    """
    gone = [c if c not in panel.columns else f"{c} (no value)" for c in columns if c not in panel.columns or panel[c].isna().all()]
    if any_of and len(gone) < len(columns):
        return []
    return gone


def is_known_column(name: str) -> bool:
    """A column of the data contract or one the panel builder derives from it (``log_*``,
    ``log1p_patents``, ``patents_total``, ``any_patent``, ``tfp_*`` ...): a name a panel may lack for
    want of data, as opposed to a misspelt one.

    Examples
    --------
    >>> is_known_column("log_so2_intensity"), is_known_column("log_valueadded")
    (True, False)
    """
    from analysis.domain import OUTCOME_FAMILIES
    from analysis.schema import COLUMN_MAP

    derived = {"patents_total", "any_patent", "log1p_patents", "log_labor_productivity", "age", "event_time", "cell_id"}
    derived |= {f"log_{c}" for c in COLUMN_MAP} | {c for cols in OUTCOME_FAMILIES.values() for c in cols}
    derived |= {f"log_{c}_intensity" for c in ("so2", "cod", "co2")}
    return name in COLUMN_MAP or name in derived or name.startswith("tfp_")


def usable_columns(panel: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """``names`` without the known columns the panel lacks (partial data); unknown names are kept,
    so that a misspelt one still fails where it is used."""
    return [c for c in names if not (is_known_column(c) and missing_inputs(panel, [c]))]


def require_inputs(panel: pd.DataFrame, columns: Sequence[str], *, config: str, page: str, what: str, any_of: bool = False,
                   on_skip: Callable[[], object] | None = None) -> None:
    """Stop the report (:class:`InputsAbsent`) with a paragraph if the panel lacks its inputs.

    Parameters
    ----------
    panel : pandas.DataFrame
        The data the report would use.
    columns : sequence of str
        The columns it needs (all of them, or one of them with ``any_of``).
    config, page : str
        Parameter set and page name, for the record the summary reads.
    what : str
        What the report would have done, e.g. ``"estimates production functions and TFP"``.
    on_skip : Callable[[], object], optional
        Run before stopping, e.g. to write the file later steps read (the productivity report
        writes the panel without TFP columns for the effect reports).
    """
    record = skip_dir(config) / f"{page}.json"
    gone = missing_inputs(panel, columns, any_of=any_of)
    if not gone:
        if record.is_file():
            record.unlink()
        return
    need = ("one of " if any_of else "") + ", ".join(f"`{c}`" for c in columns)
    text = (
        f"**Skipped: the panel does not have what this report needs.** This report {what}; it needs {need}, and the panel of "
        f"parameter set `{config}` lacks {', '.join(f'`{c}`' for c in gone)}. The other reports ran on what the panel has; "
        "`data/README.md` says how to bring these columns (a column of the firm files, or linked records)."
    )
    if on_skip is not None:
        on_skip()
    write_text(json.dumps({"page": page, "what": what, "missing": gone, "text": text}, ensure_ascii=False) + "\n", record)
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:  # pragma: no cover - outside a notebook
        print(text)
    raise InputsAbsent(f"{page}: inputs absent ({', '.join(gone)})")


def skipped_note(config: str, *, leave_out: Sequence[str] = ()) -> str:
    """One paragraph for the summary: the reports skipped for lack of inputs, or that none was.

    Examples
    --------
    >>> skipped_note("no-such-parameter-set")
    'Every report ran: none lacked its inputs.'
    """
    sk = skipped_reports(config, leave_out=leave_out)
    if sk.empty:
        return "Every report ran: none lacked its inputs."
    items = "; ".join(f"`{r.page}` ({r.what}; missing {', '.join(r.missing)})" for r in sk.itertuples())
    return f"**Skipped for lack of inputs** ({len(sk)}): {items}. Their pages say so; the tables below cover the reports that ran."


def skipped_reports(config: str, *, leave_out: Sequence[str] = ()) -> pd.DataFrame:
    """The reports skipped for lack of inputs: page, what it does, what was missing.

    ``leave_out``: page-name prefixes not to read (the summary leaves out the robustness pages,
    which ``make`` runs after it, so that its inputs do not depend on the order of a build).
    """
    files = [p for p in sorted(skip_dir(config).glob("*.json")) if not p.stem.startswith(tuple(leave_out))]
    rows = [json.loads(p.read_text(encoding="utf-8")) for p in files]
    return pd.DataFrame(rows, columns=["page", "what", "missing", "text"])
