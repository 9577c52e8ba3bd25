"""Recodes from the firm files' codes to the panel contract: industry, ownership, county, money.

Each recode is a pure function that returns the new column *and* a table of what it did (which
codes went where, by which rule, in how many rows), so nothing is changed silently:

- :func:`industry_to_cic2`: 4-digit (or 3- or 2-digit) CIC codes of the GB/T 4754 vintage of each
  year (2002, 2011 or 2017) to the contract's 2-digit GB/T 4754-2017 industry, through
  ``data/external/cic_concordance.csv`` (built from the official correspondence tables; see
  ``data/external/README.md``). Codes the concordance does not list are returned as missing and
  listed.
- :func:`ownership_from_registration`: SOE / private / foreign from the registration type
  (登记注册类型), optionally refined by the controlling shareholder (控股情况).
- :func:`county_to_vintage`: 6-digit GB/T 2260 county codes of any year to one vintage, through the
  code changes of ``data/external/county_codes_gbt2260.csv`` (mergers, county-to-district
  conversions, renumbering). Unknown codes are listed.
- :func:`to_thousand_yuan`, :func:`money_check`, :func:`deflate` and :func:`perpetual_inventory`:
  money units, their plausibility, deflation by user price indices, and the real capital stock of
  Brandt, Van Biesebroeck and Zhang (2012).

Examples
--------
>>> import pandas as pd
>>> r = industry_to_cic2(pd.Series(["3130", "3130", "2614", "9999"]), pd.Series([2011, 2017, 2011, 2011]))
>>> r.codes.tolist()
[33, 31, 26, <NA>]
>>> r.unlisted[["code", "vintage", "rows"]].values.tolist()
[['9999', 2011, 1]]
>>> own = ownership_from_registration(pd.Series(["110", "173", "310", "230", "159"]))
>>> own.ownership.tolist()
['SOE', 'private', 'foreign', 'foreign', 'private']
>>> county_to_vintage(pd.Series(["320584", "320509"]), pd.Series([2010, 2013]), vintage=2023).codes.tolist()
['320509', '320509']
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.config import EXTERNAL, ParameterError
from analysis.sources._vector import factorize, map_uniques, take_str

__all__ = [
    "MONEY_UNITS",
    "NBS_VINTAGE_YEARS",
    "REGISTRATION_TYPES",
    "STATE_CODES",
    "VINTAGES",
    "CountyRecode",
    "IndustryRecode",
    "OwnershipRecode",
    "concordance",
    "county_table",
    "county_to_vintage",
    "deflate",
    "industry_to_cic2",
    "industry_vintages",
    "money_check",
    "ownership_from_registration",
    "perpetual_inventory",
    "province_of",
    "read_price_indices",
    "relative_prices",
    "to_thousand_yuan",
]

# --------------------------------------------------------------------------------------------
# industry
# --------------------------------------------------------------------------------------------
#: GB/T 4754 vintages the concordance covers
VINTAGES = (2002, 2011, 2017)
#: the vintage the NBS firm surveys used by year (``data.industry.vintage: auto``): GB/T 4754-2002
#: for 2003-2011, GB/T 4754-2011 for 2012-2017, GB/T 4754-2017 from 2018
NBS_VINTAGE_YEARS = {(2003, 2011): 2002, (2012, 2017): 2011, (2018, 9999): 2017}


@functools.cache
def concordance(path: Path | None = None) -> pd.DataFrame:
    """``data/external/cic_concordance.csv``: vintage, level, code -> 2-digit GB/T 4754-2017 ``cic2``."""
    df = pd.read_csv(path or EXTERNAL / "cic_concordance.csv", dtype=str, keep_default_na=False)
    df["vintage"] = df["vintage"].astype(int)
    return df


@dataclass
class IndustryRecode:
    """Result of :func:`industry_to_cic2`."""

    codes: pd.Series  #: 2-digit GB/T 4754-2017 industry (Int64; missing where the code is not listed)
    table: pd.DataFrame  #: every (code, vintage) seen: cic2, rule, alternatives, rows, years
    unlisted: pd.DataFrame  #: codes the concordance does not list: code, vintage, rows, years, example rows
    codes4: pd.Series | None = None  #: 4-digit GB/T 4754-2017 class (Int64) where the code is a 4-digit class


def _clean_one(x: str) -> str:
    return re.sub(r"\.0+$", "", re.sub(r"^[A-Ta-t](?=\d)", "", unicodedata.normalize("NFKC", str(x)).strip()))


def _clean_code(s: pd.Series) -> pd.Series:
    """Codes as written -> digits only: NFKC, a leading section letter (``C3130``) and a trailing ``.0`` dropped."""
    return map_uniques(s, _clean_one)


def _summary(key_codes: np.ndarray, years: pd.Series | None, n: int) -> tuple[np.ndarray, list[str] | None]:
    """Rows and year span of each key (codes 0..n-1)."""
    rows = np.bincount(key_codes, minlength=n)
    if years is None:
        return rows, None
    y = years.to_numpy()
    lo = pd.Series(y).groupby(key_codes).min().reindex(range(n)).to_numpy()
    hi = pd.Series(y).groupby(key_codes).max().reindex(range(n)).to_numpy()
    return rows, [f"{a}-{b}" if a != b else f"{a}" for a, b in zip(lo, hi)]


def industry_vintages(years: pd.Series, vintage: Any) -> pd.Series:
    """The GB/T 4754 vintage of each row from ``data.industry.vintage``.

    ``vintage`` is one vintage for all years (``2011``), a mapping of years or ranges to vintages
    (``{"2012-2017": 2011, "2018-": 2017}``), or ``"auto"``: the vintage the NBS surveys used in each
    year (:data:`NBS_VINTAGE_YEARS`). Years no rule covers get 0.

    Examples
    --------
    >>> industry_vintages(pd.Series([2010, 2015, 2020]), "auto").tolist()
    [2002, 2011, 2017]
    """
    from analysis.sources.headers import parse_years

    y = years.to_numpy()
    out = np.zeros(len(y), dtype=np.int64)
    if vintage in (None, "auto") or isinstance(vintage, Mapping):
        rules = NBS_VINTAGE_YEARS.items() if vintage in (None, "auto") else [(parse_years(k), v) for k, v in vintage.items()]
        # narrower ranges win: apply wide ones first
        for (lo, hi), v in sorted(rules, key=lambda kv: -(kv[0][1] - kv[0][0])):
            if int(v) not in VINTAGES:
                raise ParameterError(f"data.industry.vintage: {v} is not one of the GB/T 4754 vintages {VINTAGES}")
            out[(y >= lo) & (y <= hi)] = int(v)
    else:
        if int(vintage) not in VINTAGES:
            raise ParameterError(f"data.industry.vintage: {vintage} is not one of the GB/T 4754 vintages {VINTAGES}")
        out[:] = int(vintage)
    return pd.Series(out, index=years.index)


def industry_to_cic2(codes: pd.Series, vintages: pd.Series | int, *, years: pd.Series | None = None) -> IndustryRecode:
    """Map CIC codes of given GB/T 4754 vintages to 2-digit GB/T 4754-2017 industries.

    Parameters
    ----------
    codes : pandas.Series
        Industry codes as text: 4-digit classes (``3130``), 3-digit groups or 2-digit divisions; a
        leading section letter (``C3130``) is dropped.
    vintages : pandas.Series | int
        The GB/T 4754 vintage (2002, 2011 or 2017) of each row, or one for all rows.
    years : pandas.Series, optional
        Years of the rows, for the tables (optional).

    Returns
    -------
    IndustryRecode
        ``codes``: the 2-digit industry (Int64), missing where the (code, vintage) is not in the
        concordance; ``table``: what each (code, vintage) became and by which rule (``unique``,
        ``split: code kept``, ``split: first listed``, ``majority of classes``, ``identity``);
        ``unlisted``: the codes not found.
    """
    cidx, cuniq = factorize(codes)
    clean = np.array([_clean_one(u) for u in cuniq], dtype=object)
    v = np.full(len(codes), int(vintages), dtype=np.int64) if np.isscalar(vintages) else vintages.reindex(codes.index).to_numpy(dtype=np.int64)
    vv, vidx = np.unique(v, return_inverse=True)
    key = np.where(cidx < 0, -1, cidx * len(vv) + vidx)
    kidx, kuniq = pd.factorize(key)
    conc = concordance()
    lookup = {(vt, code): (cic2, rule, alt, c4) for vt, code, cic2, rule, alt, c4 in conc[["vintage", "code", "cic2", "rule", "alternatives", "cic4"]].itertuples(index=False)}
    rows_code, rows_vint, res = [], [], []
    for k in kuniq:
        if k < 0:
            cd, vt = None, None
        else:
            cd, vt = clean[k // len(vv)], int(vv[k % len(vv)])
        rows_code.append(cd)
        rows_vint.append(vt)
        res.append(lookup.get((vt, cd)) if cd is not None else None)
    cic2 = np.array([int(r[0]) if r else -1 for r in res], dtype=np.int64)
    out_vals = cic2[kidx]
    out = pd.Series(pd.array(np.where(out_vals < 0, 0, out_vals), dtype="Int64"), index=codes.index).mask(out_vals < 0)
    c4 = np.array([int(r[3]) if r and r[3] else -1 for r in res], dtype=np.int64)[kidx]
    out4 = pd.Series(pd.array(np.where(c4 < 0, 0, c4), dtype="Int64"), index=codes.index).mask(c4 < 0)
    rows, spans = _summary(kidx, years, len(kuniq))
    table = pd.DataFrame({"code": rows_code, "vintage": pd.array(rows_vint, dtype="Int64"), "cic2": pd.array(np.where(cic2 < 0, 0, cic2), dtype="Int64"),
                          "rule": [r[1] if r else "not listed" for r in res], "alternatives": [r[2] if r else "" for r in res], "rows": rows})
    table.loc[cic2 < 0, "cic2"] = pd.NA
    if spans is not None:
        table["years"] = spans
    table = table.sort_values(["vintage", "code"], na_position="last").reset_index(drop=True)
    unlisted = table[table["cic2"].isna()].drop(columns=["cic2", "rule", "alternatives"]).reset_index(drop=True)
    return IndustryRecode(out, table, unlisted, out4)


# --------------------------------------------------------------------------------------------
# ownership
# --------------------------------------------------------------------------------------------
#: registration types of state-owned firms (国有企业, 国有联营企业, 国有与集体联营企业, 国有独资公司)
STATE_CODES = frozenset({"110", "141", "143", "151"})
#: the NBS registration types (关于划分企业登记注册类型的规定, 国统字〔1998〕200号 and its 2011 revision)
REGISTRATION_TYPES: dict[str, str] = {
    "110": "国有企业", "120": "集体企业", "130": "股份合作企业", "140": "联营企业", "141": "国有联营企业", "142": "集体联营企业",
    "143": "国有与集体联营企业", "149": "其他联营企业", "150": "有限责任公司", "151": "国有独资公司", "159": "其他有限责任公司",
    "160": "股份有限公司", "170": "私营企业", "171": "私营独资企业", "172": "私营合伙企业", "173": "私营有限责任公司",
    "174": "私营股份有限公司", "190": "其他企业",
    "200": "港、澳、台商投资企业", "210": "合资经营企业(港或澳、台资)", "220": "合作经营企业(港或澳、台资)", "230": "港、澳、台商独资经营企业",
    "240": "港、澳、台商投资股份有限公司", "290": "其他港、澳、台商投资企业",
    "300": "外商投资企业", "310": "中外合资经营企业", "320": "中外合作经营企业", "330": "外资企业", "340": "外商投资股份有限公司",
    "390": "其他外商投资企业",
}  # fmt: skip
_REG_BY_NAME = {unicodedata.normalize("NFKC", v).replace("、", ""): k for k, v in REGISTRATION_TYPES.items()}
#: controlling shareholder (控股情况) codes of the NBS surveys
SHAREHOLDER = {"1": "state", "2": "collective", "3": "private", "4": "hmt", "5": "foreign", "9": "other"}
_CONTRACT = {"state": "SOE", "collective": "private", "private": "private", "hmt": "foreign", "foreign": "foreign"}


@dataclass
class OwnershipRecode:
    """Result of :func:`ownership_from_registration`."""

    ownership: pd.Series  #: SOE / private / foreign (missing where the code is unknown)
    detail: pd.Series  #: state / collective / private / hmt / foreign
    table: pd.DataFrame  #: registration type (and shareholder) -> ownership, rows


def _registration_one(x: str) -> str | None:
    t = re.sub(r"\.0+$", "", unicodedata.normalize("NFKC", str(x)).strip())
    if re.fullmatch(r"\d{3}", t):
        return t
    return _REG_BY_NAME.get(t.replace("、", ""))


def _registration_code(s: pd.Series) -> pd.Series:
    return map_uniques(s, _registration_one)


def ownership_from_registration(registration: pd.Series, shareholder: pd.Series | None = None) -> OwnershipRecode:
    """SOE / private / foreign from the registration type, optionally refined by the controlling shareholder.

    The grouping of Brandt, Van Biesebroeck and Zhang (2012, *J. Dev. Econ.* 97(2)) of the NBS
    registration types: state-owned are 110, 141, 143 and 151; other domestic types (1xx) are
    collective (120, 142) or private; 2xx are firms of Hong Kong, Macau and Taiwan investors and
    3xx foreign-invested firms (both ``foreign`` in the contract, ``hmt`` / ``foreign`` in
    ``detail``). Codes may also be given by their names (国有企业, 私营有限责任公司, ...).

    With ``shareholder`` (控股情况: 1 state, 2 collective, 3 private, 4 HMT, 5 foreign), a firm
    the state controls is an SOE whatever its registration, and a firm registered as state-owned
    but controlled by another shareholder takes that shareholder's group, as in Hsieh and Song
    (2015, *Brookings Papers on Economic Activity*), who define SOEs by registration or state control.

    Returns
    -------
    OwnershipRecode
        ``ownership`` (missing for codes outside 1xx-3xx, listed in ``table``), ``detail`` and
        ``table``.
    """
    ridx, runiq = factorize(registration)
    if shareholder is not None:
        sidx, suniq = factorize(shareholder.reindex(registration.index))
    else:
        sidx, suniq = np.full(len(registration), -1, dtype=np.int64), np.array([], dtype=object)
    ns = len(suniq) + 1
    key = (ridx + 1) * ns + (sidx + 1)
    kidx, kuniq = pd.factorize(key)
    regs, shs, codes, details = [], [], [], []
    for k in kuniq:
        r, sh = k // ns - 1, k % ns - 1
        raw = runiq[r] if r >= 0 else None
        code = _registration_one(raw) if raw is not None else None
        if code is None:
            det = None
        elif code in STATE_CODES:
            det = "state"
        elif code in ("120", "142"):
            det = "collective"
        else:
            det = {"1": "private", "2": "hmt", "3": "foreign"}.get(code[0])
        shv = suniq[sh] if sh >= 0 else None
        if shareholder is not None and shv is not None:
            who = SHAREHOLDER.get(_clean_one(shv)[:1])
            if who == "state":
                det = "state"
            elif det == "state" and who in ("collective", "private", "hmt", "foreign"):
                det = who
        regs.append(raw)
        shs.append(shv)
        codes.append(code)
        details.append(det)
    det_arr = np.array(details, dtype=object)
    own_arr = np.array([_CONTRACT.get(x) if x else None for x in details], dtype=object)
    ownership = take_str(own_arr, kidx, registration.index)
    detail = take_str(det_arr, kidx, registration.index)
    table = pd.DataFrame({"registration_type": [x if x is not None else "(missing)" for x in regs], "code": codes})
    if shareholder is not None:
        table["shareholder"] = shs
    table["ownership"] = [_CONTRACT.get(x) if x else None for x in details]
    table["detail"] = details
    table["rows"] = np.bincount(kidx, minlength=len(kuniq))
    table["name"] = table["code"].map(REGISTRATION_TYPES)
    return OwnershipRecode(ownership, detail, table.sort_values("rows", ascending=False).reset_index(drop=True))


# --------------------------------------------------------------------------------------------
# county
# --------------------------------------------------------------------------------------------
@functools.cache
def county_table() -> pd.DataFrame:
    """``data/external/county_codes_gbt2260.csv`` (every county-level code since 1981 and its successors)."""
    df = pd.read_csv(EXTERNAL / "county_codes_gbt2260.csv", dtype=str, keep_default_na=False)
    df["first_year"] = df["first_year"].astype(int)
    df["last_year"] = pd.to_numeric(df["last_year"].replace("", np.nan)).astype("Int64")
    return df


@functools.cache
def _county_records() -> dict[str, list[tuple[int, int | None, str, list[str]]]]:
    tab: dict[str, list] = {}
    for r in county_table().itertuples(index=False):
        tab.setdefault(r.county_code, []).append((r.first_year, None if pd.isna(r.last_year) else int(r.last_year), r.status, [x for x in r.successors.split(";") if x]))
    return tab


@functools.cache
def _statistical_codes() -> frozenset:
    """County-level codes of NBS 统计用区划代码 2023 (incl. development zones that GB/T 2260 lacks)."""
    return frozenset(pd.read_csv(EXTERNAL / "clusters_county_codes_nbs2023.csv", dtype=str)["county_code"])


@dataclass
class CountyRecode:
    """Result of :func:`county_to_vintage`."""

    codes: pd.Series  #: 6-digit codes of the target vintage (text); missing where unknown
    changes: pd.DataFrame  #: codes changed: code, years, new code, rule, rows
    unknown: pd.DataFrame  #: codes GB/T 2260 does not know: code, rows, years
    notes: list[str] = field(default_factory=list)


def _record(code: str, year: int, tab: dict[str, list[tuple[int, int | None, str, list[str]]]]):
    """The record of ``code`` in use in ``year`` (or the nearest one)."""
    recs = tab.get(code)
    if not recs:
        return None
    for first, last, status, succ in recs:
        if first <= year + 1 and (last is None or year <= last):
            return first, last, status, succ
    return min(recs, key=lambda r: min(abs(year - r[0]), abs(year - (r[1] or 9999))))


def county_to_vintage(codes: pd.Series, years: pd.Series, *, vintage: int = 2023, split: str = "first") -> CountyRecode:
    """Bring 6-digit county codes (GB/T 2260) of any year to the codes in use in year ``vintage``.

    A code whose unit was abolished or renumbered before ``vintage`` (a county turned district, two
    districts merged, a county moved to another prefecture) is followed along its successors in
    ``data/external/county_codes_gbt2260.csv`` until a code in use in ``vintage``. A unit split
    among several successors is ambiguous: ``split="first"`` takes the first successor and lists
    the rows, ``split="drop"`` leaves them missing. 12- or 9-digit codes (with township digits) are
    cut to their first six. Codes that GB/T 2260 never had (nor NBS 统计用区划代码 2023, which adds
    development zones) are missing and listed in ``unknown``.

    Parameters
    ----------
    codes : pandas.Series
        County codes as text.
    years : pandas.Series
        The year of each row (a code is read as of its year: codes are sometimes reused).
    vintage : int
        Target year of the codes (default 2023, the vintage of the cluster list).
    split : str
        ``"first"`` or ``"drop"``.
    """
    if split not in ("first", "drop"):
        raise ParameterError(f"data.county.split must be 'first' or 'drop', not {split!r}")
    tab = _county_records()
    stat = _statistical_codes()
    cidx, cuniq = factorize(codes)
    text = [unicodedata.normalize("NFKC", str(u)).strip() for u in cuniq]
    n_long = 0
    counts = np.bincount(cidx[cidx >= 0], minlength=len(cuniq))
    for i, t in enumerate(text):
        if len(t) in (9, 12) and t.isdigit():
            text[i] = t[:6]
            n_long += int(counts[i])
    notes = []
    if n_long:
        notes.append(f"{n_long:,} county codes had 9 or 12 digits (township codes): their first six digits are used")
    y = years.to_numpy(dtype=np.int64)
    y0 = int(y.min()) if len(y) else 0
    span = int(y.max()) - y0 + 1 if len(y) else 1
    key = np.where(cidx < 0, -1, cidx * span + (y - y0))
    kidx, kuniq = pd.factorize(key)
    code_of = [text[k // span] if k >= 0 else None for k in kuniq]
    year_of = [int(k % span + y0) if k >= 0 else None for k in kuniq]
    new, rule = [], []
    for code, year in zip(code_of, year_of):
        if code is None or not re.fullmatch(r"\d{6}", code):
            new.append(None)
            rule.append("not a 6-digit code")
            continue
        rec = _record(code, year, tab)
        if rec is None:
            new.append(code if code in stat else None)
            rule.append("NBS statistical code" if code in stat else "unknown")
            continue
        cur, steps, why = code, 0, "unchanged"
        while rec is not None and rec[1] is not None and rec[1] <= vintage and rec[2] != "in_use" and steps < 20:
            succ = rec[3]
            if not succ or succ == [cur]:
                break
            if len(succ) > 1:
                if split == "drop":
                    cur, why = None, f"split into {';'.join(succ)}: dropped"
                    break
                why = f"split into {';'.join(succ)}: first taken"
            else:
                why = "changed" if why == "unchanged" else why
            cur = succ[0]
            rec = _record(cur, rec[1], tab)
            steps += 1
        new.append(cur)
        rule.append(why)
    out = take_str(new, kidx, codes.index)
    uniq = pd.DataFrame({"code": code_of, "year": year_of, "new_code": new, "rule": rule, "rows": np.bincount(kidx[kidx >= 0], minlength=len(kuniq)) if len(kuniq) else []})
    agg = uniq.groupby(["code", "new_code", "rule"], dropna=False).agg(rows=("rows", "sum"), first_year=("year", "min"), last_year=("year", "max")).reset_index()
    changes = agg[(agg["new_code"] != agg["code"]) & agg["new_code"].notna()].reset_index(drop=True)
    unknown = agg[agg["new_code"].isna() & ~agg["rule"].str.endswith("dropped")].drop(columns="new_code").reset_index(drop=True)
    splits = agg[agg["rule"].str.startswith("split")]
    if len(splits):
        notes.append(f"{int(splits['rows'].sum()):,} rows in {len(splits)} county codes that were split among several successors ({split})")
    return CountyRecode(out, changes, unknown.sort_values("rows", ascending=False).reset_index(drop=True), notes)


@functools.cache
def _provinces() -> pd.DataFrame:
    return pd.read_csv(EXTERNAL / "provinces.csv", dtype={"province_code": str})


def province_of(county: pd.Series) -> pd.DataFrame:
    """``province`` (English name, as in the contract) and ``region`` (east / central / west) from county codes."""
    p = _provinces()
    two = pd.to_numeric(county, errors="coerce").to_numpy(dtype=float) // 10_000
    idx, uniq = pd.factorize(two)
    by = {int(c): (n, r) for c, n, r in zip(p["province_code"].astype(int), p["province_en"], p["region"])}
    names = np.array([by.get(int(u), (None, None))[0] if np.isfinite(u) else None for u in uniq], dtype=object)
    regions = np.array([by.get(int(u), (None, None))[1] if np.isfinite(u) else None for u in uniq], dtype=object)
    return pd.DataFrame({"province": take_str(names, idx, county.index), "region": take_str(regions, idx, county.index)}, index=county.index)


# --------------------------------------------------------------------------------------------
# money
# --------------------------------------------------------------------------------------------
#: units of money columns: how many thousand yuan one unit is (values are divided by the first number, multiplied by the second)
MONEY_UNITS = {"yuan": (1000.0, 1.0), "thousand": (1.0, 1.0), "ten_thousand": (1.0, 10.0), "hundred_million": (1.0, 100_000.0)}
#: plausible medians, thousand yuan per worker, of firms in the Chinese firm surveys (wide bands:
#: a column off by a factor of 1,000 falls outside them)
PER_WORKER = {"output": (10.0, 20_000.0), "value_added": (2.0, 10_000.0), "capital": (1.0, 20_000.0), "materials": (5.0, 20_000.0),
              "sales": (10.0, 20_000.0), "total_assets": (5.0, 40_000.0), "fixed_assets_original": (1.0, 30_000.0)}
#: plausible medians in thousand yuan when employment is missing (above-scale firms: revenue 5-20 m yuan and more)
LEVEL = {"output": (500.0, 5_000_000.0), "sales": (500.0, 5_000_000.0), "value_added": (100.0, 2_000_000.0),
         "capital": (50.0, 3_000_000.0), "materials": (300.0, 4_000_000.0), "total_assets": (500.0, 8_000_000.0)}


def to_thousand_yuan(values: pd.Series, unit: str) -> pd.Series:
    """Money in ``unit`` (``yuan``, ``thousand``, ``ten_thousand``, ``hundred_million``) in thousand yuan.

    Yuan are divided by 1,000 (not multiplied by 0.001), so whole thousands come back exactly.

    Examples
    --------
    >>> to_thousand_yuan(pd.Series([2500.0, 1.0]), "yuan").tolist(), to_thousand_yuan(pd.Series([3.0]), "ten_thousand").tolist()
    ([2.5, 0.001], [30.0])
    """
    if unit not in MONEY_UNITS:
        raise ParameterError(f"money unit '{unit}' is not one of {sorted(MONEY_UNITS)}")
    div, mul = MONEY_UNITS[unit]
    out = values.astype("float64")
    if div != 1.0:
        out = out / div
    if mul != 1.0:
        out = out * mul
    return out


def money_check(df: pd.DataFrame, column: str, unit: str, *, labor: str = "labor") -> str | None:
    """``None`` if the column's median (in thousand yuan, per worker when employment is there) is
    plausible for Chinese firm data, else a sentence saying which unit it looks like.

    A column read in the wrong unit is off by a factor of 1,000 (yuan for thousand yuan) or 10
    (ten thousand); the bands of :data:`PER_WORKER` and :data:`LEVEL` are wide enough for any
    year of the surveys and narrow enough to catch the factor of 1,000.
    """
    x = df[column].to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x) & (x > 0)
    if labor in df and column in PER_WORKER:
        lab = df[labor].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(lab) & (lab > 0)
        if ok.sum() < 20:
            return None
        med = float(np.median(x[ok] / lab[ok]))
        lo, hi = PER_WORKER[column]
        what = f"median {med:,.3g} thousand yuan per worker"
    elif column in LEVEL:
        if ok.sum() < 20:
            return None
        med = float(np.median(x[ok]))
        lo, hi = LEVEL[column]
        what = f"median {med:,.3g} thousand yuan per firm"
    else:
        return None
    if lo <= med <= hi:
        return None
    looks = "yuan (1,000 times too large)" if med > hi else "ten thousand yuan or more (too small)"
    if med < lo and med * 1000 >= lo:
        looks = "thousand yuan read as yuan (1,000 times too small)"
    return f"{what} after reading it as {unit}; plausible: {lo:,.0f}-{hi:,.0f}. It looks like {looks}"


def read_price_indices(path: str | Path) -> pd.DataFrame:
    """Price indices: ``year``, optionally ``industry_code`` (2-digit GB/T 4754-2017), and any of
    ``output``, ``inputs``, ``investment`` (price levels, any base year).

    Raises
    ------
    ParameterError
        If the file lacks ``year`` or every index column, or repeats a (year, industry).
    """
    from analysis.io import read_table

    p = Path(path)
    df = read_table(p)
    if "year" not in df or not {"output", "inputs", "investment"} & set(df.columns):
        raise ParameterError(f"{p}: price indices need a 'year' column and at least one of 'output', 'inputs', 'investment'; it has {list(df.columns)}")
    keys = ["year"] + (["industry_code"] if "industry_code" in df else [])
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        raise ParameterError(f"{p}: price indices repeat {keys}: rows {list(df.index[dup][:5])}")
    return df


#: which index deflates which column
DEFLATOR_OF = {"output": "output", "value_added": "output", "sales": "output", "materials": "inputs", "capital": "investment", "investment": "investment"}


def relative_prices(indices: pd.DataFrame, name: str, years: pd.Series, industries: pd.Series | None = None, *, base_year: int) -> pd.Series:
    """Price level of index ``name`` in each row's year relative to ``base_year`` (by industry where
    the indices have one for the row's industry, else the all-industry index); missing if none."""
    ix = indices.dropna(subset=[name])
    if "industry_code" in ix:
        spec_rows = ix[ix["industry_code"].notna()]
        gen = ix[ix["industry_code"].isna()].set_index("year")[name]
    else:
        spec_rows = ix.iloc[0:0]
        gen = ix.set_index("year")[name]
    rel = pd.Series(np.nan, index=years.index)
    if len(gen):
        if base_year not in gen.index:
            raise ParameterError(f"price index '{name}' has no value for the base year {base_year}")
        rel = years.map(gen / gen[base_year]).astype(float)
    if len(spec_rows) and industries is not None:
        spec = spec_rows.assign(industry_code=spec_rows["industry_code"].astype(int)).set_index(["industry_code", "year"])[name]
        base = spec.xs(base_year, level="year") if base_year in spec.index.get_level_values("year") else pd.Series(dtype=float)
        ind = industries.astype("Int64").fillna(-1).astype(int)
        level = pd.Series(spec.reindex(pd.MultiIndex.from_arrays([ind.to_numpy(), years.to_numpy()])).to_numpy(), index=years.index)
        spec_rel = level / ind.map(base).astype(float)
        rel = spec_rel.where(spec_rel.notna(), rel)
    return rel


def deflate(df: pd.DataFrame, indices: pd.DataFrame, *, base_year: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deflate money columns to prices of ``base_year``: output, value added and sales by the output
    index, materials by the input index, net fixed assets and investment by the investment index.

    Indices by industry (a column ``industry_code``) are used for the industries they list; other
    industries get the all-industry index (rows without industry) if the file has one. Firm-years
    whose year (or industry) has no index get missing values and are counted.

    Returns
    -------
    (DataFrame, DataFrame)
        The deflated frame and a table: column, index, base year, rows deflated, rows without an index.

    Examples
    --------
    >>> idx = pd.DataFrame({"year": [2010, 2011], "output": [100.0, 110.0]})
    >>> out, tab = deflate(pd.DataFrame({"year": [2010, 2011], "output": [50.0, 55.0]}), idx)
    >>> out["output"].round(9).tolist(), tab["rows_deflated"].tolist()
    ([50.0, 50.0], [2])
    """
    out = df.copy()
    base_year = int(indices["year"].min()) if base_year is None else int(base_year)
    rows = []
    for col, idx_name in DEFLATOR_OF.items():
        if col not in out or idx_name not in indices:
            continue
        rel = relative_prices(indices, idx_name, out["year"], out.get("industry_code"), base_year=base_year)
        have = out[col].notna()
        missing = have & rel.isna()
        out[col] = out[col] / rel
        rows.append({"column": col, "index": idx_name, "base_year": base_year, "rows_deflated": int((have & ~missing).sum()), "rows_without_index": int(missing.sum())})
    return out, pd.DataFrame(rows, columns=["column", "index", "base_year", "rows_deflated", "rows_without_index"])


def perpetual_inventory(
    df: pd.DataFrame,
    *,
    prices: pd.Series | None = None,
    depreciation: float = 0.09,
    initial_growth: float | pd.Series | None = None,
    firm: str = "firm_id",
    year: str = "year",
    original: str = "fixed_assets_original",
    founding: str = "founding_year",
) -> pd.Series:
    """Real capital stock by perpetual inventory, following Brandt, Van Biesebroeck and Zhang (2012).

    Nominal investment is the change in fixed assets at original value (固定资产原价) between a
    firm's observations (spread evenly over the years of a gap); real investment divides it by the
    investment price index of its year; ``K_t = (1 - depreciation) K_{t-1} + I_t / P_t``.

    The first observed stock: with ``initial_growth`` ``g`` (a number, or one per row, e.g. by
    province and industry as BVZ estimate it from the 1993 survey), the firm's original-value
    stock is taken to have grown at ``g`` a year since its founding year, so the stock at founding
    and each year's investment until the first observation are backed out, deflated by the index
    of their own year and accumulated as above (BVZ's procedure). Without ``initial_growth`` the
    first observed original value is deflated by the index of its year.

    Parameters
    ----------
    df : pandas.DataFrame
        Firm-years with ``firm``, ``year``, ``original`` (thousand yuan) and, for the backcast,
        ``founding``.
    prices : pandas.Series, optional
        Investment price index by year, relative to the base year (years outside it take its
        first or last value); ``None``: no deflation.
    depreciation : float
        Yearly rate (BVZ: 9 %).
    initial_growth : float | pandas.Series, optional
        ``g`` for the backcast of the first stock; ``None``: no backcast.

    Returns
    -------
    pandas.Series
        Real capital (missing where the original value is missing or the stock would not be positive).

    Examples
    --------
    >>> d = pd.DataFrame({"firm_id": [1, 1, 1], "year": [2001, 2002, 2003], "fixed_assets_original": [100.0, 150.0, 150.0]})
    >>> perpetual_inventory(d, depreciation=0.1).round(6).tolist()
    [100.0, 140.0, 126.0]
    """
    if prices is None:
        price_at = lambda y: np.ones(np.shape(y))
    else:
        pr = prices.dropna().sort_index()
        years_known = pr.index.to_numpy(dtype=np.int64)
        vals = pr.to_numpy(dtype=float)

        def price_at(y):
            pos = np.clip(np.searchsorted(years_known, np.asarray(y, dtype=np.int64)), 0, len(years_known) - 1)
            exact = years_known[pos] == y
            # outside the index's years: its first or last value
            return np.where(exact, vals[pos], np.where(np.asarray(y) < years_known[0], vals[0], vals[-1]))

    order = np.lexsort((df[year].to_numpy(), df[firm].to_numpy()))
    d = df.iloc[order]
    b = d[original].to_numpy(dtype=float)
    yr = d[year].to_numpy(dtype=np.int64)
    fid = d[firm].to_numpy()
    new_firm = np.r_[True, fid[1:] != fid[:-1]] if len(d) else np.zeros(0, dtype=bool)
    keep = 1.0 - depreciation
    k = np.full(len(d), np.nan)
    rows = np.flatnonzero(new_firm)
    if initial_growth is None:
        k[rows] = b[rows] / price_at(yr[rows])
    else:
        g = np.full(len(d), float(initial_growth)) if np.ndim(initial_growth) == 0 else initial_growth.reindex(df.index).to_numpy(dtype=float)[order]
        f_year = d[founding].to_numpy(dtype=float) if founding in d else np.full(len(d), np.nan)
        ok = np.isfinite(f_year) & (f_year >= 1949) & (f_year <= yr)
        age = np.where(ok, yr - np.nan_to_num(f_year), 0).astype(np.int64)[rows]
        gg = np.nan_to_num(g[rows])
        b0 = b[rows] / (1 + gg) ** age
        k0 = np.zeros(len(rows))
        start = yr[rows] - age
        for s in range(int(age.max(initial=0)) + 1):
            active = s <= age
            inv = b0 if s == 0 else b0 * (1 + gg) ** (s - 1) * gg
            k0 = np.where(active, k0 * (keep if s > 0 else 1.0) + inv / price_at(start + s), k0)
        k[rows] = k0
    if len(d):
        start_of = np.maximum.accumulate(np.where(new_firm, np.arange(len(d)), 0))
        pos = np.arange(len(d)) - start_of
        for j in range(1, int(pos.max()) + 1):
            r = np.flatnonzero(pos == j)
            gap = np.maximum(yr[r] - yr[r - 1], 1)
            inv = (b[r] - b[r - 1]) / gap
            kk = k[r - 1] * keep**gap
            # a gap's investment is spread evenly over its years, each deflated by its own year's index
            for lag in range(int(gap.max(initial=1))):
                on = lag < gap
                kk = kk + np.where(on, keep**lag * inv / price_at(yr[r] - lag), 0.0)
            k[r] = kk
    k = np.where(np.isfinite(k) & (k > 0), k, np.nan)
    out = np.empty(len(d))
    out[order] = k
    return pd.Series(out, index=df.index)
