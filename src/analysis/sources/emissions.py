"""Firm-year pollution records (environmental statistics survey, permits, monitoring) linked to firms.

:func:`read_emission_records` reads a file with one row per firm (or plant) and year, pollutant
amounts in columns (``so2, cod, co2``; Chinese headers 二氧化硫, 化学需氧量, 二氧化碳 recognised),
and converts them to tonnes: the unit comes from a ``unit`` column (one per row), or from the
``units`` parameter (one for the file or one per pollutant). :func:`link_emissions` links records
by ``firm_id`` where present, else by normalised name within the county
(:func:`analysis.sources.names.link_by_name`), sums the records of a firm-year (several plants)
and writes the same :class:`~analysis.sources.names.LinkageReport` as the patent linkage.
:meth:`EmissionLinkage.to_panel` sets ``reports_emissions`` (the firm-year is in the records).

Examples
--------
>>> import pandas as pd
>>> rec = pd.DataFrame({"企业名称": ["甲化工有限公司"], "county_code": [110101], "year": [2020],
...                     "so2": [1500.0], "unit": ["kg"]})
>>> firms = pd.DataFrame({"firm_id": [1], "firm_name": ["甲化工有限责任公司"], "county_code": [110101]})
>>> link_emissions(read_emission_records(rec), firms).emissions[["firm_id", "year", "so2"]].values.tolist()
[[1.0, 2020.0, 1.5]]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.domain import POLLUTANTS
from analysis.io import read_table
from analysis.sources.names import (
    LinkageError,
    LinkageReport,
    firm_keys,
    fuzzy_candidates,
    link_by_name,
    name_key,
)

__all__ = ["POLLUTANTS", "UNITS", "EmissionLinkage", "link_emissions", "read_emission_records", "to_tonnes"]

#: Pollutants the panel carries (tonnes a year).

#: Unit spellings -> factor to tonnes.
UNITS: dict[str, float] = {
    "kg": 1e-3, "千克": 1e-3, "公斤": 1e-3, "kilogram": 1e-3, "kilograms": 1e-3,
    "t": 1.0, "tonne": 1.0, "tonnes": 1.0, "ton": 1.0, "tons": 1.0, "吨": 1.0,
    "10kt": 1e4, "万吨": 1e4, "ten-thousand tonnes": 1e4, "ten thousand tonnes": 1e4, "10^4 t": 1e4,
}  # fmt: skip

_HEADERS = {
    "so2": ("so2", "二氧化硫", "二氧化硫排放量"),
    "cod": ("cod", "化学需氧量", "化学需氧量排放量"),
    "co2": ("co2", "二氧化碳", "二氧化碳排放量"),
    "firm_name": ("firm_name", "name", "企业名称", "单位名称"),
    "firm_id": ("firm_id",),
    "county_code": ("county_code", "县代码", "区县代码"),
    "year": ("year", "年份"),
    "unit": ("unit", "units", "单位", "计量单位"),
    "address": ("address", "地址"),
}


def to_tonnes(values: pd.Series, units: pd.Series | str) -> pd.Series:
    """Convert amounts to tonnes from a unit per row (or one unit for all).

    Raises
    ------
    LinkageError
        Naming the rows whose unit is not one of :data:`UNITS`.

    Examples
    --------
    >>> to_tonnes(pd.Series([2000.0, 3.0, 0.5]), pd.Series(["kg", "吨", "万吨"])).tolist()
    [2.0, 3.0, 5000.0]
    """
    u = pd.Series(units, index=values.index) if isinstance(units, str) else units
    key = u.astype("string").str.strip().str.lower()
    factor = key.map(UNITS)
    bad = factor.isna() & values.notna()
    if bad.any():
        raise LinkageError(f"unknown unit(s) {sorted(set(key[bad].dropna()))[:5]} in rows {list(values.index[bad][:10])}; known: {sorted(UNITS)}")
    return pd.to_numeric(values, errors="raise") * factor.astype(float)


def read_emission_records(
    source: str | Path | pd.DataFrame,
    *,
    units: str | dict[str, str] | None = None,
    rename: dict[str, str] | None = None,
    **read_kwargs,
) -> pd.DataFrame:
    """Read firm-year pollution records and convert amounts to tonnes.

    Parameters
    ----------
    source : path or pandas.DataFrame
        One row per firm (or plant) and year: ``year``, a name (``firm_name``/企业名称) or a
        ``firm_id``, ``county_code`` (for the name link), pollutant columns.
    units : str or dict, optional
        The file's unit (``"kg"``, ``"t"``, ``"万吨"`` ...) or one per pollutant; used where the
        file has no ``unit`` column. One of the two is required.
    rename : dict, optional
        Raw column -> field name.

    Returns
    -------
    pandas.DataFrame
        ``firm_id`` (Int64, may be missing), ``firm_name``, ``county_code``, ``year`` and the
        pollutants found, in tonnes.

    Examples
    --------
    >>> read_emission_records(pd.DataFrame({"firm_id": [3], "year": [2019], "cod": [0.02]}), units="万吨")["cod"].tolist()
    [200.0]
    """
    what = "emission records" if isinstance(source, pd.DataFrame) else f"emission file {source}"
    raw = source if isinstance(source, pd.DataFrame) else read_table(source, **read_kwargs)
    raw = raw.rename(columns=rename or {})
    lower = {str(c).strip().lower(): c for c in raw.columns}
    col = {f: next((lower[h.lower()] for h in hs if h.lower() in lower), None) for f, hs in _HEADERS.items()}
    if col["year"] is None:
        raise LinkageError(f"{what} lacks a year column (tried {list(_HEADERS['year'])}); it has {list(raw.columns)}")
    if col["firm_id"] is None and col["firm_name"] is None:
        raise LinkageError(f"{what} has neither 'firm_id' nor a firm name column (tried {list(_HEADERS['firm_name'])})")
    pols = [p for p in POLLUTANTS if col[p] is not None]
    if not pols:
        raise LinkageError(f"{what} has no pollutant column (any of {[h for p in POLLUTANTS for h in _HEADERS[p]]})")
    out = pd.DataFrame(index=raw.index)
    out["firm_id"] = pd.to_numeric(raw[col["firm_id"]], errors="coerce").astype("Int64") if col["firm_id"] else pd.array([pd.NA] * len(raw), dtype="Int64")
    out["firm_name"] = raw[col["firm_name"]].astype("string") if col["firm_name"] else pd.array([pd.NA] * len(raw), dtype="string")
    out["county_code"] = pd.to_numeric(raw[col["county_code"]], errors="coerce").astype("Int64") if col["county_code"] else pd.array([pd.NA] * len(raw), dtype="Int64")
    if col["address"]:
        out["address"] = raw[col["address"]].astype("string")
    year = pd.to_numeric(raw[col["year"]], errors="coerce")
    if year.isna().any():
        raise LinkageError(f"{what}: column '{col['year']}' is not a year in rows {list(raw.index[year.isna()][:10])}")
    out["year"] = year.astype(np.int64)
    for p in pols:
        if col["unit"] is not None:
            unit = raw[col["unit"]]
        elif isinstance(units, dict) and p in units:
            unit = units[p]
        elif isinstance(units, str):
            unit = units
        else:
            raise LinkageError(f"{what}: no unit for '{col[p]}': add a unit column or pass units= (one of {sorted(UNITS)})")
        try:
            out[p] = to_tonnes(raw[col[p]], unit)
        except LinkageError as err:
            raise LinkageError(f"{what}, column '{col[p]}': {err}") from None
        neg = out[p] < 0
        if neg.any():
            raise LinkageError(f"{what}: negative amounts in column '{col[p]}', rows {list(raw.index[neg][:10])}")
    return out


@dataclass
class EmissionLinkage:
    """Result of :func:`link_emissions`: ``emissions`` (firm_id, year, pollutants in tonnes),
    ``links`` (each record with its firm and method) and the ``report``."""

    emissions: pd.DataFrame
    links: pd.DataFrame
    report: LinkageReport

    def __repr__(self) -> str:
        return f"EmissionLinkage: {len(self.emissions):,} firm-years with records\n{self.report!r}"

    def _repr_html_(self) -> str:
        return self.report._repr_html_()

    def to_panel(self, panel: pd.DataFrame) -> pd.DataFrame:
        """The panel with pollutants from the records and ``reports_emissions`` set to whether
        the firm-year has a linked record (pollutants missing where it has none).

        Examples
        --------
        >>> rec = read_emission_records(pd.DataFrame({"firm_id": [1], "year": [2020], "so2": [2.0]}), units="t")
        >>> res = link_emissions(rec, pd.DataFrame({"firm_id": [1, 2], "firm_name": ["甲厂", "乙厂"]}))
        >>> res.to_panel(pd.DataFrame({"firm_id": [1, 2], "year": [2020, 2020]}))["reports_emissions"].tolist()
        [True, False]
        """
        pols = [p for p in POLLUTANTS if p in self.emissions.columns]
        base = panel.drop(columns=[c for c in (*pols, "reports_emissions") if c in panel.columns])
        out = base.merge(self.emissions.assign(reports_emissions=True), on=["firm_id", "year"], how="left")
        out["reports_emissions"] = out["reports_emissions"].fillna(False).astype(bool)
        return out


def link_emissions(records: pd.DataFrame, firms: pd.DataFrame, *, n_unmatched: int = 50, fuzzy_cutoff: float = 80.0, name: str = "firm_name", former_names: str | None = "former_names") -> EmissionLinkage:
    """Link pollution records to firms: by ``firm_id`` where present, else by normalised name
    within the record's county (ambiguous names are listed, not linked); sum records of a firm-year.

    Parameters
    ----------
    records : pandas.DataFrame
        From :func:`read_emission_records`.
    firms : pandas.DataFrame
        ``firm_id``, ``name``, ``county_code``; optional ``former_names``, ``county_name``.
    n_unmatched, fuzzy_cutoff
        Size of the unmatched review list and the lowest fuzzy score shown.

    Returns
    -------
    EmissionLinkage

    Raises
    ------
    LinkageError
        If records carry firm ids that are not in the firm file (rows named).

    Examples
    --------
    >>> rec = read_emission_records(pd.DataFrame({"firm_name": ["甲厂", "甲厂"], "county_code": [1, 2], "year": [2020, 2020],
    ...                                           "so2": [1.0, 2.0]}), units="t")
    >>> firms = pd.DataFrame({"firm_id": [5, 6], "firm_name": ["甲厂", "甲厂"], "county_code": [1, 2]})
    >>> link_emissions(rec, firms).emissions[["firm_id", "so2"]].values.tolist()
    [[5.0, 1.0], [6.0, 2.0]]
    """
    pols = [p for p in POLLUTANTS if p in records.columns]
    known_ids = set(pd.to_numeric(firms["firm_id"]).tolist())
    r = records.reset_index(drop=True)
    has_id = r["firm_id"].notna().to_numpy()
    unknown = has_id & ~r["firm_id"].isin(known_ids).to_numpy()
    if unknown.any():
        raise LinkageError(f"emission records carry firm ids not in the firm file: rows {list(np.flatnonzero(unknown)[:10])} (ids {r.loc[unknown, 'firm_id'].head(5).tolist()})")
    keys = firm_keys(firms, name=name, former_names=former_names)
    rows = r.loc[~has_id, [c for c in ("county_code", "address") if c in r.columns]].copy()
    rows["key"] = name_key(r.loc[~has_id, "firm_name"])
    res = link_by_name(rows, keys, within_county=True)
    links = r[["firm_id", "firm_name", "county_code", "year"]].copy()
    links["method"] = "firm_id"
    links["candidates"] = pd.array([pd.NA] * len(r), dtype="string")
    links.loc[~has_id, "firm_id"] = res["firm_id"].to_numpy()
    links.loc[~has_id, "method"] = res["method"].to_numpy()
    links.loc[~has_id, "candidates"] = res["candidates"].to_numpy()
    links["key"] = pd.array([pd.NA] * len(r), dtype="string")
    links.loc[~has_id, "key"] = rows["key"].to_numpy()
    ok = links["firm_id"].notna().to_numpy()
    em = r.loc[ok, pols].assign(firm_id=links.loc[ok, "firm_id"].astype(np.int64).to_numpy(), year=r.loc[ok, "year"].to_numpy())
    emissions = em.groupby(["firm_id", "year"], as_index=False)[pols].sum(min_count=1)

    shares = links.assign(linked=ok).groupby("year")["linked"].agg(n_records="size", n_linked="sum").reset_index()
    shares["share_linked"] = shares["n_linked"] / shares["n_records"]
    methods = links["method"].value_counts().rename_axis("method").reset_index(name="n")
    amb = links[links["method"] == "ambiguous"]
    ambiguous = amb.groupby(["firm_name", "key", "county_code", "candidates"], dropna=False).size().rename("n_records").reset_index()
    un = links[links["method"] == "unmatched"]
    top = un.groupby("key").agg(firm_name=("firm_name", "first"), n_records=("year", "size")).sort_values("n_records", ascending=False, kind="stable").head(n_unmatched)
    fz = fuzzy_candidates(pd.Series(top.index), keys, limit=1, score_cutoff=fuzzy_cutoff)
    unmatched = top.reset_index().merge(fz, on="key", how="left")
    report = LinkageReport("emissions", shares, methods, ambiguous, unmatched, {"units": "tonnes", "pollutants": ", ".join(pols)})
    return EmissionLinkage(emissions=emissions, links=links, report=report)
