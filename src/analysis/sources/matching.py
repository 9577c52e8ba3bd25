"""Following firms across years when their identifier changes: the sequential matching of Brandt,
Van Biesebroeck and Zhang (2012).

The legal-unit code of a firm of the Annual Survey of Industrial Firms changes when the firm is
restructured, re-registered or (from 2015) given a unified social credit code. Brandt, Van
Biesebroeck and Zhang (2012, *J. Dev. Econ.* 97(2), Appendix) link the records of consecutive
years in steps, each among the records the earlier steps left unmatched, and accept a match only
when the key is unique in both years:

1. ``id``: the legal-unit code;
2. ``name``: the firm name (standardised: :func:`analysis.sources.names.normalize_name`);
3. ``legal_rep``: the legal representative, within the same county;
4. ``phone``: area code and telephone number;
5. ``founding``: founding year, county, industry code, and town and main product where present.

Records of year ``t`` still unmatched are then tried against year ``t + 2`` (a firm missing one
year), with the same steps. A chain of links is one firm; its identifier is the code of its first
record (a generated ``L<year>-<n>`` when that record has none), with ``-2``, ``-3`` appended when two
chains would otherwise share a code.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"year": [2010, 2011, 2012], "firm_id": ["000000417", "000000417", "91330100X"],
...                    "firm_name": ["华星电子有限公司", "华星电子有限公司", "华星电子有限责任公司"]})
>>> res = link_firms(df)
>>> res.ids.tolist(), res.matches[["year", "firm_id", "next_firm_id", "step"]].values.tolist()
(['000000417', '000000417', '000000417'], [[2011, '000000417', '91330100X', 'name']])
>>> res.summary.groupby("step")["links"].sum().to_dict()
{'id': 1, 'name': 1}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.sources import _vector as V
from analysis.sources.names import normalize_name

__all__ = ["STEPS", "LinkResult", "link_firms"]

#: the matching steps and the columns each one needs (all of them, except the optional ones)
STEPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "id": (("firm_id",), ()),
    "name": (("_name",), ()),
    "legal_rep": (("legal_rep", "county_code"), ()),
    "phone": (("area_code", "phone"), ()),
    "founding": (("founding_year", "county_code", "industry_code_raw"), ("town", "main_product")),
}


@dataclass
class LinkResult:
    """Result of :func:`link_firms`."""

    ids: pd.Series  #: the linked firm identifier of every row
    matches: pd.DataFrame  #: one row per link not made on an unchanged code: year, firm_id, next_year, next_firm_id, step, linked_id
    summary: pd.DataFrame  #: links by step and pair of years; records starting a chain


def _codes(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One integer per distinct combination of ``cols`` (-1 where any is missing)."""
    miss = np.zeros(len(df), dtype=bool)
    parts = []
    for c in cols:
        codes, _ = pd.factorize(df[c])
        miss |= codes < 0
        parts.append(codes.astype(np.int64))
    key = parts[0]
    for p in parts[1:]:
        key = key * (int(p.max(initial=0)) + 2) + p
        key = pd.factorize(key)[0].astype(np.int64)
    return np.where(miss, -1, key)


def _unique_pairs(key_a: np.ndarray, rows_a: np.ndarray, key_b: np.ndarray, rows_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a and b whose key is present, unique on its side, and equal across sides."""
    def uniq(key, rows):
        ok = key >= 0
        k, r = key[ok], rows[ok]
        vals, counts = np.unique(k, return_counts=True)
        single = np.isin(k, vals[counts == 1])
        return k[single], r[single]

    ka, ra = uniq(key_a, rows_a)
    kb, rb = uniq(key_b, rows_b)
    _, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
    return ra[ia], rb[ib]


def link_firms(df: pd.DataFrame, *, steps: tuple[str, ...] | list[str] = tuple(STEPS), max_gap: int = 2) -> LinkResult:
    """Link the records of a firm across years (see the module docstring).

    Parameters
    ----------
    df : pandas.DataFrame
        Firm-years with ``year`` and the columns of the steps used (``firm_id``, ``firm_name``,
        ``legal_rep``, ``county_code``, ``area_code``, ``phone``, ``founding_year``,
        ``industry_code_raw``, ``town``, ``main_product``); steps whose columns are missing are skipped.
    steps : tuple[str, ...] | list[str]
        The steps, in order.
    max_gap : int
        Link records up to this many years apart (2: a firm may be missing one year).

    Returns
    -------
    LinkResult
    """
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        from analysis.config import ParameterError

        raise ParameterError(f"data.link_steps: unknown step(s) {unknown}; the steps are {list(STEPS)}")
    work = pd.DataFrame(index=df.index)
    if "firm_name" in df and "name" in steps:
        work["_name"] = normalize_name(df["firm_name"])
    for c in {c for s in steps for c in STEPS[s][0] + STEPS[s][1]} - {"_name"}:
        if c in df:
            work[c] = df[c]
    keys: dict[str, np.ndarray] = {}
    used = []
    for s in steps:
        need, optional = STEPS[s]
        if not all(c in work for c in need):
            continue
        keys[s] = _codes(work, list(need) + [c for c in optional if c in work])
        used.append(s)
    year = df["year"].to_numpy(dtype=np.int64)
    n = len(df)
    succ = np.full(n, -1, dtype=np.int64)
    pred = np.full(n, -1, dtype=np.int64)
    how = np.full(n, -1, dtype=np.int64)  # step index of the link into a row
    years = np.unique(year)
    by_year = {y: np.flatnonzero(year == y) for y in years}
    summary = []
    for gap in range(1, max_gap + 1):
        for y in years:
            y2 = y + gap
            if y2 not in by_year:
                continue
            for si, s in enumerate(used):
                a = by_year[y][succ[by_year[y]] < 0]
                b = by_year[y2][pred[by_year[y2]] < 0]
                if not len(a) or not len(b):
                    break
                ra, rb = _unique_pairs(keys[s][a], a, keys[s][b], b)
                succ[ra] = rb
                pred[rb] = ra
                how[rb] = si
                summary.append({"year": int(y), "next_year": int(y2), "step": s, "links": len(ra)})
    # chains: the root of every row, in year order
    root = np.arange(n)
    for y in years:
        r = by_year[y]
        has = pred[r] >= 0
        root[r[has]] = root[pred[r[has]]]
    fid = V.arrow(df["firm_id"]) if "firm_id" in df else pa.chunked_array([pa.nulls(n, pa.string())])
    heads = np.flatnonzero(pred < 0)
    head_id = fid.take(pa.array(heads)).to_pylist()
    for i in np.flatnonzero([h is None for h in head_id]):
        head_id[i] = f"L{year[heads[i]]}-{i}"
    # chains that would share a code get -2, -3 ... (in order of their first year)
    hid = pd.Series(head_id)
    if hid.duplicated().any():
        order = np.lexsort((heads, year[heads]))
        seen: dict[str, int] = {}
        for i in order:
            k = head_id[i]
            seen[k] = seen.get(k, 0) + 1
            if seen[k] > 1:
                head_id[i] = f"{k}-{seen[k]}"
    head_of_row = np.searchsorted(heads, root)
    ids_arrow = pa.array(head_id, type=pa.string()).take(pa.array(head_of_row))
    ids = V.from_arrow(ids_arrow, df.index)
    # the match table: every link not made on an unchanged code (those are counted in the summary)
    linked = np.flatnonzero(succ >= 0)
    step_of = np.asarray(used, dtype=object)[how[succ[linked]]] if len(used) else np.array([], dtype=object)
    show = linked[step_of != "id"] if len(used) else linked
    step_show = step_of[step_of != "id"] if len(used) else step_of
    matches = pd.DataFrame(
        {
            "year": year[show],
            "firm_id": fid.take(pa.array(show)).to_pylist(),
            "next_year": year[succ[show]],
            "next_firm_id": fid.take(pa.array(succ[show])).to_pylist(),
            "step": step_show,
            "linked_id": ids_arrow.take(pa.array(show)).to_pylist(),
        }
    )
    summ = pd.DataFrame(summary, columns=["year", "next_year", "step", "links"])
    return LinkResult(ids, matches, summ)
