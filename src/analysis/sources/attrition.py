"""What the front door did to the user's data: an attrition table, listed warnings, recode tables.

Every step that can change the number of firm-years (reading, recoding, linking, each cleaning
rule, matching to clusters) adds a row to the attrition table: rows in, rows out, and why.
Ambiguous input (an encoding detected, a header used among several candidates, codes of a split
county, unlisted industry codes dropped) adds a listed warning. Recode tables (which industry
codes became what, which county codes changed, how firms were linked) are kept beside them.
:meth:`SourceLog.write` writes all of it to ``data/processed/<config>/sources/`` and the
``01_data`` report shows it.

Examples
--------
>>> log = SourceLog()
>>> log.step("read", "files", 0, 120, "2 files")
>>> log.step("clean", "min_employment", 120, 112, "employment below 8", citation="Brandt, Van Biesebroeck and Zhang (2012)")
>>> log.attrition()[["step", "rule", "rows_in", "rows_out", "dropped"]].values.tolist()
[['read', 'files', 0, 120, 0], ['clean', 'min_employment', 120, 112, 8]]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.io import atomic_write, write_text

__all__ = ["SourceLog", "read_source_log"]

ATTRITION_COLUMNS = ["step", "rule", "rows_in", "rows_out", "dropped", "why", "citation"]
WARNING_COLUMNS = ["topic", "message", "rows"]


@dataclass
class SourceLog:
    """Attrition rows, warnings and tables collected while the panel is built from raw files."""

    steps: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)

    def step(self, step: str, rule: str, rows_in: int, rows_out: int, why: str, *, citation: str = "") -> None:
        """Record a step: rows in, rows out (dropped = in - out when rows were removed), why."""
        dropped = max(int(rows_in) - int(rows_out), 0) if rows_in else 0
        self.steps.append({"step": step, "rule": rule, "rows_in": int(rows_in), "rows_out": int(rows_out), "dropped": dropped, "why": why, "citation": citation})

    def notice(self, topic: str, message: str, rows: int | None = None) -> None:
        """Record ambiguous input that did not stop the run (listed in ``01_data``)."""
        self.warnings.append({"topic": topic, "message": message, "rows": rows})

    def table(self, name: str, df: pd.DataFrame) -> None:
        """Keep a recode or linkage table (written as ``<name>.csv``)."""
        self.tables[name] = df

    def attrition(self) -> pd.DataFrame:
        """The attrition table: one row per step and rule."""
        return pd.DataFrame(self.steps, columns=ATTRITION_COLUMNS)

    def warnings_table(self) -> pd.DataFrame:
        """The listed warnings."""
        return pd.DataFrame(self.warnings, columns=WARNING_COLUMNS).astype({"rows": "Int64"})

    def write(self, folder: str | Path) -> Path:
        """Write ``attrition.csv``, ``warnings.csv``, ``facts.json`` and every table to ``folder`` (atomically, file by file)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.csv"):
            if old.stem not in self.tables and old.stem not in ("attrition", "warnings"):
                old.unlink()
        frames = {"attrition": self.attrition(), "warnings": self.warnings_table(), **self.tables}
        for name, df in frames.items():
            with atomic_write(folder / f"{name}.csv") as tmp:
                df.to_csv(tmp, index=False)
        write_text(json.dumps(self.facts, indent=1, sort_keys=True, default=str) + "\n", folder / "facts.json")
        return folder


def read_source_log(folder: str | Path) -> SourceLog:
    """Read what :meth:`SourceLog.write` wrote (an empty log if the folder does not exist)."""
    folder = Path(folder)
    log = SourceLog()
    if not folder.is_dir():
        return log
    for path in sorted(folder.glob("*.csv")):
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if path.stem == "attrition":
            log.steps = [{**r, **{k: int(r[k]) for k in ("rows_in", "rows_out", "dropped")}} for r in df.to_dict("records")]
        elif path.stem == "warnings":
            log.warnings = [{**r, "rows": int(r["rows"]) if r["rows"] else None} for r in df.to_dict("records")]
        else:
            log.tables[path.stem] = pd.read_csv(path, dtype=str, keep_default_na=False)
    if (folder / "facts.json").is_file():
        log.facts = json.loads((folder / "facts.json").read_text(encoding="utf-8"))
    return log
