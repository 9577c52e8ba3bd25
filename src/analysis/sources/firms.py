"""The front door for a user's firm files: from the files economists hold to a frame in the panel contract.

:func:`read_firms` takes the ``data`` section of a parameter set and returns the firm-years in
the contract's columns (before clusters and treatment timing, which :mod:`analysis.panel` adds)
and a :class:`~analysis.sources.attrition.SourceLog` of everything it did. The steps, each
recorded in the attrition table:

1. **read** every file (one file, a folder, a glob such as ``data/raw/asif_*.csv``, or a mapping
   ``{year: path}``), identifiers and codes as text (:mod:`analysis.sources.read`), headers mapped
   to fields by the user's maps and the ASIF defaults (:mod:`analysis.sources.headers`);
2. **money** to thousand yuan, per file and column (``data.money_unit``, ``data.money_units``,
   units in headers such as ``(千元)``, or the older ``data.money_scale``), each column's median
   checked for the factor of 1,000 of a wrong unit;
3. **identifiers** cleaned (spaces, full-width characters), optionally padded (``data.pad_ids``);
4. **county** codes to one GB/T 2260 vintage (``data.county``); unknown codes stop the run;
5. **industry** codes to 2-digit GB/T 4754-2017 (``data.industry``); unlisted codes are listed;
6. **ownership** from the registration type (``data.ownership``), or checked if given;
7. **duplicates**: exact duplicate rows dropped; conflicting firm-years stop the run unless
   ``data.clean.duplicates`` says which to keep;
8. **linking** firms whose identifier changes (``data.link_firms``, BVZ sequential matching);
9. **deflation** by user price indices (``data.deflate``) and the **capital** stock
   (``data.capital``: net fixed assets or the BVZ perpetual inventory, along the linked firms);
10. **cleaning** rules (``data.clean``, :mod:`analysis.sources.cleaning`);
11. **derived** columns: province and region from the county code, the SME flag.

Every error is a :class:`~analysis.sources.read.SourceError` naming the file, the column, example
rows and the fix, raised before any notebook runs.
"""

from __future__ import annotations

import difflib
import glob
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.config import ParameterError
from analysis.domain import COUNTY, INDUSTRY, TIME, UNIT
from analysis.sources import _vector as V
from analysis.sources import headers as H
from analysis.sources.attrition import SourceLog
from analysis.sources.cleaning import apply_rules
from analysis.sources.matching import link_firms
from analysis.sources.read import SUFFIXES, SourceError, read_columns, read_header
from analysis.sources.recode import (
    MONEY_UNITS,
    _clean_one,
    county_to_vintage,
    deflate,
    industry_to_cic2,
    industry_vintages,
    money_check,
    ownership_from_registration,
    perpetual_inventory,
    province_of,
    read_price_indices,
    relative_prices,
    to_thousand_yuan,
)

__all__ = ["OWNERSHIP_VALUES", "SME_MAX_EMPLOYMENT", "SME_MAX_OUTPUT", "cluster_match_problem", "firm_files", "read_firms"]

#: the contract's ownership values
OWNERSHIP_VALUES = ("SOE", "private", "foreign")
#: SME under the 2011 standard (工信部联企业〔2011〕300号, industry): fewer than 1,000 employees or revenue under 400 m yuan
SME_MAX_EMPLOYMENT = 1000
SME_MAX_OUTPUT = 400_000.0  # thousand yuan
_REQUIRED = (UNIT, TIME, COUNTY, INDUSTRY)
_INT_FIELDS = ("founding_year", "founding_month", "patents_invention", "patents_utility", "patents_design")
_KEEP = ("firm_id", "year", "province", "region", "county_code", "industry_code", "ownership", "founding_year", "output", "value_added", "capital",
         "labor", "materials", "investment", "patents_invention", "patents_utility", "patents_design", "reports_emissions", "so2", "cod", "co2", "sme",
         "ownership_detail", "firm_name", "former_names", "county_name", "firm_id_raw", "industry_code_raw", "industry_code4", "county_code_raw", "net_fixed_assets")
_MAX_EX = 5


def _resolve(path: str | Path, root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def firm_files(raw_firms: Any, *, root: Path) -> list[tuple[Path, int | None]]:
    """The firm files of ``data.raw_firms``: a file, a folder, a glob, or ``{year: path}``; with the
    year of each file (from the mapping, else a 4-digit year in its name; ``None`` for one file)."""
    if isinstance(raw_firms, Mapping):
        out = []
        for key, path in raw_firms.items():
            lo, hi = H.parse_years(key)
            if lo != hi:
                raise ParameterError(f"data.raw_firms: key {key!r} must be one year (one file per year)")
            out.append((_resolve(path, root), lo))
        return sorted(out, key=lambda t: t[1])
    p = _resolve(raw_firms, root)
    if any(ch in str(raw_firms) for ch in "*?["):
        paths = [Path(x) for x in sorted(glob.glob(str(p)))]
        if not paths:
            raise FileNotFoundError(f"data.raw_firms: no file matches {p}")
    elif p.is_dir():
        paths = sorted(x for x in p.iterdir() if x.is_file() and x.suffix.lower() in SUFFIXES and not x.name.startswith("."))
        if not paths:
            raise FileNotFoundError(f"data.raw_firms: the folder {p} holds no CSV, Stata, parquet, feather or Excel file")
    else:
        if not p.is_file():
            raise FileNotFoundError(f"data file {p} does not exist" + ("; for the worked example run `make example-data` first" if "example" in str(p) else ""))
        return [(p, None)]
    if len(paths) == 1:
        return [(paths[0], _year_in_name(paths[0]))]
    out = []
    for x in paths:
        y = _year_in_name(x)
        if y is None:
            raise ParameterError(f"data.raw_firms: {x.name} has no year in its name (like asif_2004.csv); name the files by year, or map them: raw_firms: {{2004: path, ...}}")
        out.append((x, y))
    years = [y for _, y in out]
    if len(set(years)) != len(years):
        raise ParameterError(f"data.raw_firms: two files for the same year among {[x.name for x in paths]}")
    return sorted(out, key=lambda t: t[1])


def _year_in_name(path: Path) -> int | None:
    m = re.findall(r"(?<!\d)(19[89]\d|20[0-4]\d)(?!\d)", path.stem)
    return int(m[-1]) if m else None


def _units_for(d: Mapping[str, Any], year: int | None) -> tuple[str, dict[str, str]]:
    """The default money unit and the per-field units of ``data.money_unit`` / ``data.money_units`` for a year."""
    base = d.get("money_unit") or "thousand"
    per: dict[str, str] = {}
    by_year = {}
    for k, v in (d.get("money_units") or {}).items():
        if isinstance(v, Mapping):
            by_year[k] = v
        else:
            per[str(k)] = v
    for m in H.for_year(by_year, year):
        for k, v in m.items():
            if k == "all":
                base = v
                per = {f: u for f, u in per.items() if f in m}
            else:
                per[str(k)] = v
    for u in [base, *per.values()]:
        if u not in MONEY_UNITS:
            raise ParameterError(f"data.money_units: '{u}' is not a unit; use one of {sorted(MONEY_UNITS)}")
    return base, per


def _examples(df: pd.DataFrame, mask, cols: list[str]) -> str:
    show = [c for c in ("_file", "firm_id", "year") if c in df.columns and c not in cols] + [c for c in cols if c in df.columns]
    ex = df.loc[np.asarray(mask, dtype=bool), show].head(_MAX_EX).rename(columns={"_file": "file"})
    return ex.to_string(index=False)


def read_firms(d: Mapping[str, Any], *, root: Path, progress: bool | None = None) -> tuple[pd.DataFrame, SourceLog]:
    """Read and recode the user's firm files (``data`` section of a parameter set).

    Parameters
    ----------
    d : Mapping[str, Any]
        ``params["data"]``: ``raw_firms`` and the front-door options documented in
        ``config/default.yaml`` and ``data/README.md``.
    root : Path
        Folder relative paths are resolved against (the project root).
    progress : bool, optional
        Show a progress bar over the files (``None``: tqdm's default).

    Returns
    -------
    (DataFrame, SourceLog)
        Firm-years in the contract's columns (``firm_id`` as text), and the log of what was done.

    Raises
    ------
    SourceError
        Bad input, naming the file, column, example rows and the fix.
    ParameterError
        A parameter that does not fit the files (e.g. a ``rename`` key no file has).
    """
    from tqdm.auto import tqdm

    from analysis.io import progress_options

    log = SourceLog()
    files = firm_files(d["raw_firms"], root=root)
    rename = {str(k): v for k, v in (d.get("rename") or {}).items()}
    rename_by_year = d.get("rename_by_year") or {}
    defaults = (d.get("headers") or "asif") == "asif"
    if d.get("headers") not in (None, "asif", "none"):
        raise ParameterError(f"data.headers must be 'asif' or 'none', not {d.get('headers')!r}")
    scale = float(d.get("money_scale", 1) or 1)
    if scale != 1 and (d.get("money_units") or (d.get("money_unit") or "thousand") != "thousand"):
        raise ParameterError("data.money_scale and data.money_unit / data.money_units both set: give the units (money_unit, money_units) and leave money_scale at 1")
    pad = {str(k): int(v) for k, v in (d.get("pad_ids") or {}).items()}
    frames, file_rows, col_rows, money_rows = [], [], [], []
    used_keys: set[str] = set()
    money_problems = []
    detected: dict[str, list[str]] = {}
    # first the headers of every file: the maps must fit before any data is read
    maps = []
    for path, year in files:
        heads, enc = read_header(path, encoding=d.get("encoding"), sheet=d.get("sheet"))
        normal = {H.normalize_header(H._unit_of(h)[0]) for h in heads}
        cmap = H.column_map(heads, year=year, rename=rename, rename_by_year=rename_by_year, defaults=defaults, where=str(path))
        used_keys.update(raw for raw in rename if raw in heads or H.normalize_header(H._unit_of(raw)[0]) in normal)
        for key, m in (rename_by_year or {}).items():
            lo, hi = H.parse_years(key)
            if year is not None and lo <= year <= hi:
                for raw in m or {}:
                    if str(raw) not in heads and H.normalize_header(H._unit_of(str(raw))[0]) not in normal:
                        close = H.suggest(None, m[raw], heads) or heads[:10]
                        raise ParameterError(f"data.rename_by_year[{key!r}] names column '{raw}' that {path} does not have; columns like it: {close}; it has {heads}")
        maps.append((heads, enc, cmap))
    unused = [k for k in rename if k not in used_keys]
    if unused:
        heads = maps[0][0]
        close = sorted({h for k in unused for h in difflib.get_close_matches(k, heads, n=3, cutoff=0.4)})
        hint = f"; headers like it: {close}" if close else ""
        if len(files) == 1:
            raise ParameterError(f"data.rename names column(s) {unused} that {files[0][0]} does not have{hint}; it has {heads}")
        raise ParameterError(f"data.rename names column(s) {unused} that none of the {len(files)} files of data.raw_firms has{hint}; {files[0][0].name} has {heads}")
    for (path, year), (heads, enc, cmap) in zip(files, maps):
        missing = [f for f in _REQUIRED if f not in cmap.fields and not (f == "year" and year is not None)]
        if missing:
            hints = "; ".join(f"{f}: maybe {H.suggest(None, f, cmap.unused)}" for f in missing if H.suggest(None, f, cmap.unused))
            raise SourceError(
                f"{path}: missing required column(s) {missing}; none of its headers is a known name for them "
                f"(known: {', '.join(f'{f}: ' + '/'.join(H.ASIF_HEADERS.get(f, (f,))[:4]) for f in missing)}). "
                f"{('Headers like them: ' + hints + '. ') if hints else ''}Its headers: {heads}. "
                f"Fix: map them in the parameter set, e.g. data.rename: {{'<header>': {missing[0]}}}"
                + (f" or data.rename_by_year: {{{year}: {{'<header>': {missing[0]}}}}}" if year else "")
            )
    for i, ((path, year), (heads, enc, cmap)) in enumerate(tqdm(list(zip(files, maps)), desc="reading firm files", unit="file", **progress_options(progress if len(files) > 1 else False))):
        kinds = {h: ("text" if f in H.TEXT_FIELDS else "label" if f in H.LABEL_FIELDS else "number") for f, h in cmap.fields.items()}
        raw, info = read_columns(path, kinds, encoding=enc or d.get("encoding"), sheet=d.get("sheet"))
        df = raw.rename(columns={h: f for f, h in cmap.fields.items()})
        if "year" in df and year is not None:
            bad = df["year"].notna() & (df["year"] != year)
            if bad.any():
                raise SourceError(f"{path}: the file is for {year} (by its name or data.raw_firms) but its year column says {sorted(df.loc[bad, 'year'].unique().tolist())[:5]} in {int(bad.sum())} rows. Fix: check the file, or name it by the right year")
        if "year" not in df:
            df["year"] = year
        elif df["year"].isna().any():
            bad = df["year"].isna()
            raise SourceError(f"{path}: column '{cmap.fields['year']}' (year) is missing in {int(bad.sum())} rows, e.g. rows {list(np.flatnonzero(bad.to_numpy())[:5] + 2)} of the file. Fix: fill it, or give one file per year")
        df["_file"] = i
        # money: units per field, the legacy scale, and the plausibility of the medians
        base, per = _units_for(d, year)
        for f in H.MONEY_FIELDS:
            if f not in df:
                continue
            unit = per.get(f) or cmap.units.get(f) or base
            src = "data.money_units" if f in per else "header" if f in cmap.units else "data.money_unit"
            if f in cmap.units and f in per and per[f] != cmap.units[f]:
                log.notice("money", f"{path.name}: '{cmap.fields[f]}' says {cmap.units[f]} in its header, data.money_units says {per[f]}; {per[f]} used")
            df[f] = to_thousand_yuan(df[f], unit)
            if scale != 1:
                df[f] = df[f] * scale
                unit, src = f"x{scale:g}", "data.money_scale"
            money_rows.append({"file": path.name, "year": year, "field": f, "header": cmap.fields[f], "unit": unit, "unit_from": src})
            if d.get("money_check", True):
                problem = money_check(df, f, unit)
                if problem:
                    money_problems.append(f"  {path.name}, column '{cmap.fields[f]}' ({f}): {problem}")
        frames.append(df)
        file_rows.append({"file": str(path.relative_to(root)) if path.is_relative_to(root) else str(path), "year": year, "format": info.format,
                          "encoding": info.encoding or "", "rows": len(df), "fields": len(cmap.fields), "unused_headers": "; ".join(cmap.unused)})
        col_rows += [{"file": path.name, "year": year, "field": f, "header": h, "by": "data.rename" if f in cmap.by_user else ("default" if h != f else "name")} for f, h in cmap.fields.items()]
        for note in cmap.notes + info.notes:
            log.notice("columns", f"{path.name}: {note}")
        if info.encoding and d.get("encoding") is None:
            detected.setdefault(info.encoding, []).append(path.name)
    for enc, names_ in detected.items():
        if enc != "utf-8":
            log.notice("encoding", f"encoding detected as {enc} (data.encoding: null) for {len(names_)} file(s): {', '.join(names_[:6])}{' ...' if len(names_) > 6 else ''}")
    if money_problems:
        raise SourceError(
            "money columns whose size does not fit their declared unit:\n" + "\n".join(money_problems[:20])
            + "\nFix: declare the unit of each money column, e.g. data.money_unit: yuan (all columns), data.money_units: {output: yuan} "
            "or per year: data.money_units: {'2011-2013': {all: yuan}}; data.money_check: false skips this check"
        )
    names = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p, _ in files]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    df["_file"] = pd.Categorical.from_codes(df["_file"].to_numpy(), categories=[Path(n).name for n in names])
    df["year"] = df["year"].astype(np.int64)
    log.step("read", "files", 0, len(df), f"{len(files)} file(s): {', '.join(Path(n).name for n in names[:4])}{' ...' if len(names) > 4 else ''}")
    log.table("files", pd.DataFrame(file_rows))
    log.table("columns", pd.DataFrame(col_rows))
    log.table("money_units", pd.DataFrame(money_rows, columns=["file", "year", "field", "header", "unit", "unit_from"]))
    log.facts.update({"files": names, "rows_read": len(df), "years": [int(df["year"].min()), int(df["year"].max())]})

    df = _ids(df, pad, log, linking=bool(d.get("link_firms")))
    df = _county(df, d.get("county") or {}, log)
    df = _industry(df, d.get("industry") or {}, log)
    df = _ownership(df, d.get("ownership") or {}, log)
    df = _duplicates(df, (d.get("clean") or {}).get("duplicates", "error"), log)
    if d.get("link_firms"):
        df = _link(df, d, log)
    else:
        log.step("link", "link_firms", len(df), len(df), "off: the identifier is taken as constant over time (data.link_firms: true links firms whose code changes, BVZ 2012)")
    df = _money_real(df, d, root, log)  # after the linking: a firm's capital stock runs across its code changes
    clean = {k: v for k, v in (d.get("clean") or {}).items() if k != "duplicates"}
    df = apply_rules(df, clean, log)
    df = _derive(df)
    keep = [c for c in _KEEP if c in df.columns]
    out = _sorted(df[keep])
    log.step("result", "firm-years", len(out), len(out), f"{out['firm_id'].nunique():,} firms, {out['year'].min()}-{out['year'].max()}")
    return out, log


# --------------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------------
_CODE_COLUMNS = ("firm_id", "county_code", "industry_code", "registration_type")


def _clean_id(x: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(x))).upper()


def _ids(df: pd.DataFrame, pad: dict[str, int], log: SourceLog, *, linking: bool) -> pd.DataFrame:
    """Identifiers: NFKC, no spaces, upper case; padded to a width where ``data.pad_ids`` says.

    The firm identifier is cleaned in Arrow over the whole column (it has as many distinct values
    as firms); the code columns once per distinct value. Firm-years without an identifier are
    dropped (listed) unless firms are linked, which can place them by name.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    unknown_pad = [k for k in pad if k not in _CODE_COLUMNS]
    if unknown_pad:
        raise ParameterError(f"data.pad_ids: {unknown_pad} are not identifier columns {list(_CODE_COLUMNS)}")
    for col in _CODE_COLUMNS:
        if col not in df:
            continue
        if col == "firm_id":
            a = V.arrow(df[col])
            a = pc.utf8_upper(pc.replace_substring_regex(pc.utf8_normalize(a, "NFKC"), r"\s+", ""))
            if col in pad:
                a = pc.if_else(pc.match_substring_regex(a, r"^[0-9]+$"), pc.utf8_lpad(a, pad[col], "0"), a)
            a = pc.if_else(pc.equal(a, ""), pa.scalar(None, pa.string()), a)
            df[col] = V.from_arrow(a, df.index)
        else:
            width = pad.get(col)
            df[col] = V.map_uniques(df[col], (lambda x, w=width: (_clean_id(x).zfill(w) if _clean_id(x).isdigit() else _clean_id(x)) if w else _clean_id(x)))
    if "firm_id" in df:
        miss = df["firm_id"].isna()
        if miss.any():
            n = len(df)
            if linking and "firm_name" in df:
                log.notice("ids", f"{int(miss.sum()):,} firm-years have no firm identifier; the linking places them by name and the other keys", rows=int(miss.sum()))
            else:
                df = df.loc[~miss]
                log.notice("ids", f"{int(miss.sum()):,} firm-years without a firm identifier dropped", rows=int(miss.sum()))
            log.step("recode", "firm_id", n, len(df), "firm-years without an identifier" + (" kept for the linking" if len(df) == n else " dropped"))
    return df


def _county(df: pd.DataFrame, opt: Mapping[str, Any], log: SourceLog) -> pd.DataFrame:
    vintage = int(opt.get("vintage", 2023))
    rec = county_to_vintage(df["county_code"], df["year"], vintage=vintage, split=opt.get("split", "first"))
    for note in rec.notes:
        log.notice("county", note)
    log.table("county_changes", rec.changes)
    log.table("county_unknown", rec.unknown)
    n = len(df)
    unknown = rec.codes.isna()
    if unknown.any():
        if opt.get("unknown", "error") == "error":
            top = rec.unknown.head(10)
            raise SourceError(
                f"county_code: {int(unknown.sum()):,} firm-years have county codes that GB/T 2260 (1981-2025, "
                f"data/external/county_codes_gbt2260.csv) and NBS 统计用区划代码 2023 do not know; the most common:\n"
                f"{top.to_string(index=False)}\nexample rows:\n{_examples(df, unknown, ['county_code'])}\n"
                "Fix: check the county column (6-digit 行政区划代码; it may hold another code, or lost leading digits), "
                "or drop these firm-years with data.county.unknown: drop (they are listed in 01_data)"
            )
        log.notice("county", f"{int(unknown.sum()):,} firm-years with county codes unknown to GB/T 2260 dropped (data.county.unknown: drop): {rec.unknown['code'].head(10).tolist()}", rows=int(unknown.sum()))
    changed = int(rec.changes["rows"].sum()) if len(rec.changes) else 0
    df["county_code_raw"] = df["county_code"]
    df["county_code"] = rec.codes
    df = df.loc[~unknown]
    log.step("recode", "county_code", n, len(df), f"GB/T 2260 codes brought to their {vintage} vintage: {changed:,} firm-years in {len(rec.changes)} changed codes; {int(unknown.sum()):,} unknown")
    return df


def _industry(df: pd.DataFrame, opt: Mapping[str, Any], log: SourceLog) -> pd.DataFrame:
    raw = df["industry_code"]
    digits = V.map_uniques(raw, _clean_one)
    lengths = V.map_uniques(digits, len, dtype=None)
    vintage = opt.get("vintage", "auto")
    n = len(df)
    df["industry_code_raw"] = raw
    if vintage in (None, "auto") and bool((lengths == 2).all()):
        rec = industry_to_cic2(digits, 2017, years=df["year"])
        how = "2-digit codes taken as GB/T 4754-2017 divisions (data.industry.vintage: auto and every code has 2 digits)"
    else:
        v = industry_vintages(df["year"], vintage)
        if (v == 0).any():
            yrs = sorted(df.loc[v == 0, "year"].unique().tolist())
            raise SourceError(
                f"industry_code: no GB/T 4754 vintage for the years {yrs[:10]} (codes like {digits[v == 0].dropna().unique()[:5].tolist()}); "
                "the concordance covers GB/T 4754-2002, -2011 and -2017, and data.industry.vintage: auto assigns them to 2003-2011, 2012-2017 and 2018 on. "
                "Fix: give the vintage of those years, e.g. data.industry.vintage: {'1998-2002': 2002, '2003-2011': 2002, '2012-2017': 2011, '2018-': 2017} "
                "(codes of GB/T 4754-1994 are closest to 2002), or harmonise the codes first"
            )
        rec = industry_to_cic2(digits, v, years=df["year"])
        how = "CIC codes mapped to 2-digit GB/T 4754-2017 through data/external/cic_concordance.csv, vintage " + (
            "by year as the NBS surveys used them (2002 for 2003-2011, 2011 for 2012-2017, 2017 from 2018)" if vintage in (None, "auto") else str(vintage))
        if vintage in (None, "auto"):
            log.notice("industry", "GB/T 4754 vintage of the codes assumed by year as the NBS surveys used them (data.industry.vintage: auto); give it if your files differ")
    log.table("industry", rec.table)
    unlisted = rec.codes.isna()
    if unlisted.any():
        share = float(unlisted.mean())
        top = rec.unlisted.sort_values("rows", ascending=False).head(10)
        if opt.get("unlisted", "drop") == "error" or share > float(opt.get("max_unlisted_share", 0.01)):
            raise SourceError(
                f"industry_code: {int(unlisted.sum()):,} firm-years ({share:.1%}) have codes that are not 2-, 3- or 4-digit CIC codes of their "
                f"GB/T 4754 vintage, so after recoding they are not 2-digit industries; the most common:\n{top.to_string(index=False)}\n"
                f"example rows:\n{_examples(df, unlisted, ['industry_code'])}\n"
                "Fix: give the right vintage per year (data.industry.vintage), check that the column holds CIC codes, "
                f"or drop the rows (data.industry.unlisted: drop; at most data.industry.max_unlisted_share = {opt.get('max_unlisted_share', 0.01)} of the rows)"
            )
        log.notice("industry", f"{int(unlisted.sum()):,} firm-years with industry codes the concordance does not list dropped: {top['code'].tolist()}", rows=int(unlisted.sum()))
    df["industry_code"] = rec.codes
    if rec.codes4 is not None and rec.codes4.notna().any():
        df["industry_code4"] = rec.codes4  # the firm's GB/T 4754-2017 class (data.treatment: core4)
    if unlisted.any():
        df = df.loc[~unlisted]
    split = rec.table[rec.table["rule"].str.startswith("split") & (rec.table["rows"] > 0)]
    if len(split):
        log.notice("industry", f"{int(split['rows'].sum()):,} firm-years in {len(split)} classes split across 2-digit industries by a later GB/T 4754: "
                 f"assigned by the rule of the concordance (e.g. {split['code'].iloc[0]} -> {split['cic2'].iloc[0]}, parts to {split['alternatives'].iloc[0]})",
                 rows=int(split["rows"].sum()))
    log.step("recode", "industry_code", n, len(df), how + f"; {int(unlisted.sum()):,} unlisted")
    return df


def _ownership(df: pd.DataFrame, opt: Mapping[str, Any], log: SourceLog) -> pd.DataFrame:
    n = len(df)
    if "registration_type" in df:
        sh = df["controlling_shareholder"] if opt.get("shareholder") and "controlling_shareholder" in df else None
        if opt.get("shareholder") and sh is None:
            raise SourceError("data.ownership.shareholder: true, but no file has the controlling shareholder (控股情况); map its column or switch the option off")
        rec = ownership_from_registration(df["registration_type"], sh)
        if "ownership" in df:
            log.notice("ownership", "the files have both an ownership column and the registration type; ownership is taken from the registration type")
        df["ownership"] = rec.ownership
        df["ownership_detail"] = rec.detail
        log.table("ownership", rec.table)
        unknown = rec.ownership.isna() & df["registration_type"].notna()
        if unknown.any():
            vals = df.loc[unknown, "registration_type"].value_counts().head(10)
            log.notice("ownership", f"{int(unknown.sum()):,} firm-years with registration types outside 1xx-3xx get no ownership: { {str(k): int(v) for k, v in vals.items()} }", rows=int(unknown.sum()))
        log.step("recode", "ownership", n, n, "from the registration type (登记注册类型; Brandt, Van Biesebroeck and Zhang 2012)" + (" refined by the controlling shareholder (Hsieh and Song 2015)" if sh is not None else ""))
    elif "ownership" in df:
        bad = df["ownership"].notna() & ~df["ownership"].isin(OWNERSHIP_VALUES)
        if bad.any():
            vals = df.loc[bad, "ownership"].astype(str).value_counts().head(10)
            raise SourceError(
                f"ownership: {int(bad.sum()):,} firm-years have values outside the contract's {list(OWNERSHIP_VALUES)}: { {str(k): int(v) for k, v in vals.items()} }; "
                f"example rows:\n{_examples(df, bad, ['ownership'])}\nFix: if the column holds registration types (登记注册类型, e.g. 110, 173, 310), "
                "map it to registration_type (data.rename: {'<header>': registration_type}) and ownership is derived; otherwise recode it to SOE / private / foreign"
            )
        log.step("recode", "ownership", n, n, "as given in the files (SOE / private / foreign)")
    return df


def _money_real(df: pd.DataFrame, d: Mapping[str, Any], root: Path, log: SourceLog) -> pd.DataFrame:
    n = len(df)
    prices = None
    if d.get("deflate"):
        prices = read_price_indices(_resolve(d["deflate"], root))
        df, table = deflate(df, prices, base_year=d.get("deflate_base_year"))
        log.table("deflation", table)
        lacking = table[table["rows_without_index"] > 0]
        if len(lacking):
            log.notice("deflation", f"firm-years without a price index (values set missing): {dict(zip(lacking['column'], lacking['rows_without_index']))}")
        log.step("money", "deflate", n, n, f"deflated to prices of {table['base_year'].iloc[0] if len(table) else '-'} by {d['deflate']}")
    else:
        log.step("money", "deflate", n, n, "off: money in current prices (data.deflate gives price indices)")
    how = d.get("capital") or "net_fixed_assets"
    if how == "perpetual_inventory":
        if "fixed_assets_original" not in df:
            raise SourceError("data.capital: perpetual_inventory needs fixed assets at original value (固定资产原价); no file has a column for it. Fix: map it (data.rename: {'<header>': fixed_assets_original}) or use data.capital: net_fixed_assets")
        pim = d.get("perpetual_inventory") or {}
        p_inv = None
        if prices is not None and "investment" in prices:
            yrs = pd.Series(sorted(prices["year"].unique()))
            base = d.get("deflate_base_year") or int(prices["year"].min())
            p_inv = pd.Series(relative_prices(prices, "investment", yrs, None, base_year=int(base)).to_numpy(), index=yrs.to_numpy())
        # the original value was deflated with the other money columns only if listed; deflate it here by the PIM
        if "capital" in df:
            df["net_fixed_assets"] = df["capital"]
        df["capital"] = perpetual_inventory(df, prices=p_inv, depreciation=float(pim.get("depreciation", 0.09)), initial_growth=pim.get("initial_growth"))
        lost = int(df["capital"].isna().sum() - df["fixed_assets_original"].isna().sum())
        log.step("money", "capital", n, n, f"perpetual inventory from fixed assets at original value (Brandt, Van Biesebroeck and Zhang 2012), depreciation {pim.get('depreciation', 0.09)}; "
                 f"{'first stock backcast at growth ' + str(pim.get('initial_growth')) if pim.get('initial_growth') is not None else 'first stock at its original value'}; {max(lost, 0):,} firm-years without a positive stock")
    elif how != "net_fixed_assets":
        raise ParameterError(f"data.capital must be 'net_fixed_assets' or 'perpetual_inventory', not {how!r}")
    return df


def _order(df: pd.DataFrame) -> np.ndarray:
    """Row positions ordering ``df`` by (firm_id, year) (Arrow's sort: fast on millions of text ids)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = pa.table({"firm_id": V.arrow(df["firm_id"]), "year": pa.array(df["year"].to_numpy())})
    return pc.sort_indices(t, sort_keys=[("firm_id", "ascending"), ("year", "ascending")]).to_numpy()


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` ordered by (firm_id, year), with a fresh RangeIndex."""
    order = _order(df)
    if len(order) < 2 or (order[1:] > order[:-1]).all():
        return df.reset_index(drop=True)
    return df.iloc[order].reset_index(drop=True)


def _same_as_previous(df: pd.DataFrame, order: np.ndarray) -> np.ndarray:
    """Positions (in ``order``) whose (firm_id, year) equals the previous one's."""
    import pyarrow.compute as pc

    fid = V.arrow(df["firm_id"]).take(order)
    yr = df["year"].to_numpy()[order]
    same = np.zeros(len(order), dtype=bool)
    if len(order) > 1:
        eq = pc.fill_null(pc.equal(fid[1:], fid[:-1]), False).to_numpy(zero_copy_only=False)
        same[1:] = eq & (yr[1:] == yr[:-1])
    return same


def _duplicates(df: pd.DataFrame, policy: str, log: SourceLog) -> pd.DataFrame:
    if policy not in ("error", "first", "largest"):
        raise ParameterError(f"data.clean.duplicates must be 'error', 'first' or 'largest', not {policy!r}")
    n = len(df)
    df = df.reset_index(drop=True)
    order = _order(df)
    same = _same_as_previous(df, order)
    if same.any():
        cols = [c for c in df.columns if c != "_file"]
        pos = np.flatnonzero(same)
        both = order[np.unique(np.r_[pos, pos - 1])]
        sub = df.iloc[np.sort(both)][cols]
        exact_rows = sub.index[sub.duplicated(keep="first").to_numpy()]
        if len(exact_rows):
            df = df.drop(index=exact_rows).reset_index(drop=True)
            order = _order(df)
            same = _same_as_previous(df, order)
    log.step("clean", "exact_duplicates", n, len(df), "rows repeated with the same values in every column")
    if same.any():
        dup_pos = same | np.r_[same[1:], False]
        dup = np.zeros(len(df), dtype=bool)
        dup[order[dup_pos]] = True
        if policy == "error":
            ex = df.iloc[order[dup_pos]]
            raise SourceError(
                f"duplicate firm-years: {int(dup.sum()):,} rows share (firm_id, year) with another row but differ in other columns; examples:\n"
                f"{_examples(ex, np.ones(len(ex), dtype=bool), ['firm_name', 'output', 'labor'])}\n"
                "Fix: check the identifier column (is it the legal-unit code?), or choose which row to keep: "
                "data.clean.duplicates: first (the first row read) or largest (the largest output)"
            )
        m = len(df)
        run = np.cumsum(~same) - 1  # one run per (firm_id, year), in sorted position
        if policy == "largest" and "output" in df:
            out_v = df["output"].fillna(-np.inf).to_numpy()[order]
            best_pos = pd.Series(out_v).groupby(run).idxmax().to_numpy()
        else:
            best_pos = pd.Series(order).groupby(run).idxmin().to_numpy()  # the first row read
        keep = np.zeros(len(df), dtype=bool)
        keep[order[best_pos]] = True
        df = df.loc[keep].reset_index(drop=True)
        log.step("clean", "duplicates", m, len(df), f"conflicting firm-years: kept the {policy} row (data.clean.duplicates)")
    return df


def _link(df: pd.DataFrame, d: Mapping[str, Any], log: SourceLog) -> pd.DataFrame:
    n = len(df)
    steps = list(d.get("link_steps") or ["id", "name", "legal_rep", "phone", "founding"])
    res = link_firms(df, steps=steps, max_gap=int(d.get("link_max_gap", 2)))
    df["firm_id_raw"] = df["firm_id"]
    df["firm_id"] = res.ids.to_numpy()
    log.table("links", res.matches)
    log.table("links_summary", res.summary.groupby("step", sort=False)["links"].sum().reset_index())
    changed = res.matches[res.matches["firm_id"].ne(res.matches["next_firm_id"]).to_numpy(dtype=bool)]
    by = res.summary.groupby("step", sort=False)["links"].sum().to_dict()
    skipped = [s for s in steps if s not in by]
    log.step("link", "link_firms", n, n, f"BVZ sequential matching: links by step {by}{f' (skipped, no columns: {skipped})' if skipped else ''}; {len(changed):,} links across an identifier change; "
             f"{df['firm_id_raw'].nunique():,} raw identifiers -> {df['firm_id'].nunique():,} firms", citation="Brandt, Van Biesebroeck and Zhang (2012)")
    return df


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    """Province and region from the county code, integer codes, numeric types, the SME flag."""
    df["county_code"] = df["county_code"].astype(np.int64)
    df["industry_code"] = df["industry_code"].astype(np.int64)
    if "province" not in df or "region" not in df:
        p = province_of(df["county_code"])
        for c in ("province", "region"):
            if c not in df:
                df[c] = p[c]
    for c in _INT_FIELDS:
        if c in df:
            s = df[c]
            whole = s.dropna()
            if not (whole == np.round(whole)).all():
                continue
            df[c] = s.astype(np.int64) if s.notna().all() else s.astype("Int64")
    for c in ("output", "value_added", "capital", "labor", "materials", "investment", "so2", "cod", "co2"):
        if c in df:
            df[c] = df[c].astype("float64")
    if "reports_emissions" in df:
        df["reports_emissions"] = _as_bool(df["reports_emissions"])
    if "sme" not in df and {"labor", "output"} <= set(df.columns):
        df["sme"] = (df["labor"] < SME_MAX_EMPLOYMENT) | (df["output"] < SME_MAX_OUTPUT)
    return df


def _as_bool(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s
    if pd.api.types.is_numeric_dtype(s):
        return s.fillna(0) != 0
    t = s.astype("str").str.strip().str.lower()
    return t.isin(["1", "true", "yes", "是", "y"])


def cluster_match_problem(firms: pd.DataFrame, clusters: pd.DataFrame, *, top: int = 8) -> str | None:
    """``None`` if some firm sits in a certified cell, else a message showing the most common county
    and industry codes of the firms and of the cluster list, so the mismatch is visible."""
    f = firms[["county_code", "industry_code"]]
    c = clusters[["county_code", "industry_code"]]
    keys_f = set(zip(f["county_code"].tolist(), f["industry_code"].tolist()))
    keys_c = set(zip(c["county_code"].tolist(), c["industry_code"].tolist()))
    if keys_f & keys_c:
        return None

    def common(df: pd.DataFrame, col: str) -> str:
        vc = df[col].value_counts().head(top)
        return ", ".join(f"{k} ({v:,})" for k, v in vc.items())

    counties_shared = len(set(f["county_code"]) & set(c["county_code"]))
    industries_shared = len(set(f["industry_code"]) & set(c["industry_code"]))
    return (
        "no firm matched to any certified cluster (clusters are matched on county_code x industry_code).\n"
        f"  firms:    most common county codes {common(f, 'county_code')}\n"
        f"            most common industry codes {common(f, 'industry_code')}\n"
        f"  clusters: most common county codes {common(c, 'county_code')}\n"
        f"            most common industry codes {common(c, 'industry_code')}\n"
        f"  {counties_shared} county codes and {industries_shared} industry codes appear on both sides, but no pair does.\n"
        "Fix: both sides need 6-digit GB/T 2260 county codes of one vintage (data.county.vintage) and 2-digit GB/T 4754-2017 "
        "industries (4-digit codes are recoded with data.industry.vintage); check the cluster list's columns and the files' years"
    )
