"""Which column of a firm file is which field: the common headers of the classic firm surveys, and the
user's column maps (for all files, or per year or range of years).

The Annual Survey of Industrial Firms (ASIF, 规模以上工业企业数据库) changes its headers across
years: 法人代码 / 组织机构代码, 行业代码 / 国民经济行业代码, 工业总产值(当年价格) / 工业总产值_当年价格,
全部从业人员年平均人数 / 从业人数 and so on. :data:`ASIF_HEADERS` lists, for every field the
pipeline uses, the headers recognised by default (``data.headers: asif``), in order of preference:
when a file has several of them, the first is used and the others are listed. Headers are compared
after :func:`analysis.sources.read.normalize_header` (full-width to half-width, no spaces, brackets
or underscores) with a unit suffix such as ``(千元)`` taken off and kept as the column's unit.

User maps come first: ``data.rename`` (raw header -> field, every file) and ``data.rename_by_year``
(``{2004: {...}, "2008-2013": {...}}``, the files of those years), so a header the defaults do not
know, or know under another meaning, is mapped by the user. ``data/README.md`` lists the defaults
(a test keeps the list in step).

Examples
--------
>>> cmap = column_map(["法人代码", "工业总产值(当年价格)(千元)", "从业人数", "备注"], year=2004)
>>> cmap.fields
{'firm_id': '法人代码', 'output': '工业总产值(当年价格)(千元)', 'labor': '从业人数'}
>>> cmap.units, cmap.unused
({'output': 'thousand'}, ['备注'])
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis.config import ParameterError
from analysis.sources.read import normalize_header

__all__ = ["ASIF_HEADERS", "FIELDS", "MONEY_FIELDS", "TEXT_FIELDS", "UNIT_SUFFIXES", "ColumnMap", "column_map", "for_year", "parse_years"]

#: fields of the firm files and what they are (contract columns and the raw fields recodes use)
FIELDS: dict[str, str] = {
    "firm_id": "legal-unit code (法人代码) or another firm identifier",
    "firm_name": "firm name",
    "former_names": "former firm names (';'-separated), for linking patents and pollution records",
    "county_name": "county name, for linking records by address",
    "year": "survey year",
    "county_code": "6-digit administrative code (GB/T 2260) of the firm's county",
    "industry_code": "industry code (CIC, GB/T 4754; 2, 3 or 4 digits)",
    "registration_type": "registration type (登记注册类型), 3-digit code",
    "controlling_shareholder": "controlling shareholder (控股情况), 1-digit code",
    "ownership": "SOE / private / foreign, if the file has it already",
    "founding_year": "founding year (开业年份)",
    "founding_month": "founding month",
    "output": "gross industrial output, current prices",
    "value_added": "industrial value added",
    "capital": "net fixed assets",
    "fixed_assets_original": "fixed assets at original value (固定资产原价), for the perpetual inventory",
    "fixed_assets_total": "total fixed assets",
    "labor": "employment, annual average",
    "materials": "intermediate inputs",
    "investment": "investment in fixed assets",
    "sales": "sales (main business revenue)",
    "total_assets": "total assets",
    "current_assets": "current (liquid) assets",
    "accumulated_depreciation": "accumulated depreciation",
    "current_depreciation": "depreciation of the year",
    "legal_rep": "legal representative (法定代表人)",
    "phone": "telephone number",
    "area_code": "long-distance area code (长途区号)",
    "town": "town or street (乡镇)",
    "main_product": "main product",
    "province": "province",
    "patents_invention": "invention patent applications",
    "patents_utility": "utility-model applications",
    "patents_design": "design applications",
    "reports_emissions": "in the environmental statistics survey",
    "so2": "SO2 emitted, tonnes",
    "cod": "COD discharged, tonnes",
    "co2": "CO2 emitted, tonnes",
}
#: fields read as text (identifiers and codes keep their leading zeros)
TEXT_FIELDS = frozenset({"firm_id", "firm_name", "former_names", "county_name", "county_code", "industry_code", "registration_type", "controlling_shareholder",
                         "legal_rep", "phone", "area_code", "town", "main_product"})
#: fields read as categories (Stata value labels applied)
LABEL_FIELDS = frozenset({"ownership", "province"})
#: money fields (converted to thousand yuan)
MONEY_FIELDS = ("output", "value_added", "capital", "fixed_assets_original", "fixed_assets_total", "materials", "investment",
                "sales", "total_assets", "current_assets", "accumulated_depreciation", "current_depreciation")

#: default headers by field, in order of preference (as written in ASIF files; compared normalised)
ASIF_HEADERS: dict[str, tuple[str, ...]] = {
    "firm_id": ("法人代码", "法人单位代码", "组织机构代码", "企业代码", "法人码", "frdm"),
    "firm_name": ("法人单位名称", "单位名称", "企业名称", "单位详细名称", "详细名称"),
    "former_names": ("曾用名", "企业曾用名"),
    "county_name": ("区县名称", "县区名称"),
    "year": ("年份", "年度", "年", "year"),
    "county_code": ("行政区划代码", "行政区划", "区划代码", "地区代码", "省地县码", "县代码", "区县代码", "所在地区代码", "地址代码"),
    "industry_code": ("行业代码", "国民经济行业代码", "国民经济行业分类代码", "行业小类代码", "行业类别代码", "四位数行业代码", "行业小类"),
    "registration_type": ("登记注册类型", "登记注册类型代码", "企业登记注册类型", "注册类型"),
    "controlling_shareholder": ("控股情况", "企业控股情况", "控股类型"),
    "founding_year": ("开业年份", "开业时间年", "开业成立时间年", "开工时间年", "成立年份", "开业年"),
    "founding_month": ("开业月份", "开业时间月", "开业成立时间月", "开工时间月", "开业月"),
    "output": ("工业总产值当年价格", "工业总产值现价", "工业总产值现行价", "工业总产值"),
    "value_added": ("工业增加值", "工业增加值当年价格"),
    "capital": ("固定资产净值年平均余额", "固定资产净值", "固定资产净额", "固定资产净值平均余额"),
    "fixed_assets_original": ("固定资产原价", "固定资产原值", "固定资产原价合计"),
    "fixed_assets_total": ("固定资产合计",),
    "labor": ("全部从业人员年平均人数", "从业人员年平均人数", "从业人员平均人数", "从业人数", "年末从业人员合计", "从业人员合计", "全部职工"),
    "materials": ("工业中间投入合计", "中间投入合计", "工业中间投入"),
    "sales": ("主营业务收入", "产品销售收入", "营业收入"),
    "total_assets": ("资产总计", "资产合计", "资产总额"),
    "current_assets": ("流动资产合计", "流动资产"),
    "accumulated_depreciation": ("累计折旧",),
    "current_depreciation": ("本年折旧", "当年折旧"),
    "legal_rep": ("法定代表人", "法人代表", "法人代表姓名", "法定代表人姓名"),
    "phone": ("电话号码", "联系电话", "固定电话"),
    "area_code": ("长途区号", "区号"),
    "town": ("乡镇街道", "乡镇", "乡镇名称", "街道办事处"),
    "main_product": ("主要产品名称", "主要产品", "主要产品1", "主要业务活动"),
}
#: unit suffixes of money headers, e.g. 工业总产值(千元)
UNIT_SUFFIXES = {"千元": "thousand", "万元": "ten_thousand", "元": "yuan", "亿元": "hundred_million"}
_UNIT_RE = re.compile(r"[（(]\s*(千元|万元|亿元|元)\s*[)）]\s*$")

_NORMAL = {field: [normalize_header(h) for h in headers] for field, headers in ASIF_HEADERS.items()}


@dataclass
class ColumnMap:
    """The fields found in one file: field -> raw header, units from header suffixes, what is left."""

    fields: dict[str, str]
    units: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    by_user: set[str] = field(default_factory=set)


def parse_years(key: Any) -> tuple[int, int]:
    """A year or a range of years as written in a parameter set: ``2004``, ``"2008-2013"``, ``"2014-"``.

    Examples
    --------
    >>> parse_years(2004), parse_years("2008-2013"), parse_years("2018-")
    ((2004, 2004), (2008, 2013), (2018, 9999))
    """
    text = str(key).strip()
    m = re.fullmatch(r"(\d{4})\s*(?:-\s*(\d{4})?)?", text)
    if not m:
        raise ParameterError(f"'{key}' is not a year or a range of years (write 2004, '2008-2013' or '2018-')")
    lo = int(m.group(1))
    hi = lo if "-" not in text else int(m.group(2) or 9999)
    if hi < lo:
        raise ParameterError(f"'{key}': the range ends before it starts")
    return lo, hi


def for_year(by_year: Mapping[Any, Any] | None, year: int | None) -> list[Any]:
    """The values of a per-year mapping whose keys cover ``year`` (narrowest range last, so it wins)."""
    if not by_year or year is None:
        return []
    hits = []
    for key, value in by_year.items():
        lo, hi = parse_years(key)
        if lo <= year <= hi:
            hits.append((-(hi - lo), value))
    return [v for _, v in sorted(hits, key=lambda kv: kv[0])]


def _unit_of(header: str) -> tuple[str, str | None]:
    text = unicodedata.normalize("NFKC", header)
    m = _UNIT_RE.search(text)
    if not m:
        return header, None
    return text[: m.start()], UNIT_SUFFIXES[m.group(1)]


def column_map(
    headers: list[str],
    *,
    year: int | None = None,
    rename: Mapping[str, str] | None = None,
    rename_by_year: Mapping[Any, Mapping[str, str]] | None = None,
    defaults: bool = True,
    where: str = "file",
) -> ColumnMap:
    """Map a file's headers to fields: the user's maps first, then the ASIF defaults, then exact field names.

    Parameters
    ----------
    headers : list[str]
        The file's column names.
    year : int, optional
        The file's year (for ``rename_by_year``); ``None`` for a file holding all years.
    rename, rename_by_year : mapping, optional
        ``data.rename`` and ``data.rename_by_year`` of the parameter set (raw header -> field).
    defaults : bool
        Recognise the headers of :data:`ASIF_HEADERS` (``data.headers: asif``).
    where : str
        The file, quoted in messages.

    Raises
    ------
    ParameterError
        If a user's map sends two headers to the same field.
    """
    user: dict[str, str] = dict(rename or {})
    for m in for_year(rename_by_year, year):
        user.update(m or {})
    out = ColumnMap(fields={})
    present = {h: h for h in headers}
    norm = {}
    for h in headers:
        base, unit = _unit_of(h)
        norm.setdefault(normalize_header(base), h)
        if unit:
            out.units[h] = unit
    taken: set[str] = set()
    for raw, fld in user.items():
        h = present.get(str(raw)) or norm.get(normalize_header(_unit_of(str(raw))[0]))
        if h is None:
            continue  # the caller checks that every key of the user's maps matched some file
        if fld in out.fields and out.fields[fld] != h:
            raise ParameterError(f"{where}: the column maps send both '{out.fields[fld]}' and '{h}' to '{fld}'; keep one")
        out.fields[fld] = h
        out.by_user.add(fld)
        taken.add(h)
    for h in headers:  # headers already named as fields
        if h in FIELDS and h not in out.fields and h not in taken:
            out.fields[h] = h
            taken.add(h)
    if defaults:
        for fld, variants in _NORMAL.items():
            found = [norm[v] for v in variants if v in norm and norm[v] not in taken]
            if not found or fld in out.fields:
                if found and fld in out.fields:
                    out.notes.append(f"{fld}: '{out.fields[fld]}' used; also found {found} (not used)")
                continue
            out.fields[fld] = found[0]
            taken.add(found[0])
            if len(found) > 1:
                out.notes.append(f"{fld}: '{found[0]}' used; also found {found[1:]} (not used)")
    out.units = {f: out.units[h] for f, h in out.fields.items() if h in out.units}
    out.unused = [h for h in headers if h not in taken]
    return out


def suggest(header: str | None, field_name: str, headers: list[str]) -> list[str]:
    """Headers of a file that look like a field's known headers (for error messages)."""
    known = [normalize_header(v) for v in ASIF_HEADERS.get(field_name, ())] + [normalize_header(field_name)]
    scored = []
    for h in headers:
        n = normalize_header(_unit_of(h)[0])
        score = max((difflib.SequenceMatcher(None, n, k).ratio() for k in known), default=0.0)
        if score >= 0.5:
            scored.append((score, h))
    return [h for _, h in sorted(scored, reverse=True)[:3]]
