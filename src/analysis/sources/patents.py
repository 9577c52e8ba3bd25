"""Patent applications (CNIPA records) linked to firms; counts by firm-year and type.

Researchers get one row per application: application number, filing date, type (invention,
utility model, design), applicant names (several separated by ``;``), applicant address, IPC and
sometimes a firm id. :func:`read_applications` reads and checks such a file (CSV, Excel, parquet);
:func:`link_patents` links each applicant to the firm file by normalised name
(:mod:`analysis.sources.names`: exact key join, former names, county as tie-breaker), counts
applications by firm, filing year and type (whole or fractional counting of co-applications) and
writes a :class:`~analysis.sources.names.LinkageReport`. The result enters the panel as
``patents_invention``, ``patents_utility`` and ``patents_design``.

Examples
--------
>>> import pandas as pd
>>> apps = pd.DataFrame({"app_no": ["CN202110000001.1", "CN202120000002.2", "CN202130000003.3"],
...                      "filing_date": ["2021-03-01", "2021-05-02", "2022-01-09"],
...                      "applicants": ["甲电子有限公司;清华大学", "甲电子有限责任公司", "张伟"]})
>>> firms = pd.DataFrame({"firm_id": [7], "firm_name": ["甲电子有限公司"]})
>>> res = link_patents(read_applications(apps), firms)
>>> print(res.counts.to_string(index=False))
 firm_id  year  patents_invention  patents_utility  patents_design
       7  2021                1.0              1.0             0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.domain import PATENT_TYPES
from analysis.io import read_table
from analysis.sources.names import (
    LinkageError,
    LinkageReport,
    firm_keys,
    fuzzy_candidates,
    is_organisation,
    link_by_name,
    name_key,
    split_names,
)

__all__ = ["PATENT_TYPES", "PatentLinkage", "link_patents", "patent_type_from_number", "read_applications", "recode_patent_type"]

#: Patent types and the panel columns their counts become.

_TYPE_WORDS = {
    "invention": "invention",
    "发明": "invention",
    "发明专利": "invention",
    "发明申请": "invention",
    "1": "invention",
    "8": "invention",
    "utility": "utility",
    "utility model": "utility",
    "utility_model": "utility",
    "实用新型": "utility",
    "2": "utility",
    "9": "utility",
    "design": "design",
    "外观设计": "design",
    "外观": "design",
    "3": "design",
}

#: Accepted column names (lower-cased) for each field of an application record.
COLUMNS: dict[str, tuple[str, ...]] = {
    "app_no": ("app_no", "application_number", "申请号", "appln_nr"),
    "filing_date": ("filing_date", "application_date", "申请日", "appln_filing_date"),
    "patent_type": ("patent_type", "type", "专利类型", "申请类型"),
    "applicants": ("applicants", "applicant", "申请人", "申请(专利权)人", "申请（专利权）人"),
    "address": ("address", "applicant_address", "地址", "申请人地址"),
    "ipc": ("ipc", "ipc_main", "主分类号", "分类号"),
    "firm_id": ("firm_id",),
    "county_code": ("county_code", "applicant_county_code"),
}


def patent_type_from_number(app_no: pd.Series) -> pd.Series:
    """Patent type from a CNIPA application number (12 digits since 2003, e.g.
    ``CN202110123456.7``: the 5th digit is the type, 1/8 invention, 2/9 utility model, 3 design;
    8 digits before 2003: the 3rd digit).

    Examples
    --------
    >>> patent_type_from_number(pd.Series(["CN202110123456.7", "201220012345X", "98301234"])).tolist()
    ['invention', 'utility', 'design']
    """
    digits = app_no.astype("string").str.upper().str.replace(r"^CN|ZL", "", regex=True).str.replace(r"[^0-9X]", "", regex=True)
    code = digits.str[4].where(digits.str.len() >= 12, digits.str[2])
    return code.map({"1": "invention", "8": "invention", "2": "utility", "9": "utility", "3": "design"}).astype("string")


def recode_patent_type(s: pd.Series) -> pd.Series:
    """Recode a type column written in Chinese, English or as CNIPA codes to ``invention``,
    ``utility`` or ``design`` (missing where not recognised).

    Examples
    --------
    >>> recode_patent_type(pd.Series(["发明专利", "Utility model", "3", "?"])).tolist()
    ['invention', 'utility', 'design', <NA>]
    """
    return s.astype("string").str.strip().str.lower().map(_TYPE_WORDS).astype("string")


def _pick(df: pd.DataFrame, field: str, rename: dict | None) -> str | None:
    if rename:
        for raw, target in rename.items():
            if target == field and raw in df.columns:
                return raw
    lower = {str(c).strip().lower(): c for c in df.columns}
    for cand in COLUMNS[field]:
        if cand.lower() in lower:
            return lower[cand.lower()]
    return None


def read_applications(source: str | Path | pd.DataFrame, *, rename: dict[str, str] | None = None, **read_kwargs) -> pd.DataFrame:
    """Read and check patent application records (CSV, Excel, parquet, or a DataFrame).

    Parameters
    ----------
    source : path or pandas.DataFrame
        One row per application. Needs an application number, a filing date and applicant
        names; the type is taken from a type column, else from the application number.
        Optional: address, IPC, firm id, applicant county code. Chinese headers (申请号, 申请日,
        申请人, 专利类型, 地址, 主分类号) are recognised.
    rename : dict, optional
        Raw column -> field (``app_no, filing_date, patent_type, applicants, address, ipc,
        firm_id, county_code``) where the headers differ.

    Returns
    -------
    pandas.DataFrame
        ``app_no, filing_date (datetime), year, patent_type, applicants`` and the optional fields
        present; the source is never modified.

    Raises
    ------
    LinkageError
        Naming the missing column, or the rows with an unreadable date or type, or duplicated
        application numbers.

    Examples
    --------
    >>> read_applications(pd.DataFrame({"申请号": ["CN202120000002.2"], "申请日": ["2021.05.02"], "申请人": ["甲公司"]}))[["year", "patent_type"]].values.tolist()
    [[2021, 'utility']]
    """
    what = "application records" if isinstance(source, pd.DataFrame) else f"application file {source}"
    raw = source if isinstance(source, pd.DataFrame) else read_table(source, **read_kwargs)
    cols = {f: _pick(raw, f, rename) for f in COLUMNS}
    for need in ("app_no", "filing_date", "applicants"):
        if cols[need] is None:
            raise LinkageError(f"{what} lacks a column for '{need}' (tried {list(COLUMNS[need])}); it has {list(raw.columns)}")
    out = pd.DataFrame({f: raw[c].array for f, c in cols.items() if c is not None})  # .array: arrow strings stay arrow
    out.index = raw.index
    out["app_no"] = out["app_no"].astype("string").str.strip()
    if pd.api.types.is_datetime64_any_dtype(out["filing_date"]):
        date = out["filing_date"]
    else:
        date = pd.to_datetime(out["filing_date"].astype("string").str.replace(".", "-", regex=False), errors="coerce", format="mixed")
    bad = date.isna()
    if bad.any():
        raise LinkageError(f"{what}: column '{cols['filing_date']}' has unreadable dates in rows {list(out.index[bad][:10])} (e.g. {out.loc[bad, 'filing_date'].head(3).tolist()})")
    out["filing_date"] = date
    out["year"] = date.dt.year.astype(np.int64)
    typ = recode_patent_type(out["patent_type"]) if "patent_type" in out else pd.Series(pd.NA, index=out.index, dtype="string")
    if typ.isna().any():
        miss = typ.isna()
        typ = typ.copy()
        typ[miss] = patent_type_from_number(out.loc[miss, "app_no"])
    bad = typ.isna()
    if bad.any():
        src = cols["patent_type"] or cols["app_no"]
        raise LinkageError(f"{what}: patent type not recognised (column '{src}') in rows {list(out.index[bad][:10])}")
    out["patent_type"] = typ
    dup = out["app_no"].duplicated(keep=False)
    if dup.any():
        raise LinkageError(f"{what}: application number repeated in rows {list(out.index[dup][:10])} ({out.loc[dup, 'app_no'].head(3).tolist()})")
    if "firm_id" in out:
        out["firm_id"] = pd.to_numeric(out["firm_id"], errors="coerce").astype("Int64")
    lead = ["app_no", "filing_date", "year", "patent_type", "applicants"]
    return out[lead + [c for c in out.columns if c not in lead]]


@dataclass
class PatentLinkage:
    """Result of :func:`link_patents`.

    Attributes
    ----------
    counts : pandas.DataFrame
        ``firm_id, year, patents_invention, patents_utility, patents_design`` (float: fractional
        counting gives shares); only firm-years with at least one application.
    links : pandas.DataFrame
        One row per (application, applicant): ``app_no, year, patent_type, applicant, key,
        n_applicants, firm_id, method, candidates``.
    report : LinkageReport
    counting : str
    """

    counts: pd.DataFrame
    links: pd.DataFrame
    report: LinkageReport
    counting: str

    def __repr__(self) -> str:
        return f"PatentLinkage({self.counting} counting): {len(self.counts):,} firm-years with applications\n{self.report!r}"

    def _repr_html_(self) -> str:
        return self.report._repr_html_()

    def to_panel(self, panel: pd.DataFrame) -> pd.DataFrame:
        """The panel with ``patents_*`` replaced by the linked counts (0 where none).

        Examples
        --------
        >>> apps = read_applications(pd.DataFrame({"app_no": ["CN202130000003.3"], "filing_date": ["2021-01-09"], "applicants": ["甲厂"]}))
        >>> res = link_patents(apps, pd.DataFrame({"firm_id": [1, 2], "firm_name": ["甲厂", "乙厂"]}))
        >>> res.to_panel(pd.DataFrame({"firm_id": [1, 2], "year": [2021, 2021]}))["patents_design"].tolist()
        [1.0, 0.0]
        """
        cols = [f"patents_{t}" for t in PATENT_TYPES]
        out = panel.drop(columns=[c for c in cols if c in panel.columns]).merge(self.counts, on=["firm_id", "year"], how="left")
        out[cols] = out[cols].fillna(0.0)
        return out


def link_patents(
    apps: pd.DataFrame,
    firms: pd.DataFrame,
    *,
    counting: str = "whole",
    sep: str = ";",
    n_unmatched: int = 50,
    fuzzy_cutoff: float = 80.0,
    name: str = "firm_name",
    former_names: str | None = "former_names",
) -> PatentLinkage:
    """Link applicants to firms by normalised name and count applications by firm-year and type.

    Each applicant's name key (:func:`~analysis.sources.names.name_key`) is joined to the firm
    file's keys (current names, then former names); a key several firms share is resolved by the
    application's ``county_code`` or by the firm's ``county_name`` in the applicant ``address``,
    and otherwise listed as ambiguous and not linked. An application with a ``firm_id`` links to
    that firm and skips the name step. A co-application counts once for each linked firm
    (``counting="whole"``) or ``1 / number of applicants`` for each (``"fractional"``, applicants
    that are persons or unlinked keep their share). Counts are by filing year.

    Parameters
    ----------
    apps : pandas.DataFrame
        From :func:`read_applications`.
    firms : pandas.DataFrame
        ``firm_id`` and ``name``; optional ``former_names`` (``;``-separated), ``county_code``,
        ``county_name``. Several rows per firm (name history) are allowed.
    counting : {"whole", "fractional"}
    sep : str
        Separator of applicant names.
    n_unmatched : int
        Most frequent unmatched organisation applicants listed in the report, each with its best
        fuzzy candidates (``rapidfuzz``; for review only, never linked).
    fuzzy_cutoff : float
        Lowest similarity (0-100) of a listed candidate.
    name, former_names : str
        Columns of ``firms``.

    Returns
    -------
    PatentLinkage

    Examples
    --------
    >>> apps = read_applications(pd.DataFrame({"app_no": ["CN202110000001.1"], "filing_date": ["2021-03-01"],
    ...                                         "applicants": ["甲公司;乙公司"]}))
    >>> firms = pd.DataFrame({"firm_id": [1, 2], "firm_name": ["甲公司", "乙公司"]})
    >>> link_patents(apps, firms, counting="fractional").counts["patents_invention"].tolist()
    [0.5, 0.5]
    """
    if counting not in ("whole", "fractional"):
        raise ValueError(f"counting must be 'whole' or 'fractional', not {counting!r}")
    for col in ("app_no", "year", "patent_type", "applicants"):
        if col not in apps.columns:
            raise LinkageError(f"application records lack column '{col}' (read them with read_applications)")
    keys = firm_keys(firms, name=name, former_names=former_names)
    app_pos = pd.RangeIndex(len(apps))
    a = apps.reset_index(drop=True)
    names = split_names(a["applicants"], sep=sep)
    long = pd.DataFrame({"_app": names.index.to_numpy(), "applicant": names.to_numpy()})
    long["n_applicants"] = long.groupby("_app")["applicant"].transform("size").astype(np.int64)
    idx = long["_app"].to_numpy()
    if "county_code" in a.columns:
        long["county_code"] = a["county_code"].to_numpy()[idx]
    if "address" in a.columns:
        long["address"] = a["address"].iloc[idx].array  # stays arrow-backed: no object round trip
    long["key"] = name_key(long["applicant"])
    res = link_by_name(long, keys)
    long = pd.concat([long, res], axis=1)
    # applications that carry a firm id: linked directly
    if "firm_id" in a.columns and a["firm_id"].notna().any():
        known = a["firm_id"].notna().to_numpy()
        direct = long["_app"].isin(app_pos[known])
        long = long[~direct]
        d = a.loc[known, ["firm_id"]].reset_index(names="_app")
        d = d.assign(applicant=pd.NA, n_applicants=1, key=pd.NA, method="firm_id", candidates=pd.NA)
        long = pd.concat([long, d], ignore_index=True)
    idx = long["_app"].to_numpy()
    long["app_no"] = a["app_no"].iloc[idx].array
    long["year"] = a["year"].to_numpy()[idx]
    long["patent_type"] = a["patent_type"].iloc[idx].array
    long["firm_id"] = long["firm_id"].astype("Int64")

    # counting on plain arrays (no string columns copied): distinct (application, firm) pairs
    ok = long["firm_id"].notna().to_numpy()
    tcode = a["patent_type"].map({t: i for i, t in enumerate(PATENT_TYPES)}).to_numpy(dtype=np.int64)
    app = long["_app"].to_numpy(dtype=np.int64)[ok]
    linked = pd.DataFrame({"_app": app, "firm_id": long["firm_id"].to_numpy()[ok].astype(np.int64), "n": long["n_applicants"].to_numpy()[ok]})
    linked = linked.drop_duplicates(["_app", "firm_id"])
    w = 1.0 if counting == "whole" else 1.0 / linked["n"].to_numpy()
    linked = linked.assign(w=w, year=a["year"].to_numpy()[linked["_app"].to_numpy()], t=tcode[linked["_app"].to_numpy()])
    c = linked.groupby(["firm_id", "year", "t"])["w"].sum().unstack("t").reindex(columns=range(len(PATENT_TYPES))).fillna(0.0)
    c.columns = [f"patents_{t}" for t in PATENT_TYPES]
    counts = c.reset_index().astype({"firm_id": np.int64, "year": np.int64})

    report = _report(long, a, keys, n_unmatched=n_unmatched, fuzzy_cutoff=fuzzy_cutoff, counting=counting)
    cols = ["app_no", "year", "patent_type", "applicant", "key", "n_applicants", "firm_id", "method", "candidates"]
    return PatentLinkage(counts=counts, links=long[cols].reset_index(drop=True), report=report, counting=counting)


def _report(long: pd.DataFrame, a: pd.DataFrame, keys: pd.DataFrame, *, n_unmatched: int, fuzzy_cutoff: float, counting: str) -> LinkageReport:
    """Linkage report of patent applications (shares by type and year, ambiguous, unmatched)."""
    linked_app = np.zeros(len(a), dtype=bool)
    linked_app[long["_app"].to_numpy(dtype=np.int64)[long["firm_id"].notna().to_numpy()]] = True
    shares = (
        pd.DataFrame({"patent_type": a["patent_type"].to_numpy(), "year": a["year"].to_numpy(), "linked": linked_app})
        .groupby(["patent_type", "year"])["linked"]
        .agg(n_records="size", n_linked="sum")
        .reset_index()
    )
    shares["share_linked"] = shares["n_linked"] / shares["n_records"]
    method = long["method"]
    un = long[(method == "unmatched").to_numpy()]
    org = is_organisation(un["applicant"]).to_numpy()
    counts = {str(k): int(v) for k, v in method.value_counts().items()}
    n_person = int((~org).sum())
    counts["unmatched"] = counts.get("unmatched", 0) - n_person
    counts["unmatched person"] = n_person
    methods = pd.Series(counts)
    methods = methods[methods > 0].sort_values(ascending=False, kind="stable").rename_axis("method").reset_index(name="n")
    amb = long[(method == "ambiguous").to_numpy()]
    cols = ["applicant", "key", "candidates"]
    agg = {"n_applications": ("_app", "size")}
    if "county_code" in amb:
        agg["county_code"] = ("county_code", "first")
    ambiguous = amb.groupby(cols, dropna=False).agg(**agg).reset_index().sort_values("n_applications", ascending=False, kind="stable").reset_index(drop=True)
    un = un[org]
    top = un.groupby("key").agg(applicant=("applicant", "first"), n_applications=("_app", "size")).sort_values("n_applications", ascending=False, kind="stable").head(n_unmatched)
    fz = fuzzy_candidates(pd.Series(top.index), keys, limit=1, score_cutoff=fuzzy_cutoff)
    unmatched = top.reset_index().merge(fz, on="key", how="left")
    notes = {"counting": counting, "unmatched applicant names that are persons": f"{n_person:,}"}
    return LinkageReport("patents", shares, methods, ambiguous, unmatched, notes)
