"""The usual cleaning filters of the Chinese firm-data literature: each named, cited and switchable.

Each rule of :data:`RULES` drops firm-years for one stated reason; ``data.clean`` in the parameter
set switches it on (and sets its threshold). A rule that is off is still listed in the attrition
table (as off), so the reader of ``01_data`` sees every filter that was or was not applied.

=====================  ================================================================  =======================================
rule                   drops firm-years with                                             source
=====================  ================================================================  =======================================
``min_employment``     fewer than N workers (8: such firms fall under a different        Brandt, Van Biesebroeck and Zhang (2012)
                       legal regime)
``nonpositive_inputs`` missing, zero or negative output, net fixed assets, employment   Cai and Liu (2009); Brandt, Van
                       or intermediate inputs (or the columns listed)                    Biesebroeck and Zhang (2012)
``accounting``         total assets below current assets, net fixed assets or total     Feenstra, Li and Yu (2014); Cai and
                       fixed assets; accumulated depreciation below this year's;        Liu (2009)
                       founding month outside 1-12
``below_scale``        sales below the above-scale threshold of the year (5 m yuan      NBS 规模以上工业 threshold; Brandt, Van
                       until 2010, 20 m from 2011)                                       Biesebroeck and Zhang (2012)
=====================  ================================================================  =======================================

References: Brandt, Van Biesebroeck and Zhang (2012), "Creative accounting or creative
destruction? Firm-level productivity growth in Chinese manufacturing", *Journal of Development
Economics* 97(2): 339-351. Cai and Liu (2009), "Competition and corporate tax avoidance: evidence
from Chinese industrial firms", *Economic Journal* 119(537): 764-795. Feenstra, Li and Yu (2014),
"Exports and credit constraints under incomplete information: theory and evidence from China",
*Review of Economics and Statistics* 96(4): 729-744.

Examples
--------
>>> import pandas as pd
>>> from analysis.sources.attrition import SourceLog
>>> df = pd.DataFrame({"labor": [5.0, 50.0, 80.0], "output": [10.0, 0.0, 30.0]})
>>> log = SourceLog()
>>> out = apply_rules(df, {"min_employment": 8, "nonpositive_inputs": ["output"]}, log)
>>> len(out), log.attrition()[["rule", "dropped"]].values.tolist()
(1, [['min_employment', 1], ['nonpositive_inputs', 1], ['accounting', 0], ['below_scale', 0]])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.config import ParameterError
from analysis.sources.attrition import SourceLog

__all__ = ["KEY_INPUTS", "RULES", "Rule", "apply_rules"]

#: inputs the ``nonpositive_inputs`` rule checks by default (value added is missing in several survey years)
KEY_INPUTS = ("output", "capital", "labor", "materials")


@dataclass(frozen=True)
class Rule:
    """One cleaning filter."""

    name: str
    what: str
    citation: str
    drop: Callable[[pd.DataFrame, Any], pd.Series]


def _min_employment(df: pd.DataFrame, n: Any) -> pd.Series:
    if "labor" not in df:
        return pd.Series(False, index=df.index)
    return df["labor"].notna() & (df["labor"] < float(n))


def _nonpositive(df: pd.DataFrame, cols: Any) -> pd.Series:
    cols = list(KEY_INPUTS) if cols is True else list(cols)
    bad = pd.Series(False, index=df.index)
    for c in cols:
        if c in df:
            bad |= df[c].isna() | (df[c] <= 0)
    return bad


def _accounting(df: pd.DataFrame, _on: Any) -> pd.Series:
    bad = pd.Series(False, index=df.index)
    ta = df.get("total_assets")
    if ta is not None:
        for c in ("current_assets", "capital", "fixed_assets_total"):
            if c in df:
                bad |= (ta < df[c]).fillna(False)
    if {"accumulated_depreciation", "current_depreciation"} <= set(df.columns):
        bad |= (df["accumulated_depreciation"] < df["current_depreciation"]).fillna(False)
    if "founding_month" in df:
        m = df["founding_month"]
        bad |= (m.notna() & ((m < 1) | (m > 12))).fillna(False)
    return bad


def _below_scale(df: pd.DataFrame, _on: Any) -> pd.Series:
    if "sales" not in df:
        return pd.Series(False, index=df.index)
    threshold = np.where(df["year"] >= 2011, 20_000.0, 5_000.0)  # thousand yuan
    return (df["sales"] < threshold).fillna(False)


RULES: dict[str, Rule] = {
    "min_employment": Rule("min_employment", "employment below the threshold (firms under 8 workers fall under a different legal regime)",
                           "Brandt, Van Biesebroeck and Zhang (2012)", _min_employment),
    "nonpositive_inputs": Rule("nonpositive_inputs", "missing, zero or negative key inputs", "Cai and Liu (2009); Brandt, Van Biesebroeck and Zhang (2012)", _nonpositive),
    "accounting": Rule("accounting", "accounting identities violated: total assets below current assets, net or total fixed assets; "
                       "accumulated below current depreciation; founding month outside 1-12", "Feenstra, Li and Yu (2014); Cai and Liu (2009)", _accounting),
    "below_scale": Rule("below_scale", "sales below the above-scale threshold (5 m yuan until 2010, 20 m from 2011)",
                        "NBS above-scale threshold; Brandt, Van Biesebroeck and Zhang (2012)", _below_scale),
}


def _is_on(value: Any) -> bool:
    return value is not None and value is not False and value != [] and value != 0


def apply_rules(df: pd.DataFrame, clean: Mapping[str, Any], log: SourceLog) -> pd.DataFrame:
    """Apply the cleaning rules switched on in ``clean`` (``data.clean``), in the order of :data:`RULES`.

    Every rule gets an attrition row (rows dropped, or ``off``). Returns the kept rows.
    """
    unknown = [k for k in clean if k not in RULES and k != "duplicates"]
    if unknown:
        raise ParameterError(f"data.clean: unknown rule(s) {unknown}; the rules are {list(RULES)} and 'duplicates'")
    for name, rule in RULES.items():
        value = clean.get(name)
        n = len(df)
        if not _is_on(value):
            log.step("clean", name, n, n, f"off ({rule.what})", citation=rule.citation)
            continue
        drop = rule.drop(df, value).to_numpy(dtype=bool)
        setting = f" {value}" if not isinstance(value, bool) else ""
        df = df.loc[~drop]
        log.step("clean", name, n, len(df), f"{rule.what}{' (' + setting.strip() + ')' if setting else ''}", citation=rule.citation)
    return df
